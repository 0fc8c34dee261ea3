"""The demo's stored test configuration drives the real engine over the demo bank."""

from __future__ import annotations

import numpy as np

from api.demo import DEMO_TEST_CONFIG
from cat_engine import CATConfig, CATSession, ItemBank
from cat_engine.models import p_correct
from item_bank.demo_items import generate_demo_items


def test_demo_test_runs_a_whole_adaptive_session() -> None:
    items = generate_demo_items(320)
    bank = ItemBank.from_records(
        [{"item_id": i.item_id, "model": i.model, "a": i.a, "b": i.b, "c": i.c,
          "content": [i.skill]} for i in items]
    )
    config = CATConfig.from_dict(DEMO_TEST_CONFIG, bank)
    rng = np.random.default_rng(0)
    session = CATSession(bank, config, seed=3)
    while not session.finished:
        item = session.next_item()
        probability = p_correct(bank, [bank.index_of(item)], [1.0])[0]
        session.answer(item, int(rng.random() < probability))
    result = session.result()
    stopping = DEMO_TEST_CONFIG["stopping"]
    assert stopping["min_items"] <= result.n_scored <= stopping["max_items"]
    assert result.se <= stopping["se"] or result.n_scored == stopping["max_items"]
    assert -1.0 < result.theta < 3.0
