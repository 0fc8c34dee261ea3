"""The demo's oral defenses: one final with agreeing raters, one adjudicated, one waiting for
the second rater, each in the state the demo's guide promises."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from api.demo import build_demo
from evidence import defenses
from evidence.models import Defense
from storage import make_engine, session_factory, session_scope

pytestmark = pytest.mark.usefixtures("demo_without_history")


def test_demo_defenses(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        build_demo(engine, n_items=12)
        with session_scope(session_factory(engine)) as session:
            rows = session.scalars(select(Defense).order_by(Defense.id)).all()
            states = [defenses.defense_state(session, d) for d in rows]
            assert [s.status for s in states] == ["final", "final", "scoring"]
            agreed, adjudicated, waiting = states
            finals = [agreed.final(c.id) for c in agreed.criteria]
            assert finals == [3.0, 3.5, 2.0, 2.5]
            assert agreed.disputed() == [] and adjudicated.disputed() == [
                adjudicated.criteria[0].id]
            assert [adjudicated.final(c.id) for c in adjudicated.criteria] == [3.0, 2.0, 2.0, 3.0]
            assert adjudicated.adjudicator.rater.username == "teacher3"
            assert [r.rater.username for r in waiting.raters if r.submitted_at is None] == [
                "teacher2"]
    finally:
        engine.dispose()
