"""Large item imports: a background job, all or nothing, that does not stop test-taking.

A probe found that on SQLite a 30,000-row import ran 41 s in one request while answers stood at
0/s and 58 answers failed with "database is locked" (500)."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from api import jobs
from api.db import engine_of
from item_bank.models import Item, ItemImport
from storage import make_engine, session_factory, session_scope, utcnow

HEADER = "item_id,stem,option_1,option_2,option_3,key,rationale,skill,tags,status,model,a,b\r\n"


def _csv(n: int, prefix: str = "BIG", bad_at: int | None = None) -> bytes:
    rows = [HEADER]
    for j in range(n):  # the bad row parses, but the bank refuses operational items without
        parameters = ",," if j == bad_at else f"2pl,1.1,{(j % 100) / 50 - 1:.2f}"  # parameters
        rows.append(f"{prefix}-{j:05d},What is {j} + 1?,{j},{j + 1},{j + 2},1,Add one.,"
                    f"algebra,t{j % 7};u{j % 3},operational,{parameters}\r\n")
    return "".join(rows).encode()


def _import(world, data: bytes, client=None, token=None, **form):
    client = client or world.client
    token = token or world.token("assessor1")
    return client.post("/api/v1/items/import", content_type="multipart/form-data",
                       headers={"Authorization": f"Bearer {token}"},
                       data={"file": (io.BytesIO(data), "big.csv"), **form})


def _count(world, prefix: str) -> int:
    with session_scope(session_factory(engine_of(world.app))) as session:
        return session.scalar(select(func.count()).select_from(Item)
                              .where(Item.code.like(f"{prefix}-%")))


def test_a_large_import_is_queued_and_invisible_until_the_worker_has_applied_it(
        world, tmp_path) -> None:
    world.app.config |= {"ITEM_IMPORT_SYNC_LIMIT": 10,
                         "HUEY_URL": f"sqlite:///{tmp_path / 'queue.sqlite3'}"}  # no worker
    r = _import(world, _csv(5, "SMALL"))  # small files stay synchronous
    assert r.status_code == 200 and r.get_json()["created"] == 5
    r = _import(world, _csv(40))
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert job["status"] == "queued" and job["n_records"] == 40
    location = r.headers["Location"]
    assert location.endswith(f"/api/v1/items/imports/{job['id']}")
    assert _count(world, "BIG") == 0  # nothing is in the bank before the worker has run
    assert world.call("get", location, "assessor1").get_json()["status"] == "queued"
    # The worker (what `cat-engine worker` runs for this task), on the same database.
    url = world.app.config["DATABASE_URL"]
    assert jobs.run_item_import(job["id"], url) == "succeeded"
    assert jobs.run_item_import(job["id"], url) == "skipped"  # a repeated delivery does nothing
    done = world.call("get", location, "assessor1").get_json()
    assert done["status"] == "succeeded", done
    assert done["result"]["created"] == 40 and done["result"]["parameter_sets"] == 40
    assert done["finished_at"].endswith("+00:00")
    assert _count(world, "BIG") == 40
    item = world.call("get", f"/api/v1/items/{done['result']['item_ids'][3]}",
                      "assessor1").get_json()
    assert (item["code"], item["status"], item["version"]) == ("BIG-00003", "operational", 1)
    assert item["content_tags"] == ["t3", "u0"] and item["parameters"]["b"] == pytest.approx(-0.94)
    assert [v["version"] for v in item["versions"]] == [1]
    assert [e["to"] for e in item["status_history"]] == ["operational"]
    with session_scope(session_factory(engine_of(world.app))) as session:
        assert session.get(ItemImport, job["id"]).content is None  # the file is not kept


def test_a_failed_large_import_leaves_nothing_and_lists_every_problem(world) -> None:
    world.app.config |= {"ITEM_IMPORT_SYNC_LIMIT": 10, "HUEY_URL": "immediate"}
    r = _import(world, _csv(40, "BAD", bad_at=33))
    assert r.status_code == 202, r.get_json()
    job = world.call("get", r.headers["Location"], "assessor1").get_json()
    assert job["status"] == "failed" and job["result"] is None
    assert "line 35: item 'BAD-00033'" in job["problems"][0]["message"], job
    assert job["problems"][0]["line"] == 35 and job["problems"][0]["field"] == "status"
    assert _count(world, "BAD") == 0
    # mode=create with codes the bank has: refused as a whole too.
    assert _import(world, _csv(5, "DUP")).status_code == 200
    r = _import(world, _csv(40, "DUP"))
    job = world.call("get", r.headers["Location"], "assessor1").get_json()
    assert job["status"] == "failed" and len(job["problems"]) == 5
    assert _count(world, "DUP") == 5


def test_an_import_whose_worker_died_is_reported_failed(world) -> None:
    with session_scope(session_factory(engine_of(world.app))) as session:
        job = ItemImport(filename="big.csv", mode="create", content=b"x", n_records=5000,
                         status="running", worker="host:123",
                         started_at=utcnow() - timedelta(hours=1))
        fresh = ItemImport(filename="big.csv", mode="create", content=b"x", n_records=5000,
                           status="running", worker="host:124", started_at=utcnow())
        session.add_all([job, fresh])
        session.flush()
        ids = job.id, fresh.id
    r = world.call("get", f"/api/v1/items/imports/{ids[0]}", "assessor1").get_json()
    assert r["status"] == "failed" and "host:123" in r["error"], r
    assert "nothing was imported" in r["error"]
    assert world.call("get", f"/api/v1/items/imports/{ids[1]}",
                      "assessor1").get_json()["status"] == "running"


def test_the_import_api_is_documented(world) -> None:
    spec = world.client.get("/api/v1/openapi.json").get_json()
    post = spec["paths"]["/api/v1/items/import"]["post"]
    assert {"200", "202", "503"} <= set(post["responses"])
    assert "/api/v1/items/imports/{import_id}" in spec["paths"]


def test_sqlite_uses_write_ahead_logging_and_waits_for_a_writer(sqlite_url) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
    engine.dispose()


def test_answers_keep_flowing_during_a_large_import_on_sqlite(world) -> None:
    """While 6,000 items are imported, students' answers are recorded and none fails: the write
    lock is held only to publish, well within the busy timeout (with the old item-by-item write,
    answers failed with "database is locked"). How long answers wait is a benchmark's question,
    not this test's: on a loaded machine the timings say nothing."""
    if not world.app.config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("the lock is SQLite's")
    world.app.config |= {"ITEM_IMPORT_SYNC_LIMIT": 1000, "HUEY_URL": "immediate"}
    data, token = _csv(6000, "LOAD"), world.token("assessor1")
    outcome: dict = {}

    def run_import() -> None:
        started = time.perf_counter()
        outcome["response"] = _import(world, data, client=world.app.test_client(), token=token)
        outcome["seconds"] = time.perf_counter() - started

    worker = threading.Thread(target=run_import)
    statuses, waits = [], []
    worker.start()
    while worker.is_alive():
        r = world.call("post", "/api/v1/attempts", "student1", json={"test_id": world.test_id})
        if r.status_code not in (200, 201):
            statuses.append(r.status_code)
            continue
        attempt = r.get_json()
        while attempt.get("item") and worker.is_alive():
            started = time.perf_counter()
            r = world.answer("student1", attempt["id"], attempt["item"]["id"], 1)
            waits.append(time.perf_counter() - started)
            statuses.append(r.status_code)
            if r.status_code not in (200, 201):
                break
            attempt = {"id": attempt["id"], **r.get_json()}
    worker.join()
    assert outcome["response"].status_code == 202
    job = world.call("get", outcome["response"].headers["Location"], "assessor1").get_json()
    assert job["status"] == "succeeded", job
    assert _count(world, "LOAD") == 6000
    assert statuses and set(statuses) <= {200, 201}, sorted(set(statuses))
    assert len(waits) >= 5  # answers were recorded while the import ran
