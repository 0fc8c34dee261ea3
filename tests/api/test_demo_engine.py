"""The demo's stored test configuration drives the real engine over the demo bank."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from api.demo import (
    DEMO_EXPOSURE_TARGET,
    DEMO_MAX_PER_SKILL,
    DEMO_MIN_PER_SKILL,
    DEMO_PASSWORD,
    DEMO_TEST_CONFIG,
    build_demo,
)
from cat_engine import CATConfig, CATSession, ItemBank, simulate
from cat_engine.models import p_correct
from item_bank.demo_items import SKILLS, generate_demo_items
from item_bank.models import AdaptiveTest
from item_bank.services import DELIVERIES, build_delivery, snapshot_content
from storage import make_engine, session_factory, session_scope


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


# -- the demo test's design, measured --------------------------------------------------------------

SIMULEES = 2000


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The full demo (320 items), built once for this module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.sqlite3'}"
    engine = make_engine(url)
    build_demo(engine)
    engine.dispose()
    return url


def _delivered(url: str):
    """The bank and configuration the demo test delivers, exactly as a live attempt gets them."""
    engine = make_engine(url)
    try:
        with session_scope(session_factory(engine)) as session:
            test = session.scalars(select(AdaptiveTest)).one()
            return build_delivery(snapshot_content(session, test))
    finally:
        engine.dispose()


def test_the_demo_test_meets_its_blueprint_and_exposure_target(demo_url: str) -> None:
    """Through the engine's simulator, on the stored demo bank and test configuration."""
    delivery = _delivered(demo_url)
    bank, config = delivery.bank, delivery.config
    thetas = np.random.default_rng(11).normal(size=SIMULEES)
    result = simulate(bank, thetas, config, seed=11)

    skills = np.array([delivery.items[code]["skill"] for code in bank.item_ids])
    given = result.items
    per_skill = np.stack([np.isin(given, np.flatnonzero(skills == s)).sum(axis=1)
                          for s in SKILLS], axis=1)  # (simulees, skills)
    assert per_skill.min() >= DEMO_MIN_PER_SKILL  # every skill's minimum in every test
    assert per_skill.max() <= DEMO_MAX_PER_SKILL
    assert result.max_exposure < DEMO_EXPOSURE_TARGET
    assert result.unused_fraction < 0.02
    first, counts = np.unique(given[:, 0], return_counts=True)
    assert first.size >= 30 and counts.max() / SIMULEES < 0.05  # first items varied
    assert result.rmse < 0.4  # and still precise
    assert config.stopping.min_items == DEMO_MIN_PER_SKILL * len(SKILLS)


def test_live_attempts_start_on_varied_items(demo_url: str) -> None:
    """Thirty demo students start the demo test through the API: not one or two first items."""
    from api.app import create_app
    from api.db import engine_of

    DELIVERIES.clear()
    app = create_app({"TESTING": True, "DATABASE_URL": demo_url, "SECRET_KEY": "test"})
    client = app.test_client()
    firsts, skills = [], set()
    try:
        for k in range(1, 31):
            token = client.post("/api/v1/auth/token", json={
                "username": f"student{k}", "password": DEMO_PASSWORD}).get_json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            test_id = client.get("/api/v1/tests", headers=headers).get_json()["items"][0]["id"]
            reply = client.post("/api/v1/attempts", headers=headers,
                                json={"test_id": test_id}).get_json()
            firsts.append(reply["item"]["id"])
        delivery = _delivered(demo_url)
        by_id = {entry["id"]: entry for entry in delivery.items.values()}
        skills = {by_id[i]["skill"] for i in firsts}
    finally:
        engine_of(app).dispose()
    assert len(set(firsts)) >= 15, firsts
    assert skills == {SKILLS[0]}  # Kingsbury-Zara starts with the first skill of equal shares
