"""End to end in Chromium: a student finishes a test, a teacher scores a defense, the teacher reads
the student's report (from the class page) and records a decision (a missing reason first, shown
beside the field); the student reads their report (without which answers were right) and
appeals; the teacher answers with a revision; both see the history. axe on every page, in English
and Spanish, with screenshots at desktop width and at 375 px.

The test is taken through the API and the defense scored through the service, to keep this one
browser flow short: their pages have browser tests of their own."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from evidence import defenses
from evidence.models import Defense, RubricCalibration, RubricCalibrationStatus
from storage import utcnow
from storage.accounts import User
from tests.api.conftest import ApiWorld
from tests.api.test_attempts_api import _take
from tests.conftest import LiveServer
from tests.delivery_ui.conftest import StudentWorld
from tests.delivery_ui.test_task_browser import _check, _sign_in
from tests.evidence.defense_helpers import make_rubric

TEXTS = {
    "en": {"recorded": "Your decision on", "appealed": "Your appeal on", "answered":
           "Your answer to the appeal", "required": "A reason is required.",
           "revised": "revised: a new decision", "report": "Mastery report"},
    "es": {"recorded": "Tu decisión sobre", "appealed": "Tu apelación sobre", "answered":
           "Tu respuesta a la apelación", "required": "Hace falta un motivo.",
           "revised": "revisada: una decisión nueva", "report": "Informe de dominio"},
}


def finish_test(world: StudentWorld, username: str) -> None:
    """``username`` takes the class's test to the end (every answer right), through the API."""
    api = ApiWorld(app=world.app, client=world.app.test_client(), users=world.ids["users"],
                   test_id=world.test_id)
    _take(api, username)


def scored_defense(world: StudentWorld, username: str = "student1") -> int:
    """A defense of ``username`` scored by teacher1 under a rubric with a published
    calibration (set by hand, as the demo's), so that its scores count in the report."""
    users = world.ids["users"]
    with world.db() as session:
        teacher = session.get(User, users["teacher1"])
        version = make_rubric(session)
        session.add(RubricCalibration(
            rubric_version_id=version.id, model="gpcm", status=RubricCalibrationStatus.PUBLISHED,
            criteria={str(c.id): {"code": c.code, "model": "gpcm", "n": 0, "se": None, "a": 1.0,
                                  "thresholds": [-1.4, -0.1, 1.3]} for c in version.criteria},
            raters={str(teacher.id): {"severity": 0.0, "se": None, "n": 0}},
            provenance={"test": True}, n_students=0, created_by=teacher.id,
            published_by=teacher.id, published_at=utcnow()))
        defense = defenses.schedule(session, teacher, world.ids["class_id"], users[username],
                                    version.rubric_id, title="Defense of the survey",
                                    raters=[teacher.id])
        defenses.submit_sheet(session, teacher, defense, {
            c.id: {"score": score, "note": ""}
            for c, score in zip(version.criteria, (3, 4, 2), strict=True)})
        return defense.id


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "es"])
def test_report_decision_appeal_answer_and_history(sqlite_world: StudentWorld, browser,
                                                   language: str) -> None:
    world = sqlite_world
    texts = TEXTS[language]
    users = world.ids["users"]
    finish_test(world, "student1")
    defense_id = scored_defense(world)
    with world.db() as session:
        assert session.get(Defense, defense_id) is not None
    locale = "es-ES" if language == "es" else "en-GB"
    contexts = [browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
                for _ in range(2)]
    teacher, student = (c.new_page() for c in contexts)
    violations: list = []
    report_url = f"/teach/students/{users['student1']}/report"
    try:
        with LiveServer(world.app) as live:
            # The teacher reaches the report from the class's roster.
            _sign_in(teacher, live.url, "teacher1", world.password)
            teacher.goto(f"{live.url}/teach/classes/{world.ids['class_id']}")
            with teacher.expect_navigation():
                teacher.locator(f'a[href="{report_url}"]').first.click()
            assert teacher.url.endswith(report_url)
            first = teacher.locator("#skill-0")
            assert first.locator("svg.interval-bar title").count() == 1
            assert first.locator(".prior-row").count() == 1
            assert teacher.locator("#how-to-read").count() == 1
            skills = teacher.locator("section.skill h2").all_inner_texts()
            assert len(skills) == 3  # algebra, geometry, statistics: answers and rubric scores
            rubric_rows = teacher.locator("section.skill tbody tr th", has_text="Rubric" if
                                          language == "en" else "rúbrica")
            assert rubric_rows.count() >= 3
            _check(teacher, violations, f"report-teacher-{language}", narrow=True)

            # A decision without a reason is refused beside the field; then recorded.
            first.locator("#skill-0-decision").select_option("needs_evidence")
            with teacher.expect_navigation():
                first.locator(".decision-form button[type=submit]").click()
            assert texts["required"] in teacher.locator("#skill-0-reason-error").inner_text()
            _check(teacher, violations, f"report-teacher-error-{language}")
            first = teacher.locator("#skill-0")
            assert first.locator("#skill-0-decision").input_value() == "needs_evidence"
            first.locator("#skill-0-reason").fill("The defense and the test disagree")
            with teacher.expect_navigation():
                first.locator(".decision-form button[type=submit]").click()
            assert texts["recorded"] in teacher.locator(".flash").inner_text()
            assert "The defense and the test disagree" in teacher.locator(
                "#decision-history").inner_text()

            # The student reads their report (no right/wrong, no shift of an answer) and appeals.
            _sign_in(student, live.url, "student1", world.password)
            with student.expect_navigation():
                student.locator('nav.site-nav a[href="/my-report"]').click()
            assert "The defense and the test disagree" in student.locator("#skill-0").inner_text()
            evidence = student.locator("#skill-0 table.evidence").inner_text()
            assert "IT-0" not in evidence  # no item codes
            _check(student, violations, f"report-student-{language}", narrow=True)
            student.locator("#skill-0-message").fill("I explained it well in my defense")
            with student.expect_navigation():
                student.locator("#skill-0 .appeal-form button[type=submit]").click()
            assert texts["appealed"] in student.locator(".flash").inner_text()
            assert student.locator("#skill-0-appeal-open").count() == 1
            _check(student, violations, f"report-student-appealed-{language}")

            # The teacher answers: revised, with a new decision.
            teacher.goto(live.url + report_url)
            form = teacher.locator("form.answer-form")
            assert "I explained it well in my defense" in form.inner_text()
            form.locator("input[value=revised]").check()
            form.locator("select[name=decision]").select_option("mastered")
            form.locator("textarea[name=reason]").fill("The recording convinced me")
            _check(teacher, violations, f"report-teacher-appeal-{language}", narrow=True)
            with teacher.expect_navigation():
                form.locator("button[type=submit]").click()
            assert texts["answered"] in teacher.locator(".flash").inner_text()
            assert teacher.locator("form.answer-form").count() == 0
            history = teacher.locator("#history").inner_text()
            assert "The recording convinced me" in history and texts["revised"] in history

            # Both see the whole history.
            student.reload()
            history = student.locator("#history").inner_text()
            for text in ("The defense and the test disagree", "I explained it well in my defense",
                         "The recording convinced me", texts["revised"]):
                assert text in history
            assert student.locator("#decision-history tbody tr").count() == 2
            _check(student, violations, f"report-student-history-{language}", narrow=True)
    finally:
        for context in contexts:
            context.close()
    serious = [f"{v['page']} {v['id']}: {[n['target'] for n in v['nodes']]}"
               for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, serious


def test_pages_refuse_strangers_and_keep_nothing_of_bad_forms(sqlite_world: StudentWorld) -> None:
    """Without a browser: another teacher's student is not found, an assessor is refused, a
    student's appeal without a message is shown beside the field and nothing is stored."""
    world = sqlite_world
    users = world.ids["users"]
    finish_test(world, "student1")
    path = f"/teach/students/{users['student1']}/report"
    assert world.client_for("teacher2").get(path).status_code == 404
    assert world.client_for("assessor1").get(path).status_code == 403
    assert world.client_for("student1").get(path).status_code == 403
    assert world.client_for(None).get(path).status_code == 302
    teacher1 = world.client_for("teacher1")
    for linked_from in (f"/teach/classes/{world.ids['class_id']}",
                        f"/teach/classes/{world.ids['class_id']}/dashboard",
                        f"/teach/classes/{world.ids['class_id']}/students/{users['student1']}"
                        "/portfolio"):
        assert f'href="{path}"' in teacher1.get(linked_from).get_data(as_text=True), linked_from
    assert 'href="/my-report"' in world.client_for("student1").get("/my-tests").get_data(
        as_text=True)
    empty = teacher1.get(f"/teach/students/{users['student2']}/report")
    assert empty.status_code == 200 and 'id="no-evidence"' in empty.get_data(as_text=True)
    client: FlaskClient = world.client_for("student1")
    html = client.get("/my-report").get_data(as_text=True)
    from tests.delivery_ui.conftest import csrf_of

    bad = client.post("/my-report/appeals", data={"csrf_token": csrf_of(html),
                                                  "skill": "algebra", "message": "  "})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'id="skill-0-message-error"' in text
    assert "appeal-history" not in text
    stranger = client.post("/my-report/appeals", data={"csrf_token": csrf_of(html),
                                                       "skill": "knitting", "message": "why"})
    assert stranger.status_code == 404
    teacher = world.client_for("teacher2")
    html = teacher.get("/teach/classes").get_data(as_text=True)
    refused = teacher.post(f"/teach/students/{users['student1']}/report/decisions",
                           data={"csrf_token": csrf_of(html), "skill": "algebra",
                                 "decision": "mastered", "reason": "x"})
    assert refused.status_code == 404
    with world.db() as session:
        from reports.decisions import history

        assert history(session, users["student1"])["decisions"] == []
        assert history(session, users["student1"])["appeals"] == []
