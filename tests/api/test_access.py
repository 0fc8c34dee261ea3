"""Who may see a student's work: enrolment is an administrator's act, a teacher sees only the
attempts made under their own classes' assignments, and every change of access is audited in an
append-only table. On SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from api.db import engine_of
from storage import session_factory, session_scope
from storage.accounts import AccessAudit, Accommodation, class_members
from tests.api.conftest import PASSWORD
from tests.api.test_classes_api import _take

API = "/api/v1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _db(world):
    return session_scope(session_factory(engine_of(world.app)))


def _members(world) -> set[tuple[int, int]]:
    with _db(world) as session:
        return set(session.execute(select(class_members.c.class_id, class_members.c.user_id)))


def _student3_in_teacher2s_class(world) -> dict:
    """student3 (class 7B, teacher2) takes the test under 7B's assignment and has an
    accommodation set by an administrator."""
    r = world.call("post", f"{API}/classes/{world.other_class_id}/assignments", "teacher2",
                   json={"test_id": world.test_id, "time_limit_minutes": 30})
    assert r.status_code == 201, r.get_json()
    attempt = _take(world, "student3")
    r = world.call("put", f"{API}/users/{world.users['student3']}/accommodation", "admin1",
                   json={"time": "extended", "time_factor": 2, "note": "confidential"})
    assert r.status_code == 200, r.get_json()
    return attempt


def test_a_teacher_cannot_enrol_a_student_to_reach_their_work(world) -> None:
    s3 = world.users["student3"]
    attempt = _student3_in_teacher2s_class(world)
    before = _members(world)
    mine = f"{API}/classes/{world.class_id}/students"
    for body in ({"username": "student3"}, {"user_id": s3}):
        r = world.call("post", mine, "teacher1", json=body)
        assert r.status_code == 403, r.get_json()
        assert r.mimetype == "application/problem+json"
    # Nor can a teacher remove a student (and with it the trace of who saw what).
    assert world.call("delete", f"{mine}/{world.users['student1']}",
                      "teacher1").status_code == 403
    assert _members(world) == before

    # Nothing of student3's is reachable for teacher1.
    assert world.call("get", f"{API}/attempts/{attempt['id']}", "teacher1").status_code == 404
    listed = world.call("get", f"{API}/attempts", "teacher1").get_json()
    assert attempt["id"] not in {a["id"] for a in listed["items"]}
    path = f"{API}/users/{s3}/accommodation"
    assert world.call("get", path, "teacher1").status_code == 404
    assert world.call("put", path, "teacher1", json={"time": "none"}).status_code == 403
    with _db(world) as session:
        assert session.get(Accommodation, s3).time.value == "extended"


def test_a_teacher_sees_only_attempts_under_their_own_assignments(world) -> None:
    """Even a student legitimately in two teachers' classes: each teacher sees the attempts
    made under their own class's assignments, and reads (never sets) the accommodation."""
    s3 = world.users["student3"]
    theirs = _student3_in_teacher2s_class(world)
    r = world.call("post", f"{API}/classes/{world.class_id}/students", "admin1",
                   json={"username": "student3"})
    assert r.status_code == 201, r.get_json()
    own = _take(world, "student1")  # under 7A's assignment (teacher1)

    assert world.call("get", f"{API}/attempts/{own['id']}", "teacher1").status_code == 200
    assert world.call("get", f"{API}/attempts/{theirs['id']}", "teacher1").status_code == 404
    assert world.call("get", f"{API}/attempts/{theirs['id']}", "teacher2").status_code == 200
    assert world.call("get", f"{API}/attempts/{own['id']}", "teacher2").status_code == 404
    listed = {a["id"] for a in world.call("get", f"{API}/attempts?per_page=100",
                                          "teacher1").get_json()["items"]}
    assert listed == {own["id"]}
    assert {a["id"] for a in world.call("get", f"{API}/attempts?per_page=100",
                                        "admin1").get_json()["items"]} == {own["id"], theirs["id"]}
    rows = {row["student"]["username"]: row["attempt"] for row in world.call(
        "get", f"{API}/classes/{world.class_id}/attempts", "teacher1").get_json()["items"]}
    assert rows["student3"] is None and rows["student1"]["id"] == own["id"]

    path = f"{API}/users/{s3}/accommodation"
    r = world.call("get", path, "teacher1")
    assert r.status_code == 200 and r.get_json()["time"] == "extended"
    assert world.call("put", path, "teacher1", json={"time": "none"}).status_code == 403
    assert world.call("get", path, "admin1").get_json()["time"] == "extended"


def test_every_access_change_is_audited(world) -> None:
    s3, admin = world.users["student3"], world.users["admin1"]
    _student3_in_teacher2s_class(world)
    klass = world.class_id
    assert world.call("post", f"{API}/classes/{klass}/students", "admin1",
                      json={"user_id": s3}).status_code == 201
    assert world.call("post", f"{API}/classes/{klass}/students", "admin1",
                      json={"user_id": s3}).status_code == 200  # no change, no entry
    assert world.call("delete", f"{API}/classes/{klass}/students/{s3}",
                      "admin1").status_code == 204
    r = world.call("patch", f"{API}/classes/{world.other_class_id}", "admin1",
                   json={"teacher_id": world.users["teacher1"]})
    assert r.status_code == 200, r.get_json()
    r = world.call("delete", f"{API}/classes/{world.other_class_id}", "teacher1")
    assert r.status_code == 204

    page = world.call("get", f"{API}/access-audit?student_id={s3}", "admin1").get_json()
    entries = [(e["action"], e["actor_id"], e["class_id"], e["before"], e["after"])
               for e in page["items"]]
    assert entries == [
        ("accommodation", admin, None, None,
         {"time": "extended", "time_factor": 2.0, "note": "confidential"}),
        ("enrol", admin, klass, {"enrolled": False}, {"enrolled": True}),
        ("unenrol", admin, klass, {"enrolled": True}, {"enrolled": False}),
        ("unenrol", world.users["teacher1"], world.other_class_id, {"enrolled": True},
         {"enrolled": False, "class_deleted": True}),
    ]
    assert all(e["at"].endswith("+00:00") for e in page["items"])
    handed = world.call("get", f"{API}/access-audit?class_id={world.other_class_id}",
                        "admin1").get_json()["items"]
    assert [(e["action"], e["before"], e["after"]) for e in handed][:1] == [
        ("class_teacher", {"teacher_id": world.users["teacher2"]},
         {"teacher_id": world.users["teacher1"]})]
    for user in ("teacher1", "student1", "assessor1"):
        assert world.call("get", f"{API}/access-audit", user).status_code == 403


def test_the_audit_cannot_be_rewritten(world) -> None:
    # DELETE is allowed since migration 0014, for erasure (rights.erasure deletes a student's
    # rows); the hash-chained audit_log records that it happened.
    world.call("put", f"{API}/users/{world.users['student1']}/accommodation", "admin1",
               json={"time": "none"})
    with pytest.raises(DBAPIError, match="append-only"), _db(world) as session:
        session.execute(update(AccessAudit).values(after={"time": "standard"}))
    with _db(world) as session:
        assert session.scalar(select(func.count(AccessAudit.id))) == 1
        if session.get_bind().dialect.name == "postgresql":
            with pytest.raises(DBAPIError, match="append-only"):
                session.execute(text("TRUNCATE access_audit"))


def test_enrolment_errors_do_not_reveal_roles_or_states(world) -> None:
    world.call("patch", f"{API}/users/{world.users['student2']}", "admin1",
               json={"is_active": False})
    path = f"{API}/classes/{world.other_class_id}/students"
    details = set()
    for body in ({"username": "teacher1"}, {"username": "assessor1"}, {"username": "admin1"},
                 {"username": "student2"}, {"username": "nobody"}):
        r = world.call("post", path, "admin1", json=body)
        assert r.status_code == 422, r.get_json()
        assert r.get_json()["errors"][0]["field"] == "username"
        details.add(r.get_json()["detail"].replace(repr(body["username"]), "X"))
    assert details == {"user X cannot be enrolled: there is no active student with this "
                       "username"}
    r = world.call("post", path, "admin1", json={"user_id": world.users["teacher1"]})
    assert r.get_json()["detail"] == (f"user {world.users['teacher1']} cannot be enrolled: "
                                      "there is no active student with this id")


def test_the_teachers_class_page_shows_only_their_own_assignments_attempts(world) -> None:
    """The teacher's page and the result page it links to follow the same rule."""
    theirs = _student3_in_teacher2s_class(world)
    assert world.call("post", f"{API}/classes/{world.class_id}/students", "admin1",
                      json={"username": "student3"}).status_code == 201
    own = _take(world, "student1")
    client = world.app.test_client()
    token = CSRF.search(client.get("/").get_data(as_text=True)).group(1)
    assert client.post("/sign-in", data={"username": "teacher1", "password": PASSWORD,
                                         "csrf_token": token}).status_code == 302
    html = client.get(f"/teach/classes/{world.class_id}").get_data(as_text=True)
    student3_row = html[html.index("Student3"):].split("</tr>", 1)[0]
    assert "No attempt yet." in student3_row
    review = f"/teach/classes/{world.class_id}/attempts"
    assert f"{review}/{own['id']}" in html
    assert f"/attempts/{theirs['id']}" not in html
    assert client.get(f"{review}/{own['id']}").status_code == 200
    assert client.get(f"{review}/{theirs['id']}").status_code == 404
    assert client.get(f"/attempts/{own['id']}/result").status_code == 200
    assert client.get(f"/attempts/{theirs['id']}/result").status_code == 404
