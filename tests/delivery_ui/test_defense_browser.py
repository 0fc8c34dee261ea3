"""End to end in Chromium: a teacher schedules a defense from the class's page; two raters
score a whole sheet with the keyboard only (Tab between criteria, arrow keys within one, typing
notes, Enter to submit); the second sees no trace of the first's sheet until both have
submitted; the adjudicator settles the disputed criterion; the student reads the final scores.
axe on every page, in English and Spanish, with screenshots at desktop width and at 375 px."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer
from tests.delivery_ui.conftest import StudentWorld
from tests.delivery_ui.test_defense_pages import prepare
from tests.delivery_ui.test_task_browser import _check, _sign_in

TEXTS = {
    "en": {"saved": "Your scores for Student1 are saved.", "disagree": "Disagreement",
           "final": "3: Secure", "between": "2.5: between Developing and Secure"},
    "es": {"saved": "Tus puntuaciones de Student1 están guardadas.", "disagree": "Desacuerdo",
           "final": "3: Secure", "between": "2,5: entre Developing y Secure"},
}


def _tab_to(page, selector: str, limit: int = 60) -> None:
    """Press Tab until the element matching ``selector`` has the focus."""
    for _ in range(limit):
        if page.evaluate(f"document.activeElement.matches({selector!r})"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def _score_by_keyboard(page, criteria: list[int], levels: list[int], note: str) -> None:
    """Fill a whole sheet with the keyboard: for each criterion Tab into its radio group (the
    first level gets the focus), Space or the arrow keys to choose, Tab to its notes field."""
    _tab_to(page, f"#score-{criteria[0]}-1")
    for criterion, level in zip(criteria, levels, strict=True):
        assert page.evaluate("document.activeElement.name") == f"score-{criterion}"
        page.keyboard.press("Space")
        for _ in range(level - 1):
            page.keyboard.press("ArrowDown")
        assert page.locator(f"#score-{criterion}-{level}").is_checked()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == f"note-{criterion}"
        page.keyboard.type(f"{note} {criterion}")
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "submit-sheet"
    with page.expect_navigation():
        page.keyboard.press("Enter")


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "es"])
def test_keyboard_scoring_blind_adjudication_and_student_view(
        sqlite_world: StudentWorld, browser, language: str) -> None:
    world = sqlite_world
    texts = TEXTS[language]
    rubric = prepare(world)
    criteria = [cid for cid, _ in rubric["criteria"]]
    users = world.ids["users"]
    class_id = world.ids["class_id"]
    locale = "es-ES" if language == "es" else "en-GB"
    pages = {}
    contexts = []
    for name in ("teacher1", "teacher2", "teacher3", "student1", "admin1"):
        context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
        contexts.append(context)
        pages[name] = context.new_page()
    t1, t2, t3, student = (pages[n] for n in ("teacher1", "teacher2", "teacher3", "student1"))
    violations: list = []
    try:
        with LiveServer(world.app) as live:
            _sign_in(t1, live.url, "teacher1", world.password)
            t1.goto(f"{live.url}/teach/classes/{class_id}")
            t1.locator(f'a[href="/teach/classes/{class_id}/defenses"]').click()
            t1.locator("#student_id").select_option(str(users["student1"]))
            t1.locator("#title").fill("Defense of the survey project")
            t1.locator("#rubric_id").select_option(str(rubric["rubric_id"]))
            t1.locator("#scheduled_at").fill("2030-06-01T09:00")
            t1.locator("#recording_url").fill("https://video.example.org/defense/7")
            t1.locator(f"#rater-{users['teacher2']}").check()
            t1.locator("#adjudicator").select_option(str(users["teacher3"]))
            _check(t1, violations, f"defenses-schedule-form-{language}", narrow=True)
            with t1.expect_navigation():
                t1.locator("#schedule-form button[type=submit]").click()
            score_url = t1.url
            assert score_url.endswith("/score")

            # teacher1 scores the whole sheet with the keyboard only.
            _check(t1, violations, f"defenses-score-sheet-{language}", narrow=True)
            _score_by_keyboard(t1, criteria, [1, 3, 3], "t1-note")
            assert texts["saved"] in t1.locator(".flash").inner_text()
            _check(t1, violations, f"defenses-submitted-{language}")

            # An administrator (no rater) sees who has submitted, never what, and the raters.
            admin = pages["admin1"]
            _sign_in(admin, live.url, "admin1", world.password)
            admin.goto(score_url)
            assert "t1-note" not in admin.content()
            assert admin.locator("#manage-raters").count() == 1
            _check(admin, violations, f"defenses-manage-{language}", narrow=True)

            # teacher2: no trace of teacher1's sheet before submitting.
            _sign_in(t2, live.url, "teacher2", world.password)
            t2.goto(score_url)
            assert "t1-note" not in t2.content()
            assert t2.locator("#all-scores").count() == 0
            _score_by_keyboard(t2, criteria, [4, 4, 2], "t2-note")
            assert "t1-note" in t2.content()
            assert texts["disagree"] in t2.locator("#all-scores").inner_text()
            _check(t2, violations, f"defenses-all-scores-{language}", narrow=True)
            t2.goto(f"{live.url}/teach/defenses")
            assert t2.locator("#defense-list tbody tr").count() == 1
            _check(t2, violations, f"defenses-teacher-list-{language}", narrow=True)

            # The adjudicator settles reasoning with the keyboard.
            _sign_in(t3, live.url, "teacher3", world.password)
            t3.goto(score_url)
            _check(t3, violations, f"defenses-adjudication-{language}", narrow=True)
            _tab_to(t3, f"#adjudicate-{criteria[0]}-1")
            t3.keyboard.press("Space")
            t3.keyboard.press("ArrowDown")
            t3.keyboard.press("ArrowDown")
            t3.keyboard.press("Tab")
            t3.keyboard.type("The recording shows a sound argument")
            t3.keyboard.press("Tab")
            with t3.expect_navigation():
                t3.keyboard.press("Enter")
            assert t3.locator(f"#adjudicate-{criteria[0]}").count() == 0
            assert "status-final" in t3.content()

            _sign_in(student, live.url, "student1", world.password)
            student.goto(f"{live.url}/my-defenses")
            final = student.locator(".final-scores").inner_text()
            assert texts["final"] in final and texts["between"] in final
            assert "t1-note" in final and "sound argument" not in student.content()
            _check(student, violations, f"defenses-student-final-{language}", narrow=True)
    finally:
        for context in contexts:
            context.close()
    assert violations == [], [(v["page"], v["id"], v["help"]) for v in violations]
