"""Process indicators over HTTP: hand-computed thresholds and flags, log counts, lz*, roles."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from api.db import engine_of
from calibration.person_fit import person_fit
from evidence.models import Attempt, AttemptStatus, Response, Statement, XapiClient
from item_bank.services import delivery_bank
from storage import session_factory, session_scope, utcnow

API = "/api/v1"
ASKED = "http://adlnet.gov/expapi/verbs/asked"
ANSWERED = "http://adlnet.gov/expapi/verbs/answered"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def _session(world):
    return session_scope(session_factory(engine_of(world.app)))


def _take(world, user: str, ms: int = 3000) -> int:
    r = world.call("post", f"{API}/attempts", user, json={"test_id": world.test_id})
    assert r.status_code == 201, r.get_json()
    reply = r.get_json()
    while reply["status"] == "in_progress":
        reply = world.call("post", f"{API}/attempts/{reply['id']}/responses", user,
                           json={"item_id": reply["item"]["id"], "response": 1,
                                 "response_time_ms": ms},
                           headers={"Idempotency-Key": uuid.uuid4().hex}).get_json()
    return reply["id"]


def _attempt_like(session, template: Attempt, user_id: int, answers) -> Attempt:
    """A finished attempt inserted directly, with ``answers`` = [(item_id, response, ms)]."""
    attempt = Attempt(test_id=template.test_id, user_id=user_id, status=AttemptStatus.FINISHED,
                      snapshot_id=template.snapshot_id, assignment_id=template.assignment_id,
                      finished_at=utcnow())
    session.add(attempt)
    session.flush()
    for position, (item_id, response, ms) in enumerate(answers, 1):
        session.add(Response(attempt_id=attempt.id, item_id=item_id, position=position,
                             response=response, scored=True, response_time_ms=ms))
    session.flush()
    return attempt


def test_rapid_guess_thresholds_and_effort_follow_nt10_by_hand(world):
    attempt_id = _take(world, "student1", ms=3000)
    with _session(world) as session:
        own = session.get(Attempt, attempt_id)
        first = own.responses[0].item_id
        n = len(own.responses)
        # 25 others answered the first item in 50 s each: its mean is (25 * 50 + 3) / 26 s and
        # its threshold a tenth of that (under the 10 s cap): 4.819 s, so the 3 s answer is a
        # rapid guess. Every other item has one timed answer (< 20): the 1 s floor.
        for _ in range(25):
            _attempt_like(session, own, world.users["student2"], [(first, 1, 50_000)])
    r = world.call("get", f"{API}/attempts/{attempt_id}/indicators", "teacher1")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    threshold = 0.1 * (25 * 50 + 3) / 26
    responses = body["responses"]
    assert responses[0]["threshold_ms"] == round(threshold * 1000)
    assert responses[0]["rapid_guess"] is True
    assert all(e["threshold_ms"] == 1000 and not e["rapid_guess"] for e in responses[1:])
    effort = body["indicators"]["response_time_effort"]
    assert effort["rapid_guesses"] == 1 and effort["timed_responses"] == n
    assert effort["value"] == pytest.approx(1 - 1 / n, abs=1e-4)
    assert effort["flag"] is (1 - 1 / n < 0.9)
    assert ("low_effort" in body["flags"]) is effort["flag"]
    time = body["indicators"]["time_on_task"]
    assert time["seconds"] == pytest.approx(3.0 * n) and time["responses"] == n
    assert time["wall_seconds"] >= 0
    assert "10%" in body["indicators"]["response_time_effort"]["definition"]


def test_hints_and_retries_come_from_responses_and_the_log(world):
    attempt_id = _take(world, "student1")
    student = world.users["student1"]
    with _session(world) as session:
        attempt = session.get(Attempt, attempt_id)
        attempt.responses[1].hints_used = 2
        client = XapiClient(name="tool", class_id=world.class_id, key="k1", secret_hash="x")
        session.add(client)
        session.flush()
        now = utcnow()

        def statement(verb, obj=None, registration=attempt.registration, voids=None):
            sid = str(uuid.uuid4())
            session.add(Statement(id=sid, timestamp=now, actor_id=student, verb_id=verb,
                                  object_id=obj, registration=registration, voids=voids,
                                  client_id=client.id, content_hash=sid.replace("-", ""),
                                  body={"id": sid}))
            session.flush()
            return sid

        statement(ANSWERED, "urn:a")
        statement(ANSWERED, "urn:a")  # a retry
        statement(ANSWERED, "urn:b")
        statement(ANSWERED, "urn:b")  # a retry
        voided = statement(ANSWERED, "urn:b")  # voided below: not a retry
        statement(VOIDED, voided, voids=voided)
        statement(ASKED, "urn:a")  # a hint in the attempt
        statement(ASKED, "urn:c", registration=None)  # a hint outside any attempt
        statement(ANSWERED, "urn:d", registration=str(uuid.uuid4()))
        statement(ANSWERED, "urn:d", registration=str(uuid.uuid4()))  # another session
    body = world.call("get", f"{API}/attempts/{attempt_id}/indicators", "teacher1").get_json()
    assert body["indicators"]["hints"] | {"definition": ""} == {
        "responses": 2, "log": 1, "definition": ""}
    assert body["indicators"]["retries"]["count"] == 2
    user = world.call("get", f"{API}/users/{student}/indicators", "teacher1").get_json()
    assert user["totals"]["hints"]["responses"] == 2
    assert user["totals"]["hints"]["log"] == 2
    assert user["totals"]["retries"]["count"] == 2
    assert [a["attempt_id"] for a in user["attempts"]] == [attempt_id]
    assert "responses" not in user["attempts"][0]


def test_person_fit_flags_a_reversed_pattern_and_needs_ten_answers(world):
    attempt_id = _take(world, "student1")
    with _session(world) as session:
        own = session.get(Attempt, attempt_id)
        delivery = delivery_bank(session, own.snapshot_id)
        bank = delivery.bank
        ids = {code: entry["id"] for code, entry in delivery.items.items()}
        order = np.argsort(bank.b)[:: max(1, len(bank) // 12)][:12]  # 12 items, easy to hard
        items = [ids[bank.item_ids[j]] for j in order]
        reversed_ = [0] * 6 + [1] * 6  # wrong on the easy half, right on the hard half
        aligned = [1] * 6 + [0] * 6
        flagged = _attempt_like(session, own, world.users["student2"],
                                [(i, x, None) for i, x in zip(items, reversed_, strict=True)])
        fitting = _attempt_like(session, own, world.users["student2"],
                                [(i, x, None) for i, x in zip(items, aligned, strict=True)])
        short = _attempt_like(session, own, world.users["student2"],
                              [(i, 1, None) for i in items[:9]])
        ids_made = flagged.id, fitting.id, short.id
        x = np.full((2, len(bank)), np.nan)
        x[0, order], x[1, order] = reversed_, aligned
        expected = person_fit(bank, x, estimator="map", prior=(0.0, 1.0)).lz_star
    fits = [world.call("get", f"{API}/attempts/{i}/indicators", "teacher1").get_json()
            for i in ids_made]
    first, second, third = (f["indicators"]["person_fit"] for f in fits)
    # the test's estimator is EAP under N(0, 1): lz* is taken at the MAP under that prior
    assert first["estimator"] == "map" and first["n_items"] == 12
    assert first["lz_star"] == pytest.approx(expected[0], abs=1e-3)
    assert first["lz_star"] < -1.645 and first["flag"] and "person_misfit" in fits[0]["flags"]
    assert second["lz_star"] == pytest.approx(expected[1], abs=1e-3)
    assert not second["flag"] and "person_misfit" not in fits[1]["flags"]
    assert third["lz_star"] is None and third["n_items"] == 9 and not third["flag"]
    assert "fewer than 10" in third["reason"]


def test_who_sees_indicators_and_students_never_see_staff_only_fields(world):
    attempt_id = _take(world, "student1")
    student = world.users["student1"]
    for user, status in [("teacher1", 200), ("admin1", 200), ("student1", 200),
                         ("teacher2", 404), ("student2", 404)]:
        r = world.call("get", f"{API}/attempts/{attempt_id}/indicators", user)
        assert r.status_code == status, (user, r.get_json())
        r = world.call("get", f"{API}/users/{student}/indicators", user)
        assert r.status_code == status, (user, r.get_json())
        if status == 404:
            assert r.mimetype == "application/problem+json"
    assert world.call("get", f"{API}/users/{student}/indicators", "assessor1").status_code == 403
    assert world.call("get", f"{API}/users/999999/indicators", "admin1").status_code == 404
    assert world.call("get", f"{API}/users/{world.users['teacher1']}/indicators",
                      "admin1").status_code == 404
    assert world.call("get", f"{API}/attempts/{attempt_id}/indicators").status_code == 401
    own = world.call("get", f"{API}/attempts/{attempt_id}/indicators", "student1").get_json()
    assert set(own["indicators"]) == {"time_on_task", "hints", "retries"}
    assert "flags" not in own
    assert all(set(r) == {"position", "item_id", "scored", "response_time_ms", "hints_used"}
               for r in own["responses"])
    mine = world.call("get", f"{API}/users/{student}/indicators", "student1").get_json()
    assert set(mine["totals"]) == {"attempts", "time_on_task", "hints", "retries"}
    assert "lz_star" not in str(mine) and "rapid" not in str(mine)
    staff = world.call("get", f"{API}/users/{student}/indicators", "teacher1").get_json()
    assert "person_fit" in staff["totals"] and "response_time_effort" in staff["totals"]
