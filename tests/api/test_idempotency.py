"""Retries that overlap the original: the same answer sent several times at once (same
``Idempotency-Key``, same body) is recorded once, and every copy gets the original's reply.
Real threads against the app, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import func, select

from api.db import engine_of
from evidence.models import Response
from storage import session_factory, session_scope

COPIES = 4


def _send_at_once(world, path: str, token: str, body: dict, key: str,
                  copies: int = COPIES) -> list[tuple[int, dict]]:
    """``copies`` identical requests released together, each on its own client and thread."""
    barrier = threading.Barrier(copies)
    results: list[tuple[int, dict] | None] = [None] * copies

    def send(index: int) -> None:
        client = world.app.test_client()
        barrier.wait()
        r = client.post(path, json=body, headers={"Authorization": f"Bearer {token}",
                                                  "Idempotency-Key": key})
        results[index] = (r.status_code, r.get_json())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(r is not None for r in results)
    return results


def test_overlapping_retries_all_get_the_original_reply(world) -> None:
    token = world.token("student1")
    reply = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id}).get_json()
    attempt_id = reply["id"]
    path = f"/api/v1/attempts/{attempt_id}/responses"
    rounds = 0
    while reply["status"] == "in_progress":
        body, key = {"item_id": reply["item"]["id"], "response": rounds % 2}, uuid.uuid4().hex
        results = _send_at_once(world, path, token, body, key)
        statuses = [status for status, _body in results]
        assert statuses == [200] * COPIES, results
        replies = [body for _status, body in results]
        assert all(r == replies[0] for r in replies), replies
        reply = replies[0]
        rounds += 1
    assert reply["status"] == "finished" and rounds >= 4
    with session_scope(session_factory(engine_of(world.app))) as session:
        positions = session.scalars(select(Response.position)
                                    .where(Response.attempt_id == attempt_id)
                                    .order_by(Response.position)).all()
        assert positions == list(range(1, rounds + 1))  # each answer once
        assert session.scalar(select(func.count(func.distinct(Response.idempotency_key)))
                              .where(Response.attempt_id == attempt_id)) == rounds
    # A later replay of the last key still returns the stored result.
    again = _send_at_once(world, path, token, body, key, copies=2)
    assert [status for status, _ in again] == [200, 200]
    assert all(b == reply for _, b in again)


def test_an_overlapping_different_answer_under_the_same_key_is_still_refused(world) -> None:
    token = world.token("student1")
    reply = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id}).get_json()
    path = f"/api/v1/attempts/{reply['id']}/responses"
    key = uuid.uuid4().hex
    item = reply["item"]["id"]
    barrier = threading.Barrier(2)
    results: dict[int, tuple[int, dict]] = {}

    def send(response: int) -> None:
        client = world.app.test_client()
        barrier.wait()
        r = client.post(path, json={"item_id": item, "response": response},
                        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
        results[response] = (r.status_code, r.get_json())

    threads = [threading.Thread(target=send, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(status for status, _ in results.values()) == [200, 409], results
    refused = next(body for status, body in results.values() if status == 409)
    assert refused["errors"][0]["field"] == "Idempotency-Key"
