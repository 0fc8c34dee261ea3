"""Faults under load: students answering while a gunicorn worker, then the whole server, then
PostgreSQL are killed or restarted. Nothing acknowledged may be lost or stored twice, and every
attempt must go on afterwards.

The app runs as in production (``cat-engine serve``: gunicorn, gthread workers) on a private
PostgreSQL cluster; the students are threads here, each on a keep-alive connection, retrying a
request on a connection error or a 503 (an answer with the same ``Idempotency-Key``) until it is
acknowledged.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from api.demo import DEMO_PASSWORD
from bench.cluster import (
    AppServer,
    Ledger,
    PrivatePostgres,
    Student,
    add_students,
    resume_all,
    run_students,
    sign_in_all,
    verify,
    wait_for_answers,
)

STUDENTS = 40
#: Answers acknowledged between two faults (each fault must be recovered from to get them).
BETWEEN = 60
#: Seconds a phase may take to reach BETWEEN answers before the run is called stuck.
PHASE_SECONDS = 30.0


@pytest.mark.postgres
def test_faults_under_load_lose_nothing(private_postgres: PrivatePostgres,
                                        tmp_path: Path) -> None:
    started = time.perf_counter()
    url = private_postgres.create_database("cat_faults")
    test_id, usernames = add_students(url, STUDENTS)
    ledger = Ledger()
    with AppServer(url, tmp_path / "app", workers=2) as app:
        students = [Student(app.port, name, DEMO_PASSWORD, ledger, seed=k)
                    for k, name in enumerate(usernames)]
        sign_in_all(students)
        stop = threading.Event()
        threads = run_students(students, test_id, stop, pause=0.05)
        try:
            phases = {"before the faults": wait_for_answers(ledger, BETWEEN, PHASE_SECONDS)}

            killed = app.kill_worker()
            phases["after kill -9 of a worker"] = wait_for_answers(ledger, BETWEEN,
                                                                   PHASE_SECONDS)
            assert killed not in app.worker_pids() and len(app.worker_pids()) == 2

            old = app.kill()
            restart_seconds = app.start()
            assert not set(old) & {app.process.pid, *app.worker_pids()}
            phases["after kill -9 of the whole server"] = wait_for_answers(
                ledger, BETWEEN, PHASE_SECONDS)

            pg_seconds = private_postgres.restart("immediate")
            phases["after the PostgreSQL restart"] = wait_for_answers(ledger, BETWEEN,
                                                                      PHASE_SECONDS)
        finally:
            stop.set()
            for thread in threads:
                thread.join(90)
        assert not ledger.errors, ledger.errors[:10]
        resumed = resume_all(app.port, ledger, DEMO_PASSWORD)
    counts = verify(url, ledger)
    print(f"\nfaults under load, {STUDENTS} students, {time.perf_counter() - started:.1f} s: "
          f"server restart {restart_seconds:.1f} s, PostgreSQL restart {pg_seconds:.1f} s")
    for phase, n in phases.items():
        print(f"  answers acknowledged {phase}: {n}")
    print(f"  acknowledged {counts['acknowledged']}, retried {counts['retried']} "
          f"({dict(ledger.statuses)}), lost {counts['lost']}, duplicated {counts['duplicated']}"
          f", attempts {counts['attempts']} (resumed {resumed['resumed']}, finished "
          f"{resumed['finished']}, unusable {counts['unusable'] + resumed['failed']})")

    assert all(n >= BETWEEN for n in phases.values()), phases  # each fault was recovered from
    assert ledger.retried > 0  # the faults were felt by the clients
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["unacknowledged"] == 0
    assert counts["gaps"] == 0 and counts["mismatched"] == 0
    assert counts["stored"] == counts["acknowledged"]
    assert counts["unusable"] == 0 and resumed["failed"] == 0
    assert resumed["resumed"] + resumed["finished"] == counts["attempts"] == len(ledger.attempts)
    assert not ledger.errors, ledger.errors[:10]
