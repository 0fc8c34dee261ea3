"""The privacy note, consents and group variables over the API (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from storage.accounts import School, User
from storage.rights import AuditEntry, Consent, StudentGroup
from tests.api.conftest import ApiWorld
from tests.api.rights_helpers import add_user, db

NOTE = {"title": "How we use your data", "body": "We keep your answers to teach you.",
        "retention": {"attempts": 730, "page_sessions": 30}, "keep_anonymous_responses": True}


def _school(world: ApiWorld, students_may_consent: bool) -> int:
    with db(world) as session:
        school = School(name="North", students_may_consent=students_may_consent)
        session.add(school)
        session.flush()
        for name in ("student1", "student2", "student3"):
            session.get(User, world.users[name]).school_id = school.id
        return school.id


def test_the_note_is_published_in_versions_and_read_by_anyone(world: ApiWorld) -> None:
    assert world.call("get", "/api/v1/privacy-note").status_code == 404
    r = world.call("post", "/api/v1/privacy-note", "admin1", json=NOTE)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["version"] == 1
    second = {**NOTE, "body": "Version two.", "keep_anonymous_responses": False}
    assert world.call("post", "/api/v1/privacy-note", "admin1", json=second).status_code == 201
    current = world.call("get", "/api/v1/privacy-note").get_json()  # not signed in
    assert (current["version"], current["body"], current["keep_anonymous_responses"]) == (
        2, "Version two.", False)
    assert current["retention"] == {"attempts": 730, "page_sessions": 30}
    versions = world.call("get", "/api/v1/privacy-note/versions").get_json()["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert world.call("get", "/api/v1/privacy-note/versions/1").get_json()["body"] == NOTE["body"]
    assert world.call("get", "/api/v1/privacy-note/versions/9").status_code == 404
    with db(world) as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert actions.count("privacy_note") == 2


def test_bad_notes_are_refused_naming_the_field(world: ApiWorld) -> None:
    for user in ("teacher1", "student1", "assessor1"):
        assert world.call("post", "/api/v1/privacy-note", user, json=NOTE).status_code == 403
    school_admin = add_user(world, "schooladmin", school_id=None)
    with db(world) as session:
        school = School(name="South")
        session.add(school)
        session.flush()
        session.get(User, school_admin).school_id = school.id
    r = world.call("post", "/api/v1/privacy-note", "schooladmin", json=NOTE)
    assert r.status_code == 403 and "district" in r.get_json()["detail"]
    for retention, words in (({"audit_log": 30}, "never purged"), ({"attempts": 0}, "1 to"),
                             ({"moods": 3}, "unknown kind")):
        r = world.call("post", "/api/v1/privacy-note", "admin1",
                       json={**NOTE, "retention": retention})
        assert r.status_code == 422 and words in r.get_json()["detail"], r.get_json()
    r = world.call("post", "/api/v1/privacy-note", "admin1", json={**NOTE, "title": "  "})
    assert r.status_code == 422 and "title" in str(r.get_json())


def test_consents_by_admins_and_by_students_where_the_school_allows(world: ApiWorld) -> None:
    sid = world.users["student1"]
    path = f"/api/v1/students/{sid}/consents"
    r = world.call("post", path, "admin1", json={"purpose": "research", "granted": True,
                                                  "note": "signed form"})
    assert r.status_code == 201, r.get_json()
    state = world.call("get", path, "admin1").get_json()
    assert state["current"]["research"]["granted"] is True
    assert state["current"]["demographics"] == {"granted": False, "at": None}
    assert [h["note"] for h in state["history"]] == ["signed form"]
    # the student reads their own, but records none unless the school allows it
    assert world.call("get", path, "student1").status_code == 200
    r = world.call("post", path, "student1", json={"purpose": "research", "granted": False})
    assert r.status_code == 403 and "administrator" in r.get_json()["detail"]
    _school(world, students_may_consent=True)
    r = world.call("post", path, "student1", json={"purpose": "research", "granted": False})
    assert r.status_code == 201
    assert world.call("get", path, "student1").get_json()["current"]["research"]["granted"] \
        is False
    # refusals: another student, a teacher, an unknown purpose, a staff account
    assert world.call("get", path, "student2").status_code == 404
    assert world.call("post", path, "teacher1",
                      json={"purpose": "research", "granted": True}).status_code == 403
    r = world.call("post", path, "admin1", json={"purpose": "marketing", "granted": True})
    assert r.status_code == 422 and "research, demographics" in r.get_json()["detail"]
    staff = f"/api/v1/students/{world.users['teacher1']}/consents"
    assert world.call("get", staff, "admin1").status_code == 404
    with db(world) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "consent")).all()
        assert [(e.subject_id, e.detail["granted"]) for e in entries] == [
            (sid, True), (sid, False)]


def test_group_variables_need_the_demographics_consent_and_go_with_it(world: ApiWorld) -> None:
    sid = world.users["student1"]
    groups = f"/api/v1/students/{sid}/groups"
    r = world.call("put", groups, "admin1", json={"groups": {"gender": "f"}})
    assert r.status_code == 409 and "demographics" in r.get_json()["detail"]
    assert world.call("get", groups, "admin1").status_code == 409
    consents = f"/api/v1/students/{sid}/consents"
    world.call("post", consents, "admin1", json={"purpose": "demographics", "granted": True})
    r = world.call("put", groups, "admin1",
                   json={"groups": {"gender": "f", "home_language": "es", "empty": ""}})
    assert r.status_code == 200 and r.get_json()["groups"] == {"gender": "f",
                                                               "home_language": "es"}
    assert world.call("get", groups, "student1").get_json()["groups"]["gender"] == "f"
    assert world.call("put", groups, "teacher1",
                      json={"groups": {"gender": "m"}}).status_code == 403
    r = world.call("put", groups, "admin1", json={"groups": {"bad name!": "x"}})
    assert r.status_code == 422
    # withdrawal deletes the values in the same request
    world.call("post", consents, "admin1", json={"purpose": "demographics", "granted": False})
    with db(world) as session:
        assert session.scalars(select(StudentGroup).where(
            StudentGroup.student_id == sid)).all() == []
        assert len(session.scalars(select(Consent)).all()) == 2
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "groups")).one()
        assert audit.detail == {"variables": ["gender", "home_language"]}  # names, no values
    assert world.call("get", groups, "admin1").status_code == 409
