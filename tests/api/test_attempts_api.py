"""A whole adaptive test over HTTP, on SQLite and PostgreSQL: start, answer, resume, replay."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from api.app import create_app
from api.db import engine_of
from evidence.models import Attempt, Response
from item_bank.services import DELIVERIES
from storage import session_factory, session_scope


def _take(world, user: str, answer_correctly=lambda item: True):
    r = world.call("post", "/api/v1/attempts", user, json={"test_id": world.test_id})
    assert r.status_code == 201, r.get_json()
    reply = r.get_json()
    attempt_id, seen = reply["id"], []
    while reply["status"] == "in_progress":
        item = reply["item"]
        assert "key" not in item and "parameters" not in item and "code" not in item
        assert item["position"] == len(seen) + 1
        seen.append(item["id"])
        choice = 1 if answer_correctly(item) else 0  # the fixture's key is option 1
        r = world.answer(user, attempt_id, item["id"], choice)
        assert r.status_code == 200, r.get_json()
        reply = r.get_json()
    return attempt_id, seen, reply


def test_whole_attempt_end_to_end(world) -> None:
    attempt_id, seen, reply = _take(world, "student1")
    result = reply["result"]
    assert reply["status"] == "finished"
    assert result["stop_reason"].split("=")[0].split("<")[0] in {"se", "max_items"}
    assert result["n_given"] == len(seen)
    assert result["level"] in {"above", "well_above"}  # every answer right
    assert "theta" not in result and "se" not in result and "n_scored" not in result
    assert result["mastery"] == {"decision": result["mastery"]["decision"],
                                 "recommendation": True}  # no cut score for a student
    assert result["mastery"]["decision"] in {"mastered", "undecided"}
    pretest_ids = {world.items["PRE-1"], world.items["PRE-2"]}
    assert {seen[1], seen[3]} == pretest_ids  # positions 2 and 4, as the test says
    with session_scope(session_factory(engine_of(world.app))) as session:
        rows = session.scalars(select(Response).where(Response.attempt_id == attempt_id)
                               .order_by(Response.position)).all()
        assert [r.item_id for r in rows] == seen
        assert [r.scored for r in rows] == [r.item_id not in pretest_ids for r in rows]
        assert all(r.response == (1 if r.item_id not in pretest_ids else 0) for r in rows)
    view = world.call("get", f"/api/v1/attempts/{attempt_id}", "student1").get_json()
    assert view["status"] == "finished" and view["result"] == result
    assert "theta" not in view and "se" not in view
    assert [h["item_id"] for h in view["history"]] == seen
    assert "score" not in view["history"][0]  # a student is not told what was right
    staff = world.call("get", f"/api/v1/attempts/{attempt_id}", "teacher1").get_json()
    assert staff["history"][1]["scored"] is False
    assert staff["result"]["n_scored"] + 2 == len(seen)  # staff see the figures
    assert staff["result"]["theta"] == staff["theta"] > 0.5 and staff["se"] > 0
    assert staff["result"]["mastery"]["cut_score"] == 0.0


def test_resume_after_restart_on_a_new_app(world, any_db_url) -> None:
    r = world.call("post", "/api/v1/attempts", "student1", json={"test_id": world.test_id})
    first = r.get_json()
    r = world.answer("student1", first["id"], first["item"]["id"], 1)
    second = r.get_json()["item"]
    DELIVERIES.clear()  # nothing survives in memory: as after a restart
    app = create_app({"TESTING": True, "DATABASE_URL": any_db_url, "SECRET_KEY": "test"})
    try:
        client = app.test_client()
        token = world.token("student1")
        again = client.post("/api/v1/attempts", json={"test_id": world.test_id},
                            headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 200  # resumed, not created
        assert again.get_json()["item"] == second
        view = client.get(f"/api/v1/attempts/{first['id']}",
                          headers={"Authorization": f"Bearer {token}"}).get_json()
        assert view["item"] == second and len(view["history"]) == 1
    finally:
        engine_of(app).dispose()


def test_idempotent_replay_records_once(world) -> None:
    start = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id}).get_json()
    key = uuid.uuid4().hex
    first = world.answer("student1", start["id"], start["item"]["id"], 1, key=key)
    again = world.answer("student1", start["id"], start["item"]["id"], 1, key=key)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    other = world.answer("student1", start["id"], start["item"]["id"], 2, key=key)
    assert other.status_code == 409 and "Idempotency-Key" in other.get_json()["detail"]
    with session_scope(session_factory(engine_of(world.app))) as session:
        n = session.scalar(select(func.count(Response.id))
                           .where(Response.attempt_id == start["id"]))
    assert n == 1


def test_answering_another_item_is_a_conflict(world) -> None:
    start = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id}).get_json()
    wrong = start["item"]["id"] + 1
    r = world.answer("student1", start["id"], wrong, 1)
    assert r.status_code == 409
    body = r.get_json()
    assert r.mimetype == "application/problem+json"
    assert body["status"] == 409 and str(start["item"]["id"]) in body["detail"]


def test_bad_answers(world) -> None:
    start = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id}).get_json()
    item = start["item"]["id"]
    r = world.answer("student1", start["id"], item, 7)
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "response"
    r = world.call("post", f"/api/v1/attempts/{start['id']}/responses", "student1",
                   json={"item_id": item, "response": "x"}, headers={"Idempotency-Key": "k"})
    assert r.status_code == 422
    assert {e["field"] for e in r.get_json()["errors"]} == {"json.response"}
    r = world.call("post", f"/api/v1/attempts/{start['id']}/responses", "student1",
                   json={"item_id": item, "response": 1})
    assert r.status_code == 422 and "Idempotency-Key" in r.get_json()["detail"]
    r = world.answer("student2", start["id"], item, 1)  # not their attempt
    assert r.status_code == 404
    r = world.answer("student1", 999999, item, 1)
    assert r.status_code == 404
    with session_scope(session_factory(engine_of(world.app))) as session:
        assert session.scalar(select(func.count(Response.id))) == 0
        assert session.scalar(select(func.count(Attempt.id))) == 1
