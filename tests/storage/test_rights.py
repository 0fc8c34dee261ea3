"""The records of learners' rights at the storage level: the audit chain and consents."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from storage import make_engine, session_factory, utcnow
from storage.accounts import Role, User
from storage.migrate import upgrade
from storage.rights import (
    GENESIS_HASH,
    AuditAction,
    AuditEntry,
    Consent,
    Purpose,
    audit,
    consenting,
    has_consent,
    verify_chain,
)


@pytest.fixture
def factory(any_db_url: str):
    engine = make_engine(any_db_url)
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def _entries(factory) -> list[AuditEntry]:
    with factory() as session:
        return session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()


def test_entries_are_written_at_commit_and_chained(factory) -> None:
    with factory() as session:
        audit(session, AuditAction.SIGN_IN, actor_id=7, subject_id=7)
        assert _entries(factory) == []  # not before the commit
        audit(session, AuditAction.REPORT_READ, actor_id=3, subject_id=7, object_type="report",
              object_id=7, detail={"format": "pdf"})
        session.commit()
    first, second = _entries(factory)
    assert (first.id, second.id) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    # the hash is SHA-256 over the previous hash and the canonical JSON of the content,
    # computed here independently of storage.rights.entry_hash
    content = json.dumps({"id": 2, "at": second.at.replace(tzinfo=None).isoformat(
        timespec="microseconds") + "+00:00", "actor_id": 3, "action": "report_read",
        "subject_id": 7, "object_type": "report", "object_id": "7",
        "detail": {"format": "pdf"}}, sort_keys=True, separators=(",", ":"))
    assert second.hash == hashlib.sha256(f"{first.hash}\n{content}".encode()).hexdigest()
    with factory() as session:
        assert verify_chain(session) == (2, [])


def test_a_rollback_writes_nothing(factory) -> None:
    with factory() as session:
        audit(session, AuditAction.SIGN_IN, actor_id=1)
        session.rollback()
        audit(session, AuditAction.SIGN_IN, actor_id=2)
        session.commit()
    assert [e.actor_id for e in _entries(factory)] == [2]


def test_the_log_refuses_change_and_the_check_names_a_tampered_entry(factory,
                                                                    any_db_url) -> None:
    with factory() as session:
        for actor in range(1, 5):
            audit(session, AuditAction.SIGN_IN, actor_id=actor)
        session.commit()
    for statement in ("UPDATE audit_log SET actor_id = 9 WHERE id = 2",
                      "DELETE FROM audit_log WHERE id = 3"):
        with pytest.raises((IntegrityError, DBAPIError)), factory() as session:
            session.execute(text(statement))
            session.commit()
    # someone with the database's owner rights drops the guard and edits a row
    engine = make_engine(any_db_url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER audit_log_no_update"))
            connection.execute(text("DROP TRIGGER audit_log_no_delete"))
        connection.execute(text("UPDATE audit_log SET actor_id = 9 WHERE id = 2"))
    with factory() as session:
        count, problems = verify_chain(session)
    assert count == 4
    assert [str(p) for p in problems] == [
        "audit entry 2: its content does not match its hash (changed after it was written)"]
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE id = 4"))
    with factory() as session:
        _, problems = verify_chain(session)
    assert [p.entry_id for p in problems] == [2, None]  # the removed tail: the head disagrees
    engine.dispose()


def test_the_current_consent_is_the_newest_record(factory) -> None:
    with factory() as session:
        students = [User(username=f"s{n}", password_hash="x", role=Role.STUDENT)
                    for n in range(3)]
        session.add_all(students)
        session.flush()
        a, b, c = (s.id for s in students)
        now = utcnow()
        session.add_all([
            Consent(student_id=a, purpose=Purpose.RESEARCH, granted=True, at=now),
            Consent(student_id=b, purpose=Purpose.RESEARCH, granted=True,
                    at=now - timedelta(days=2)),
            Consent(student_id=b, purpose=Purpose.RESEARCH, granted=False,
                    at=now - timedelta(days=1)),
            Consent(student_id=c, purpose=Purpose.DEMOGRAPHICS, granted=True, at=now),
        ])
        session.commit()
        assert consenting(session, [a, b, c], Purpose.RESEARCH) == {a}
        assert has_consent(session, c, Purpose.DEMOGRAPHICS)
        assert not has_consent(session, c, Purpose.RESEARCH)  # no record: not given
        assert consenting(session, [], Purpose.RESEARCH) == set()
        with pytest.raises((IntegrityError, DBAPIError)):
            session.execute(text("UPDATE consents SET granted = true"))
            session.commit()
