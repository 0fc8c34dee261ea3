"""OneRoster 1.2 roster imports over HTTP, on SQLite and PostgreSQL: the dry run's report, the
application (all or nothing), a second import that updates instead of duplicating, delta files,
every kind of bad input named by file, line, field and id, and the school scope."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from api.db import engine_of
from storage import session_factory, session_scope
from storage.accounts import AccessAudit, Role, School, SchoolClass, User, class_members
from storage.rights import AuditEntry
from tests.api.conftest import ApiWorld
from tests.evidence.roster_samples import drop_column, edit, sample, set_modes, zipped

ROSTERS = "/api/v1/rosters"


def _post(world: ApiWorld, files: dict[str, str] | bytes, user: str = "admin1",
          dry_run: str | None = None, as_zip: bool = True):
    if isinstance(files, bytes):
        parts = [(io.BytesIO(files), "roster.zip")]
    elif as_zip:
        parts = [(io.BytesIO(zipped(files, "export/")), "roster.zip")]
    else:
        parts = [(io.BytesIO(text.encode()), name) for name, text in files.items()]
    data: dict = {"file": parts}
    if dry_run is not None:
        data["dry_run"] = dry_run
    return world.call("post", ROSTERS, user, data=data, content_type="multipart/form-data")


def _db(world: ApiWorld):
    return session_scope(session_factory(engine_of(world.app)))


def _state(world: ApiWorld) -> dict:
    """What a roster touches, as plain data to compare before and after."""
    with _db(world) as session:
        users = session.execute(select(User.username, User.display_name, User.role,
                                       User.school_id, User.is_active, User.sourced_id)
                                .order_by(User.username)).all()
        classes = session.execute(select(SchoolClass.name, SchoolClass.teacher_id,
                                         SchoolClass.school_id, SchoolClass.sourced_id)
                                  .order_by(SchoolClass.name)).all()
        members = session.execute(select(class_members.c.class_id, class_members.c.user_id)
                                  .order_by(class_members.c.class_id,
                                            class_members.c.user_id)).all()
        schools = session.execute(select(School.name, School.sourced_id)
                                  .order_by(School.name)).all()
    return {"users": users, "classes": classes, "members": members, "schools": schools}


def _members_of(world: ApiWorld, class_sid: str) -> set[str]:
    with _db(world) as session:
        return set(session.scalars(
            select(User.username).join(class_members, class_members.c.user_id == User.id)
            .join(SchoolClass, SchoolClass.id == class_members.c.class_id)
            .where(SchoolClass.sourced_id == class_sid)))


def _errors(reply) -> list[tuple]:
    report = reply.get_json().get("report", reply.get_json())
    return [(p["file"], p["line"], p["field"], p["id"]) for p in report["problems"]
            if p["severity"] == "error"]


def test_dry_run_then_apply_then_reimport(world: ApiWorld) -> None:
    before = _state(world)
    reply = _post(world, sample())
    assert reply.status_code == 200, reply.get_json()
    report = reply.get_json()
    assert report["can_apply"] and report["token"] and not report["applied"]
    assert report["counts"] == {
        # North School exists (the fixture's) and is adopted by name; Lakeside is new
        "schools": {"created": 1, "updated": 1, "unchanged": 0},
        # 2 teachers, 8 students; the principal and the guardian are left out
        "users": {"created": 10, "updated": 0, "unchanged": 0, "deactivated": 0,
                  "left_out": 2},
        "classes": {"created": 4, "updated": 0, "unchanged": 0, "left_out": 0},
        # the principal's administrator enrolment is left out
        "enrolments": {"added": 12, "removed": 0, "unchanged": 0, "left_out": 1}}
    assert _state(world) == before, "a dry run changes nothing"

    applied = world.call("post", f"{ROSTERS}/apply", "admin1", json={"token": report["token"]})
    assert applied.status_code == 201, applied.get_json()
    assert applied.get_json()["counts"] == report["counts"]
    again = world.call("post", f"{ROSTERS}/apply", "admin1", json={"token": report["token"]})
    assert again.status_code == 404 and again.mimetype == "application/problem+json"

    with _db(world) as session:
        north = session.scalar(select(School).where(School.name == "North School"))
        assert north.sourced_id == "org-north" and north.id == world.schools["A"]
        garcia = session.scalar(select(User).where(User.sourced_id == "tch-100"))
        assert (garcia.username, garcia.display_name, garcia.role, garcia.school_id) == (
            "mgarcia", "María García", Role.TEACHER, north.id)
        assert not garcia.check_password("!roster") and garcia.is_active
        smith = session.scalar(select(User).where(User.sourced_id == "stu-004"))
        assert smith.display_name == "Dani Smith"  # the preferred given name
        assert session.scalar(select(func.count()).where(User.username.in_(
            ["lchen", "rvega"])).select_from(User)) == 0
        names = dict(session.execute(select(SchoolClass.sourced_id, SchoolClass.name)
                                     .where(SchoolClass.sourced_id.is_not(None))).all())
        # one teacher, two classes of one title: the second is told apart by its code
        assert names["cls-n-ma7-p1"] == "Mathematics 7"
        assert names["cls-n-ma7-p2"] == "Mathematics 7 (MA7-P2)"
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "roster_import"))
        assert entry.actor_id == world.users["admin1"]
        assert entry.detail["counts"]["users"]["created"] == 10
        enrolled = session.scalar(select(func.count()).select_from(AccessAudit).where(
            AccessAudit.action == "enrol"))
        assert enrolled == 12
    assert _members_of(world, "cls-l-sc7") == {"ekowalski", "fhassan", "grossi", "htanaka"}

    first = _state(world)
    reply = _post(world, sample(), dry_run="false")
    assert reply.status_code == 201, reply.get_json()
    assert reply.get_json()["counts"]["users"] == {
        "created": 0, "updated": 0, "unchanged": 10, "deactivated": 0, "left_out": 2}
    assert reply.get_json()["counts"]["enrolments"]["unchanged"] == 12
    assert _state(world) == first, "nothing duplicated, nothing changed"

    # the SIS renames a student, moves another to period 2, disables a third
    changed = edit(sample(), "users.csv", lambda rs: [
        r | ({"familyName": "Nguyen-Tran"} if r["sourcedId"] == "stu-002" else {})
        | ({"enabledUser": "false"} if r["sourcedId"] == "stu-008" else {}) for r in rs])
    changed = edit(changed, "enrollments.csv", lambda rs: [
        r | ({"classSourcedId": "cls-n-ma7-p2"} if r["userSourcedId"] == "stu-001"
             and r["role"] == "student" else {}) for r in rs])
    reply = _post(world, changed, dry_run="false", as_zip=False)
    assert reply.status_code == 201, reply.get_json()
    counts = reply.get_json()["counts"]
    assert counts["users"]["updated"] == 1 and counts["users"]["deactivated"] == 1
    assert counts["enrolments"] == {"added": 1, "removed": 1, "unchanged": 11, "left_out": 1}
    assert _members_of(world, "cls-n-ma7-p1") == {"bnguyen"}
    assert _members_of(world, "cls-n-ma7-p2") == {"avega", "cdubois", "dsmith"}
    with _db(world) as session:
        assert session.scalar(select(User.display_name).where(
            User.sourced_id == "stu-002")) == "Bao Nguyen-Tran"
        assert session.scalar(select(User.is_active).where(User.sourced_id == "stu-008")) \
            is False
        assert session.scalar(select(func.count()).select_from(User)) == len(first["users"])


def test_delta_removes_enrolments_and_deactivates_but_keeps_work(world: ApiWorld) -> None:
    assert _post(world, sample(), dry_run="false").status_code == 201
    delta = set_modes(sample(), "delta", ("orgs", "users", "roles", "classes", "enrollments",
                                          "courses", "academicSessions"))
    stamp = "2026-10-01T08:00:00Z"
    for name in ("orgs.csv", "roles.csv", "classes.csv", "courses.csv",
                 "academicSessions.csv"):
        delta = edit(delta, name, lambda rs: [r | {"status": "active",
                                                   "dateLastModified": stamp} for r in rs])
    delta = edit(delta, "users.csv", lambda rs: [
        r | {"status": "tobedeleted" if r["sourcedId"] == "stu-007" else "active",
             "dateLastModified": stamp} for r in rs])
    # a delta names only what changed: one enrolment ends, nothing else is said
    delta = edit(delta, "enrollments.csv", lambda rs: [
        r | {"status": "tobedeleted", "dateLastModified": stamp} for r in rs
        if r["userSourcedId"] == "stu-005" and r["classSourcedId"] == "cls-l-sc7"])
    reply = _post(world, delta, dry_run="false")
    assert reply.status_code == 201, reply.get_json()
    counts = reply.get_json()["counts"]
    assert counts["enrolments"]["removed"] == 1 and counts["users"]["deactivated"] == 1
    assert _members_of(world, "cls-l-sc7") == {"fhassan", "grossi", "htanaka"}
    assert "ekowalski" in _members_of(world, "cls-l-hr")  # a delta leaves the rest alone
    with _db(world) as session:
        grossi = session.scalar(select(User).where(User.sourced_id == "stu-007"))
        assert grossi.is_active is False and grossi.erased_at is None
    # tobedeleted in a bulk file is refused, naming the row
    bad = edit(sample(), "enrollments.csv", lambda rs: [
        r | ({"status": "tobedeleted"} if r["sourcedId"] == "enr-005" else {}) for r in rs])
    reply = _post(world, bad)
    assert ("enrollments.csv", 6, "status", "enr-005") in _errors(reply)


def _refused(world: ApiWorld, files, expected: tuple, user: str = "admin1") -> None:
    """The dry run names the problem; applying it imports nothing (422); no 5xx."""
    before = _state(world)
    dry = _post(world, files, user)
    assert dry.status_code == 200, dry.get_json()
    assert not dry.get_json()["can_apply"] and dry.get_json()["token"] is None
    assert expected in _errors(dry), _errors(dry)
    now = _post(world, files, user, dry_run="false")
    assert now.status_code == 422 and now.mimetype == "application/problem+json"
    assert expected in _errors(now)
    assert now.get_json()["errors"], now.get_json()
    assert _state(world) == before, "nothing imported"


BAD = {
    "missing required column": (
        lambda: drop_column(sample(), "users.csv", "givenName"),
        ("users.csv", 1, "givenName", None)),
    "missing required value": (
        lambda: edit(sample(), "classes.csv", lambda rs: [
            r | ({"title": ""} if r["sourcedId"] == "cls-l-sc7" else {}) for r in rs]),
        ("classes.csv", 4, "title", "cls-l-sc7")),
    "duplicate sourcedId": (
        lambda: edit(sample(), "users.csv", lambda rs: [
            *rs, rs[3] | {"username": "someone"}]),
        ("users.csv", 14, "sourcedId", "stu-001")),
    "duplicate username": (
        lambda: edit(sample(), "users.csv", lambda rs: [
            r | ({"username": "avega"} if r["sourcedId"] == "stu-002" else {}) for r in rs]),
        ("users.csv", 6, "username", "stu-002")),
    "unknown class": (
        lambda: edit(sample(), "enrollments.csv", lambda rs: [
            r | ({"classSourcedId": "cls-nowhere"} if r["sourcedId"] == "enr-005" else {})
            for r in rs]),
        ("enrollments.csv", 6, "classSourcedId", "enr-005")),
    "unknown user": (
        lambda: edit(sample(), "roles.csv", lambda rs: [
            r | ({"userSourcedId": "stu-999"} if r["sourcedId"] == "role-stu-001" else {})
            for r in rs]),
        ("roles.csv", 5, "userSourcedId", "role-stu-001")),
    "a user in a class of another org": (  # a Lakeside student in a North class
        lambda: edit(sample(), "enrollments.csv", lambda rs: [
            r | ({"userSourcedId": "stu-005"} if r["sourcedId"] == "enr-005" else {})
            for r in rs]),
        ("enrollments.csv", 6, "userSourcedId", "enr-005")),
    "enrolment school is not the class's": (
        lambda: edit(sample(), "enrollments.csv", lambda rs: [
            r | ({"schoolSourcedId": "org-lake"} if r["sourcedId"] == "enr-005" else {})
            for r in rs]),
        ("enrollments.csv", 6, "schoolSourcedId", "enr-005")),
    "a role that does not match": (  # a student enrolled as the teacher
        lambda: edit(sample(), "enrollments.csv", lambda rs: [
            r | ({"role": "teacher"} if r["sourcedId"] == "enr-005" else {}) for r in rs]),
        ("enrollments.csv", 6, "role", "enr-005")),
    "both student and teacher": (
        lambda: edit(sample(), "roles.csv", lambda rs: [
            *rs, rs[0] | {"sourcedId": "role-x", "role": "student", "roleType": "secondary"}]),
        ("users.csv", 2, "sourcedId", "tch-100")),
    "malformed date": (
        lambda: edit(sample(), "enrollments.csv", lambda rs: [
            r | ({"beginDate": "01/09/2026"} if r["sourcedId"] == "enr-007" else {})
            for r in rs]),
        ("enrollments.csv", 8, "beginDate", "enr-007")),
    "malformed dateLastModified": (
        lambda: edit(sample(), "orgs.csv", lambda rs: [
            r | ({"dateLastModified": "yesterday"} if r["sourcedId"] == "org-lake" else {})
            for r in rs]),
        ("orgs.csv", 4, "dateLastModified", "org-lake")),
    "unknown enumeration": (
        lambda: edit(sample(), "orgs.csv", lambda rs: [
            r | ({"type": "academy"} if r["sourcedId"] == "org-lake" else {}) for r in rs]),
        ("orgs.csv", 4, "type", "org-lake")),
    "a file the manifest lists is missing": (
        lambda: {k: v for k, v in sample().items() if k != "roles.csv"},
        ("roles.csv", None, None, None)),
    "a username of another account": (  # the fixture's teacher1 is no student
        lambda: edit(sample(), "users.csv", lambda rs: [
            r | ({"username": "teacher1"} if r["sourcedId"] == "stu-001" else {})
            for r in rs]),
        ("users.csv", 5, "username", "stu-001")),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_roster_is_named_and_nothing_imported(world: ApiWorld, case: str) -> None:
    files, expected = BAD[case]
    _refused(world, files(), expected)


def test_role_of_an_existing_account_is_never_changed(world: ApiWorld) -> None:
    assert _post(world, sample(), dry_run="false").status_code == 201
    flipped = edit(sample(), "roles.csv", lambda rs: [
        r | ({"role": "teacher"} if r["userSourcedId"] == "stu-001" else {}) for r in rs])
    flipped = edit(flipped, "enrollments.csv", lambda rs: [
        r for r in rs if r["userSourcedId"] != "stu-001"])
    _refused(world, flipped, ("users.csv", 5, "sourcedId", "stu-001"))


def test_not_a_roster(world: ApiWorld) -> None:
    for body in (b"PK\x03\x04 broken", b"\x00\x01binary"):
        reply = _post(world, body)
        assert reply.status_code == 422 and reply.mimetype == "application/problem+json"
    reply = world.call("post", ROSTERS, "admin1", data={
        "file": [(io.BytesIO(b"x"), "roster.pdf")]}, content_type="multipart/form-data")
    assert reply.status_code == 422 and "OneRoster" in reply.get_json()["detail"]
    reply = world.call("post", ROSTERS, "admin1", json={"file": "x"})
    assert reply.status_code == 422
    reply = _post(world, sample(), dry_run="maybe")
    assert reply.status_code == 422 and reply.get_json()["errors"][0]["field"] == "dry_run"
    reply = world.call("post", f"{ROSTERS}/apply", "admin1", json={"token": "nope"})
    assert reply.status_code == 404


def _north_only(files: dict[str, str]) -> dict[str, str]:
    lake = {"org-lake", "cls-l-sc7", "cls-l-hr", "tch-200", "stu-005", "stu-006", "stu-007",
            "stu-008"}
    files = edit(files, "orgs.csv", lambda rs: [r for r in rs if r["sourcedId"] not in lake])
    files = edit(files, "classes.csv", lambda rs: [r for r in rs if r["sourcedId"] not in lake])
    files = edit(files, "users.csv", lambda rs: [r for r in rs if r["sourcedId"] not in lake])
    files = edit(files, "roles.csv", lambda rs: [r for r in rs
                                                 if r["userSourcedId"] not in lake])
    return edit(files, "enrollments.csv", lambda rs: [
        r for r in rs if r["classSourcedId"] not in lake])


def test_a_school_admin_imports_their_own_school_only(world: ApiWorld) -> None:
    # admin3 runs North School (school A): the whole district's roster is refused
    _refused(world, sample(), ("orgs.csv", 4, "sourcedId", "org-lake"), user="admin3")
    # admin2 runs South School: North's roster is not theirs
    _refused(world, _north_only(sample()), ("orgs.csv", 3, "sourcedId", "org-north"),
             user="admin2")
    reply = _post(world, _north_only(sample()), "admin3", dry_run="false")
    assert reply.status_code == 201, reply.get_json()
    assert reply.get_json()["counts"]["users"]["created"] == 5
    token = _post(world, _north_only(sample()), "admin3").get_json()["token"]
    other = world.call("post", f"{ROSTERS}/apply", "admin1", json={"token": token})
    assert other.status_code == 404, "a token is its uploader's"


def test_only_administrators(world: ApiWorld) -> None:
    for user in ("teacher1", "student1", "assessor1"):
        assert _post(world, sample(), user).status_code == 403
    assert _post(world, sample(), None).status_code == 401
