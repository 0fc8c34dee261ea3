"""Erasure end to end, on SQLite and PostgreSQL: request, confirmation by a second
administrator or by delay, execution in one transaction, and what is left afterwards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from api.cli import cli
from api.db import engine_of
from evidence.files import FileStore
from evidence.models import Attempt, Response, StoredFile
from rights import erasure as service
from storage import utcnow
from storage.accounts import ErasureConfirmation, Role, User
from storage.rights import AuditEntry, Erasure, verify_chain
from tests.api.conftest import PASSWORD, ApiWorld
from tests.api.rights_helpers import (
    add_school,
    add_user,
    db,
    fill_history,
    personal_rows,
    publish_note,
)

#: Nothing is left on purpose: access_audit accepts DELETE since migration 0014.
KEPT_TABLES: set[str] = set()


def _request(world: ApiWorld, student: str = "student1", user: str = "admin1",
             reason: str | None = "Parent's request under GDPR art. 17"):
    body = {} if reason is None else {"reason": reason}
    return world.call("post", f"/api/v1/students/{world.users[student]}/erasure", user, json=body)


def _left(world: ApiWorld, sid: int, keep: bool) -> dict[str, int]:
    allowed = service.KEPT_ANONYMOUS if keep else {}
    with db(world) as session:
        left = personal_rows(session, sid, allowed)
    return {k: v for k, v in left.items() if v and k not in KEPT_TABLES}


@pytest.mark.parametrize("keep", [True, False], ids=["keep-anonymous", "delete-responses"])
def test_erasure_end_to_end(world: ApiWorld, keep: bool) -> None:
    publish_note(world, keep=keep)
    add_user(world, "admin7")
    sid = world.users["student1"]
    stored = fill_history(world)
    old_token = world.token("student1")
    with db(world) as session:
        before = personal_rows(session, sid)
        n_responses = session.scalar(select(func.count()).select_from(Response).join(Attempt)
                                     .where(Attempt.user_id == sid))
        pseudonym = session.get(User, sid).pseudonym
        hashes = {f["sha256"] for d in stored["drafts"] for f in d["files"]}
    # every kind of record is there before, so the check below is not empty by accident
    assert {"attempts", "responses", "drafts", "draft_files", "statements", "rubric_scores",
            "defenses", "mastery_decisions", "appeals", "consents", "student_groups",
            "accommodations", "class_members", "page_sessions", "api_tokens"} <= set(before)

    r = _request(world)
    assert r.status_code == 201, r.get_json()
    erasure = r.get_json()
    assert erasure["status"] == "pending" and erasure["confirmation"] == "second_admin"
    # pending: nothing erased yet; the same admin cannot confirm
    assert world.call("get", f"/api/v1/students/{sid}/export", "student1").status_code == 200
    r = world.call("post", f"/api/v1/erasures/{erasure['id']}/confirm", "admin1")
    assert r.status_code == 403 and "different administrator" in r.get_json()["detail"]
    r = world.call("post", f"/api/v1/erasures/{erasure['id']}/confirm", "admin7")
    assert r.status_code == 200, r.get_json()
    done = r.get_json()
    assert done["status"] == "done" and done["confirmed_by"] == world.users["admin7"]
    assert done["outcome"]["anonymous_responses_kept"] is keep
    assert done["outcome"]["kept"]["responses"] == (n_responses if keep else 0)

    # cannot sign in, old token dead; report and export 404 for everyone
    r = world.client.post("/api/v1/auth/token", json={"username": "student1",
                                                      "password": PASSWORD})
    assert r.status_code == 401
    r = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {old_token}"})
    assert r.status_code == 401
    for path in (f"/api/v1/students/{sid}/report", f"/api/v1/students/{sid}/export",
                 f"/api/v1/students/{sid}/export.pdf", f"/api/v1/students/{sid}/report.pdf"):
        r = world.call("get", path, "admin1")
        assert r.status_code == 404, (path, r.status_code)
        assert r.mimetype == "application/problem+json"
    assert world.call("get", f"/api/v1/students/{sid}/report", "teacher1").status_code == 404
    assert _request(world).status_code == 404  # erased already

    with db(world) as session:
        tomb = session.get(User, sid)
        assert tomb.username == f"erased-{sid}" and tomb.display_name == ""
        assert not tomb.is_active and tomb.erased_at is not None
        assert tomb.pseudonym != pseudonym and not tomb.check_password(PASSWORD)
        # no personal data left anywhere
        assert _left(world, sid, keep) == {}
        kept = session.scalar(select(func.count()).select_from(Response).join(Attempt)
                              .where(Attempt.user_id == sid))
        assert kept == (n_responses if keep else 0)
        if keep:  # what item statistics need, and nothing that tells who or where
            for a in session.scalars(select(Attempt).where(Attempt.user_id == sid)):
                assert a.theta is None and a.state is None and a.assignment_id is None
        # files no other draft refers to: rows gone, bytes gone
        assert session.scalar(select(func.count()).select_from(StoredFile)
                              .where(StoredFile.sha256.in_(hashes))) == 0
        store = FileStore(world.app.config["FILES_DIR"])
        assert not any(store.path_of(h).exists() for h in hashes)
        # the audit: who requested, who confirmed, why; nothing of the erased data
        entries = session.scalars(select(AuditEntry).where(AuditEntry.subject_id == sid)
                                  .order_by(AuditEntry.id)).all()
        actions = [e.action for e in entries if e.action.startswith("erasure")]
        assert actions == ["erasure_requested", "erasure_confirmed", "erasure_done"]
        assert entries[-1].detail["reason"] == "Parent's request under GDPR art. 17"
        assert entries[-1].detail["confirmed_by"] == world.users["admin7"]
        assert entries[-2].actor_id == world.users["admin7"]
        text = " ".join(str(e.detail) for e in entries)
        for secret in ("Student1", "student1", "My work", "Please look", "reading support",
                       pseudonym):
            assert secret not in text
        count, problems = verify_chain(session)
        assert count >= 3 and problems == []


def test_delay_mode_runs_when_due(world: ApiWorld) -> None:
    publish_note(world, keep=False)
    add_school(world, "North", ErasureConfirmation.DELAY, days=14, members=("student1",))
    sid = world.users["student1"]
    fill_history(world)
    r = _request(world)
    assert r.status_code == 201, r.get_json()
    erasure = r.get_json()
    assert erasure["confirmation"] == "delay" and erasure["due_at"] is not None
    # a delay confirms it: no second admin's confirmation
    r = world.call("post", f"/api/v1/erasures/{erasure['id']}/confirm", "admin1")
    assert r.status_code == 409 and "delay" in r.get_json()["detail"]
    url = engine_of(world.app).url.render_as_string(hide_password=False)
    runner = CliRunner()
    result = runner.invoke(cli, ["--database-url", url, "erasures", "run-due"])
    assert result.exit_code == 0, result.output
    assert "0 erasure(s) carried out" in result.output
    with db(world) as session:  # move the clock: make it due
        row = session.get(Erasure, erasure["id"])
        row.due_at = utcnow() - timedelta(seconds=1)
    result = runner.invoke(cli, ["--database-url", url, "erasures", "run-due"])
    assert result.exit_code == 0, result.output
    assert "1 erasure(s) carried out" in result.output
    assert _left(world, sid, keep=False) == {}
    r = world.call("get", f"/api/v1/erasures/{erasure['id']}", "admin1")
    assert r.get_json()["status"] == "done" and r.get_json()["confirmed_by"] is None
    with db(world) as session:
        done = session.scalars(select(AuditEntry).where(AuditEntry.action == "erasure_done")).one()
        assert done.actor_id is None and done.subject_id == sid


def test_cancel_keeps_everything(world: ApiWorld) -> None:
    publish_note(world, keep=False)
    sid = world.users["student1"]
    fill_history(world)
    with db(world) as session:
        before = personal_rows(session, sid)
    erasure = _request(world).get_json()
    r = world.call("post", f"/api/v1/erasures/{erasure['id']}/cancel", "admin1")
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled"
    r = world.call("post", f"/api/v1/erasures/{erasure['id']}/cancel", "admin1")
    assert r.status_code == 409
    add_user(world, "admin7")
    r = world.call("post", f"/api/v1/erasures/{erasure['id']}/confirm", "admin7")
    assert r.status_code == 409 and "cancelled" in r.get_json()["detail"]
    with db(world) as session:
        assert personal_rows(session, sid) == before
    assert world.call("get", f"/api/v1/students/{sid}/export", "student1").status_code == 200
    listed = world.call("get", "/api/v1/erasures?status=cancelled", "admin1").get_json()
    assert [e["id"] for e in listed["items"]] == [erasure["id"]]


def test_bad_requests(world: ApiWorld) -> None:
    # no reason, a blank one: 422 naming the field
    for body in ({}, {"reason": "   "}):
        r = world.call("post", f"/api/v1/students/{world.users['student1']}/erasure", "admin1",
                       json=body)
        assert r.status_code == 422, r.get_json()
        assert r.mimetype == "application/problem+json"
        assert "reason" in r.get_json()["detail"]
    # a staff account: a non-admin is refused by role, an admin is told the endpoint is for
    # students
    assert _request(world, "teacher1", user="teacher2").status_code == 403
    assert _request(world, "teacher1", user="teacher1").status_code == 403
    r = _request(world, "teacher1")
    assert r.status_code == 422 and "for students" in r.get_json()["detail"]
    assert r.get_json()["errors"][0]["field"] == "student_id"
    # unknown user; a second request while one is pending
    assert world.call("post", "/api/v1/students/999999/erasure", "admin1",
                      json={"reason": "x"}).status_code == 404
    assert _request(world).status_code == 201
    r = _request(world)
    assert r.status_code == 409 and "pending already" in r.get_json()["detail"]
    with db(world) as session:
        assert session.scalar(select(func.count()).select_from(Erasure)) == 1


def test_school_admin_scope(world: ApiWorld) -> None:
    north = add_school(world, "North", ErasureConfirmation.SECOND_ADMIN, members=("student1",))
    south = add_school(world, "South", ErasureConfirmation.SECOND_ADMIN, members=("student3",))
    add_user(world, "north_admin", Role.ADMIN, school_id=north)
    add_user(world, "north_admin2", Role.ADMIN, school_id=north)
    add_user(world, "south_admin", Role.ADMIN, school_id=south)
    assert _request(world, "student3", user="north_admin").status_code == 404
    r = _request(world, "student1", user="north_admin")
    assert r.status_code == 201
    erasure = r.get_json()["id"]
    # another school's admin does not see it; the district admin does
    assert world.call("get", f"/api/v1/erasures/{erasure}", "south_admin").status_code == 404
    assert world.call("post", f"/api/v1/erasures/{erasure}/confirm",
                      "south_admin").status_code == 404
    assert world.call("get", "/api/v1/erasures", "south_admin").get_json()["total"] == 0
    assert world.call("get", "/api/v1/erasures", "admin1").get_json()["total"] == 1
    r = world.call("post", f"/api/v1/erasures/{erasure}/confirm", "north_admin2")
    assert r.status_code == 200 and r.get_json()["status"] == "done"
