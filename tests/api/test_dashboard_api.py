"""GET /api/v1/classes/{class_id}/dashboard on SQLite and PostgreSQL: the JSON is the service's
dashboard, whole; another teacher's class and an unknown one are problems, not errors."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from api.db import engine_of
from api.demo import take_test
from item_bank.models import AdaptiveTest
from reports.dashboard import class_dashboard
from storage import session_factory, session_scope, utcnow
from storage.accounts import User


def _db(world):
    return session_scope(session_factory(engine_of(world.app)))


def test_the_dashboard_over_http(world) -> None:
    with _db(world) as session:
        test = session.get(AdaptiveTest, world.test_id)  # take_test answers no pretest item
        test.config = {k: v for k, v in test.config.items() if k != "pretest"}
    with _db(world) as session:
        take_test(session, session.get(User, world.users["student1"]), world.test_id, 0.5,
                  utcnow() - timedelta(days=3), np.random.default_rng(1))
    reply = world.call("get", f"/api/v1/classes/{world.class_id}/dashboard", "teacher1")
    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    with _db(world) as session:
        direct = class_dashboard(session, session.get(User, world.users["teacher1"]),
                                 world.class_id)
    assert body.keys() == direct.keys()
    assert body["class"] == {"id": world.class_id, "name": "7A"}
    for part in ("skills", "grid", "flagged", "flag_counts", "metrics", "fairness", "dif"):
        assert body[part] == direct[part], part
    first, second = body["grid"]
    assert first["student"]["name"] == "Student1" and first["status"] == "ok"
    assert second["status"] == "no_evidence" and set(second["cells"]) == {None}
    assert {c["skill"] for c in first["cells"] if c} == set(body["skills"]) != set()
    # another teacher's class, and no class at all: 404 problems naming the class
    for user, class_id in (("teacher2", world.class_id), ("admin1", 2**31 - 1)):
        reply = world.call("get", f"/api/v1/classes/{class_id}/dashboard", user)
        assert reply.status_code == 404
        assert reply.mimetype == "application/problem+json"
        assert f"no class {class_id}" in reply.get_json()["detail"]
