"""The teacher's class page: each student's latest attempt with its status and result, only for
the teacher's own classes (through Flask's test client and in Chromium, with axe)."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import insert

from api.wording import stop_reason_text
from storage.accounts import Role, User, class_members
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
    table = re.search(r'<table class="data[^"]*" id="roster">.*?</table>', html, re.S).group(0)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]:
        name = re.search(r'<th scope="row">\s*([^<]*?)\s*<', row).group(1)
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


def _answer(world: StudentWorld, client, attempt_id: int, html: str, times: int) -> str:
    for _n in range(times):
        html = client.post(f"/attempts/{attempt_id}/answer", data=_form(html),
                           follow_redirects=True).get_data(as_text=True)
    return html


def test_an_attempt_whose_time_ran_out_says_so(student_world: StudentWorld) -> None:
    world = student_world
    client = world.client_for("student1")
    attempt_id, html = _start(world, client)
    _answer(world, client, attempt_id, html, 3)
    world.move_deadline(attempt_id, -30)  # the time ran out; the student never came back
    (attempt,) = world.attempts("student1")
    assert attempt.status.value == "in_progress"  # the row does not know yet
    theta, se = [e for e in attempt.state["estimates"] if e][-1]
    teacher = world.client_for("teacher1")
    row = _rows(teacher.get(f"/teach/classes/{world.ids['class_id']}").get_data(as_text=True))
    assert "time ran out" in row["Student1"] and "in progress" not in row["Student1"]
    assert " 3 (2 scored) stopped: the time ran out" in row["Student1"]
    assert f"{theta:.2f} ({se:.2f})" in row["Student1"]  # the level of the answers given


def test_a_short_result_shows_its_length_and_why_it_stopped(student_world: StudentWorld) -> None:
    world = student_world
    client = world.client_for("student1")
    attempt_id, html = _start(world, client)
    html = _answer(world, client, attempt_id, html, 2)
    world.move_deadline(attempt_id, -5)
    client.post(f"/attempts/{attempt_id}/answer", data=_form(html))  # too late: it ends
    world.finished = _finish(world, "student2")
    (short,) = world.attempts("student1")
    (full,) = world.attempts("student2")
    assert short.status.value == "finished" and short.stop_reason == "time_limit"
    teacher = world.client_for("teacher1")
    rows = _rows(teacher.get(f"/teach/classes/{world.ids['class_id']}").get_data(as_text=True))
    assert " 2 (1 scored) stopped: the time ran out" in rows["Student1"]
    given, scored = full.result["n_given"], full.result["n_scored"]
    words = stop_reason_text(full.stop_reason)
    assert words != full.stop_reason and scored < given  # two pretest items
    assert f" {given} ({scored} scored) stopped: {words}" in rows["Student2"]


def _enrol_more(world: StudentWorld, *names: str) -> None:
    with world.db() as db:
        for name in names:
            user = User(username=name, display_name=name.title(), role=Role.STUDENT,
                        password_hash="x")
            db.add(user)
            db.flush()
            db.execute(insert(class_members).values(class_id=world.ids["class_id"],
                                                    user_id=user.id))


def test_students_are_listed_in_natural_order(student_world: StudentWorld) -> None:
    _enrol_more(student_world, "student10", "student11", "student9")
    html = student_world.client_for("teacher1").get(
        f"/teach/classes/{student_world.ids['class_id']}").get_data(as_text=True)
    assert list(_rows(html)) == ["Student1", "Student2", "Student9", "Student10", "Student11"]


def test_another_teacher_gets_404_for_the_class(school: StudentWorld) -> None:
    client = school.client_for("teacher2")
    response = client.get(f"/teach/classes/{school.ids['class_id']}")
    assert response.status_code == 404
    # The visible text only: the page's random CSRF token can contain "7A" (it did, once).
    text = re.sub(r"<[^>]*>", " ", response.get_data(as_text=True))
    assert "Student2" not in text and "7A" not in text
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
            with page.expect_navigation():
                page.get_by_role("link", name="7A").click()
            assert page.locator("#roster tbody tr").count() == 2
            assert page.locator("html").get_attribute("lang") == language
            violations += Axe().run(page).response["violations"]
            save_screenshot(page, f"teacher-class-{language}")
            # On a phone every column is still there: each row becomes a card of labelled cells.
            page.set_viewport_size({"width": 375, "height": 800})
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the page is {width}px wide on a 375px screen"
            cells = page.locator("#roster tbody tr").nth(1).locator("td")
            assert cells.count() == 6
            for n in range(6):
                box = cells.nth(n).bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375
            violations += Axe().run(page).response["violations"]
            save_screenshot(page, f"teacher-class-{language}-375")
    finally:
        context.close()
    serious = [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in violations
               if v["impact"] in ("serious", "critical")]
    assert not serious, serious


def test_a_class_shows_only_attempts_at_its_own_tests(student_world: StudentWorld) -> None:
    """Student1 is also in teacher2's class 7B, which was not assigned the test: teacher2 sees
    that they have no attempt there, not their attempt at 7A's test."""
    world = student_world
    with world.db() as db:
        db.execute(insert(class_members).values(class_id=world.ids["other_class_id"],
                                                user_id=world.ids["users"]["student1"]))
    _finish(world, "student1")
    teacher2 = world.client_for("teacher2")
    html = teacher2.get(f"/teach/classes/{world.ids['other_class_id']}").get_data(as_text=True)
    assert "No attempt yet." in _rows(html)["Student1"] and "Maths" not in html
    teacher1 = world.client_for("teacher1")
    html = teacher1.get(f"/teach/classes/{world.ids['class_id']}").get_data(as_text=True)
    assert "Maths" in _rows(html)["Student1"]
