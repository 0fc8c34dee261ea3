"""The evidence store's schema (migration 0010): existing rows get a pseudonym and a registration,
and drafts and statements cannot be changed once stored, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from storage import make_engine
from storage.migrate import upgrade


@pytest.fixture
def engine(empty_db_url: str):
    engine = make_engine(empty_db_url)
    yield engine
    engine.dispose()


def _user(connection, name: str, role: str = "student") -> int:
    return connection.execute(text(
        "INSERT INTO users (username, display_name, role, password_hash, is_active, created_at"
        + (", pseudonym" if _has_pseudonym(connection) else "") + ") VALUES (:name, :name, "
        ":role, 'x', true, CURRENT_TIMESTAMP" + (", :pseudonym" if _has_pseudonym(connection)
                                                  else "") + ") RETURNING id"),
        {"name": name, "role": role, "pseudonym": uuid.uuid4().hex}).scalar_one()


def _has_pseudonym(connection) -> bool:
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar() >= "0010"


def test_0010_gives_existing_users_and_attempts_distinct_random_ids(engine) -> None:
    upgrade(engine, "0009")
    with engine.begin() as connection:
        for name in ("s1", "s2", "s3"):
            _user(connection, name)
        connection.execute(text(
            "INSERT INTO tests (name, description, config, bank_filter, cut_scores, version, "
            "is_active, created_at, updated_at, translations) VALUES ('T', '', '{}', '{}', '{}', "
            "1, true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, '{}')"))
        connection.execute(text(
            "INSERT INTO attempts (test_id, user_id, status, seed, started_at, time_extensions) "
            "SELECT t.id, u.id, 'finished', 0, CURRENT_TIMESTAMP, 0 FROM tests t, users u"))
    upgrade(engine)
    with engine.connect() as connection:
        pseudonyms = connection.execute(text("SELECT pseudonym FROM users")).scalars().all()
        registrations = connection.execute(
            text("SELECT registration FROM attempts")).scalars().all()
    assert len(set(pseudonyms)) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", p) for p in pseudonyms)
    assert len(set(registrations)) == 3
    assert all(uuid.UUID(r).version == 4 and str(uuid.UUID(r)) == r for r in registrations)


def _world(connection) -> dict[str, int]:
    teacher = _user(connection, "t1", "teacher")
    student = _user(connection, "s1")
    class_id = connection.execute(text(
        "INSERT INTO classes (name, teacher_id, created_at) VALUES ('7B', :t, CURRENT_TIMESTAMP) "
        "RETURNING id"), {"t": teacher}).scalar_one()
    task = connection.execute(text(
        "INSERT INTO tasks (class_id, title, instructions, skills, created_at) VALUES "
        "(:c, 'Essay', '', '[]', CURRENT_TIMESTAMP) RETURNING id"), {"c": class_id}).scalar_one()
    draft = connection.execute(text(
        "INSERT INTO drafts (task_id, student_id, version, body, final, submitted_at) VALUES "
        "(:t, :s, 1, 'first', false, CURRENT_TIMESTAMP) RETURNING id"),
        {"t": task, "s": student}).scalar_one()
    client = connection.execute(text(
        "INSERT INTO xapi_clients (name, class_id, key, secret_hash, created_at) VALUES "
        "('tool', :c, 'k', 'h', CURRENT_TIMESTAMP) RETURNING id"), {"c": class_id}).scalar_one()
    seq = connection.execute(text(
        "INSERT INTO statements (id, stored_at, timestamp, actor_id, verb_id, object_id, "
        "client_id, content_hash, body) VALUES (:id, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, :s, "
        "'http://adlnet.gov/expapi/verbs/answered', 'http://x/1', :client, 'h', '{}') "
        "RETURNING seq"),
        {"id": str(uuid.uuid4()), "s": student, "client": client}).scalar_one()
    connection.execute(text(
        "INSERT INTO statement_activities (statement_seq, activity_id, relation) VALUES "
        "(:seq, 'http://x/1', 'object')"), {"seq": seq})
    return {"class": class_id, "draft": draft, "seq": seq, "student": student}


@pytest.mark.parametrize("change", [
    "UPDATE drafts SET body = 'rewritten'",
    "UPDATE drafts SET final = true",
    "UPDATE statements SET body = '{\"x\": 1}'",
    "UPDATE statements SET verb_id = 'http://adlnet.gov/expapi/verbs/voided'",
    "UPDATE statement_activities SET activity_id = 'http://x/2'",
])
def test_drafts_and_statements_are_append_only(engine, change: str) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        _world(connection)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(change))


def test_erasure_and_class_deletion_still_work(engine) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        world = _world(connection)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("PRAGMA foreign_keys = ON"))
        # deleting the class deletes its credential; the statement stays, its client_id NULL
        connection.execute(text("DELETE FROM classes WHERE id = :c"), {"c": world["class"]})
    with engine.connect() as connection:
        assert connection.execute(text("SELECT client_id FROM statements")).all() == [(None,)]
    with engine.begin() as connection:  # erasure of a student removes their drafts and log
        connection.execute(text("DELETE FROM drafts WHERE student_id = :student"), world)
        connection.execute(text("DELETE FROM statements WHERE actor_id = :student"), world)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM statements")).scalar() == 0
