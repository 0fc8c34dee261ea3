"""Item eligibility in live delivery settles at its target over many attempts.

The steady state is checked on the pieces the API runs for every request (the statistics a
start reads, the session started and restored from its stored state, the record written when an
attempt finishes), over hundreds of attempts in one transaction so that it takes seconds; a
shorter run through the service functions, one transaction per request, checks that finished
attempts reach the record in the database.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import func, select

from api.db import engine_of
from cat_engine import CATSession
from evidence import attempts as attempts_service
from evidence.models import Attempt, AttemptStatus
from item_bank import services as bank
from item_bank.models import AdaptiveTest, EligibilityCount, EligibilityTotal
from storage import session_factory, session_scope
from storage.accounts import User

LENGTH = 3


def _config(r_max: float) -> dict:
    # Everyone starts at theta 0 with the same most informative item: without exposure control
    # it is given in every attempt.
    return {"start": {"theta": 0.0}, "selection": {"method": "mfi"},
            "estimator": {"method": "eap"}, "stopping": {"max_items": LENGTH},
            "exposure": {"method": "eligibility", "r_max": r_max}}


def _use(world, config: dict) -> None:
    with session_scope(session_factory(engine_of(world.app))) as session:
        bank.save_test(session, session.get(AdaptiveTest, world.test_id), config=config)


def _max_rate(given: list[list[int]]) -> float:
    _, counts = np.unique(np.concatenate(given), return_counts=True)
    return float(counts.max() / len(given))


@pytest.mark.parametrize("r_max", [0.2, 0.3])
def test_live_item_eligibility_settles_near_its_target(world, monkeypatch, r_max) -> None:
    monkeypatch.setattr(attempts_service, "EXPOSURE_STATS_SECONDS", 0.0)  # re-read every time
    _use(world, _config(r_max))
    rng = np.random.default_rng(5)
    n, given = 400, []
    with session_scope(session_factory(engine_of(world.app))) as session:
        test = session.get(AdaptiveTest, world.test_id)
        delivery = bank.delivery_bank(session, bank.current_snapshot_id(session, test))
        for seed in range(n):
            stats = attempts_service.live_exposure_stats(session, delivery, test.id)
            engine_session = CATSession(delivery.bank, delivery.config, seed, stats)
            items = []
            while not engine_session.finished:
                code = engine_session.next_item()
                items.append(code)
                stored = attempts_service._state_of(engine_session)
                engine_session = attempts_service._engine_session(
                    delivery, stored,
                    attempts_service.live_exposure_stats(session, delivery, test.id))
                engine_session.answer(code, int(rng.integers(2)))
            attempts_service._count_finished(session, delivery, test.id, engine_session)
            given.append(items)
        session.rollback()
    assert all(len(items) == LENGTH for items in given)
    # The steady state is the last half. One rate's sampling error there is about 0.03; the
    # one-step rule this replaces settled near sqrt(r_max) (0.45 and 0.55).
    late = _max_rate(given[n // 2:])
    assert late <= r_max + 0.08, late


def test_finished_attempts_reach_the_eligibility_record(world, monkeypatch) -> None:
    monkeypatch.setattr(attempts_service, "EXPOSURE_STATS_SECONDS", 0.0)
    _use(world, _config(0.2))
    factory = session_factory(engine_of(world.app))
    rng, n = np.random.default_rng(6), 12
    for _ in range(n):
        with session_scope(factory) as session:
            user = session.get(User, world.users["student1"])
            attempt, reply, _ = attempts_service.start_attempt(
                session, user, world.test_id, base_url="https://school.example")
            attempt_id = attempt.id
        while reply["status"] == "in_progress":
            with session_scope(factory) as session:
                user = session.get(User, world.users["student1"])
                reply, _ = attempts_service.submit_response(
                    session, user, attempt_id, reply["item"]["id"], int(rng.integers(4)),
                    uuid.uuid4().hex, base_url="https://school.example")
    with session_scope(factory) as session:
        totals = session.get(EligibilityTotal, world.test_id)
        assert totals.tests == totals.feasible == n == session.scalar(
            select(func.count(Attempt.id)).where(Attempt.status == AttemptStatus.FINISHED))
        rows = session.execute(select(EligibilityCount.administered, EligibilityCount.ineligible)
                               .where(EligibilityCount.test_id == world.test_id)).all()
        assert sum(r.administered for r in rows) == LENGTH * n
        # After the first attempt the first item's rate is 1.0 > 0.2: later ones withhold it.
        assert sum(r.ineligible for r in rows) > 0
