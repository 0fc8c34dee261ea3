"""Classes, enrolments, assignments and a class's attempts over HTTP, on SQLite and PostgreSQL,
and the whole path from an administrator's new accounts to a timed attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import func, select

from api.db import engine_of
from evidence.models import Assignment, Attempt
from item_bank.models import AdaptiveTest
from storage import session_factory, session_scope
from storage.accounts import SchoolClass, class_members
from tests.api.conftest import PASSWORD

API = "/api/v1"


def _db(world):
    return session_scope(session_factory(engine_of(world.app)))


def _fields(response) -> set[str]:
    return {e["field"] for e in response.get_json().get("errors", [])}


def _counts(world) -> tuple[int, int, int, int]:
    """Classes, enrolments, assignments and attempts in the database."""
    with _db(world) as session:
        return (session.scalar(select(func.count(SchoolClass.id))),
                session.scalar(select(func.count()).select_from(class_members)),
                session.scalar(select(func.count(Assignment.id))),
                session.scalar(select(func.count(Attempt.id))))


def _iso(moment: datetime, hours: int = 0) -> str:
    """``moment`` written in a zone ``hours`` from UTC."""
    return moment.astimezone(timezone(timedelta(hours=hours))).isoformat()


def _take(world, user: str) -> dict:
    r = world.call("post", f"{API}/attempts", user, json={"test_id": world.test_id})
    assert r.status_code == 201, r.get_json()
    reply = r.get_json()
    while reply["status"] == "in_progress":
        reply = world.answer(user, reply["id"], reply["item"]["id"], 1).get_json()
    return reply


def test_teachers_and_admins_manage_classes(world) -> None:
    r = world.call("post", f"{API}/classes", "teacher1", json={"name": " 8C "})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["name"] == "8C" and created["students"] == [] and created["n_students"] == 0
    assert created["teacher"] == {"id": world.users["teacher1"], "username": "teacher1",
                                  "display_name": "Teacher1"}
    before = _counts(world)
    for user, body, status, fields in [
        ("teacher1", {"name": "8C"}, 409, {"name"}),
        ("teacher1", {"name": "   "}, 422, {"name"}),
        ("teacher1", {}, 422, {"json.name"}),
        ("teacher1", {"name": "x" * 201}, 422, {"json.name"}),
        ("teacher1", {"name": "9D", "teacher_id": world.users["teacher2"]}, 403, {"teacher_id"}),
        ("admin1", {"name": "9D"}, 422, {"teacher_id"}),
        ("admin1", {"name": "9D", "teacher_id": world.users["student1"]}, 422, {"teacher_id"}),
        ("admin1", {"name": "9D", "teacher_id": 999999}, 422, {"teacher_id"}),
    ]:
        r = world.call("post", f"{API}/classes", user, json=body)
        assert r.status_code == status and _fields(r) == fields, (body, r.get_json())
    assert _counts(world) == before
    r = world.call("post", f"{API}/classes", "admin1",
                   json={"name": "8C", "teacher_id": world.users["teacher2"]})
    assert r.status_code == 201  # the same name, another teacher
    theirs = r.get_json()["id"]

    r = world.call("get", f"{API}/classes", "teacher1")
    page = r.get_json()
    assert [c["name"] for c in page["items"]] == ["7A", "8C"] and page["total"] == 2
    assert page["items"][0]["n_students"] == 2 and "students" not in page["items"][0]
    r = world.call("get", f"{API}/classes?per_page=2", "admin1")
    assert r.get_json()["total"] == 4 and r.get_json()["pages"] == 2
    r = world.call("get", f"{API}/classes?teacher_id={world.users['teacher2']}", "admin1")
    assert [c["name"] for c in r.get_json()["items"]] == ["7B", "8C"]

    detail = world.call("get", f"{API}/classes/{world.class_id}", "teacher1").get_json()
    assert [s["username"] for s in detail["students"]] == ["student1", "student2"]
    assert set(detail["students"][0]) == {"id", "username", "display_name"}

    r = world.call("patch", f"{API}/classes/{created['id']}", "teacher1", json={"name": "7A"})
    assert r.status_code == 409 and _fields(r) == {"name"}
    r = world.call("patch", f"{API}/classes/{created['id']}", "teacher1", json={"name": "8D"})
    assert r.status_code == 200 and r.get_json()["name"] == "8D"
    r = world.call("patch", f"{API}/classes/{theirs}", "admin1",
                   json={"teacher_id": world.users["teacher1"]})
    assert r.status_code == 200 and r.get_json()["teacher"]["username"] == "teacher1"
    r = world.call("delete", f"{API}/classes/{created['id']}", "teacher1")
    assert r.status_code == 204 and r.data == b""
    assert world.call("get", f"{API}/classes/{created['id']}", "teacher1").status_code == 404
    assert world.call("get", f"{API}/classes/999999", "admin1").status_code == 404


def test_enrolment(world) -> None:
    path = f"{API}/classes/{world.class_id}/students"
    s3 = world.users["student3"]
    r = world.call("post", path, "teacher1", json={"username": "student3"})
    assert r.status_code == 403  # enrolment is an administrator's act
    r = world.call("post", path, "admin1", json={"username": "student3"})
    assert r.status_code == 201
    assert r.get_json() == {"class_id": world.class_id, "student": {
        "id": s3, "username": "student3", "display_name": "Student3"}}
    assert world.call("post", path, "admin1", json={"user_id": s3}).status_code == 200
    assert world.call("post", path, "admin1", json={"username": "student3"}).status_code == 200
    before = _counts(world)
    for body, fields in [
        ({"user_id": world.users["teacher2"]}, {"user_id"}),
        ({"username": "assessor1"}, {"username"}),
        ({"username": "nobody"}, {"username"}),
        ({"user_id": 999999}, {"user_id"}),
        ({}, {"json.user_id"}),
        ({"user_id": s3, "username": "student3"}, {"json.user_id"}),
        ({"user_id": "three"}, {"json.user_id"}),
    ]:
        r = world.call("post", path, "admin1", json=body)
        assert r.status_code == 422 and _fields(r) == fields, (body, r.get_json())
        assert "student" in r.get_json()["detail"] or r.get_json()["errors"]
    assert _counts(world) == before
    detail = world.call("get", f"{API}/classes/{world.class_id}", "teacher1").get_json()
    assert [s["username"] for s in detail["students"]] == ["student1", "student2", "student3"]
    # student3 is now teacher1's student (as well as teacher2's).
    r = world.call("get", f"{API}/users/{s3}/accommodation", "teacher1")
    assert r.status_code == 200
    assert world.call("delete", f"{path}/{s3}", "teacher1").status_code == 403
    r = world.call("delete", f"{path}/{s3}", "admin1")
    assert r.status_code == 204
    assert world.call("delete", f"{path}/{s3}", "admin1").status_code == 404
    assert world.call("get", f"{API}/users/{s3}/accommodation", "teacher1").status_code == 404
    with _db(world) as session:
        members = session.execute(select(class_members.c.class_id)
                                  .where(class_members.c.user_id == s3)).scalars().all()
        assert members == [world.other_class_id]


def test_assignments_are_validated(world) -> None:
    with _db(world) as session:
        retired = AdaptiveTest(name="Retired", is_active=False)
        session.add(retired)
        session.flush()
        retired_id = retired.id
    path = f"{API}/classes/{world.class_id}/assignments"
    now = datetime.now(UTC)
    before = _counts(world)
    for body, status, fields in [
        ({"test_id": 999999}, 422, {"test_id"}),
        ({"test_id": retired_id}, 422, {"test_id"}),
        ({}, 422, {"json.test_id"}),
        ({"test_id": world.test_id, "opens_at": "2026-09-01T08:00:00"}, 422, {"json.opens_at"}),
        ({"test_id": world.test_id, "closes_at": "next week"}, 422, {"json.closes_at"}),
        ({"test_id": world.test_id, "opens_at": _iso(now, 2),
          "closes_at": _iso(now - timedelta(minutes=1), -5)}, 422, {"closes_at"}),
        ({"test_id": world.test_id, "opens_at": _iso(now), "closes_at": _iso(now)}, 422,
         {"closes_at"}),
        ({"test_id": world.test_id, "time_limit_minutes": 0}, 422, {"json.time_limit_minutes"}),
        ({"test_id": world.test_id, "time_limit_minutes": 1441}, 422,
         {"json.time_limit_minutes"}),
        ({"test_id": world.test_id, "time_limit_minutes": 1.5}, 422,
         {"json.time_limit_minutes"}),
        ({"test_id": world.test_id, "max_attempts": 0}, 422, {"json.max_attempts"}),
    ]:
        r = world.call("post", path, "teacher1", json=body)
        assert r.status_code == status and _fields(r) == fields, (body, r.get_json())
        assert r.mimetype == "application/problem+json"
    assert _counts(world) == before

    opens = now.replace(microsecond=0) + timedelta(days=1)
    r = world.call("post", path, "teacher1", json={
        "test_id": world.test_id, "opens_at": _iso(opens, 2),
        "closes_at": _iso(opens + timedelta(days=7), -5), "time_limit_minutes": 45,
        "max_attempts": 2})
    assert r.status_code == 201, r.get_json()
    made = r.get_json()
    assert made["opens_at"] == opens.isoformat()  # stored and shown in UTC
    assert made["closes_at"] == (opens + timedelta(days=7)).isoformat()
    assert made["test_name"] == "Maths" and made["created_by"] == world.users["teacher1"]
    one = f"{API}/assignments/{made['id']}"
    assert world.call("get", one, "teacher1").get_json() == made

    for body, fields in [({"closes_at": _iso(opens - timedelta(hours=1))}, {"closes_at"}),
                         ({"test_id": world.test_id}, {"json.test_id"}),
                         ({"time_limit_minutes": -3}, {"json.time_limit_minutes"}),
                         ({"opens_at": "2026-09-01 08:00"}, {"json.opens_at"})]:
        r = world.call("patch", one, "teacher1", json=body)
        assert r.status_code == 422 and _fields(r) == fields, (body, r.get_json())
    assert world.call("get", one, "teacher1").get_json() == made  # unchanged
    r = world.call("patch", one, "teacher1", json={"opens_at": None, "time_limit_minutes": None})
    assert r.status_code == 200
    assert r.get_json()["opens_at"] is None and r.get_json()["time_limit_minutes"] is None
    assert r.get_json()["closes_at"] == made["closes_at"] and r.get_json()["max_attempts"] == 2

    page = world.call("get", path, "teacher1").get_json()
    assert page["total"] == 2  # the fixture's open-ended one comes last
    assert [a["closes_at"] is None for a in page["items"]] == [False, True]
    assert page["items"][0]["id"] == made["id"]
    assert world.call("delete", one, "teacher1").status_code == 204
    assert world.call("get", one, "teacher1").status_code == 404
    assert _counts(world) == before


def test_role_checks(world) -> None:
    mine, theirs = world.class_id, world.other_class_id
    with _db(world) as session:
        assignment = session.scalar(select(Assignment.id).where(Assignment.class_id == mine))
    s1 = world.users["student1"]
    endpoints = [
        ("get", f"{API}/classes", None),
        ("post", f"{API}/classes", {"name": "Z"}),
        ("get", f"{API}/classes/{mine}", None),
        ("patch", f"{API}/classes/{mine}", {"name": "Z"}),
        ("delete", f"{API}/classes/{mine}", None),
        ("post", f"{API}/classes/{mine}/students", {"username": "student3"}),
        ("delete", f"{API}/classes/{mine}/students/{s1}", None),
        ("get", f"{API}/classes/{mine}/assignments", None),
        ("post", f"{API}/classes/{mine}/assignments", {"test_id": world.test_id}),
        ("get", f"{API}/assignments/{assignment}", None),
        ("patch", f"{API}/assignments/{assignment}", {"max_attempts": 1}),
        ("delete", f"{API}/assignments/{assignment}", None),
        ("get", f"{API}/classes/{mine}/attempts", None),
    ]
    before = _counts(world)
    for method, path, body in endpoints:
        for user in ("student1", "assessor1"):
            r = world.call(method, path, user, json=body)
            assert r.status_code == 403, (method, path, user, r.get_json())
        assert world.call(method, path, json=body).status_code == 401
        if path in (f"{API}/classes",):
            continue
        r = world.call(method, path, "teacher2", json=body)  # not their class: not revealed
        if "/students" in path:  # administrators only, in any class
            assert r.status_code == 403, (method, path, r.get_json())
            continue
        assert r.status_code == 404, (method, path, r.get_json())
        assert r.get_json()["detail"] in (f"no class {mine}", f"no assignment {assignment}")
    r = world.call("get", f"{API}/classes", "teacher2")
    assert [c["id"] for c in r.get_json()["items"]] == [theirs]
    assert _counts(world) == before
    with _db(world) as session:
        assert session.get(SchoolClass, mine).name == "7A"
        assert session.get(Assignment, assignment).max_attempts is None


def test_class_attempts_and_deleting_a_class_keeps_them(world) -> None:
    path = f"{API}/classes/{world.class_id}/attempts"
    r = world.call("get", path, "teacher1")
    assert r.status_code == 200
    page = r.get_json()
    assert page["total"] == 2
    assert [(row["student"]["username"], row["attempt"]) for row in page["items"]] == [
        ("student1", None), ("student2", None)]

    first = _take(world, "student1")
    second = _take(world, "student1")
    started = world.call("post", f"{API}/attempts", "student2",
                         json={"test_id": world.test_id}).get_json()
    rows = {row["student"]["username"]: row["attempt"]
            for row in world.call("get", path, "admin1").get_json()["items"]}
    assert rows["student1"]["id"] == second["id"] != first["id"]  # the latest
    assert rows["student1"]["status"] == "finished"
    full = world.call("get", f"{API}/attempts/{second['id']}", "admin1").get_json()["result"]
    assert rows["student1"]["theta"] == full["theta"]  # staff see the figures
    assert rows["student1"]["se"] == full["se"]
    assert rows["student1"]["mastery"] == full["mastery"]
    assert rows["student1"]["finished_at"].endswith("+00:00")
    assert rows["student2"]["id"] == started["id"] and rows["student2"]["status"] == "in_progress"
    assert rows["student2"]["theta"] is None and rows["student2"]["mastery"] is None
    r = world.call("get", f"{path}?test_id=999&per_page=1", "teacher1").get_json()
    assert r["total"] == 2 and r["pages"] == 2 and r["items"][0]["attempt"] is None

    r = world.call("delete", f"{API}/classes/{world.class_id}", "teacher1")
    assert r.status_code == 204
    with _db(world) as session:
        attempts = session.scalars(select(Attempt)).all()
        assert len(attempts) == 3 and all(a.assignment_id is None for a in attempts)
        assert session.scalar(select(func.count(Assignment.id))) == 0
    assert _counts(world)[:2] == (1, 1)  # 7B and its student remain


def test_from_new_accounts_to_a_timed_attempt(world) -> None:
    """An administrator makes a teacher and students; the teacher builds a class, the
    administrator enrols the students and sets accommodations; the teacher assigns the test with
    a time limit; accommodations scale the deadline; a closed window hides the test."""
    ids = {}
    for name, role in [("teacher9", "teacher"), ("pupil_a", "student"), ("pupil_b", "student"),
                       ("pupil_c", "student")]:
        r = world.call("post", f"{API}/users", "admin1", json={
            "username": name, "display_name": name.title(), "role": role, "password": PASSWORD})
        assert r.status_code == 201, r.get_json()
        ids[name] = r.get_json()["id"]
    r = world.call("post", f"{API}/classes", "teacher9", json={"name": "9Z"})
    assert r.status_code == 201
    class_id = r.get_json()["id"]
    found = world.call("get", f"{API}/users?role=student&q=pupil", "admin1").get_json()
    for student in found["items"]:  # the administrator enrols them
        r = world.call("post", f"{API}/classes/{class_id}/students", "admin1",
                       json={"user_id": student["id"]})
        assert r.status_code == 201
    for name, body in [("pupil_b", {"time": "extended", "time_factor": 2}),
                       ("pupil_c", {"time": "none"})]:
        r = world.call("put", f"{API}/users/{ids[name]}/accommodation", "admin1", json=body)
        assert r.status_code == 200

    # Nothing is assigned yet: the test is neither listed nor startable.
    assert world.call("get", f"{API}/tests", "pupil_a").get_json()["total"] == 0
    r = world.call("post", f"{API}/attempts", "pupil_a", json={"test_id": world.test_id})
    assert r.status_code == 404

    # Opening in an hour, written in UTC-5: still closed (the zone is honoured, not dropped).
    now = datetime.now(UTC)
    r = world.call("post", f"{API}/classes/{class_id}/assignments", "teacher9", json={
        "test_id": world.test_id, "opens_at": _iso(now + timedelta(hours=1), -5),
        "closes_at": _iso(now + timedelta(days=1), 9), "time_limit_minutes": 30})
    assert r.status_code == 201, r.get_json()
    assignment = r.get_json()
    assert world.call("get", f"{API}/tests", "pupil_a").get_json()["total"] == 0
    r = world.call("patch", f"{API}/assignments/{assignment['id']}", "teacher9",
                   json={"opens_at": _iso(now - timedelta(hours=1), 2)})
    assert r.status_code == 200

    listed = world.call("get", f"{API}/tests", "pupil_a").get_json()
    assert [t["name"] for t in listed["items"]] == ["Maths"]
    assert listed["items"][0]["assignment"]["time_limit_minutes"] == 30
    assert listed["items"][0]["assignment"]["class_id"] == class_id
    one = world.call("get", f"{API}/tests/{world.test_id}", "pupil_a").get_json()
    assert one["assignment"]["closes_at"].endswith("+00:00") and "config" not in one
    seconds = {}
    for name in ("pupil_a", "pupil_b", "pupil_c"):
        r = world.call("post", f"{API}/attempts", name, json={"test_id": world.test_id})
        assert r.status_code == 201, r.get_json()
        seconds[name] = r.get_json()["item"].get("seconds_left")
    assert 30 * 60 - 10 <= seconds["pupil_a"] <= 30 * 60
    assert 60 * 60 - 10 <= seconds["pupil_b"] <= 60 * 60  # extended, factor 2
    assert seconds["pupil_c"] is None  # no time limit
    rows = world.call("get", f"{API}/classes/{class_id}/attempts", "teacher9").get_json()
    assert [(row["student"]["username"], row["attempt"]["status"]) for row in rows["items"]] == [
        ("pupil_a", "in_progress"), ("pupil_b", "in_progress"), ("pupil_c", "in_progress")]

    # The window closes: the test disappears and cannot be started (or resumed) any more.
    r = world.call("patch", f"{API}/assignments/{assignment['id']}", "teacher9",
                   json={"closes_at": _iso(now - timedelta(minutes=1))})
    assert r.status_code == 200, r.get_json()
    assert world.call("get", f"{API}/tests", "pupil_a").get_json()["total"] == 0
    assert world.call("get", f"{API}/tests/{world.test_id}", "pupil_a").status_code == 404
    for name in ("pupil_a", "pupil_c"):
        r = world.call("post", f"{API}/attempts", name, json={"test_id": world.test_id})
        assert r.status_code == 404
    # Students of other classes are untouched: 7A's assignment is still open.
    assert world.call("get", f"{API}/tests", "student1").get_json()["total"] == 1
