"""A rubric calibration of 2,000 students, end to end, on SQLite and PostgreSQL.

``python -m bench.rubric_calibration`` builds, on each database, the API tests' school (a 60-item
2PL bank) and 2,000 students with a finished attempt of 15 answers and a defense scored on 4
criteria of 4 levels by 2 of 6 raters (rows inserted directly; the truth as in
``tests/evidence/rubric_world.py``), then times :func:`evidence.rubric_calibration.
run_rubric_calibration` (gathering the answers and ratings, the fixed-parameter calibration with
standard errors, storing the draft) three times and reports each run and the calibration's own
share. This decides whether the API runs it synchronously (a couple of seconds at most) or
through the job queue.

PostgreSQL is the server of ``TEST_DATABASE_URL`` (a fresh database, dropped at the end);
without it only SQLite runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from sqlalchemy import text

from bench.databases import postgres_base, scratch_database

N_STUDENTS = 2000
REPEATS = 3


def measure(url: str, n_students: int) -> dict:
    from evidence.rubric_calibration import run_rubric_calibration
    from storage import make_engine, session_factory
    from storage.accounts import User
    from tests.api.conftest import build_world
    from tests.evidence.rubric_world import fill

    ids = build_world(url)
    engine = make_engine(url)
    session = session_factory(engine)()
    started = time.perf_counter()
    world = fill(session, test_id=ids["test_id"], class_id=ids["class_id"],
                 n_students=n_students)
    session.commit()
    if engine.dialect.name == "postgresql":  # what autovacuum does after a bulk load
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    filled = time.perf_counter() - started
    assessor = session.get(User, ids["users"]["assessor1"])
    runs, inner = [], []
    for _ in range(REPEATS):
        started = time.perf_counter()
        calibration = run_rubric_calibration(session, world.version_id, user=assessor)
        session.commit()
        runs.append(time.perf_counter() - started)
        inner.append(calibration.provenance["seconds"])
    session.close()
    engine.dispose()
    return {"students": n_students, "fill_seconds": round(filled, 2),
            "run_seconds": [round(s, 3) for s in runs],
            "calibration_seconds": [round(s, 3) for s in inner],
            "iterations": calibration.provenance["iterations"],
            "ratings": calibration.provenance["ratings"],
            "responses": calibration.provenance["responses"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=N_STUDENTS)
    args = parser.parse_args(argv)
    results = {}
    with scratch_database("sqlite", "cat_bench_rubric") as url:
        results["sqlite"] = measure(url, args.students)
    if postgres_base():
        with scratch_database("postgresql", "cat_bench_rubric") as url:
            results["postgresql"] = measure(url, args.students)
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
