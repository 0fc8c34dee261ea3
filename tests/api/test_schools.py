"""Schools as a level of scope: a school's administrator sees and manages only that school's
accounts, classes and students (another school's are 404); a district administrator sees
everyone; schools and their settings through /api/v1/schools and ``cat-engine schools``.

The fixture world (tests/api/conftest.py): everyone and both classes in school A; ``admin1``
district, ``admin2`` school B, ``admin3`` school A. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from api.cli import cli
from api.db import engine_of
from storage import session_factory, session_scope
from storage.accounts import SchoolClass, User
from storage.rights import AuditEntry
from tests.api.conftest import PASSWORD, ApiWorld


def _school_b_world(world: ApiWorld) -> dict[str, int]:
    """A teacher and a student in school B (made by the district administrator), a class of the
    teacher (made by school B's administrator), the student enrolled, and one finished decision
    so that a report holds something."""
    made = {}
    for name, role in (("teacherb", "teacher"), ("studentb", "student")):
        r = world.call("post", "/api/v1/users", "admin1", json={
            "username": name, "role": role, "password": PASSWORD,
            "school_id": world.schools["B"]})
        assert r.status_code == 201, r.get_json()
        assert r.get_json()["school_id"] == world.schools["B"]
        made[name] = r.get_json()["id"]
    r = world.call("post", "/api/v1/classes", "admin2",
                   json={"name": "8B", "teacher_id": made["teacherb"]})
    assert r.status_code == 201, r.get_json()
    made["class"] = r.get_json()["id"]
    r = world.call("post", f"/api/v1/classes/{made['class']}/students", "admin2",
                   json={"user_id": made["studentb"]})
    assert r.status_code == 201, r.get_json()
    return made


def _people_paths(student: int, klass: int) -> list[str]:
    return [f"/api/v1/users/{student}", f"/api/v1/users/{student}/accommodation",
            f"/api/v1/users/{student}/portfolio", f"/api/v1/users/{student}/indicators",
            f"/api/v1/users/{student}/defenses", f"/api/v1/students/{student}/report",
            f"/api/v1/students/{student}/report.pdf", f"/api/v1/classes/{klass}",
            f"/api/v1/classes/{klass}/dashboard", f"/api/v1/classes/{klass}/attempts",
            f"/api/v1/classes/{klass}/tasks", f"/api/v1/classes/{klass}/assignments",
            f"/api/v1/classes/{klass}/defenses"]


def test_each_school_admin_sees_their_school_only_and_the_district_sees_both(
        world: ApiWorld) -> None:
    b = _school_b_world(world)
    a_paths = _people_paths(world.users["student1"], world.class_id)
    b_paths = _people_paths(b["studentb"], b["class"])
    for path in a_paths:
        assert world.call("get", path, "admin2").status_code == 404, path
        assert world.call("get", path, "admin3").status_code == 200, path
        assert world.call("get", path, "admin1").status_code == 200, path
    for path in b_paths:
        assert world.call("get", path, "admin2").status_code == 200, path
        assert world.call("get", path, "admin3").status_code == 404, path
        assert world.call("get", path, "admin1").status_code == 200, path
    r = world.call("get", a_paths[0], "admin2")
    assert r.mimetype == "application/problem+json"
    assert str(world.users["student1"]) in r.get_json()["detail"]

    def names(user: str, path: str) -> set[str]:
        reply = world.call("get", path + "?per_page=100", user).get_json()
        return {i.get("username") or i.get("name") for i in reply["items"]}

    assert names("admin2", "/api/v1/users") == {"admin2", "teacherb", "studentb"}
    assert "studentb" not in names("admin3", "/api/v1/users")
    assert {"student1", "teacherb", "studentb", "admin1"} <= names("admin1", "/api/v1/users")
    assert names("admin2", "/api/v1/classes") == {"8B"}
    assert names("admin3", "/api/v1/classes") == {"7A", "7B"}
    assert names("admin1", "/api/v1/classes") == {"7A", "7B", "8B"}
    audit_b = world.call("get", "/api/v1/access-audit?per_page=100", "admin2").get_json()
    assert {e["student_id"] for e in audit_b["items"]} == {b["studentb"]}
    audit_a = world.call("get", "/api/v1/access-audit?per_page=100", "admin3").get_json()
    assert b["studentb"] not in {e["student_id"] for e in audit_a["items"]}


def test_attempts_of_another_school_are_not_found(world: ApiWorld) -> None:
    r = world.call("post", "/api/v1/attempts", "student1", json={"test_id": world.test_id})
    attempt = r.get_json()["id"]
    assert world.call("get", f"/api/v1/attempts/{attempt}", "admin2").status_code == 404
    assert world.call("get", f"/api/v1/attempts/{attempt}", "admin3").status_code == 200
    listed = world.call("get", "/api/v1/attempts", "admin2").get_json()
    assert attempt not in {a["id"] for a in listed["items"]}
    listed = world.call("get", "/api/v1/attempts", "admin3").get_json()
    assert attempt in {a["id"] for a in listed["items"]}


def test_a_school_admin_creates_accounts_in_their_school_and_moves_none(world: ApiWorld) -> None:
    r = world.call("post", "/api/v1/users", "admin2", json={
        "username": "newb", "role": "teacher", "password": PASSWORD})
    assert r.status_code == 201, r.get_json()
    newb = r.get_json()["id"]
    assert r.get_json()["school_id"] == world.schools["B"]
    r = world.call("post", "/api/v1/users", "admin2", json={
        "username": "sneaky", "role": "student", "password": PASSWORD,
        "school_id": world.schools["A"]})
    assert r.status_code == 403
    assert "school" in r.get_json()["detail"]
    r = world.call("patch", f"/api/v1/users/{newb}", "admin2",
                   json={"school_id": world.schools["A"]})
    assert r.status_code == 403
    r = world.call("patch", f"/api/v1/users/{newb}", "admin2", json={"school_id": None})
    assert r.status_code == 403  # a school's administrator cannot make a district account
    # the district administrator moves people; then school A's administrator reaches them
    r = world.call("patch", f"/api/v1/users/{newb}", "admin1",
                   json={"school_id": world.schools["A"]})
    assert r.status_code == 200 and r.get_json()["school_id"] == world.schools["A"]
    assert world.call("get", f"/api/v1/users/{newb}", "admin3").status_code == 200
    assert world.call("get", f"/api/v1/users/{newb}", "admin2").status_code == 404
    r = world.call("patch", f"/api/v1/users/{newb}", "admin1", json={"school_id": 999999})
    assert r.status_code == 422
    assert r.get_json()["errors"][0]["field"] == "school_id"


def test_classes_take_their_teachers_school_and_enrolment_stays_in_school(
        world: ApiWorld) -> None:
    b = _school_b_world(world)
    with session_scope(session_factory(engine_of(world.app))) as session:
        assert session.get(SchoolClass, b["class"]).school_id == world.schools["B"]
    r = world.call("post", "/api/v1/classes", "teacher1", json={"name": "Club"})
    with session_scope(session_factory(engine_of(world.app))) as session:
        assert session.get(SchoolClass, r.get_json()["id"]).school_id == world.schools["A"]
    # school B's administrator cannot give a class to school A's teacher, nor enrol A's student
    r = world.call("post", "/api/v1/classes", "admin2",
                   json={"name": "X", "teacher_id": world.users["teacher1"]})
    assert r.status_code == 422
    r = world.call("post", f"/api/v1/classes/{b['class']}/students", "admin2",
                   json={"user_id": world.users["student1"]})
    assert r.status_code == 422
    assert "cannot be enrolled" in r.get_json()["detail"]


def test_a_student_enrolled_in_a_schools_class_is_its_admins_to_see(world: ApiWorld) -> None:
    r = world.call("post", "/api/v1/users", "admin1", json={
        "username": "noschool", "role": "student", "password": PASSWORD})
    assert r.get_json()["school_id"] is None
    student = r.get_json()["id"]
    assert world.call("get", f"/api/v1/students/{student}/report", "admin3").status_code == 404
    r = world.call("post", f"/api/v1/classes/{world.class_id}/students", "admin1",
                   json={"user_id": student})
    assert r.status_code == 201
    assert world.call("get", f"/api/v1/students/{student}/report", "admin3").status_code == 200
    assert world.call("get", f"/api/v1/students/{student}/report", "admin2").status_code == 404
    assert world.call("get", f"/api/v1/classes/{world.class_id}/dashboard",
                      "admin3").status_code == 200


def test_school_settings_and_who_may_change_them(world: ApiWorld) -> None:
    a = world.schools["A"]
    r = world.call("patch", f"/api/v1/schools/{a}", "admin3", json={
        "erasure_confirmation": "delay", "erasure_delay_days": 30,
        "students_may_consent": True})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["erasure_confirmation"], body["erasure_delay_days"],
            body["students_may_consent"]) == ("delay", 30, True)
    assert body["n_students"] == 3 and body["n_classes"] == 2
    for bad in ({"erasure_delay_days": 0}, {"erasure_confirmation": "vote"},
                {"erasure_delay_days": "ten"}, {"name": ""}, {"unknown": 1}):
        r = world.call("patch", f"/api/v1/schools/{a}", "admin3", json=bad)
        assert r.status_code == 422, bad
        assert r.mimetype == "application/problem+json"
    assert world.call("patch", f"/api/v1/schools/{a}", "admin2",
                      json={"erasure_delay_days": 5}).status_code == 404
    assert world.call("get", f"/api/v1/schools/{a}", "admin2").status_code == 404
    assert world.call("get", "/api/v1/schools/999999", "admin1").status_code == 404
    listed = world.call("get", "/api/v1/schools", "admin2").get_json()
    assert [s["name"] for s in listed["items"]] == ["South School"]
    listed = world.call("get", "/api/v1/schools", "admin1").get_json()
    assert [s["name"] for s in listed["items"]] == ["North School", "South School"]
    assert world.call("post", "/api/v1/schools", "admin3",
                      json={"name": "East School"}).status_code == 403
    r = world.call("post", "/api/v1/schools", "admin1", json={"name": "east school"})
    assert r.status_code == 201 and r.get_json()["erasure_confirmation"] == "second_admin"
    east = r.get_json()["id"]
    r = world.call("post", "/api/v1/schools", "admin1", json={"name": "EAST SCHOOL"})
    assert r.status_code == 409
    with session_scope(session_factory(engine_of(world.app))) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "school")
                                  .order_by(AuditEntry.id)).all()
        assert [(e.actor_id, e.object_id) for e in entries] == [
            (world.users["admin3"], str(a)), (world.users["admin1"], str(east))]
        assert entries[0].detail == {
            "before": {"erasure_confirmation": "second_admin", "erasure_delay_days": 14,
                       "students_may_consent": False},
            "after": {"erasure_confirmation": "delay", "erasure_delay_days": 30,
                      "students_may_consent": True}}


def test_the_last_district_admin_stays_one(world: ApiWorld) -> None:
    r = world.call("patch", f"/api/v1/users/{world.users['admin1']}", "admin1",
                   json={"school_id": world.schools["A"]})
    assert r.status_code == 409
    assert "district" in r.get_json()["detail"]
    # school admins do not count: demoting one is fine while the district has its own
    r = world.call("patch", f"/api/v1/users/{world.users['admin2']}", "admin1",
                   json={"is_active": False})
    assert r.status_code == 200


def test_cli_creates_and_lists_schools(sqlite_url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--database-url", sqlite_url, "db", "upgrade"]).exit_code == 0
    r = runner.invoke(cli, ["--database-url", sqlite_url, "schools", "create", "West School",
                            "--erasure-confirmation", "delay", "--erasure-delay-days", "7"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["--database-url", sqlite_url, "schools", "create", "west school"])
    assert r.exit_code == 2
    assert "already a school named" in r.output
    r = runner.invoke(cli, ["--database-url", sqlite_url, "schools", "list"])
    assert "West School" in r.output and "delay (7 days)" in r.output
    from storage import make_engine

    engine = make_engine(sqlite_url)
    with session_scope(session_factory(engine)) as session:
        assert session.scalar(select(User.id)) is None
        entry = session.scalar(select(AuditEntry))
        assert entry.action == "school" and entry.actor_id is None
    engine.dispose()
