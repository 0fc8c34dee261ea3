"""The fallback module a page keeps for a dropped connection, and answering its items later.

A module is what the selector would choose at the current estimate; answered on sync, each of its
items is presented (:meth:`CATSession.present`) and scored exactly as an online answer would be.
"""

from __future__ import annotations

import numpy as np
import pytest

from cat_engine import CATSession, ItemBank
from cat_engine.errors import CATError
from cat_engine.models import information
from tests.cat_engine.test_session import BANK, PRETEST, respond

MAX_INFO = {"selection": {"method": "mfi"}, "stopping": {"max_items": 12}}


def started(config=MAX_INFO, answers: int = 3, seed: int = 5) -> CATSession:
    session = CATSession(BANK, config, seed=seed)
    for _ in range(answers):
        item = session.next_item()
        session.answer(item, respond(item))
    return session


def test_a_module_is_the_most_informative_items_at_the_estimate_in_order() -> None:
    session = started()
    current = session.next_item()
    module = session.fallback_module(5)
    seen = {h.item_id for h in session.history} | {current}
    left = [i for i in BANK.item_ids if i not in seen and not i.startswith("P")]
    idx = BANK.indices_of(left)
    theta = session.result().theta
    info = information(BANK, idx, np.full(idx.shape, theta))
    best = [left[k] for k in np.argsort(-info)[:5]]
    assert module == best  # max-info order at the estimate, with the current item left out
    assert len(set(module)) == 5 and current not in module


def test_a_module_leaves_the_session_as_it_was() -> None:
    session = started()
    before = session.to_json()
    session.fallback_module(6)
    assert session.to_json() == before


def test_a_module_never_runs_past_the_tests_maximum_length() -> None:
    session = started(answers=9)  # 9 answered, the 10th shown: two places left of 12
    assert len(session.fallback_module(6)) == 2
    finished = started(answers=12)
    assert finished.finished and finished.fallback_module(6) == []


def test_answers_to_module_items_are_scored_as_online_answers() -> None:
    session = started()
    current = session.next_item()
    module = session.fallback_module(4)
    session.answer(current, respond(current))
    for item in module:
        session.present(item)
        session.answer(item, respond(item))
    # The same answers given to a session that presents those items in that order.
    other = CATSession.from_history(BANK, MAX_INFO, [], seed=5)
    for h in session.history:
        other.present(h.item_id)
        other.answer(h.item_id, h.response)
    assert other.result().theta == pytest.approx(session.result().theta, abs=1e-12)
    assert [h.item_id for h in session.history][-4:] == module


def test_only_items_that_could_still_be_given_can_be_presented() -> None:
    session = started()
    given = session.history[0].item_id
    with pytest.raises(CATError, match="already given"):
        session.present(given)
    with pytest.raises(CATError, match="not in this bank"):
        session.present("nope")


def test_pretest_items_may_be_in_a_module_and_are_answered_unscored() -> None:
    config = {**MAX_INFO, "pretest": PRETEST}
    session = started(config, answers=2)  # positions 1 and 2 given (2 is pretest)
    module = session.fallback_module(4)  # positions 4..7: position 5 is a pretest slot
    assert module[1].startswith("P")
    current = session.next_item()
    session.answer(current, respond(current))
    for item in module:
        session.present(item)
        session.answer(item, 1 if item.startswith("P") else respond(item))
    pretest = [h for h in session.history if h.item_id == module[1]]
    assert len(pretest) == 1 and not pretest[0].scored


def test_a_finished_session_takes_no_presented_item() -> None:
    session = started(answers=12)
    with pytest.raises(CATError, match="finished"):
        session.present(SCORED_LEFT(session))


def SCORED_LEFT(session: CATSession) -> str:
    seen = {h.item_id for h in session.history}
    return next(i for i in BANK.item_ids if i not in seen and not i.startswith("P"))


def test_an_empty_bank_module_is_short() -> None:
    bank = ItemBank.from_records([{"item_id": f"x{j}", "model": "2pl", "a": 1.0, "b": 0.1 * j}
                                  for j in range(4)])
    session = CATSession(bank, {"stopping": {"max_items": 10}}, seed=1)
    assert len(session.fallback_module(6)) == 3
