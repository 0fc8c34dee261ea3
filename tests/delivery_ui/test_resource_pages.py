"""The learning resources page: roles, adding with problems beside their fields, editing,
archiving and restoring without JavaScript, Spanish; and in Chromium axe, screenshots at desktop
width and at 375 px in English and Spanish."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import func, select

from reports.models import LearningResource
from tests.conftest import save_screenshot
from tests.delivery_ui.conftest import StudentWorld


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _count(world: StudentWorld) -> int:
    with world.db() as session:
        return session.scalar(select(func.count()).select_from(LearningResource))


def _add(client, **fields):
    token = _token(client.get("/resources").get_data(as_text=True))
    form = {"csrf_token": token, "title": "Halves", "url": "https://example.org/halves",
            "skill": "algebra", "level_min": "-1", "level_max": "0.5", "description": "",
            **fields}
    return client.post("/resources", data=form)


def test_staff_add_edit_archive_and_restore_students_are_refused(student_world) -> None:
    teacher = student_world.client_for("teacher1")
    r = teacher.get("/resources")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert re.search(r'href="/resources"\s+aria-current="page"', html)  # in the staff nav
    assert "There are no learning resources here yet." in text_of(html)
    added = _add(teacher)
    assert added.status_code == 303
    listed = text_of(teacher.get("/resources").get_data(as_text=True))
    assert "Halves" in listed and "-1 to 0.5" in listed and "in use" in listed
    with student_world.db() as session:
        resource_id = session.scalar(select(LearningResource.id))

    edit = teacher.get(f"/resources/{resource_id}/edit").get_data(as_text=True)
    assert 'value="https://example.org/halves"' in edit and 'value="-1"' in edit
    r = teacher.post(f"/resources/{resource_id}/edit", data={
        "csrf_token": _token(edit), "title": "Halves, again", "url": "https://example.org/h",
        "skill": "algebra", "level_min": "", "level_max": "2", "description": "Short"})
    assert r.status_code == 303
    listed = text_of(teacher.get("/resources").get_data(as_text=True))
    assert "Halves, again" in listed and "up to 2" in listed

    token = _token(teacher.get("/resources").get_data(as_text=True))
    assert teacher.post(f"/resources/{resource_id}/archive",
                        data={"csrf_token": token}).status_code == 303
    assert "There are no learning resources here yet." in text_of(
        teacher.get("/resources").get_data(as_text=True))
    everything = text_of(teacher.get("/resources?archived=1").get_data(as_text=True))
    assert "Halves, again" in everything and "archived" in everything
    teacher.post(f"/resources/{resource_id}/archive", data={"csrf_token": token, "restore": "1"})
    assert "in use" in text_of(teacher.get("/resources").get_data(as_text=True))

    assert student_world.client_for("student1").get("/resources").status_code == 403
    assert student_world.client_for(None).get("/resources").status_code == 302
    assert student_world.client_for("assessor1").get("/resources").status_code == 200
    assert teacher.get("/resources/999999/edit").status_code == 404


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"title": " "}, "title", "Give the resource a title"),
    ({"url": "ftp://example.org"}, "url", "starts with http:// or https://"),
    ({"skill": "poetry"}, "skill", "Choose a skill of the item bank."),
    ({"level_min": "2", "level_max": "1"}, "level_min", "must not be above the highest"),
    ({"level_max": "lots"}, "level_max", "Enter a level from -6 to 6"),
])
def test_problems_are_shown_beside_their_fields(student_world, fields, field, words) -> None:
    teacher = student_world.client_for("teacher1")
    r = _add(teacher, **fields)
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert words in text_of(html)
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html)
    assert 'value="https://example.org/halves"' in html or field == "url"  # the form is kept
    assert _count(student_world) == 0


def test_the_page_in_spanish(student_world) -> None:
    teacher = student_world.client_for("teacher1")
    teacher.set_cookie("lang", "es")
    _add(teacher)
    text = text_of(teacher.get("/resources").get_data(as_text=True))
    for words in ("Recursos de aprendizaje", "Añadir un recurso", "Dirección web", "Archivar",
                  "Editar", "en uso"):
        assert words in text, words


# -- in Chromium -------------------------------------------------------------------------------


def _serious(page) -> list[str]:
    violations = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
            for v in violations if v["impact"] in ("serious", "critical")]


def _sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


@pytest.mark.browser
def test_the_page_in_chromium(sqlite_world: StudentWorld, live, page) -> None:
    _sign_in(page, live.url, "teacher1", sqlite_world.password)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live.url + "/resources")
    page.get_by_label("Title").fill("Fractions on a number line")
    page.get_by_label("Web address").fill("https://example.org/fractions")
    page.get_by_label("Skill", exact=True).last.select_option("algebra")
    page.get_by_label("From level").fill("-1.5")
    page.get_by_label("To level").fill("0.5")
    with page.expect_navigation():
        page.get_by_role("button", name="Add the resource").click()
    assert page.locator("#resource-list tbody tr").count() == 1
    # a second one with a problem: shown beside the field
    page.get_by_label("Title").fill("Broken")
    page.get_by_label("Web address").fill("example.org")
    page.get_by_label("Skill", exact=True).last.select_option("algebra")
    with page.expect_navigation():
        page.get_by_role("button", name="Add the resource").click()
    assert page.locator("#url-error").is_visible()
    assert _serious(page) == []
    save_screenshot(page, "resources")
    page.set_viewport_size({"width": 375, "height": 800})
    save_screenshot(page, "resources-375")
    assert page.evaluate("document.documentElement.scrollWidth <= 375")
    assert _serious(page) == []
    page.context.add_cookies([{"name": "lang", "value": "es", "url": live.url}])
    page.goto(live.url + "/resources")
    assert page.locator("h1").inner_text() == "Recursos de aprendizaje"
    save_screenshot(page, "resources-es-375")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert _serious(page) == []
    save_screenshot(page, "resources-es")
