"""The teacher's class page: each student's latest attempt with its status and result, only for
the teacher's own classes (through Flask's test client and in Chromium, with axe)."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.conftest import LiveServer, save_screenshot
from tests.delivery_ui.conftest import StudentWorld
from tests.delivery_ui.test_student_views import ITEM, _form, _start


def _finish(world: StudentWorld, username: str) -> int:
    """Take a whole test as ``username`` (always the second option); returns the attempt id."""
    client = world.client_for(username)
    attempt_id, html = _start(world, client)
    while ITEM.search(html):
        html = client.post(f"/attempts/{attempt_id}/answer", data=_form(html),
                           follow_redirects=True).get_data(as_text=True)
    return attempt_id


def _rows(html: str) -> dict[str, str]:
    """The roster's rows, by student name, as text."""
    table = re.search(r'<table class="data" id="roster">.*?</table>', html, re.S).group(0)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]:
        name = re.search(r'<th scope="row">(.*?)</th>', row).group(1)
        rows[name] = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
    return rows


@pytest.fixture
def school(student_world: StudentWorld) -> StudentWorld:
    """Student1 finished one attempt and started another; student2 finished one."""
    world = student_world
    world.first_attempt = _finish(world, "student1")
    _start(world, world.client_for("student1"))
    world.finished = _finish(world, "student2")
    return world


def test_the_class_page_lists_each_students_latest_attempt(school: StudentWorld) -> None:
    client = school.client_for("teacher1")
    listing = client.get("/teach/classes").get_data(as_text=True)
    class_id = school.ids["class_id"]
    assert f'href="/teach/classes/{class_id}">7A</a>' in listing and "2 students" in listing
    html = client.get(f"/teach/classes/{class_id}").get_data(as_text=True)
    rows = _rows(html)
    assert list(rows) == ["Student1", "Student2"]
    assert "in progress" in rows["Student1"]
    (attempt,) = [a for a in school.attempts("student2") if a.id == school.finished]
    band = {"well below", "below the middle", "around the middle", "above the middle",
            "well above"}
    assert "finished" in rows["Student2"] and any(b in rows["Student2"].lower() for b in band)
    assert f"{attempt.theta:.2f} ({attempt.se:.2f})" in rows["Student2"]
    decision = attempt.result["mastery"]["decision"]
    expected = {"mastered": "mastered", "not_mastered": "not mastered yet",
                "undecided": "too close to tell"}[decision]
    assert expected in rows["Student2"]
    # Each attempt, finished or not, links to the teacher's view of it.
    link = f"/teach/classes/{class_id}/attempts/{school.finished}"
    assert f'href="{link}"' in html and client.get(link).status_code == 200
    filtered = client.get(f"/teach/classes/{class_id}?test_id={school.test_id}")
    assert filtered.status_code == 200
    wrong = client.get(f"/teach/classes/{class_id}?test_id=999")
    assert wrong.status_code == 422
    assert "Choose one of the tests assigned to this class." in wrong.get_data(as_text=True)


def test_another_teacher_gets_404_for_the_class(school: StudentWorld) -> None:
    client = school.client_for("teacher2")
    response = client.get(f"/teach/classes/{school.ids['class_id']}")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "Student2" not in body and "7A" not in body
    assert "Student3" in client.get(f"/teach/classes/{school.ids['other_class_id']}") \
        .get_data(as_text=True)


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "es"])
def test_the_class_page_in_a_browser(sqlite_world: StudentWorld, browser, language) -> None:
    sqlite_world.finished = _finish(sqlite_world, "student2")
    context = browser.new_context(locale="es-ES" if language == "es" else "en-GB")
    page = context.new_page()
    try:
        with LiveServer(sqlite_world.app) as live:
            page.goto(live.url + "/")
            page.locator("#username").fill("teacher1")
            page.locator("#password").fill(sqlite_world.password)
            with page.expect_navigation():
                page.locator("form.card button[type=submit]").click()
            page.get_by_role("link", name="Mis clases" if language == "es" else "My classes") \
                .click()
            violations = Axe().run(page).response["violations"]
            page.get_by_role("link", name="7A").click()
            assert page.locator("#roster tbody tr").count() == 2
            assert page.locator("html").get_attribute("lang") == language
            violations += Axe().run(page).response["violations"]
            save_screenshot(page, f"teacher-class-{language}")
    finally:
        context.close()
    serious = [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in violations
               if v["impact"] in ("serious", "critical")]
    assert not serious, serious
