"""End to end in Chromium: a teacher sets a task; a student hands in two versions with files;
the teacher sees both, compares them and comments (with the keyboard); the student sees the
comment. axe on every page, in English and Spanish, with screenshots at desktop width and at
375 px."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.conftest import LiveServer, save_screenshot
from tests.delivery_ui.conftest import StudentWorld
from tests.evidence import samples

TEXTS = {
    "en": {"comment": "Good: now say what a whole is.", "compared": "What changed from version 1 "
           "to version 2", "handed": "Version 2 is handed in."},
    "es": {"comment": "Bien: ahora di qué es un entero.", "compared": "Qué cambió de la versión "
           "1 a la versión 2", "handed": "La versión 2 está entregada."},
}


def _sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(url + "/")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    with page.expect_navigation():
        page.locator("form.card button[type=submit]").click()


def _check(page, violations: list, name: str, narrow: bool = False) -> None:
    violations += [dict(v, page=name) for v in Axe().run(page).response["violations"]]
    save_screenshot(page, name)
    if narrow:
        page.set_viewport_size({"width": 375, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, name
        violations += [dict(v, page=name) for v in Axe().run(page).response["violations"]]
        save_screenshot(page, f"{name}-375")
        page.set_viewport_size({"width": 1280, "height": 800})


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "es"])
def test_two_drafts_compared_and_commented(sqlite_world: StudentWorld, browser,
                                           language: str) -> None:
    world = sqlite_world
    texts = TEXTS[language]
    class_id = world.ids["class_id"]
    locale = "es-ES" if language == "es" else "en-GB"
    teacher_context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
    student_context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
    teacher, student = teacher_context.new_page(), student_context.new_page()
    violations: list = []
    try:
        with LiveServer(world.app) as live:
            # The teacher sets a task from the class page.
            _sign_in(teacher, live.url, "teacher1", world.password)
            teacher.goto(f"{live.url}/teach/classes/{class_id}")
            _check(teacher, violations, f"tasks-class-page-{language}")
            teacher.locator(f'a[href="/teach/classes/{class_id}/tasks/new"]').click()
            teacher.locator("#title").fill("Fractions essay")
            teacher.locator("#instructions").fill(
                "Explain what **a half** is.\n\n- use an example\n- add a drawing")
            teacher.locator('input[name=skills][value="algebra"]').check()
            teacher.locator("#due_at").fill("2030-06-01T09:00")
            _check(teacher, violations, f"tasks-new-task-form-{language}", narrow=True)
            with teacher.expect_navigation():
                teacher.locator("form.card button[type=submit]").click()
            task_url = teacher.url
            task_id = int(task_url.rstrip("/").rsplit("/", 1)[1])

            # The student finds it next to their tests and hands in two versions.
            _sign_in(student, live.url, "student1", world.password)
            student.goto(f"{live.url}/my-tests")
            _check(student, violations, f"tasks-student-start-page-{language}", narrow=True)
            student.locator(f'a[href="/tasks/{task_id}"]').click()
            student.locator("#body").fill("A half is one of two parts.")
            student.locator("#files").set_input_files([
                {"name": "essay.pdf", "mimeType": "application/pdf", "buffer": samples.pdf()}])
            with student.expect_navigation():
                student.locator("form.card button[type=submit]").click()
            student.locator("#body").fill("A half is one of two equal parts of a whole.")
            student.locator("#files").set_input_files([
                {"name": "drawing.png", "mimeType": "image/png", "buffer": samples.png(8, 8)}])
            with student.expect_navigation():
                student.locator("form.card button[type=submit]").click()
            assert texts["handed"] in student.locator(".flash").inner_text()
            assert student.locator("ol.versions > li").count() == 2

            # The teacher sees both, compares them and comments with the keyboard.
            teacher.goto(task_url)
            _check(teacher, violations, f"tasks-teacher-task-{language}", narrow=True)
            student_id = world.ids["users"]["student1"]
            with teacher.expect_navigation():
                teacher.locator(f'a[href$="/tasks/{task_id}/students/{student_id}"]').click()
            assert teacher.locator("ol.versions > li").count() == 2
            assert teacher.locator('a[href^="/files/"]').count() == 2
            teacher.locator("#from").select_option("1")
            teacher.locator("#to").select_option("2")
            with teacher.expect_navigation():
                teacher.locator("form.compare-form button").click()
            assert texts["compared"] in teacher.locator("#comparison-heading").inner_text()
            assert teacher.locator("#comparison ins").count() >= 1
            assert teacher.locator("#comparison del").count() >= 1
            box = teacher.locator("#version-2 textarea")
            box.focus()
            teacher.keyboard.type(texts["comment"])
            teacher.keyboard.press("Tab")
            focused = teacher.evaluate("document.activeElement.textContent")
            assert focused.strip() == teacher.locator("#version-2 form button").inner_text()
            with teacher.expect_navigation():
                teacher.keyboard.press("Enter")
            assert teacher.locator(".flash").is_visible()
            teacher.goto(teacher.url.split("#")[0] + "?from=1&to=2#comparison")
            _check(teacher, violations, f"tasks-teacher-timeline-{language}", narrow=True)
            teacher.goto(f"{live.url}/teach/classes/{class_id}#tasks")
            assert teacher.locator("#task-list").is_visible()
            _check(teacher, violations, f"tasks-class-page-with-task-{language}", narrow=True)

            # The student sees the comment, and can compare their own versions too.
            student.goto(f"{live.url}/tasks/{task_id}")
            assert texts["comment"] in student.locator("#version-2 .comments").inner_text()
            student.locator("#from").select_option("1")
            student.locator("#to").select_option("2")
            with student.expect_navigation():
                student.locator("form.compare-form button").click()
            assert student.locator("#comparison ins").count() >= 1
            _check(student, violations, f"tasks-student-task-{language}", narrow=True)
            size = len(student.content().encode())
            assert size < 50_000, size
    finally:
        teacher_context.close()
        student_context.close()
    serious = [f"{v['page']} {v['id']}: {[n['target'] for n in v['nodes']]}"
               for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, serious
