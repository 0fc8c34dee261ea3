"""Calibration runs over HTTP, on SQLite and PostgreSQL: upload, run, review, publish, promote.

Runs execute in huey's immediate mode here (``HUEY_URL=immediate``), except in the test that
starts a real ``cat-engine worker`` on a SQLite queue.
"""

from __future__ import annotations

import importlib.util
import io
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api.app import create_app
from api.db import engine_of
from api.v1.auth import token_hash
from cat_engine import ItemBank
from cat_engine.models import simulate_responses
from item_bank.models import CalibrationRun, Item, ItemStatus, RunStatus
from storage import session_factory, session_scope, utcnow
from storage.accounts import ApiToken, Role, SchoolClass, User
from storage.rights import Consent, Purpose
from tests.api.conftest import ApiWorld, build_world

BASE = "/api/v1/calibration"
NEW_ITEMS = {"NEW-1": {"a": 1.3, "b": -0.6}, "NEW-2": {"a": 0.9, "b": 0.7}}
PRETEST_TRUTH = {"PRE-1": {"a": 1.4, "b": -1.0}, "PRE-2": {"a": 1.2, "b": 1.0}}


def _session(world):
    return session_scope(session_factory(engine_of(world.app)))


def _bank_parameters(world, codes) -> dict[str, dict]:
    with _session(world) as session:
        items = session.scalars(select(Item).where(Item.code.in_(list(codes)))
                                .options(selectinload(Item.parameter_sets))).all()
        return {i.code: i.active_parameters.as_dict() for i in items}


def _simulated_csv(truth: dict[str, dict], n_persons: int, seed: int, groups=True) -> str:
    """Long CSV of 2PL responses drawn from ``truth`` (code -> a, b) at theta ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    codes = list(truth)
    bank = ItemBank.from_records([{"item_id": c, "model": "2pl", "a": truth[c]["a"],
                                   "b": truth[c]["b"]} for c in codes])
    theta = rng.normal(size=n_persons)
    responses = simulate_responses(bank, np.arange(len(codes))[None, :], theta[:, None], rng)
    lines = ["person_id,item_id,response" + (",group" if groups else "")]
    for p in range(n_persons):
        group = f",{'AB'[p % 2]}" if groups else ""
        lines += [f"P{p},{code},{responses[p, j]}{group}" for j, code in enumerate(codes)]
    return "\n".join(lines) + "\n"


def _upload(world, content: str | bytes, user="assessor1", filename="responses.csv"):
    raw = content.encode() if isinstance(content, str) else content
    return world.call("post", f"{BASE}/uploads", user, content_type="multipart/form-data",
                      data={"file": (io.BytesIO(raw), filename)})


def _wait(world, location: str, user="assessor1", timeout=60.0,
          until=("succeeded", "failed")) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = world.call("get", location, user)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        if body["status"] in until or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def _all_items(world, run_id: int) -> list[dict]:
    r = world.call("get", f"{BASE}/runs/{run_id}/items?per_page=200", "assessor1")
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def test_upload_calibrate_review_and_publish(world) -> None:
    world.app.config["HUEY_URL"] = "immediate"
    bank_codes = [f"IT-{j:03d}" for j in range(20)]
    truth = {**_bank_parameters(world, bank_codes), **NEW_ITEMS}
    content = _simulated_csv(truth, n_persons=600, seed=11)

    r = _upload(world, content)
    assert r.status_code == 201, r.get_json()
    upload = r.get_json()
    assert upload | {"id": 0, "created_at": None} == upload | {
        "id": 0, "created_at": None, "layout": "long", "n_persons": 600, "n_items": 22,
        "n_responses": 13_200, "has_groups": True, "filename": "responses.csv",
        "unknown_items": ["NEW-1", "NEW-2"], "n_unknown_items": 2}
    assert r.headers["Location"].endswith(f"/calibration/uploads/{upload['id']}")
    again = world.call("get", f"{BASE}/uploads/{upload['id']}", "admin1").get_json()
    assert again == upload

    r = world.call("post", f"{BASE}/runs", "assessor1",
                   json={"upload_id": upload["id"], "model": "2pl",
                         "settings": {"max_iterations": 300, "tolerance": 1e-4}})
    assert r.status_code == 202, r.get_json()
    assert r.headers["Location"].endswith(f"/calibration/runs/{r.get_json()['id']}")
    run = _wait(world, r.headers["Location"])
    assert run["status"] == "succeeded", run
    assert run["progress"] == 1.0 and run["error"] is None
    assert run["started_at"] and run["finished_at"] and run["created_at"].endswith("+00:00")
    summary = run["summary"]
    assert summary["converged"] and summary["n_persons"] == 600 and summary["n_fixed"] == 0
    assert summary["unknown_items"] == ["NEW-1", "NEW-2"]
    assert run["input"]["kind"] == "upload" and run["input"]["n_responses"] == 13_200

    items = _all_items(world, run["id"])
    assert [e["item_id"] for e in items] == list(truth)
    b_true = np.array([truth[e["item_id"]]["b"] for e in items])
    b_hat = np.array([e["parameters"]["b"] for e in items])
    a_true = np.array([truth[e["item_id"]]["a"] for e in items])
    a_hat = np.array([e["parameters"]["a"] for e in items])
    assert np.corrcoef(b_true, b_hat)[0, 1] > 0.95
    assert np.corrcoef(a_true, a_hat)[0, 1] > 0.8
    first = items[0]
    assert first["n"] == 600 and first["fixed"] is False
    assert 0 < first["se"]["b"] < 0.5 and 0 < first["se"]["a"] < 0.5
    assert {"s_x2", "df", "p_value", "infit", "outfit", "flags", "misfit"} <= set(first["fit"])
    assert len(first["dif"]) == 1 and first["dif"][0]["category"] in "ABC"
    assert first["dif"][0]["reference"] in "AB" and first["dif"][0]["statistic"] == "delta_mh"
    assert first["bank"]["status"] == "operational"
    assert first["bank"]["parameters"]["b"] == pytest.approx(truth["IT-000"]["b"])
    assert items[-1]["bank"] is None  # NEW-2: not in the bank
    flagged = world.call("get", f"{BASE}/runs/{run['id']}/items?flagged=true",
                         "assessor1").get_json()
    assert flagged["total"] == sum(1 for e in items if e["flags"])
    page = world.call("get", f"{BASE}/runs/{run['id']}/items?per_page=5&page=2",
                      "assessor1").get_json()
    assert page["total"] == 22 and page["pages"] == 5
    assert [e["item_id"] for e in page["items"]] == list(truth)[5:10]

    # The same upload anchored on the bank: bank items stay put, new ones land on its scale.
    r = world.call("post", f"{BASE}/runs", "assessor1",
                   json={"upload_id": upload["id"], "anchor": True})
    assert r.status_code == 202, r.get_json()
    anchored = _wait(world, r.headers["Location"])
    assert anchored["status"] == "succeeded", anchored
    assert anchored["summary"]["n_fixed"] == 20 and anchored["summary"]["n_estimated"] == 2
    anchored_items = {e["item_id"]: e for e in _all_items(world, anchored["id"])}
    assert anchored_items["IT-003"]["fixed"] is True
    assert anchored_items["IT-003"]["parameters"]["b"] == pytest.approx(truth["IT-003"]["b"])
    assert anchored_items["IT-003"]["se"]["b"] is None
    for code, values in NEW_ITEMS.items():
        assert anchored_items[code]["fixed"] is False
        assert anchored_items[code]["parameters"]["b"] == pytest.approx(values["b"], abs=0.35)

    listing = world.call("get", f"{BASE}/runs?status=succeeded", "admin1").get_json()
    assert listing["total"] == 2 and [x["id"] for x in listing["items"]] == [anchored["id"],
                                                                              run["id"]]

    # Unanchored over operational items: its own scale, so refused without a decision.
    r = world.call("post", f"{BASE}/runs/{run['id']}/publish", "assessor1",
                   json={"items": ["IT-000", "IT-001", "NEW-1"]})
    assert r.status_code == 422 and "not anchored" in r.get_json()["detail"]
    r = world.call("post", f"{BASE}/runs/{run['id']}/publish", "assessor1",
                   json={"items": ["IT-000", "IT-001", "NEW-1"], "confirm_unlinked": True})
    assert r.status_code == 200, r.get_json()
    outcome = r.get_json()
    assert [p["item_id"] for p in outcome["published"]] == ["IT-000", "IT-001"]
    assert outcome["skipped"] == [{"item_id": "NEW-1", "reason": "not in the bank"}]
    assert outcome["promoted"] == []
    assert outcome["run"]["status"] == "published"
    assert outcome["run"]["published_by"] == world.users["assessor1"]
    assert outcome["run"]["published_at"]

    with _session(world) as session:
        item = session.scalar(select(Item).where(Item.code == "IT-000")
                              .options(selectinload(Item.parameter_sets)))
        old, new = item.parameter_sets
        assert not old.is_active and old.source == "import"
        assert old.b == pytest.approx(truth["IT-000"]["b"])
        assert new.is_active and new.source == "calibration"
        assert new.calibration_run_id == run["id"] and new.sample_size == 600
        assert new.b == pytest.approx(items[0]["parameters"]["b"])
        assert new.provenance["calibration_run_id"] == run["id"]
        assert new.provenance["model"] == "2pl"
        assert new.provenance["settings"]["max_iterations"] == 300
        assert new.provenance["published_at"] and new.provenance["estimated_at"]
        assert new.created_by == world.users["assessor1"]
        untouched = session.scalar(select(Item).where(Item.code == "IT-005")
                                   .options(selectinload(Item.parameter_sets)))
        assert len(untouched.parameter_sets) == 1  # not selected, not changed
        stored = session.get(CalibrationRun, run["id"])
        assert stored.status == RunStatus.PUBLISHED

    again = world.call("post", f"{BASE}/runs/{run['id']}/publish", "assessor1", json={})
    assert again.status_code == 409 and "published" in again.get_json()["detail"]
    r = world.call("post", f"{BASE}/runs/{anchored['id']}/publish", "admin1",
                   json={"items": ["IT-000", "NOPE"]})
    assert r.status_code == 422 and "'NOPE'" in r.get_json()["detail"]


def _add_students(world, n: int, research: bool = True, prefix: str = "extra") -> list[str]:
    """``n`` more students enrolled in 7A, with API tokens (no password sign-in to pay for),
    who gave the research consent (pooled calibration uses no one else's responses)."""
    names = [f"{prefix}{k:03d}" for k in range(n)]
    with _session(world) as session:
        klass = session.get(SchoolClass, world.class_id)
        for name in names:
            user = User(username=name, display_name=name, role=Role.STUDENT,
                        password_hash="!unusable")
            klass.students.append(user)
            session.flush()
            if research:
                session.add(Consent(student_id=user.id, purpose=Purpose.RESEARCH, granted=True))
            token = secrets.token_urlsafe(24)
            session.add(ApiToken(user_id=user.id, token_hash=token_hash(token),
                                 expires_at=utcnow() + timedelta(hours=1)))
            world._tokens[name] = token
    return names


def _take_test(world, user: str, theta: float, parameters: dict, rng,
               stop_after: int | None = None) -> int:
    """Take the Maths test as a simulee of ability ``theta`` (2PL answers, pretest items too),
    to the end or leaving it in progress after ``stop_after`` answers."""
    codes = {i: c for c, i in world.items.items()}
    r = world.call("post", "/api/v1/attempts", user, json={"test_id": world.test_id})
    assert r.status_code == 201, r.get_json()
    reply = r.get_json()
    answered = 0
    while reply["status"] == "in_progress" and answered != stop_after:
        answered += 1
        code = codes[reply["item"]["id"]]
        a, b = parameters[code]["a"], parameters[code]["b"]
        correct = rng.random() < 1 / (1 + np.exp(-a * (theta - b)))
        key = 0 if code.startswith("PRE-") else 1  # the fixture's keys
        choice = key if correct else 1 - key
        r = world.answer(user, reply["id"], reply["item"]["id"], choice)
        assert r.status_code == 200, r.get_json()
        reply = r.get_json()
    return reply["id"]


def test_online_calibration_of_pretest_items_and_promotion(world) -> None:
    world.app.config["HUEY_URL"] = "immediate"
    parameters = {**_bank_parameters(world, [c for c in world.items if c.startswith("IT-")]),
                  **PRETEST_TRUTH}
    students = _add_students(world, 24)
    rng = np.random.default_rng(5)
    for user in students[:3]:
        _take_test(world, user, float(rng.normal()), parameters, rng)

    r = world.call("post", f"{BASE}/runs", "assessor1",
                   json={"kind": "online", "test_id": world.test_id, "model": "2pl"})
    assert r.status_code == 422, r.get_json()
    detail = r.get_json()["detail"]
    assert "'PRE-1' has 3" in detail and "'PRE-2' has 3" in detail and "at least 10" in detail

    for k, user in enumerate(students[3:]):  # a third finish, the others are still at it
        _take_test(world, user, float(rng.normal()), parameters, rng,
                   stop_after=None if k % 3 == 0 else 5)
    # two students without the research consent: their responses stay out of the pool
    for user in _add_students(world, 2, research=False, prefix="private"):
        _take_test(world, user, float(rng.normal()), parameters, rng)
    r = world.call("post", f"{BASE}/runs", "assessor1",
                   json={"kind": "online", "test_id": world.test_id, "model": "2pl"})
    assert r.status_code == 202, r.get_json()
    run = _wait(world, r.headers["Location"])
    assert run["status"] == "succeeded", run
    assert run["kind"] == "online" and run["test_id"] == world.test_id
    assert run["input"]["n_attempts"] == 24 and run["summary"]["n_estimated"] == 2
    assert run["input"]["attempts_without_research_consent"] == 2
    items = {e["item_id"]: e for e in _all_items(world, run["id"])}
    assert {c for c, e in items.items() if not e["fixed"]} == {"PRE-1", "PRE-2"}
    assert items["PRE-1"]["n"] == 24 and items["PRE-1"]["bank"]["status"] == "pretest"
    for code in ("PRE-1", "PRE-2"):
        estimate = items[code]["parameters"]
        # 24 adaptive attempts on random paths (attempt seeds are random) make a noisy 2PL
        # estimate (slopes from 1 to 80 seen, b up to 2 from the truth): this checks sanity only;
        # recovery is tested on 600 persons above.
        assert estimate["a"] > 0 and abs(estimate["b"] - PRETEST_TRUTH[code]["b"]) < 2.5
    assert items["PRE-1"]["parameters"]["b"] < items["PRE-2"]["parameters"]["b"]
    some_anchor = next(e for e in items.values() if e["fixed"])
    assert some_anchor["parameters"]["b"] == pytest.approx(
        parameters[some_anchor["item_id"]]["b"])

    # Named: with 24 responses an item may be flagged (outfit), and flagged items are published
    # only when named.
    r = world.call("post", f"{BASE}/runs/{run['id']}/publish", "admin1",
                   json={"promote": True, "items": ["PRE-1", "PRE-2"]})
    assert r.status_code == 200, r.get_json()
    outcome = r.get_json()
    assert sorted(p["item_id"] for p in outcome["published"]) == ["PRE-1", "PRE-2"]
    assert sorted(outcome["promoted"]) == ["PRE-1", "PRE-2"]
    assert all(s["reason"].startswith("held fixed") for s in outcome["skipped"])
    with _session(world) as session:
        for code in ("PRE-1", "PRE-2"):
            item = session.scalar(select(Item).where(Item.code == code).options(
                selectinload(Item.parameter_sets), selectinload(Item.status_events)))
            assert item.status == ItemStatus.OPERATIONAL
            active = item.active_parameters
            assert active.source == "calibration" and active.calibration_run_id == run["id"]
            assert active.sample_size == 24 and active.model == "2pl"
            assert active.b == pytest.approx(items[code]["parameters"]["b"])
            event = item.status_events[-1]
            assert event.from_status == ItemStatus.PRETEST
            assert event.to_status == ItemStatus.OPERATIONAL
            assert f"calibration run {run['id']}" in event.reason
            assert event.changed_by == world.users["admin1"]
    # Promoted items are no longer pretested: a new attempt is all operational.
    start = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id}).get_json()
    assert start["status"] == "in_progress"


def test_bad_input_and_roles(world, tmp_path) -> None:
    world.app.config["HUEY_URL"] = "immediate"
    r = _upload(world, "person_id,item_id,response\nP1,I1,1\nP1,I2,x\nP2,I1,0\n")
    assert r.status_code == 422
    body = r.get_json()
    assert r.mimetype == "application/problem+json"
    assert "row 3" in body["detail"] and "'x'" in body["detail"]
    assert body["errors"][0]["field"] == "file"
    r = _upload(world, "person,I1,I2\nA,1,0\nB,1,x\n", filename="wide.csv")
    assert r.status_code == 422
    assert "'wide.csv'" in r.get_json()["detail"] and "row 3 ('x')" in r.get_json()["detail"]
    r = world.call("post", f"{BASE}/uploads", "assessor1", content_type="multipart/form-data",
                   data={})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "files.file"
    r = _upload(world, "person_id,item_id,response\nP1,Ä,1\n".encode("latin-1"))
    assert r.status_code == 422 and "UTF-8" in r.get_json()["detail"]

    assert world.call("get", f"{BASE}/uploads/999", "assessor1").status_code == 404
    r = world.call("post", f"{BASE}/runs", "assessor1", json={"upload_id": 999})
    assert r.status_code == 404 and "999" in r.get_json()["detail"]
    r = world.call("post", f"{BASE}/runs", "assessor1", json={"kind": "online", "test_id": 999})
    assert r.status_code == 404
    assert world.call("get", f"{BASE}/runs/999", "assessor1").status_code == 404
    r = world.call("post", f"{BASE}/runs", "assessor1",
                   json={"upload_id": 1, "model": "4pl", "settings": {"tolerance": 0}})
    assert r.status_code == 422
    assert {e["field"] for e in r.get_json()["errors"]} == {"json.model",
                                                            "json.settings.tolerance"}
    r = world.call("post", f"{BASE}/runs", "assessor1", json={"kind": "upload"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "upload_id"

    # An item nobody got wrong cannot be calibrated: the run fails with one line naming it.
    truth = {f"IT-{j:03d}": {"a": 1.0, "b": b} for j, b in enumerate(np.linspace(-1, 1, 6))}
    rows = _simulated_csv(truth, n_persons=200, seed=3, groups=False).splitlines()
    rows += [f"P{p},EASY,1" for p in range(200)]
    upload = _upload(world, "\n".join(rows) + "\n").get_json()
    r = world.call("post", f"{BASE}/runs", "assessor1", json={"upload_id": upload["id"]})
    assert r.status_code == 202
    failed = _wait(world, r.headers["Location"])
    assert failed["status"] == "failed" and failed["summary"] is None
    assert "'EASY'" in failed["error"] and "no variance" in failed["error"]
    assert "\n" not in failed["error"] and "Traceback" not in failed["error"]
    r = world.call("post", f"{BASE}/runs/{failed['id']}/publish", "assessor1", json={})
    assert r.status_code == 409 and "failed" in r.get_json()["detail"]
    assert world.call("get", f"{BASE}/runs/{failed['id']}/items", "assessor1").status_code == 409

    # Too few responses for the items estimated: refused before anything is queued.
    r = world.call("post", f"{BASE}/runs", "assessor1",
                   json={"upload_id": upload["id"], "settings": {"min_responses": 500}})
    assert r.status_code == 422 and "'IT-000' has 200" in r.get_json()["detail"]
    assert "at least 500" in r.get_json()["detail"]

    # With no worker running, a run stays queued: it cannot be published or reviewed yet.
    world.app.config["HUEY_URL"] = f"sqlite:///{tmp_path / 'queue' / 'huey.sqlite3'}"
    good = _upload(world, _simulated_csv(truth, n_persons=200, seed=4)).get_json()
    r = world.call("post", f"{BASE}/runs", "assessor1", json={"upload_id": good["id"]})
    assert r.status_code == 202 and r.get_json()["status"] == "queued"
    queued = r.get_json()["id"]
    assert (tmp_path / "queue" / "huey.sqlite3").exists()
    r = world.call("post", f"{BASE}/runs/{queued}/publish", "assessor1", json={})
    assert r.status_code == 409 and "queued" in r.get_json()["detail"]
    assert world.call("get", f"{BASE}/runs/{queued}/items", "assessor1").status_code == 409

    world.app.config["HUEY_URL"] = "redis://localhost:1/0"  # no Redis there, or no redis package
    r = world.call("post", f"{BASE}/runs", "assessor1", json={"upload_id": good["id"]})
    assert r.status_code == 503 and r.mimetype == "application/problem+json"
    if importlib.util.find_spec("redis") is None:
        assert "pip install redis" in r.get_json()["detail"]

    for user in ("student1", "teacher1"):
        assert _upload(world, "person_id,item_id,response\nP,I,1\n", user=user).status_code == 403
        for path in (f"{BASE}/runs", f"{BASE}/runs/{queued}", f"{BASE}/uploads/{good['id']}",
                     f"{BASE}/runs/{queued}/items"):
            assert world.call("get", path, user).status_code == 403
        r = world.call("post", f"{BASE}/runs", user, json={"upload_id": good["id"]})
        assert r.status_code == 403
        r = world.call("post", f"{BASE}/runs/{queued}/publish", user, json={})
        assert r.status_code == 403
    assert world.call("get", f"{BASE}/runs").status_code == 401


def _worker_command() -> list[str]:
    script = Path(sys.executable).parent / "cat-engine"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "api.cli"]


def test_a_real_worker_runs_a_queued_run(sqlite_url, tmp_path) -> None:
    ids = build_world(sqlite_url, n_items=10)
    queue = f"sqlite:///{tmp_path / 'huey.sqlite3'}"
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test",
                      "HUEY_URL": queue})
    world = ApiWorld(app=app, client=app.test_client(), users=ids["users"],
                     test_id=ids["test_id"], items=ids["items"])
    try:
        truth = {f"IT-{j:03d}": {"a": 1.0 + 0.1 * j, "b": -1 + 0.2 * j} for j in range(10)}
        upload = _upload(world, _simulated_csv(truth, n_persons=300, seed=8)).get_json()
        r = world.call("post", f"{BASE}/runs", "assessor1", json={"upload_id": upload["id"]})
        assert r.status_code == 202 and r.get_json()["status"] == "queued"
        location = r.headers["Location"]
        time.sleep(0.5)
        assert world.call("get", location, "assessor1").get_json()["status"] == "queued"

        stale = _stalled_run(app, minutes=6)  # a run whose worker died before this one started

        env = {**os.environ, "DATABASE_URL": sqlite_url, "HUEY_URL": queue}
        worker = subprocess.Popen([*_worker_command(), "worker", "--workers", "1"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            # Only the worker reads runs now (no API call yet): it fails the stale one at start.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with session_scope(session_factory(engine_of(app))) as session:
                    if session.get(CalibrationRun, stale).status == RunStatus.FAILED:
                        break
                time.sleep(0.1)
            run = _wait(world, location, timeout=60)
        finally:
            worker.send_signal(signal.SIGINT)
            try:
                output, _ = worker.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                output, _ = worker.communicate()
        assert run["status"] == "succeeded", (run, output)
        assert run["summary"]["converged"] and run["progress"] == 1.0
        assert "Worker: 1 thread(s)" in output
        assert "Marked 1 calibration run(s) failed" in output
        with session_scope(session_factory(engine_of(app))) as session:
            assert session.get(CalibrationRun, stale).status == RunStatus.FAILED
            done = session.get(CalibrationRun, run["id"])
            assert done.worker.endswith(f":{worker.pid}") and done.heartbeat_at is not None
        items = _all_items(world, run["id"])
        b_hat = [e["parameters"]["b"] for e in items]
        assert np.corrcoef([truth[e["item_id"]]["b"] for e in items], b_hat)[0, 1] > 0.95
    finally:
        engine_of(app).dispose()


def _running_run(url: str):
    """A migrated database with one run marked running: (engine, session factory, run id)."""
    from storage import make_engine
    from storage.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    factory = session_factory(engine)
    with session_scope(factory) as session:
        run = CalibrationRun(kind="upload", model="2pl", settings={}, status=RunStatus.RUNNING)
        session.add(run)
        session.flush()
        return engine, factory, run.id


def test_progress_is_committed_at_most_every_half_second(sqlite_url) -> None:
    from api.jobs import _Progress, run_calibration

    engine, factory, run_id = _running_run(sqlite_url)
    progress = _Progress(factory, run_id, interval=0.5)
    progress(0.1, "first")
    progress(0.2, "too soon")
    with session_scope(factory) as session:
        row = session.get(CalibrationRun, run_id)
        assert (row.progress, row.message) == (0.1, "first")
    time.sleep(0.55)
    progress(0.3, "later")
    with session_scope(factory) as session:
        row = session.get(CalibrationRun, run_id)
        assert (row.progress, row.message) == (0.3, "later")
    # A run that is not queued is left alone; an unknown one too.
    assert run_calibration(run_id, sqlite_url) == "skipped"
    assert run_calibration(run_id + 1, sqlite_url) == "missing"
    engine.dispose()


def test_worker_command_refuses_a_queue_it_cannot_consume(sqlite_url) -> None:
    from click.testing import CliRunner

    from api.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["--database-url", sqlite_url, "worker"],
                           env={"HUEY_URL": "immediate"})
    assert result.exit_code == 2 and "nothing for a worker to consume" in result.output
    result = runner.invoke(cli, ["--database-url", sqlite_url, "worker"],
                           env={"HUEY_URL": "ftp://example.org/queue"})
    assert result.exit_code == 2 and "not understood" in result.output


def _stalled_run(app, minutes: float, worker: str = "gone-host:4242") -> int:
    """A run marked running by a worker last heard from ``minutes`` ago."""
    from datetime import timedelta

    from storage import utcnow

    with session_scope(session_factory(engine_of(app))) as session:
        then = utcnow() - timedelta(minutes=minutes)
        run = CalibrationRun(kind="upload", model="2pl", settings={}, status=RunStatus.RUNNING,
                             started_at=then, heartbeat_at=then, worker=worker, progress=0.4)
        session.add(run)
        session.flush()
        return run.id


def test_a_run_whose_worker_died_is_reported_failed(world) -> None:
    dead = _stalled_run(world.app, minutes=6)
    alive = _stalled_run(world.app, minutes=1, worker="busy-host:1")
    r = world.call("get", f"{BASE}/runs/{dead}", "assessor1")
    assert r.status_code == 200
    run = r.get_json()
    assert run["status"] == "failed" and "no sign of life for 5 minutes" in run["error"]
    assert world.call("get", f"{BASE}/runs/{alive}", "assessor1").get_json()["status"] == \
        "running"
    listed = world.call("get", f"{BASE}/runs?status=running", "assessor1").get_json()
    assert [r["id"] for r in listed["items"]] == [alive]
    with session_scope(session_factory(engine_of(world.app))) as session:  # stored, not only shown
        assert session.get(CalibrationRun, dead).status == RunStatus.FAILED


def test_the_heartbeat_stamps_a_running_run_until_stopped(sqlite_url) -> None:
    from api.jobs import Heartbeat

    engine, factory, run_id = _running_run(sqlite_url)

    def stamp():
        with session_scope(factory) as session:
            return session.get(CalibrationRun, run_id).heartbeat_at

    beat = Heartbeat(factory, run_id, interval=0.05)
    beat.start()
    time.sleep(0.3)
    first = stamp()
    time.sleep(0.2)
    assert first is not None and stamp() > first
    beat.stop()
    assert not beat.is_alive()
    stopped = stamp()
    time.sleep(0.2)
    assert stamp() == stopped
    engine.dispose()


def test_uploads_are_listed_newest_first_with_their_sizes(world) -> None:
    first = _upload(world, "person_id,item_id,response\nP1,IT-000,1\nP2,IT-000,0\n").get_json()
    assert _upload(world, "person_id,item_id,response\nP1,IT-000,x\n").status_code == 422
    second = _upload(world, "person,IT-000,IT-001\nA,1,0\nB,1,1\nC,0,\n",
                     filename="wide.csv").get_json()
    page = world.call("get", f"{BASE}/uploads?per_page=1", "assessor1").get_json()
    assert (page["total"], page["pages"]) == (2, 2)  # the rejected file was never stored
    assert [u["id"] for u in page["items"]] == [second["id"]]
    listed = page["items"][0]
    assert (listed["filename"], listed["layout"], listed["n_persons"], listed["n_items"],
            listed["n_responses"]) == ("wide.csv", "wide", 3, 2, 5)
    assert "content" not in listed and listed["created_at"].endswith("+00:00")
    older = world.call("get", f"{BASE}/uploads?page=2&per_page=1", "assessor1").get_json()
    assert [u["id"] for u in older["items"]] == [first["id"]]
