"""What the fast answer path trades and keeps: the token cache, no pre-ping, the bank stamp.

The answer path caches tokens for a few seconds, skips the connection ping and reuses the bank
snapshot while the bank's stamp is unchanged. These tests pin down the promises that remain:
changes made in this process take effect at once, changes made elsewhere within the cache's
lifetime, a dead database connection costs one 503 and no more, and any bank change a snapshot
depends on reaches the next attempt.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, select, text, update

from api.db import engine_of
from evidence.models import Attempt
from item_bank import services as bank
from item_bank.models import AdaptiveTest, Item, ItemStatus
from storage import session_factory, session_scope
from storage.accounts import User


def _session(world):
    return session_scope(session_factory(engine_of(world.app)))


def _start(world, user: str) -> int:
    """Start ``user`` on the test; returns the attempt's snapshot id."""
    r = world.call("post", "/api/v1/attempts", user, json={"test_id": world.test_id})
    assert r.status_code == 201, r.get_json()
    with _session(world) as session:
        return session.get(Attempt, r.get_json()["id"]).snapshot_id


# -- the token cache -----------------------------------------------------------------------------


def test_a_change_made_by_another_process_is_seen_once_the_cache_expires(world) -> None:
    world.app.config["API_TOKEN_CACHE_SECONDS"] = 0.5
    assert world.call("get", "/api/v1/me", "student1").status_code == 200  # cached now
    # Another server deactivates the account: no session of this process sees it happen.
    other = create_engine(world.app.config["DATABASE_URL"])
    with other.begin() as connection:
        connection.execute(update(User.__table__).where(User.__table__.c.username == "student1")
                           .values(is_active=False))
    other.dispose()
    assert world.call("get", "/api/v1/me", "student1").status_code == 200  # within the ttl
    time.sleep(0.6)
    r = world.call("get", "/api/v1/me", "student1")
    assert r.status_code == 401 and "deactivated" in r.get_json()["detail"]


def test_without_the_cache_every_request_checks_the_database(world) -> None:
    world.app.config["API_TOKEN_CACHE_SECONDS"] = 0
    assert world.call("get", "/api/v1/me", "student2").status_code == 200
    other = create_engine(world.app.config["DATABASE_URL"])
    with other.begin() as connection:
        connection.execute(text("DELETE FROM api_tokens"))
    other.dispose()
    assert world.call("get", "/api/v1/me", "student2").status_code == 401


def test_sign_out_and_deactivation_here_take_effect_at_once(world) -> None:
    world.app.config["API_TOKEN_CACHE_SECONDS"] = 60
    assert world.call("get", "/api/v1/me", "student1").status_code == 200
    assert world.call("delete", "/api/v1/auth/token", "student1").status_code == 204
    assert world.call("get", "/api/v1/me", "student1").status_code == 401
    world._tokens.pop("student1")
    assert world.call("get", "/api/v1/me", "student2").status_code == 200
    r = world.call("patch", f"/api/v1/users/{world.users['student2']}", "admin1",
                   json={"is_active": False})
    assert r.status_code == 200
    assert world.call("get", "/api/v1/me", "student2").status_code == 401


def test_a_cached_user_is_a_working_object_of_the_request(world) -> None:
    """Answers use the cached user: its relationships still load, and nothing is written."""
    world.app.config["API_TOKEN_CACHE_SECONDS"] = 60
    assert world.call("get", "/api/v1/me", "student1").status_code == 200
    r = world.call("post", "/api/v1/attempts", "student1", json={"test_id": world.test_id})
    assert r.status_code == 201  # open_assignments reads the cached user's classes
    me = world.call("get", "/api/v1/me", "student1").get_json()
    assert me["username"] == "student1" and me["role"] == "student"


# -- a dead connection ---------------------------------------------------------------------------


def test_a_dead_connection_costs_one_503_then_the_pool_recovers(world) -> None:
    url = world.app.config["DATABASE_URL"]
    if not url.startswith("postgresql"):
        pytest.skip("SQLite has no server connection to lose")
    world.app.config["API_TOKEN_CACHE_SECONDS"] = 60
    assert world.call("get", "/api/v1/attempts", "student1").status_code == 200  # pooled
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:  # what a database restart does to pooled connections
        killed = connection.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    admin.dispose()
    assert killed >= 1
    r = world.call("get", "/api/v1/attempts", "student1")
    assert r.status_code == 503, r.get_json()
    assert r.headers["Retry-After"] == "1"
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "retry" in r.get_json()["detail"]
    assert world.call("get", "/api/v1/attempts", "student1").status_code == 200


# -- the bank stamp ------------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["content", "tags", "skill", "status", "parameters", "test"])
def test_every_change_a_snapshot_depends_on_reaches_the_next_attempt(world, change) -> None:
    first = _start(world, "student1")
    with _session(world) as session:
        item = session.scalar(select(Item).where(Item.code == "IT-004"))
        if change == "content":
            bank.update_item(session, item, {"stem": "Question 4, reworded: what is 4 + 1?"})
        elif change == "tags":  # same number of tags, same item: only the text differs
            bank.update_item(session, item, {"content_tags": ["renamed-topic"]})
        elif change == "skill":
            bank.update_item(session, item, {"skill": "statistics"})
        elif change == "status":
            bank.change_status(session, item, ItemStatus.RETIRED, reason="test")
        elif change == "parameters":
            bank.add_parameter_set(session, item, {"model": "2pl", "a": 1.234, "b": 0.5},
                                   source="test")
        else:
            test = session.get(AdaptiveTest, world.test_id)
            bank.save_test(session, test, cut_scores={"overall": 0.25})
    second = _start(world, "student2")
    assert second != first
    with _session(world) as session:
        content = session.get(bank.BankSnapshot, second).content
    entry = next((e for e in content["items"] if e["code"] == "IT-004"), None)
    expected = {
        "content": lambda: entry["stem"].endswith("reworded: what is 4 + 1?"),
        "tags": lambda: entry["content_tags"] == ["renamed-topic"],
        "skill": lambda: entry["skill"] == "statistics",
        "status": lambda: entry is None,
        "parameters": lambda: entry["parameters"]["a"] == 1.234,
        "test": lambda: content["test"]["cut_scores"] == {"overall": 0.25},
    }[change]
    assert expected()


def test_an_unchanged_bank_reuses_the_snapshot_without_rereading_items(world) -> None:
    first = _start(world, "student1")
    with _session(world) as session:
        test = session.get(AdaptiveTest, world.test_id)
        stamp = bank.bank_stamp(session, test)
        assert bank.current_snapshot_id(session, test) == first
        assert bank.bank_stamp(session, test) == stamp
    assert _start(world, "student2") == first


def test_a_rolled_back_snapshot_is_not_remembered(world) -> None:
    first = _start(world, "student1")
    factory = session_factory(engine_of(world.app))
    with factory() as session:
        item = session.scalar(select(Item).where(Item.code == "IT-007"))
        bank.update_item(session, item, {"stem": "A change that will be rolled back"})
        test = session.get(AdaptiveTest, world.test_id)
        rolled_back = bank.current_snapshot_id(session, test)
        assert rolled_back != first
        session.rollback()
    # The snapshot row is gone with the transaction; the next start must not point at its id.
    with _session(world) as session:
        assert session.get(bank.BankSnapshot, rolled_back) is None
    assert _start(world, "student2") == first


# -- live exposure statistics --------------------------------------------------------------------


def _with_exposure(world, control: dict, counts: dict[str, int], attempts: int) -> None:
    """Set the test's exposure control and pretend ``attempts`` attempts gave ``counts``."""
    from evidence.models import AttemptStatus
    from item_bank.models import ItemExposure
    from storage import utcnow

    with _session(world) as session:
        test = session.get(AdaptiveTest, world.test_id)
        bank.save_test(session, test, config={**test.config, "exposure": control})
        for code, n in counts.items():
            session.add(ItemExposure(test_id=test.id, item_id=world.items[code], administered=n))
        for _ in range(attempts):
            session.add(Attempt(test_id=test.id, user_id=world.users["student3"], seed=0,
                                status=AttemptStatus.FINISHED, started_at=utcnow()))


def test_item_eligibility_withholds_items_from_its_live_record(world) -> None:
    from item_bank.models import EligibilityCount, EligibilityTotal

    # Every item was given in every one of 10 finished attempts: eligibility 0.2 / 1.0 each.
    operational = [code for code in world.items if code.startswith("IT-")]
    _with_exposure(world, {"method": "eligibility", "r_max": 0.2}, {}, attempts=0)
    with _session(world) as session:
        session.add(EligibilityTotal(test_id=world.test_id, tests=10, feasible=10))
        session.add_all(EligibilityCount(test_id=world.test_id, item_id=world.items[code],
                                         administered=10, ineligible=0) for code in operational)
    r = world.call("post", "/api/v1/attempts", "student1", json={"test_id": world.test_id})
    assert r.status_code == 201, r.get_json()
    with _session(world) as session:
        state = session.get(Attempt, r.get_json()["id"]).state
    withheld = len(state["withheld"])
    # Binomial(60, 0.8): mean 48, sd 3.1; without live statistics nothing is withheld.
    assert 30 <= withheld <= 59, withheld
    # The withheld set is part of the attempt: answering never draws it again.
    reply = r.get_json()
    for _ in range(3):
        reply = world.answer("student1", reply["id"], reply["item"]["id"], 1).get_json()
        with _session(world) as session:
            assert len(session.get(Attempt, reply["id"]).state["withheld"]) == withheld


def test_restricted_progressive_keeps_over_exposed_items_back_while_others_remain(world) -> None:
    allowed = {f"IT-{j:03d}" for j in range(10, 20)}
    over = {code: 10 for code in world.items if code.startswith("IT-") and code not in allowed}
    _with_exposure(world, {"method": "progressive", "r_max": 0.5}, over, attempts=10)
    r = world.call("post", "/api/v1/attempts", "student1", json={"test_id": world.test_id})
    reply, given = r.get_json(), []
    codes = {v: k for k, v in world.items.items()}
    while reply["status"] == "in_progress" and len(given) < 8:
        given.append(codes[reply["item"]["id"]])
        reply = world.answer("student1", reply["id"], reply["item"]["id"], 1).get_json()
    scored = [code for code in given if code.startswith("IT-")]
    assert len(scored) >= 4 and set(scored) <= allowed, given
