"""Accounts and accommodations over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.db import engine_of
from storage import session_factory, session_scope
from storage.accounts import Accommodation, ApiToken, Role, User
from tests.api.conftest import PASSWORD


def _db(world):
    return session_scope(session_factory(engine_of(world.app)))


def _fields(response) -> set[str]:
    return {e["field"] for e in response.get_json().get("errors", [])}


def _n_users(world) -> int:
    with _db(world) as session:
        return session.scalar(select(func.count(User.id)))


def _no_secrets(body) -> None:
    text = str(body)
    assert "password" not in text and "scrypt" not in text


def test_admin_creates_finds_and_changes_accounts(world) -> None:
    r = world.call("post", "/api/v1/users", "admin1", json={
        "username": "newbie", "display_name": "New Student", "role": "student",
        "password": PASSWORD})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    _no_secrets(created)
    assert created["username"] == "newbie" and created["role"] == "student"
    assert created["is_active"] is True and created["created_at"].endswith("+00:00")
    assert world.token("newbie")  # the new account can sign in

    n = _n_users(world)
    for body, field in [
        ({"username": "newbie", "role": "student", "password": PASSWORD}, "username"),
        ({"username": "NEWBIE", "role": "teacher", "password": PASSWORD}, "username"),
    ]:
        r = world.call("post", "/api/v1/users", "admin1", json=body)
        assert r.status_code == 409 and _fields(r) == {field}
        assert r.mimetype == "application/problem+json"
    for body, fields in [
        ({"username": "x", "role": "student", "password": "short"}, {"json.password"}),
        ({"username": "x", "role": "wizard", "password": PASSWORD}, {"json.role"}),
        ({"username": "has space", "role": "student", "password": PASSWORD}, {"json.username"}),
        ({}, {"json.username", "json.role", "json.password"}),
        ({"username": "x", "role": "student", "password": PASSWORD, "x": 1}, {"json.x"}),
    ]:
        r = world.call("post", "/api/v1/users", "admin1", json=body)
        assert r.status_code == 422 and _fields(r) == fields, r.get_json()
    assert _n_users(world) == n  # nothing half-written

    r = world.call("get", "/api/v1/users?role=student&per_page=2", "admin1")
    page = r.get_json()
    assert r.status_code == 200 and page["total"] == 4 and page["pages"] == 2
    assert [u["username"] for u in page["items"]] == ["newbie", "student1"]
    _no_secrets(page)
    r = world.call("get", "/api/v1/users?q=STUDENT", "admin1")  # username or display name
    assert {u["username"] for u in r.get_json()["items"]} == {
        "newbie", "student1", "student2", "student3"}
    r = world.call("get", "/api/v1/users?q=100%25", "admin1")  # % is text, not a wildcard
    assert r.get_json()["total"] == 0
    r = world.call("get", "/api/v1/users?role=boss", "admin1")
    assert r.status_code == 422 and _fields(r) == {"query.role"}

    uid = created["id"]
    assert world.call("get", f"/api/v1/users/{uid}", "admin1").get_json() == created
    assert world.call("get", "/api/v1/users/999999", "admin1").status_code == 404

    r = world.call("patch", f"/api/v1/users/{uid}", "admin1", json={"display_name": "Newt"})
    assert r.status_code == 200 and r.get_json()["display_name"] == "Newt"
    r = world.call("patch", f"/api/v1/users/{uid}", "admin1", json={"password": "short"})
    assert r.status_code == 422 and _fields(r) == {"json.password"}
    r = world.call("patch", f"/api/v1/users/{uid}", "admin1", json={"password_hash": "x"})
    assert r.status_code == 422 and _fields(r) == {"json.password_hash"}

    # A new password signs the account out everywhere; the new password works.
    assert world.call("get", "/api/v1/me", "newbie").status_code == 200
    r = world.call("patch", f"/api/v1/users/{uid}", "admin1",
                   json={"password": "another long password"})
    assert r.status_code == 200
    assert world.call("get", "/api/v1/me", "newbie").status_code == 401
    r = world.client.post("/api/v1/auth/token",
                          json={"username": "newbie", "password": "another long password"})
    assert r.status_code == 200
    token = r.get_json()["access_token"]

    # Deactivation signs out and refuses sign-in.
    r = world.call("patch", f"/api/v1/users/{uid}", "admin1", json={"is_active": False})
    assert r.status_code == 200 and r.get_json()["is_active"] is False
    r = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    r = world.client.post("/api/v1/auth/token",
                          json={"username": "newbie", "password": "another long password"})
    assert r.status_code == 401
    with _db(world) as session:
        assert session.scalar(select(func.count(ApiToken.id))
                              .where(ApiToken.user_id == uid)) == 0


def test_role_changes_that_would_strand_data_are_refused(world) -> None:
    teacher, student = world.users["teacher1"], world.users["student1"]
    admin = world.users["admin1"]
    cases = [
        (teacher, {"role": "student", "display_name": "Changed"}, "role"),  # teaches 7A
        (student, {"role": "teacher", "display_name": "Changed"}, "role"),  # enrolled in 7A
        (admin, {"role": "teacher", "display_name": "Changed"}, "role"),  # the last admin
        (admin, {"is_active": False, "display_name": "Changed"}, "is_active"),
    ]
    for uid, body, field in cases:
        r = world.call("patch", f"/api/v1/users/{uid}", "admin1", json=body)
        assert r.status_code == 409 and _fields(r) == {field}, r.get_json()
    with _db(world) as session:  # the display name sent with each was not kept either
        rows = {u.id: u for u in session.scalars(select(User))}
        assert rows[teacher].role == Role.TEACHER and rows[teacher].display_name == "Teacher1"
        assert rows[student].role == Role.STUDENT and rows[student].display_name == "Student1"
        assert rows[admin].role == Role.ADMIN and rows[admin].is_active
    # With a second administrator, the first may step down; a student in no class may change.
    r = world.call("post", "/api/v1/users", "admin1", json={  # a second district admin
        "username": "admin9", "role": "admin", "password": PASSWORD})
    assert r.status_code == 201
    r = world.call("patch", f"/api/v1/users/{admin}", "admin9", json={"role": "assessor"})
    assert r.status_code == 200 and r.get_json()["role"] == "assessor"
    r = world.call("delete", f"/api/v1/classes/{world.other_class_id}", "admin9")
    assert r.status_code == 204
    r = world.call("patch", f"/api/v1/users/{world.users['student3']}", "admin9",
                   json={"role": "teacher"})
    assert r.status_code == 200


def test_only_administrators_list_accounts(world) -> None:
    for user in ("teacher1", "student1", "assessor1"):
        for query in ("", "?role=student", "?role=student&q=2"):
            r = world.call("get", f"/api/v1/users{query}", user)
            assert r.status_code == 403 and r.mimetype == "application/problem+json"
    r = world.call("get", "/api/v1/users?role=student&q=2", "admin1")
    assert [u["username"] for u in r.get_json()["items"]] == ["student2"]
    uid = world.users["student1"]
    for method, path, body in [
        ("post", "/api/v1/users", {"username": "x", "role": "admin", "password": PASSWORD}),
        ("get", f"/api/v1/users/{uid}", None),
        ("patch", f"/api/v1/users/{uid}", {"role": "admin"}),
    ]:
        for user in ("teacher1", "student1", "assessor1"):
            r = world.call(method, path, user, json=body)
            assert r.status_code == 403, (method, path, user)
            assert r.mimetype == "application/problem+json"
        assert world.call(method, path, json=body).status_code == 401
    with _db(world) as session:
        assert session.get(User, uid).role == Role.STUDENT
        assert session.scalar(select(func.count(User.id)).where(User.username == "x")) == 0


def test_accommodations(world) -> None:
    s1, s3 = world.users["student1"], world.users["student3"]
    path = f"/api/v1/users/{s1}/accommodation"
    r = world.call("get", path, "teacher1")
    assert r.status_code == 200
    assert r.get_json() == {"user_id": s1, "time": "standard", "time_factor": 1.5, "note": "",
                            "updated_at": None}
    r = world.call("put", path, "teacher1", json={"time": "extended"})
    assert r.status_code == 403  # an administrator's act: it applies in every class
    r = world.call("put", path, "admin1", json={"time": "extended", "time_factor": 2,
                                                "note": "dyslexia"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["time"], body["time_factor"], body["note"]) == ("extended", 2.0, "dyslexia")
    assert body["updated_at"].endswith("+00:00")
    assert world.call("get", path, "admin1").get_json() == body
    r = world.call("put", path, "admin1", json={"time": "none"})  # a PUT replaces everything
    assert r.get_json()["time"] == "none" and r.get_json()["time_factor"] == 1.5
    assert r.get_json()["note"] == ""

    for body, fields in [({"time": "extended", "time_factor": 5}, {"json.time_factor"}),
                         ({"time": "extended", "time_factor": 0.5}, {"json.time_factor"}),
                         ({"time": "forever"}, {"json.time"}),
                         ({"time_factor": 2}, {"json.time"})]:
        r = world.call("put", path, "admin1", json=body)
        assert r.status_code == 422 and _fields(r) == fields, r.get_json()

    # Not one of their students, not a student at all, or no such user: all alike 404.
    for user, uid in [("teacher2", s1), ("teacher1", s3), ("teacher1", world.users["teacher2"]),
                      ("admin1", world.users["teacher1"]), ("admin1", 999999)]:
        r = world.call("get", f"/api/v1/users/{uid}/accommodation", user)
        assert r.status_code == 404, (user, uid)
    for uid in (world.users["teacher1"], 999999):
        r = world.call("put", f"/api/v1/users/{uid}/accommodation", "admin1",
                       json={"time": "standard"})
        assert r.status_code == 404, uid
    for user in ("student1", "assessor1"):
        assert world.call("get", path, user).status_code == 403
        assert world.call("put", path, user, json={"time": "standard"}).status_code == 403
    assert world.call("get", f"/api/v1/users/{s3}/accommodation", "admin1").status_code == 200

    with _db(world) as session:  # only the accepted PUTs left a trace
        rows = session.scalars(select(Accommodation)).all()
        assert [(a.user_id, a.time.value, a.time_factor) for a in rows] == [(s1, "none", 1.5)]


def test_two_admins_deactivating_each_other_at_once_leave_one(world) -> None:
    """The last-administrator check locks the admins' rows: the second change waits, then
    sees the first and is refused."""
    import threading

    from sqlalchemy.orm import Session

    from evidence import classes as service
    from storage.errors import Conflict

    url = world.app.config["DATABASE_URL"]
    if not url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: the race cannot happen there")
    r = world.call("post", "/api/v1/users", "admin1", json={  # a second district admin
        "username": "admin9", "role": "admin", "password": "correct horse battery"})
    admin2 = r.get_json()["id"]
    engine = engine_of(world.app)
    first, second = Session(engine), Session(engine)
    outcome: list[object] = []
    try:
        service.update_user(first, service.get_user(first, admin2), {"is_active": False})

        def the_other() -> None:
            try:
                service.update_user(second, service.get_user(second, world.users["admin1"]),
                                    {"is_active": False})
                second.commit()
                outcome.append("deactivated")
            except Conflict as error:
                second.rollback()
                outcome.append(error)

        thread = threading.Thread(target=the_other)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # waiting for the first change's locks
        first.commit()
        thread.join(timeout=10)
    finally:
        first.close()
        second.close()
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict), outcome
    assert "last active district administrator" in str(outcome[0])
    with _db(world) as session:  # school administrators (admin2, admin3) do not count
        active = session.scalars(select(User.username).where(
            User.role == Role.ADMIN, User.is_active, User.school_id.is_(None))).all()
    assert active == ["admin1"]
