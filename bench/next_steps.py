"""The next steps of a student report, on the demo school, on SQLite and PostgreSQL.

``python -m bench.next_steps [--items 320]`` builds the demo school (``api.demo.build_demo``: 30
students who took a six-skill check-up, a bank of ``--items`` operational items), makes every
student's report as an administrator (which calls :func:`reports.next_steps.next_steps` once),
then times ``next_steps`` alone on each of the 30 reports (one warm-up pass, then 3 timed) and
reports the median and the slowest call in milliseconds, and the median report for comparison.

PostgreSQL is the server of ``TEST_DATABASE_URL`` (a fresh database, dropped at the end);
without it only SQLite runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bench.databases import postgres_base, scratch_database

OUT = Path(__file__).resolve().parent / "out"


def measure(url: str, n_items: int, passes: int = 3) -> dict:
    from sqlalchemy import select

    from api.demo import build_demo
    from reports.next_steps import next_steps
    from reports.report import student_report
    from storage import make_engine, session_factory
    from storage.accounts import Role, User

    engine = make_engine(url)
    build_demo(engine, n_items=n_items)
    try:
        with session_factory(engine)() as session:
            admin = session.scalar(select(User).where(User.role == Role.ADMIN))
            students = list(session.scalars(select(User.id).where(User.role == Role.STUDENT)))
            reports, report_ms = [], []
            for student_id in students:
                started = time.perf_counter()
                reports.append(student_report(session, admin, student_id))
                report_ms.append(1000 * (time.perf_counter() - started))
            calls: list[float] = []
            n_suggestions = 0
            for k in range(passes + 1):
                for report in reports:
                    started = time.perf_counter()
                    steps = next_steps(session, report)
                    if k:
                        calls.append(1000 * (time.perf_counter() - started))
                        n_suggestions += sum(len(v) for v in steps.values())
    finally:
        engine.dispose()
    return {"items": n_items, "students": len(students),
            "next_steps_median_ms": round(statistics.median(calls), 2),
            "next_steps_max_ms": round(max(calls), 2),
            "report_median_ms": round(statistics.median(report_ms), 1),
            "suggestions_per_report": round(n_suggestions / len(calls), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=320, help="items in the demo bank")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    kinds = ["sqlite"] + (["postgresql"] if postgres_base() else [])
    results = {}
    for kind in kinds:
        with scratch_database(kind, "cat_bench_next_steps") as url:
            results[kind] = row = measure(url, args.items)
        print(f"{kind:10s} {row['items']} items, {row['students']} students: next_steps "
              f"median {row['next_steps_median_ms']:.1f} ms (max {row['next_steps_max_ms']:.1f}"
              f" ms), {row['suggestions_per_report']} suggestions a report; the whole report "
              f"median {row['report_median_ms']:.0f} ms", flush=True)
    OUT.mkdir(exist_ok=True)
    (args.json or OUT / "next_steps.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
