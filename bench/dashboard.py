"""The class dashboard of a class of 30, on SQLite and PostgreSQL.

``python -m bench.dashboard`` builds the demo school (``api.demo.build_demo``: 30 students, a
six-skill adaptive check-up, a rubric with a published calibration), puts all 30 students in one
class of ``teacher1``, lets every student take the check-up five times in all (the demo's two,
then three more, 30, 20 and 3 days ago, a little stronger each time) and defend twice (scored by
``teacher1`` on every criterion, 25 and 4 days ago). It then times
:func:`reports.dashboard.class_dashboard` for that class (2 warm-up runs, then 5 timed) and
reports the median and the slowest in seconds, how many student reports it asked for (the
reports now, and at earlier moments for the gain and the time to mastery) and their mean time.

PostgreSQL is the server of ``TEST_DATABASE_URL`` (a fresh database, dropped at the end);
without it only SQLite runs. Target (issue 15): a class of 30 well under 5 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

from bench.databases import postgres_base, scratch_database

OUT = Path(__file__).resolve().parent / "out"
TARGET_S = 5.0
EXTRA_ATTEMPT_DAYS = (30, 20, 3)
DEFENSE_DAYS = (25, 4)


def fill(url: str, seed: int = 15) -> dict[str, int]:
    """Build the school; returns the class id and the teacher id."""
    from sqlalchemy import select

    from api.demo import DEMO_RUBRIC_NAME, build_demo, take_test
    from evidence import defenses
    from evidence.models import Assignment, Rubric
    from item_bank.models import AdaptiveTest
    from storage import make_engine, session_factory, session_scope, utcnow
    from storage.accounts import Role, SchoolClass, User

    engine = make_engine(url)
    build_demo(engine)
    rng = np.random.default_rng(seed)
    with session_scope(session_factory(engine)) as session:
        teacher = session.scalar(select(User).where(User.username == "teacher1"))
        students = list(session.scalars(select(User).where(User.role == Role.STUDENT)
                                        .order_by(User.id)))
        test = session.scalar(select(AdaptiveTest))
        klass = SchoolClass(name="Year 10 Maths (bench)", teacher=teacher, students=students)
        session.add(klass)
        session.flush()
        session.add(Assignment(class_id=klass.id, test_id=test.id))
        session.flush()
        now = utcnow()
        theta = rng.normal(0.0, 1.0, len(students))
        for n, days in enumerate(EXTRA_ATTEMPT_DAYS):
            for student, ability in zip(students, theta, strict=True):
                take_test(session, student, test.id, float(ability + 0.2 * (n + 2)),
                          now - timedelta(days=days), rng)
        rubric = session.scalar(select(Rubric).where(Rubric.name == DEMO_RUBRIC_NAME))
        criteria = rubric.versions[-1].criteria
        for days in DEFENSE_DAYS:
            for student, ability in zip(students, theta, strict=True):
                defense = defenses.schedule(
                    session, teacher, klass.id, student.id, rubric.id, title="Bench defense",
                    scheduled_at=now - timedelta(days=days), raters=[teacher.id])
                level = int(np.clip(np.round(2.5 + ability + rng.normal(0, 0.7)), 1, 4))
                defenses.submit_sheet(session, teacher, defense, {
                    c.id: {"score": int(np.clip(level + rng.integers(-1, 2), 1, 4)),
                           "note": ""} for c in criteria})
        session.flush()
        ids = {"class_id": klass.id, "teacher_id": teacher.id, "n_students": len(students)}
    engine.dispose()
    return ids


def measure(url: str, ids: dict[str, int], warmup: int = 2, runs: int = 5) -> dict:
    """Time the dashboard of the class; count the student reports it asks for."""
    import reports.report as report_module
    from reports.dashboard import class_dashboard
    from storage import make_engine, session_factory
    from storage.accounts import User

    engine = make_engine(url)
    timings: list[float] = []
    calls: list[float] = []
    original = report_module.student_report

    def counted(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            calls.append(time.perf_counter() - started)

    report_module.student_report = counted
    try:
        with session_factory(engine)() as session:
            teacher = session.get(User, ids["teacher_id"])
            for k in range(warmup + runs):
                calls.clear()
                started = time.perf_counter()
                out = class_dashboard(session, teacher, ids["class_id"])
                if k >= warmup:
                    timings.append(time.perf_counter() - started)
    finally:
        report_module.student_report = original
        engine.dispose()
    return {"students": out["n_students"], "skills": len(out["skills"]),
            "median_s": round(statistics.median(timings), 3), "max_s": round(max(timings), 3),
            "reports": len(calls), "report_mean_ms": round(1000 * statistics.mean(calls), 1),
            "reports_share": round(sum(calls) / timings[-1], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    kinds = ["sqlite"] + (["postgresql"] if postgres_base() else [])
    results = {}
    for kind in kinds:
        with scratch_database(kind, "cat_bench_dashboard") as url:
            started = time.perf_counter()
            ids = fill(url)
            built = time.perf_counter() - started
            results[kind] = {"build_s": round(built, 1), **measure(url, ids)}
        row = results[kind]
        print(f"{kind:10s} {row['students']} students, {row['skills']} skills: dashboard "
              f"median {row['median_s']:.2f} s (max {row['max_s']:.2f} s; target < {TARGET_S} s)"
              f"; {row['reports']} student reports, {row['report_mean_ms']:.0f} ms each, "
              f"{100 * row['reports_share']:.0f}% of the time", flush=True)
    OUT.mkdir(exist_ok=True)
    (args.json or OUT / "dashboard.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["median_s"] < TARGET_S for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
