"""Migrations upgrade and downgrade on SQLite and PostgreSQL, and match the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError, StatementError

from api.models import Item, ItemParameterSet, ItemStatus, metadata
from storage import make_engine, session_factory, session_scope
from storage.migrate import current_revision, downgrade, head_revision, upgrade

TABLES = {
    "alembic_version",
    "app_meta",
    "users",
    "items",
    "item_tags",
    "item_parameter_sets",
    "tests",
    "test_items",
    "attempts",
    "responses",
    "item_versions",
    "item_status_events",
    "bank_snapshots",
    "item_exposures",
    "eligibility_totals",
    "eligibility_counts",
    "response_uploads",
    "calibration_runs",
    "classes",
    "class_members",
    "accommodations",
    "assignments",
    "api_tokens",
    "cat_clients",
    "cat_client_tokens",
    "cat_sections",
    "cat_sessions",
    "cat_results",
    "access_audit",
    "page_sessions",
    "item_imports",
    "tasks",
    "stored_files",
    "drafts",
    "draft_files",
    "draft_comments",
    "xapi_clients",
    "statements",
    "statement_activities",
    "rubrics",
    "rubric_versions",
    "rubric_criteria",
    "defenses",
    "defense_raters",
    "rubric_scores",
    "rubric_calibrations",
    "mastery_decisions",
    "appeals",
    "appeal_answers",
    "learning_resources",
    "report_jobs",
    "schools",
    "privacy_notes",
    "consents",
    "student_groups",
    "audit_log",
    "audit_head",
    "erasures",
    "item_translations",
    "rate_limit_counters",
    "roster_imports",
    "xapi_lrs",
    "xapi_forwards",
    "lti_platforms",
    "lti_tool_keys",
    "lti_launch_data",
    "lti_nonces",
    "lti_user_links",
    "lti_contexts",
    "lti_resource_links",
    "lti_grades",
}


@pytest.fixture
def engine(empty_db_url: str):
    engine = make_engine(empty_db_url)
    yield engine
    engine.dispose()


def test_upgrade_downgrade_round_trip(engine) -> None:
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) == TABLES

    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

    upgrade(engine)  # and back up again on the same database
    assert set(inspect(engine).get_table_names()) == TABLES


def test_migrations_match_the_models(engine) -> None:
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def _item(code: str) -> Item:
    return Item(code=code, stem="2 + 2 = ?", options=["3", "4", "5", "22"], key=1, skill="arith")


def test_one_active_parameter_set_per_item(engine) -> None:
    upgrade(engine)
    factory = session_factory(engine)
    with session_scope(factory) as session:
        item = _item("i1")
        item.parameter_sets = [
            ItemParameterSet(model="2pl", a=1.0, b=0.0, source="import", is_active=True),
            ItemParameterSet(model="2pl", a=1.1, b=0.1, source="import", is_active=False),
        ]
        session.add(item)
    with pytest.raises(IntegrityError), session_scope(factory) as session:
        item = session.query(Item).one()
        session.add(
            ItemParameterSet(item=item, model="2pl", a=1.2, b=0.2, source="import", is_active=True)
        )
    with session_scope(factory) as session:
        item = session.query(Item).one()
        assert item.active_parameters.a == 1.0
        assert len(item.parameter_sets) == 2


def test_check_constraints_hold_in_the_database(engine) -> None:
    upgrade(engine)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO items (code, stem, options, rationale, skill, status, created_at, "
                "updated_at) VALUES ('x', 's', '[]', '', 'k', 'bogus', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
    factory = session_factory(engine)
    with session_scope(factory) as session:
        session.add(_item("i2"))
    with pytest.raises(IntegrityError), session_scope(factory) as session:
        item = session.query(Item).one()
        session.add(ItemParameterSet(item=item, model="5pl", a=1.0, source="import"))
    with pytest.raises(StatementError), session_scope(factory) as session:
        item = session.query(Item).one()
        item.status = "bogus"  # rejected by the enum type before it reaches the database
    with session_scope(factory) as session:
        assert session.query(Item).one().status is ItemStatus.DRAFT


def test_0002_keeps_existing_items_as_version_one(engine) -> None:
    upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO items (code, stem, options, key, rationale, skill, status, created_at, "
            "updated_at) VALUES ('OLD-1', 'Old stem', '[\"x\", \"y\"]', 1, '', 'algebra', "
            "'operational', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT i.version, v.version, v.stem, v.key FROM items i "
            "JOIN item_versions v ON v.item_id = i.id WHERE i.code = 'OLD-1'"
        )).all()
    assert rows == [(1, 1, "Old stem", 1)]


def test_0004_closes_duplicated_attempts_then_forbids_them(engine) -> None:
    upgrade(engine, "0003")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO users (username, display_name, role, password_hash, is_active, "
            "created_at) VALUES ('s1', 'S1', 'student', 'x', true, CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO tests (name, description, config, bank_filter, cut_scores, version, "
            "is_active, created_at, updated_at) VALUES ('T', '', '{}', '{}', '{}', 1, true, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        for status in ("in_progress", "in_progress", "finished", "in_progress"):
            connection.execute(text(
                "INSERT INTO attempts (test_id, user_id, status, seed, started_at) "
                f"SELECT t.id, u.id, '{status}', 0, CURRENT_TIMESTAMP FROM tests t, users u"))
    upgrade(engine)
    with engine.connect() as connection:
        statuses = connection.execute(text("SELECT status FROM attempts ORDER BY id")).scalars()
        assert list(statuses) == ["abandoned", "abandoned", "finished", "in_progress"]
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO attempts (test_id, user_id, status, seed, started_at) "
            "SELECT t.id, u.id, 'in_progress', 0, CURRENT_TIMESTAMP FROM tests t, users u"))
