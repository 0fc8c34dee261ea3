"""A student's data export (the right of access): server time, on SQLite and PostgreSQL.

    python -m bench.export [--attempts 50] [--repeat 20]

Builds the demo school (``api.demo.build_demo``), gives ``student1`` ``--attempts`` more
attempts through the same services as the API (``api.demo.take_test``: real responses and
statements, one a day back from today), then times :func:`rights.export.student_export` as an
administrator: the first call, and ``--repeat`` more (median and 95th percentile of the wall
time; each call's audit entry rolled back). Also reports the document's size in JSON.
PostgreSQL is the server of ``TEST_DATABASE_URL`` (a scratch database, dropped at the end).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta

import numpy as np

from bench.databases import postgres_base, scratch_database


def run(url: str, attempts: int, repeat: int) -> dict[str, float]:
    from sqlalchemy import select

    from api.demo import build_demo, take_test
    from item_bank.models import AdaptiveTest
    from rights.export import student_export
    from storage import make_engine, session_factory, session_scope, utcnow
    from storage.accounts import Role, User

    engine = make_engine(url)
    build_demo(engine)
    rng = np.random.default_rng(16)
    with session_scope(session_factory(engine)) as session:
        student = session.scalar(select(User).where(User.username == "student1"))
        test = session.scalar(select(AdaptiveTest))
        now = utcnow()
        for day in range(attempts):
            take_test(session, student, test.id, 0.5, now - timedelta(days=day + 1), rng)
    factory = session_factory(engine)
    times = []
    with factory() as session:
        admin = session.scalar(select(User).where(User.role == Role.ADMIN))
        sid = session.scalar(select(User.id).where(User.username == "student1"))
        for _ in range(repeat + 1):
            start = time.perf_counter()
            document = student_export(session, admin, sid)
            times.append((time.perf_counter() - start) * 1000)
            session.rollback()
    engine.dispose()
    warm = sorted(times[1:])
    return {"attempts": len(document["attempts"]),
            "responses": sum(len(a["responses"]) for a in document["attempts"]),
            "statements": len(document["statements"]),
            "json_kb": round(len(json.dumps(document)) / 1024, 1),
            "first_ms": round(times[0], 1), "median_ms": round(statistics.median(warm), 1),
            "p95_ms": round(warm[int(0.95 * (len(warm) - 1))], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    kinds = ["sqlite"] + (["postgresql"] if postgres_base() else [])
    for kind in kinds:
        with scratch_database(kind, "cat_bench_export") as url:
            result = run(url, args.attempts, args.repeat)
        print(f"{kind:10s} " + "  ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
