"""The outbox a page sends when the connection returns (POST /attempts/<id>/sync), on both
databases: answers in order are scored as online ones would be; a replay records nothing twice;
out of order, outside the fallback module, malformed or another student's: refused, never a 5xx.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from cat_engine import CATSession
from evidence.attempts import _engine_session
from evidence.models import Attempt, Response
from item_bank.services import delivery_bank
from tests.delivery_ui.conftest import StudentWorld, csrf_of

FALLBACK = re.compile(r'<script type="application/json" id="fallback">(.*?)</script>', re.S)


def _page(world: StudentWorld, client, attempt_id: int) -> tuple[dict, str]:
    html = client.get(f"/attempts/{attempt_id}").get_data(as_text=True)
    return json.loads(FALLBACK.search(html).group(1)), csrf_of(html)


def _started(world: StudentWorld, answers: int = 2):
    client = world.client_for("student1")
    token = csrf_of(client.get("/my-tests").get_data(as_text=True))
    client.post(f"/tests/{world.test_id}/start", data={"csrf_token": token})
    attempt_id = world.attempts()[-1].id
    for n in range(answers):
        fallback, token = _page(world, client, attempt_id)
        client.post(f"/attempts/{attempt_id}/answer", data={
            "csrf_token": token, "item_id": fallback["items"][0]["id"], "response": n % 2,
            "idempotency_key": f"online-{n}"})
    return client, attempt_id


def _sync(client, attempt_id: int, token: str, answers: list[dict]):
    return client.post(f"/attempts/{attempt_id}/sync",
                       data={"csrf_token": token, "answers": json.dumps(answers)})


def _outbox(fallback: dict, count: int) -> list[dict]:
    return [{"item_id": item["id"], "position": item["position"], "response": k % 2,
             "key": f"k{k}", "ms": 1000 + k} for k, item in enumerate(fallback["items"][:count])]


def _stored(world: StudentWorld, attempt_id: int) -> list[Response]:
    with world.db() as session:
        rows = list(session.scalars(select(Response).where(Response.attempt_id == attempt_id)
                                    .order_by(Response.position)))
        session.expunge_all()
        return rows


def test_an_outbox_is_scored_as_online_answers_and_replays_change_nothing(
        student_world: StudentWorld) -> None:
    client, attempt_id = _started(student_world)
    fallback, token = _page(student_world, client, attempt_id)
    assert fallback["items"][0]["position"] == 3 and len(fallback["items"]) == 7
    assert all("key" not in item and "a" not in item for item in fallback["items"])
    outbox = _outbox(fallback, 4)
    reply = _sync(client, attempt_id, token, outbox)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert [a["outcome"] for a in reply.get_json()["answers"]] == ["recorded"] * 4
    stored = _stored(student_world, attempt_id)
    assert [(r.position, r.item_id, r.offline) for r in stored[2:]] == [
        (a["position"], a["item_id"], True) for a in outbox]
    assert [r.response_time_ms for r in stored[2:]] == [1000, 1001, 1002, 1003]
    # Scored as the engine scores them: the same items and answers replayed in a fresh session
    # give the attempt's estimate.
    with student_world.db() as session:
        attempt = session.get(Attempt, attempt_id)
        delivery = delivery_bank(session, attempt.snapshot_id)
        engine = _engine_session(delivery, attempt.state)
        fresh = CATSession(delivery.bank, delivery.config, attempt.seed)
        for h in engine.history:
            fresh.present(h.item_id)
            fresh.answer(h.item_id, h.response)
        assert fresh.result().theta == pytest.approx(engine.result().theta, abs=1e-9)
        assert [h.item_id for h in engine.history][2:] == [delivery.codes[a["item_id"]]
                                                             for a in outbox]
    # The same outbox again (the reply was lost): nothing is recorded twice.
    again = _sync(client, attempt_id, token, outbox)
    assert [a["outcome"] for a in again.get_json()["answers"]] == ["replayed"] * 4
    assert len(_stored(student_world, attempt_id)) == 6


def test_an_outbox_out_of_order_is_refused_at_the_first_misplaced_answer(
        student_world: StudentWorld) -> None:
    client, attempt_id = _started(student_world)
    fallback, token = _page(student_world, client, attempt_id)
    outbox = _outbox(fallback, 3)
    reply = _sync(client, attempt_id, token, [outbox[0], outbox[2], outbox[1]])
    outcomes = reply.get_json()["answers"]
    assert [a["outcome"] for a in outcomes] == ["recorded", "refused", "not_sent"]
    assert outcomes[1]["field"] == "position" and "order" in outcomes[1]["reason"]
    assert len(_stored(student_world, attempt_id)) == 3
    # Sent again in order: the rest arrives, the first is a replay.
    reply = _sync(client, attempt_id, token, outbox)
    assert [a["outcome"] for a in reply.get_json()["answers"]] == ["replayed", "recorded",
                                                                  "recorded"]


def test_an_item_the_module_did_not_hold_is_refused(student_world: StudentWorld) -> None:
    client, attempt_id = _started(student_world)
    fallback, token = _page(student_world, client, attempt_id)
    held = {item["id"] for item in fallback["items"]}
    other = next(i for i in student_world.ids["items"].values() if i not in held)
    reply = _sync(client, attempt_id, token, [
        {"item_id": fallback["items"][0]["id"], "position": 3, "response": 1, "key": "a"},
        {"item_id": other, "position": 4, "response": 1, "key": "b"}])
    outcomes = reply.get_json()["answers"]
    assert [a["outcome"] for a in outcomes] == ["recorded", "refused"]
    assert outcomes[1]["field"] == "item_id" and "fallback module" in outcomes[1]["reason"]
    assert len(_stored(student_world, attempt_id)) == 3


def test_answers_after_the_test_stopped_are_kept_unscored(student_world: StudentWorld) -> None:
    client, attempt_id = _started(student_world, answers=8)  # max_items 12 (2 pretest)
    fallback, token = _page(student_world, client, attempt_id)
    outbox = _outbox(fallback, len(fallback["items"]))
    reply = _sync(client, attempt_id, token, outbox)
    outcomes = reply.get_json()["answers"]
    assert all(a["outcome"] == "recorded" for a in outcomes), outcomes
    stored = _stored(student_world, attempt_id)
    assert len(stored) == 8 + len(outbox)  # nothing the student answered is lost
    assert [r.position for r in stored] == list(range(1, len(stored) + 1))
    with student_world.db() as session:
        attempt = session.get(Attempt, attempt_id)
        attempt_status = attempt.stop_reason
        assert attempt.status.value == "finished"
        given_in_result = attempt.result["n_given"]
    after = [r for r in stored if r.reply and r.reply.get("after_stop")]
    assert after and attempt_status == "se<=0.4"  # the stopping rule fired during the sync
    assert all(not r.scored and r.offline for r in after)
    assert given_in_result == len(stored) - len(after)  # the result is as if they never came


@pytest.mark.parametrize("answers, field", [
    ("not json", "answers"),
    ("[]", "answers"),
    (json.dumps([{"item_id": "x", "position": 3, "response": 0, "key": "k"}]), "item_id"),
    (json.dumps([{"item_id": 1, "position": 3, "response": True, "key": "k"}]), "response"),
    (json.dumps([{"item_id": 1, "position": 3, "response": 0, "key": ""}]), "key"),
    (json.dumps([{"item_id": 1, "position": 3, "response": 0}] * 51), "answers"),
])
def test_a_malformed_outbox_is_named(student_world: StudentWorld, answers, field) -> None:
    client, attempt_id = _started(student_world)
    _fallback, token = _page(student_world, client, attempt_id)
    reply = client.post(f"/attempts/{attempt_id}/sync",
                        data={"csrf_token": token, "answers": answers})
    assert reply.status_code == 422 and reply.get_json()["field"] == field
    assert len(_stored(student_world, attempt_id)) == 2


def test_only_the_attempts_student_may_sync(student_world: StudentWorld) -> None:
    client, attempt_id = _started(student_world)
    fallback, _token = _page(student_world, client, attempt_id)
    other = student_world.client_for("student2")
    token = csrf_of(other.get("/my-tests").get_data(as_text=True))
    reply = _sync(other, attempt_id, token, _outbox(fallback, 1))
    assert reply.status_code == 404
    anonymous = student_world.client_for(None)
    assert anonymous.post(f"/attempts/{attempt_id}/sync", data={"answers": "[]"}
                          ).status_code in (303, 400, 401)
    assert len(_stored(student_world, attempt_id)) == 2


def test_a_timed_attempt_keeps_no_fallback(student_world: StudentWorld) -> None:
    student_world.set_time_limit(20)
    client, attempt_id = _started(student_world, answers=0)
    html = client.get(f"/attempts/{attempt_id}").get_data(as_text=True)
    assert 'id="fallback"' not in html


def test_the_teacher_sees_which_answers_came_offline(student_world: StudentWorld) -> None:
    client, attempt_id = _started(student_world, answers=8)
    fallback, token = _page(student_world, client, attempt_id)
    _sync(client, attempt_id, token, _outbox(fallback, len(fallback["items"])))
    teacher = student_world.client_for("teacher1")
    class_id = student_world.ids["class_id"]
    html = teacher.get(f"/teach/classes/{class_id}/attempts/{attempt_id}").get_data(as_text=True)
    assert html.count("answered offline, sent when the connection returned") == len(
        fallback["items"])
    assert "answered offline after the test had stopped" in html
