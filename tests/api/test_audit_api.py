"""The audit log end to end: what gets recorded, who may read it, the page, and the chain check
of ``cat-engine audit verify`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from api.cli import cli
from api.db import engine_of
from storage import make_engine, session_factory
from storage.rights import AuditAction, AuditEntry, audit, verify_chain
from tests.api.conftest import PASSWORD, ApiWorld
from tests.api.rights_helpers import db
from tests.delivery_ui.conftest import csrf_of


def _entries(world: ApiWorld, **where) -> list[AuditEntry]:
    with db(world) as session:
        query = select(AuditEntry).order_by(AuditEntry.id)
        for column, value in where.items():
            query = query.where(getattr(AuditEntry, column) == value)
        rows = session.scalars(query).all()
        session.expunge_all()
        return rows


def _url(world: ApiWorld) -> str:
    return str(engine_of(world.app).url.render_as_string(hide_password=False))


def test_sign_ins_and_failed_ones_are_recorded_without_the_typed_name(world: ApiWorld) -> None:
    world.token("teacher1")
    ok = _entries(world, action="sign_in")
    assert [(e.actor_id, e.subject_id, e.detail) for e in ok] == [
        (world.users["teacher1"], world.users["teacher1"], {"channel": "api"})]
    world.client.post("/api/v1/auth/token", json={"username": "teacher1", "password": "nope"})
    world.client.post("/api/v1/auth/token",
                      json={"username": "correct-horse-in-the-wrong-box", "password": "x"})
    failed = _entries(world, action="sign_in_failed")
    assert [(e.actor_id, e.subject_id) for e in failed] == [
        (None, world.users["teacher1"]), (None, None)]
    assert all("correct-horse" not in str(e.detail) for e in failed)
    # the page records its own sign-ins
    page = world.client.get("/").get_data(as_text=True)
    world.client.post("/sign-in", data={"username": "student1", "password": PASSWORD,
                                        "csrf_token": csrf_of(page)})
    assert _entries(world, action="sign_in")[-1].detail == {"channel": "page"}


def test_reads_decisions_role_and_access_changes_are_recorded(world: ApiWorld) -> None:
    sid = world.users["student1"]
    assert world.call("get", f"/api/v1/students/{sid}/report", "teacher1").status_code == 200
    assert world.call("get", f"/api/v1/students/{sid}/report", "student1").status_code == 200
    assert world.call("get", f"/api/v1/users/{sid}/portfolio", "teacher1").status_code == 200
    # refused reads leave no entry
    assert world.call("get", f"/api/v1/students/{sid}/report", "teacher2").status_code == 404
    reads = _entries(world, action="report_read")
    assert [(e.actor_id, e.subject_id, e.object_type) for e in reads] == [
        (world.users["teacher1"], sid, "report"), (sid, sid, "report")]
    (portfolio,) = _entries(world, action="portfolio_read")
    assert (portfolio.actor_id, portfolio.subject_id) == (world.users["teacher1"], sid)

    # a decision against the suggestion is an override; the same decision again is a decision
    skill = world.call("get", f"/api/v1/students/{sid}/report", "teacher1").get_json()
    entry = next((s for s in skill["skills"] if s.get("suggested_decision")), None)
    name = entry["skill"] if entry else "algebra"
    suggested = entry["suggested_decision"] if entry else None
    other = "not_mastered" if suggested == "mastered" else "mastered"
    r = world.call("post", f"/api/v1/students/{sid}/skills/{name}/decisions", "teacher1",
                   json={"decision": other, "reason": "seen in class"})
    assert r.status_code == 201, r.get_json()
    actions = [e.action for e in _entries(world, subject_id=sid)
               if e.action in ("decision", "override")]
    assert actions == (["override"] if suggested else ["decision"])

    r = world.call("patch", f"/api/v1/users/{world.users['assessor1']}", "admin1",
                   json={"role": "teacher"})
    assert r.status_code == 200, r.get_json()
    (change,) = _entries(world, action="role_change")
    assert change.actor_id == world.users["admin1"]
    assert change.detail["before"]["role"] == "assessor"
    assert change.detail["after"]["role"] == "teacher"

    r = world.call("post", f"/api/v1/classes/{world.class_id}/students", "admin1",
                   json={"user_id": world.users["student3"]})
    assert r.status_code == 201, r.get_json()
    (access,) = _entries(world, action="access_change")
    assert (access.subject_id, access.object_type, access.detail) == (
        world.users["student3"], "class", {"change": "enrol"})
    with db(world) as session:
        assert verify_chain(session)[1] == []


def test_only_administrators_read_the_log_and_bad_filters_are_named(world: ApiWorld) -> None:
    sid = world.users["student1"]
    world.call("get", f"/api/v1/students/{sid}/report", "teacher1")
    for user in ("teacher1", "student1", "assessor1"):
        r = world.call("get", f"/api/v1/audit?subject={sid}", user)
        assert r.status_code == 403 and r.mimetype == "application/problem+json"
    r = world.call("get", f"/api/v1/audit?subject={sid}", "admin1")
    assert r.status_code == 200
    body = r.get_json()
    # newest first: student1 signed in (for the refused call above) after teacher1 read
    assert [e["action"] for e in body["entries"]] == ["sign_in", "report_read"]
    assert body["entries"][1]["actor"] == "Teacher1" and body["has_more"] is False
    # reading the log is recorded too
    (read,) = _entries(world, action="audit_read")
    assert (read.actor_id, read.subject_id) == (world.users["admin1"], sid)
    for query, field in (("since=yesterday", "since"), ("action=peek", "action"),
                         ("per_page=1000", "per_page"), ("subject=-3", "subject")):
        r = world.call("get", f"/api/v1/audit?{query}", "admin1")
        assert r.status_code == 422, (query, r.get_json())
        assert field in str(r.get_json()), (query, r.get_json())
    r = world.call("get", "/api/v1/audit?since=2026-12-05T00:00:00Z"
                          "&until=2026-12-01T00:00:00Z", "admin1")
    assert r.status_code == 422 and "since" in str(r.get_json())
    r = world.call("get", "/api/v1/audit?per_page=1&action=sign_in", "admin1").get_json()
    assert len(r["entries"]) == 1 and r["has_more"] is True


def test_the_audit_page(world: ApiWorld) -> None:
    client = world.app.test_client()
    page = client.get("/").get_data(as_text=True)
    client.post("/sign-in", data={"username": "admin1", "password": PASSWORD,
                                  "csrf_token": csrf_of(page)})
    html = client.get("/admin/audit?action=sign_in").get_data(as_text=True)
    assert 'id="audit-entries"' in html and "Signed in" in html and "Audit log" in html
    r = client.get("/admin/audit?since=31-12-2026")
    assert r.status_code == 422 and "Enter a date as YYYY-MM-DD." in r.get_data(as_text=True)
    teacher = world.app.test_client()
    page = teacher.get("/").get_data(as_text=True)
    teacher.post("/sign-in", data={"username": "teacher1", "password": PASSWORD,
                                   "csrf_token": csrf_of(page)})
    assert teacher.get("/admin/audit").status_code == 403


def test_verify_names_a_tampered_entry(world: ApiWorld) -> None:
    world.token("teacher1")
    world.token("student1")
    world.call("get", f"/api/v1/students/{world.users['student1']}/report", "teacher1")
    url = _url(world)
    ok = CliRunner().invoke(cli, ["--database-url", url, "audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "entries are intact" in ok.output
    engine = make_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER audit_log_no_update"))
        connection.execute(text("UPDATE audit_log SET subject_id = 999 WHERE id = 2"))
    engine.dispose()
    bad = CliRunner().invoke(cli, ["--database-url", url, "audit", "verify"])
    assert bad.exit_code == 1
    assert "audit entry 2: its content does not match its hash" in bad.output


@pytest.mark.postgres
def test_concurrent_writers_keep_one_unbroken_chain(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=8)
    factory = session_factory(engine)
    errors: list[BaseException] = []

    def write(actor: int) -> None:
        try:
            for _ in range(20):
                with factory() as session:
                    audit(session, AuditAction.SIGN_IN, actor_id=actor)
                    audit(session, AuditAction.REPORT_READ, actor_id=actor, subject_id=1)
                    session.commit()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with factory() as session:
        assert verify_chain(session) == (240, [])
        ids = session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
    assert ids == list(range(1, 241))
    engine.dispose()
