"""The data export: everything stored about a student, for the student and administrators
who reach them; and the PDF of their latest report."""

from __future__ import annotations

from sqlalchemy import select

from evidence.models import Attempt, Response, Statement
from item_bank.models import Item
from storage.accounts import ErasureConfirmation, Role
from storage.rights import AuditAction, AuditEntry, audit
from tests.api.conftest import ApiWorld
from tests.api.rights_helpers import add_school, add_user, db, fill_history


def test_export_holds_what_was_stored(world: ApiWorld) -> None:
    sid = world.users["student1"]
    stored = fill_history(world)
    with db(world) as session:  # a read on record (the pages and the API record their own)
        audit(session, AuditAction.REPORT_READ, actor_id=world.users["teacher1"],
              subject_id=sid, object_type="report", object_id=sid)
    r = world.call("get", f"/api/v1/students/{sid}/export", "student1")
    assert r.status_code == 200, r.get_json()
    doc = r.get_json()
    assert doc["format"] == "cat-engine-export/1" and doc["student_id"] == sid
    profile = doc["profile"]
    assert profile["username"] == "student1" and profile["display_name"] == "Student1"
    assert "password_hash" not in profile and "password" not in r.get_data(as_text=True)
    with db(world) as session:
        responses = session.execute(
            select(Response.position, Item.code, Response.choice, Response.response)
            .join(Item, Item.id == Response.item_id)
            .where(Response.attempt_id == stored["attempt"]).order_by(Response.position)).all()
        statements = session.scalars(select(Statement.id).where(Statement.actor_id == sid)
                                     .order_by(Statement.seq)).all()
        attempt = session.get(Attempt, stored["attempt"])
        theta = attempt.theta
    [exported] = [a for a in doc["attempts"] if a["id"] == stored["attempt"]]
    assert exported["theta"] == theta and exported["status"] == "finished"
    assert [(x["position"], x["item_code"], x["choice"], x["response"])
            for x in exported["responses"]] == [tuple(row) for row in responses]
    assert all(x["answered_at"] and "correct" in x for x in exported["responses"])
    # drafts: bodies and the files' hashes, never the bytes
    drafts = {d["id"]: d for d in doc["drafts"]}
    for draft in stored["drafts"]:
        assert drafts[draft["id"]]["body"] == draft["body"]
        assert [f["sha256"] for f in drafts[draft["id"]]["files"]] == [
            f["sha256"] for f in draft["files"]]
    assert "%PDF" not in r.get_data(as_text=True)
    assert [s["id"] for s in doc["statements"]] == list(statements) and statements
    [defense] = doc["defenses"]
    assert defense["id"] == stored["defense"]
    assert {s["score"] for s in defense["rubric_scores"]} == {2}
    assert {s["rater"] for s in defense["rubric_scores"]} == {"Teacher1"}
    [decision] = doc["decisions"]
    assert decision["reason"] == "Gaps in class" and decision["decided_by_name"] == "Teacher1"
    [appeal] = doc["appeals"]
    assert appeal["message"] == "Please look at my project" and appeal["answer"] is None
    assert {(c["purpose"], c["granted"]) for c in doc["consents"]} == {
        ("research", True), ("demographics", True)}
    assert doc["groups"] == {"home_language": "es"}
    assert doc["accommodation"]["note"] == "reading support"
    assert [k["name"] for k in doc["classes"]] == ["7A"] and doc["classes"][0]["teacher"] == \
        "Teacher1"
    # who looked: the report reads of fill_history, with the actors' names
    reads = {(e["action"], e["actor"]) for e in doc["audit"]}
    assert ("report_read", "Teacher1") in reads
    assert doc["report_pdf"].endswith(f"/students/{sid}/export.pdf")
    # the read is on record
    with db(world) as session:
        entries = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "export_read", AuditEntry.subject_id == sid)).all()
        assert [(e.actor_id, e.detail) for e in entries] == [(sid, {"format": "json"})]
    assert "export_read" not in {e["action"] for e in doc["audit"]}  # written at the commit
    # the next export lists that read, by the student's name
    again = world.call("get", f"/api/v1/students/{sid}/export", "admin1").get_json()
    assert ("export_read", "Student1") in {(e["action"], e["actor"]) for e in again["audit"]}


def test_export_pdf(world: ApiWorld) -> None:
    sid = world.users["student1"]
    fill_history(world)
    r = world.call("get", f"/api/v1/students/{sid}/export.pdf?lang=es", "student1")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert r.data.startswith(b"%PDF") and "no-store" in r.headers["Cache-Control"]
    with db(world) as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "export_read"))
        assert entry.detail == {"format": "pdf"} and entry.actor_id == sid


def test_who_may_export(world: ApiWorld) -> None:
    sid = world.users["student1"]
    path = f"/api/v1/students/{sid}/export"
    assert world.call("get", path).status_code == 401
    assert world.call("get", path, "student1").status_code == 200
    assert world.call("get", path, "admin1").status_code == 200
    for other, status in (("student2", 404), ("student3", 404), ("teacher1", 403),
                          ("teacher2", 403), ("assessor1", 403)):
        r = world.call("get", path, other)
        assert r.status_code == status, other
        assert r.mimetype == "application/problem+json"
    # staff accounts have no export here; unknown ids are not found
    assert world.call("get", f"/api/v1/students/{world.users['teacher1']}/export",
                      "admin1").status_code == 404
    assert world.call("get", "/api/v1/students/999999/export", "admin1").status_code == 404
    # a school's administrator reaches their school's students only
    north = add_school(world, "North", ErasureConfirmation.SECOND_ADMIN, members=("student1",))
    add_user(world, "north_admin", Role.ADMIN, school_id=north)
    assert world.call("get", path, "north_admin").status_code == 200
    assert world.call("get", f"/api/v1/students/{world.users['student3']}/export",
                      "north_admin").status_code == 404
    assert world.call("get", f"/api/v1/students/{world.users['student3']}/export.pdf",
                      "north_admin").status_code == 404
