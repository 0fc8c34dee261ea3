"""The defense pages through plain forms, on SQLite and PostgreSQL: a teacher schedules a
defense from the class's page, two raters score blind (no trace of the other's sheet before
both have submitted), the scores appear side by side with the disagreement marked in words, a
correction, the adjudicator settles the disputed criterion, and the student reads the final
scores with the level descriptors. Other people's defenses are not found."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from evidence.models import Defense, RubricScore
from storage.accounts import Role, User
from tests.api.conftest import PASSWORD
from tests.delivery_ui.conftest import StudentWorld, csrf_of
from tests.evidence.defense_helpers import co_teach, make_rubric


def prepare(world: StudentWorld) -> dict:
    """A rubric; teacher2 and a new teacher3 each teach a class with student1 in it."""
    with world.db() as session:
        version = make_rubric(session)
        co_teach(session, world.ids["users"]["teacher2"], [world.ids["users"]["student1"]])
        t3 = User(username="teacher3", display_name="Teacher Three", role=Role.TEACHER,
                  password_hash=generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"))
        session.add(t3)
        session.flush()
        co_teach(session, t3.id, [world.ids["users"]["student1"]], name="Drama")
        world.ids["users"]["teacher3"] = t3.id
        return {"rubric_id": version.rubric_id,
                "criteria": [(c.id, c.code) for c in version.criteria]}


def schedule(world: StudentWorld, teacher, rubric: dict, **fields) -> int:
    cid = world.ids["class_id"]
    users = world.ids["users"]
    html = teacher.get(f"/teach/classes/{cid}/defenses").get_data(as_text=True)
    data = {"csrf_token": csrf_of(html), "student_id": str(users["student1"]),
            "title": "Defense of the survey", "rubric_id": str(rubric["rubric_id"]),
            "task_id": "", "scheduled_at": "2026-12-10T09:30",
            "recording_url": "https://video.example.org/d/1",
            "raters": [str(users["teacher1"]), str(users["teacher2"])],
            "adjudicator": str(users["teacher3"]), **fields}
    response = teacher.post(f"/teach/classes/{cid}/defenses", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    with world.db() as db:
        return db.scalar(select(func.max(Defense.id)))


def sheet(client, defense_id: int, rubric: dict, scores: list[int], note: str):
    html = client.get(f"/teach/defenses/{defense_id}/score").get_data(as_text=True)
    data = {"csrf_token": csrf_of(html)}
    for (cid, code), score in zip(rubric["criteria"], scores, strict=True):
        if score is not None:
            data[f"score-{cid}"] = str(score)
        data[f"note-{cid}"] = f"{note} {code}"
    return client.post(f"/teach/defenses/{defense_id}/score", data=data)


def test_schedule_score_blind_adjudicate_and_student_sees_final(
        student_world: StudentWorld) -> None:
    world = student_world
    rubric = prepare(world)
    cid = world.ids["class_id"]
    t1, t2 = world.client_for("teacher1"), world.client_for("teacher2")
    t3, student = world.client_for("teacher3"), world.client_for("student1")
    assert f'href="/teach/classes/{cid}/defenses"' in t1.get(f"/teach/classes/{cid}").get_data(
        as_text=True)

    # A refused rater is named on the form, and nothing is stored.
    html = t1.get(f"/teach/classes/{cid}/defenses").get_data(as_text=True)
    bad = t1.post(f"/teach/classes/{cid}/defenses", data={
        "csrf_token": csrf_of(html), "student_id": str(world.ids["users"]["student2"]),
        "title": "X", "rubric_id": str(rubric["rubric_id"]),
        "raters": [str(world.ids["users"]["teacher2"])]})
    assert bad.status_code == 422 and 'id="raters-error"' in bad.get_data(as_text=True)
    bad = t1.post(f"/teach/classes/{cid}/defenses", data={"csrf_token": csrf_of(html)})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'id="student_id-error"' in text
    assert 'id="raters-error"' in text
    with world.db() as db:
        assert db.scalar(select(func.count(Defense.id))) == 0

    did = schedule(world, t1, rubric)
    assert t2.get(f"/teach/classes/{cid}/defenses").status_code == 404
    assert student.get(f"/teach/defenses/{did}/score").status_code == 403
    other = world.client_for("student2").get("/my-defenses")
    assert other.status_code == 200 and "Defense of the survey" not in other.get_data(
        as_text=True)

    # An incomplete sheet is refused whole, naming the criterion left out.
    missing = sheet(t1, did, rubric, [1, None, 3], "t1")
    assert missing.status_code == 422
    assert f'id="score-{rubric["criteria"][1][0]}-error"' in missing.get_data(as_text=True)
    with world.db() as db:
        assert db.scalar(select(func.count(RubricScore.id))) == 0
    assert sheet(t1, did, rubric, [1, 3, 3], "t1 noted").status_code == 303

    # Blind: teacher2's screen has no trace of teacher1's sheet.
    page = t2.get(f"/teach/defenses/{did}/score").get_data(as_text=True)
    assert "t1 noted" not in page and 'id="all-scores"' not in page
    assert "Teacher1, Teacher2 (not submitted yet)" in page  # nothing said of teacher1
    assert 'id="score-sheet"' in page and "https://video.example.org/d/1" in page
    # teacher1 sees their own sheet, and where the next defense to score is (none).
    mine = t1.get(f"/teach/defenses/{did}/score").get_data(as_text=True)
    assert "t1 noted reasoning" in mine and 'id="no-next"' in mine
    assert sheet(t1, did, rubric, [2, 3, 3], "again").status_code == 409

    assert sheet(t2, did, rubric, [4, 4, 2], "t2 noted").status_code == 303
    page = t2.get(f"/teach/defenses/{did}/score").get_data(as_text=True)
    assert 'id="all-scores"' in page and "t1 noted reasoning" in page
    assert page.count("Disagreement: more than one level apart") == 1
    assert "awaiting adjudication" in page and "3.5: between Secure and Excellent" in page
    assert 'id="correction"' in page
    assert f'action="/teach/defenses/{did}/adjudications"' not in page  # t2 is a rater

    # A correction with its reason; then the adjudicator settles reasoning.
    reasoning = rubric["criteria"][0][0]
    fix = t2.post(f"/teach/defenses/{did}/corrections", data={
        "csrf_token": csrf_of(page), "criterion_id": str(rubric["criteria"][1][0]),
        "correction_score": "3", "reason": ""})
    assert fix.status_code == 422 and 'id="reason-error"' in fix.get_data(as_text=True)
    fix = t2.post(f"/teach/defenses/{did}/corrections", data={
        "csrf_token": csrf_of(page), "criterion_id": str(rubric["criteria"][1][0]),
        "correction_score": "3", "reason": "Misread my own notes"})
    assert fix.status_code == 303
    judge = t3.get(f"/teach/defenses/{did}/score").get_data(as_text=True)
    assert f'id="adjudicate-{reasoning}"' in judge
    done = t3.post(f"/teach/defenses/{did}/adjudications", data={
        "csrf_token": csrf_of(judge), "criterion_id": str(reasoning),
        f"adjudicate-{reasoning}": "3", f"reason-{reasoning}": "The recording settles it"})
    assert done.status_code == 303
    page = t1.get(f"/teach/defenses/{did}/score").get_data(as_text=True)
    assert "Misread my own notes" in page and "The recording settles it" in page
    assert re.search(r'status-final">final<', page)

    mine = student.get("/my-defenses").get_data(as_text=True)
    assert "Defense of the survey" in mine and "3: Secure" in mine
    assert "2.5: between Developing and Secure" in mine  # evidence: 3 and 2
    assert "Secure: level 3 of the criterion" in mine and "t1 noted clarity" in mine
    assert "Teacher1" not in mine and "Misread" not in mine and "recording settles" not in mine


def test_lead_manages_raters_and_pages_link_here(student_world: StudentWorld) -> None:
    world = student_world
    rubric = prepare(world)
    users = world.ids["users"]
    t1, t2 = world.client_for("teacher1"), world.client_for("teacher2")
    assert 'href="/teach/defenses"' in t1.get("/teach/classes").get_data(as_text=True)
    assert 'href="/my-defenses"' in world.client_for("student1").get("/my-tests").get_data(
        as_text=True)
    did = schedule(world, t1, rubric, raters=[str(users["teacher2"])], adjudicator="")
    page = t1.get(f"/teach/defenses/{did}/score").get_data(as_text=True)
    assert 'id="manage-raters"' in page and 'id="score-sheet"' not in page
    assert 'id="waiting"' in page
    added = t1.post(f"/teach/defenses/{did}/raters", data={
        "csrf_token": csrf_of(page), "user_id": str(users["teacher3"]), "role": "rater"})
    assert added.status_code == 303
    refused = t1.post(f"/teach/defenses/{did}/raters", data={
        "csrf_token": csrf_of(page), "user_id": str(users["teacher3"]), "role": "rater"})
    assert refused.status_code == 409 and "already assigned" in refused.get_data(as_text=True)
    # A rater does not manage raters, and sees no buttons that would tell who submitted.
    rater_page = t2.get(f"/teach/defenses/{did}/score").get_data(as_text=True)
    assert 'id="manage-raters"' not in rater_page
    assert t2.post(f"/teach/defenses/{did}/raters/{users['teacher3']}/remove", data={
        "csrf_token": csrf_of(rater_page)}).status_code == 403
    assert sheet(t2, did, rubric, [2, 2, 2], "t2").status_code == 303
    removed = t1.post(f"/teach/defenses/{did}/raters/{users['teacher2']}/remove",
                      data={"csrf_token": csrf_of(page)}, follow_redirects=True)
    assert "A rater who has submitted stays a rater." in removed.get_data(as_text=True)
    assert t1.post(f"/teach/defenses/{did}/raters/{users['teacher3']}/remove",
                   data={"csrf_token": csrf_of(page)}).status_code == 303
    final = t1.get(f"/teach/defenses/{did}/score").get_data(as_text=True)
    assert 'id="all-scores"' in final and "status-final" in final
    assert t1.post(f"/teach/defenses/{did}/cancel",
                   data={"csrf_token": csrf_of(final)}).status_code == 303
    with world.db() as db:
        assert db.scalar(select(func.count(RubricScore.id))) == 3  # kept
        assert db.get(Defense, did).cancelled_at is not None
