"""The retention purge: a dry run counts and deletes nothing; --apply deletes exactly the
counted rows and records PURGE; only what the privacy note gives a period is touched."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import func, select, update

from api.cli import cli
from api.db import engine_of
from evidence.models import Attempt, Draft, RubricScore, Statement
from reports.models import Appeal, MasteryDecision
from rights.retention import KINDS
from storage import Base, utcnow
from storage.accounts import PageSession, Role
from storage.rights import AuditEntry, verify_chain
from tests.api.conftest import ApiWorld
from tests.api.rights_helpers import add_user, db, fill_history, publish_note

RETENTION = {"attempts": 365, "drafts": 365, "statements": 365, "rubric_scores": 365,
             "decisions": 365, "appeals": 365, "page_sessions": 30}


def _all_rows(world: ApiWorld) -> dict[str, int]:
    with db(world) as session:
        return {name: session.scalar(select(func.count()).select_from(table))
                for name, table in Base.metadata.tables.items()}


def _age_student1(world: ApiWorld, days: int) -> None:
    """Move student1's attempts and page sessions ``days`` into the past (append-only records
    cannot be moved: the purge's own ``now`` does that in the next test)."""
    sid = world.users["student1"]
    past = utcnow() - timedelta(days=days)
    with db(world) as session:
        session.execute(update(Attempt).where(Attempt.user_id == sid)
                        .values(started_at=past, finished_at=past))
        session.execute(update(PageSession).where(PageSession.user_id == sid)
                        .values(last_seen_at=past))


def test_dry_run_then_apply(world: ApiWorld) -> None:
    publish_note(world, keep=True, retention=RETENTION)
    fill_history(world)          # student1: today
    fill_history(world, "student2")
    _age_student1(world, 400)    # student1's attempt and page session: 400 days old
    url = engine_of(world.app).url.render_as_string(hide_password=False)
    runner = CliRunner()
    before = _all_rows(world)
    dry = runner.invoke(cli, ["--database-url", url, "privacy", "purge"])
    assert dry.exit_code == 0, dry.output
    assert "Dry run: nothing was deleted" in dry.output
    assert _all_rows(world) == before  # nothing deleted, nothing recorded
    r = world.call("post", "/api/v1/retention/purge", "admin1", json={})
    assert r.status_code == 200, r.get_json()
    counted = r.get_json()
    assert counted["applied"] is False and _all_rows(world) == before
    # the attempt is named by statements that stay (365 days, stored today): it waits for them
    assert counted["counts"]["attempts"] == 0
    assert counted["counts"]["decisions"] == 0
    assert counted["counts"]["page_sessions"] == 1
    assert counted["counts"]["drafts"] == 0 and counted["counts"]["statements"] == 0
    assert "report_jobs" in counted["kept"]
    applied = world.call("post", "/api/v1/retention/purge", "admin1",
                         json={"dry_run": False}).get_json()
    assert applied["applied"] is True and applied["counts"] == counted["counts"]
    after = _all_rows(world)
    assert before["page_sessions"] - after["page_sessions"] == 1
    assert {k for k in before if before[k] != after[k]} <= {
        "page_sessions", "audit_log", "audit_head"}
    with db(world) as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "purge"))
        assert entry.detail["counts"] == applied["counts"] and entry.actor_id == \
            world.users["admin1"]
        assert verify_chain(session)[1] == []


def test_apply_deletes_exactly_the_counted_rows(world: ApiWorld) -> None:
    """Everything old: statements (1 day) go first, then the attempts they held back."""
    retention = dict.fromkeys(KINDS, 1)
    publish_note(world, keep=True, retention=retention)
    fill_history(world)
    sid = world.users["student1"]
    later = utcnow() + timedelta(days=2)  # purge "two days from now"
    from rights.retention import purge

    with db(world) as session:
        dry = purge(session, now=later)
        session.rollback()
    counts = dry.counts
    with db(world) as session:
        expected = {
            "statements": session.scalar(select(func.count()).select_from(Statement)),
            "attempts": session.scalar(select(func.count()).select_from(Attempt)
                                       .where(Attempt.status != "in_progress")),
            "drafts": session.scalar(select(func.count()).select_from(Draft)),
            "rubric_scores": session.scalar(select(func.count()).select_from(RubricScore)),
            "appeals": session.scalar(select(func.count()).select_from(Appeal)),
            "decisions": session.scalar(select(func.count()).select_from(MasteryDecision)),
        }
    assert {k: counts[k] for k in expected} == expected and all(expected.values())
    before = _all_rows(world)
    with db(world) as session:
        done = purge(session, apply=True, now=later)
    assert done.counts == counts
    after = _all_rows(world)
    for name in expected:
        table = KINDS[name].model.__table__.name
        assert before[table] - after[table] == counts[name], name
    with db(world) as session:
        assert session.scalar(select(func.count()).select_from(Attempt)
                              .where(Attempt.user_id == sid)) == 0


def test_purge_is_for_district_admins(world: ApiWorld) -> None:
    publish_note(world, keep=True, retention={"page_sessions": 30})
    add_user(world, "school_admin", Role.ADMIN, school_id=1)
    for user, status in (("school_admin", 403), ("teacher1", 403), ("student1", 403),
                         ("admin1", 200)):
        r = world.call("post", "/api/v1/retention/purge", user, json={"dry_run": True})
        assert r.status_code == status, user
    r = world.call("post", "/api/v1/retention/purge", "admin1", json={"dry_run": "maybe"})
    assert r.status_code == 422 and "dry_run" in r.get_json()["detail"]


def test_bad_retention_in_the_note(world: ApiWorld) -> None:
    publish_note(world, keep=True, retention={"attempts": 0})
    r = world.call("post", "/api/v1/retention/purge", "admin1", json={})
    assert r.status_code == 422 and "attempts" in r.get_json()["detail"]
