"""Ingesting xAPI statements: batches of 100 through ``POST /xapi/statements``.

``python -m bench.xapi_ingest`` builds, for each database asked for (SQLite in a temporary file,
and PostgreSQL in a fresh database on the server of ``TEST_DATABASE_URL``, dropped at the end), a
migrated database with one class of 30 students and an xAPI credential for it, then posts
``--batches`` batches of ``--size`` statements through the Flask test client (the whole request
path: Basic authentication, the version header, the rate limit, validation, the scope check,
the 409 check and the inserts; no network), after ``--warmup`` batches that do not count. The
statements vary as a tool's would: verbs, activities with a parent, a registration, results.

It reports statements per second over the measured batches, the latency per batch (p50, p95,
max) and, to show the filters stay cheap as the table grows, the latency of a filtered query
page (``agent`` + ``verb``, 100 statements). Afterwards it checks that every statement posted is
stored exactly once.

Targets (issue 13): at least 2,000 statements a second on each database, p95 per batch under
100 ms.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from api.app import create_app
from api.db import engine_of
from bench.databases import scratch_database
from evidence.models import Statement
from evidence.xapi_clients import create_client
from storage import make_engine, session_factory, session_scope
from storage.accounts import Role, SchoolClass, User
from storage.migrate import upgrade

SITE = "https://school.example"
TARGET_RATE = 2000.0
TARGET_P95_MS = 100.0
VERBS = ("experienced", "attempted", "answered", "completed", "progressed")


def fill(url: str, n_students: int = 30) -> tuple[list[str], str, str]:
    """Migrate; add a teacher, a class of students and a credential. Returns the students'
    pseudonyms and the credential's key and secret."""
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(session_factory(engine)) as session:
        teacher = User(username="teacher", role=Role.TEACHER, password_hash="x")
        students = [User(username=f"s{k}", role=Role.STUDENT, password_hash="x")
                    for k in range(n_students)]
        klass = SchoolClass(name="Bench", teacher=teacher, students=students)
        session.add(klass)
        session.flush()
        client, secret = create_client(session, teacher, name="bench", class_id=klass.id)
        pseudonyms, key = [s.pseudonym for s in students], client.key
    engine.dispose()
    return pseudonyms, key, secret


def statements(rng: np.random.Generator, pseudonyms: list[str], n: int) -> list[dict[str, Any]]:
    """``n`` varied statements about the class's students."""
    out = []
    for _ in range(n):
        verb = VERBS[int(rng.integers(len(VERBS)))]
        unit = int(rng.integers(20))
        statement: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "actor": {"objectType": "Agent", "account": {
                "homePage": SITE, "name": pseudonyms[int(rng.integers(len(pseudonyms)))]}},
            "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": {"en-US": verb}},
            "object": {"objectType": "Activity",
                       "id": f"https://tool.example/units/{unit}/steps/{int(rng.integers(50))}",
                       "definition": {"name": {"en-US": f"Step of unit {unit}"},
                                      "type": "http://adlnet.gov/expapi/activities/interaction"}},
            "context": {"registration": str(uuid.uuid4()),
                        "contextActivities": {"parent": [
                            {"id": f"https://tool.example/units/{unit}"}]}},
            "timestamp": "2026-12-01T10:00:00Z",
        }
        if verb in ("answered", "completed"):
            statement["result"] = {"success": bool(rng.integers(2)), "response": "b",
                                   "duration": f"PT{int(rng.integers(1, 90))}S"}
        out.append(statement)
    return out


def run(kind: str, batches: int, size: int, warmup: int, seed: int) -> dict[str, Any]:
    """Post the batches to a fresh database of ``kind``; returns the figures."""
    with scratch_database(kind, "cat_xapi_bench") as url:
        pseudonyms, key, secret = fill(url)
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "PUBLIC_URL": SITE,
                          "XAPI_RATE_LIMIT": "100000 per second"})
        client = app.test_client()
        token = base64.b64encode(f"{key}:{secret}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "X-Experience-API-Version": "1.0.3",
                   "Content-Type": "application/json"}
        rng = np.random.default_rng(seed)
        bodies = [json.dumps(statements(rng, pseudonyms, size)) for _ in range(warmup + batches)]
        times = []
        for k, body in enumerate(bodies):
            start = time.perf_counter()
            reply = client.post("/xapi/statements", data=body, headers=headers)
            elapsed = time.perf_counter() - start
            if reply.status_code != 200:
                raise RuntimeError(f"batch {k}: {reply.status_code} {reply.get_data(True)}")
            if k >= warmup:
                times.append(elapsed)
        agent = json.dumps({"account": {"homePage": SITE, "name": pseudonyms[0]}})
        query_times = []
        for _ in range(20):
            start = time.perf_counter()
            reply = client.get("/xapi/statements", headers=headers, query_string={
                "agent": agent, "verb": "http://adlnet.gov/expapi/verbs/answered",
                "limit": "100"})
            query_times.append(time.perf_counter() - start)
            assert reply.status_code == 200
        with engine_of(app).connect() as connection:
            stored = connection.scalar(select(func.count()).select_from(Statement))
            distinct = connection.scalar(select(func.count(func.distinct(Statement.id))))
        engine_of(app).dispose()
    ms = np.array(times) * 1000
    posted = (warmup + batches) * size
    return {
        "database": kind, "batches": batches, "size": size,
        "statements_per_s": batches * size / float(np.sum(times)),
        "batch_p50_ms": float(np.percentile(ms, 50)), "batch_p95_ms": float(np.percentile(ms, 95)),
        "batch_max_ms": float(ms.max()),
        "query_p95_ms": float(np.percentile(np.array(query_times) * 1000, 95)),
        "stored": stored, "posted": posted, "exactly_once": stored == distinct == posted,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    print(f"xAPI ingest: {args.batches} batches of {args.size} (after {args.warmup} warm-up), "
          f"Flask test client; {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    results, ok = [], True
    for kind in args.databases.split(","):
        result = run(kind, args.batches, args.size, args.warmup, args.seed)
        results.append(result)
        passed = (result["statements_per_s"] >= TARGET_RATE
                  and result["batch_p95_ms"] < TARGET_P95_MS and result["exactly_once"])
        ok &= passed
        print(f"{kind:11s} {result['statements_per_s']:8.0f} statements/s  batch p50 "
              f"{result['batch_p50_ms']:6.1f} ms  p95 {result['batch_p95_ms']:6.1f} ms  max "
              f"{result['batch_max_ms']:6.1f} ms  query p95 {result['query_p95_ms']:5.1f} ms  "
              f"stored {result['stored']}/{result['posted']} exactly once: "
              f"{result['exactly_once']}  {'PASS' if passed else 'FAIL'}")
    print(f"Targets (>= {TARGET_RATE:.0f} statements/s, p95 < {TARGET_P95_MS:.0f} ms per batch "
          f"of 100, each stored once): {'PASS' if ok else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
