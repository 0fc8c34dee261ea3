"""District scale on real parts: two app servers (gunicorn, separate processes) behind a
round-robin proxy, one PostgreSQL, huey on a real Redis with a real consumer process, the
sign-in rate limiter's counts on that Redis too.

Students answer through the proxy (so through both servers at once) while an administrator
queues a calibration run on one server and follows it on the other until the worker has run it.
Afterwards the database holds exactly what the clients were told.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from api.demo import DEMO_PASSWORD
from bench.cluster import (
    HOST,
    AppServer,
    JobWorker,
    Ledger,
    RedisServer,
    RoundRobinProxy,
    Student,
    add_students,
    calibration_csv,
    post_file,
    run_students,
    sign_in_all,
    verify,
    wait_for_answers,
)

STUDENTS = 30
ANSWERS = 300


@pytest.mark.postgres
def test_two_servers_one_database_one_queue(postgres_url: str, redis_server: RedisServer,
                                            tmp_path: Path) -> None:
    from evidence.models import Attempt, Response
    from item_bank.models import CalibrationRun

    started = time.perf_counter()
    test_id, usernames = add_students(postgres_url, STUDENTS)
    shared = {"HUEY_URL": redis_server.url, "CAT_ENGINE_RATELIMIT_STORAGE": redis_server.url}
    secret = "district-secret-key-shared-by-every-app-server"
    servers = [AppServer(postgres_url, tmp_path / f"app{k}", workers=1, secret_key=secret,
                         env=shared) for k in (1, 2)]
    ledger = Ledger()
    with (servers[0], servers[1],
          JobWorker(postgres_url, redis_server.url, tmp_path / "worker") as worker,
          RoundRobinProxy([(HOST, s.port) for s in servers]) as proxy):
        students = [Student(proxy.port, name, DEMO_PASSWORD, ledger, seed=k)
                    for k, name in enumerate(usernames)]
        sign_in_all(students)
        stop = threading.Event()
        threads = run_students(students, test_id, stop, pause=0.02)
        try:
            # An administrator queues a calibration run on the first server...
            admin_a = Student(servers[0].port, "admin1", DEMO_PASSWORD, ledger)
            admin_a.sign_in()
            status, upload = post_file(servers[0].port, admin_a.token,
                                       "/api/v1/calibration/uploads", "district.csv",
                                       calibration_csv(postgres_url))
            assert status == 201, upload
            status, run = admin_a.call("POST", "/api/v1/calibration/runs",
                                       {"kind": "upload", "upload_id": upload["id"],
                                        "model": "2pl"})
            assert status == 202 and run["status"] == "queued", run
            # ...and follows it on the second, while the students go on.
            admin_b = Student(servers[1].port, "admin1", DEMO_PASSWORD, ledger)
            admin_b.sign_in()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                status, seen = admin_b.call("GET", f"/api/v1/calibration/runs/{run['id']}")
                assert status == 200, seen
                if seen["status"] in ("succeeded", "failed"):
                    break
                time.sleep(0.2)
            wait_for_answers(ledger, max(0, ANSWERS - ledger.acknowledged), 60)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        served = dict(proxy.served)
    assert not ledger.errors, ledger.errors[:10]
    assert seen["status"] == "succeeded", seen
    assert seen["summary"]["n_estimated"] == 10

    counts = verify(postgres_url, ledger)
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            attempts = connection.scalar(select(func.count(Attempt.id)).where(
                Attempt.id.in_(list(ledger.attempts))))
            responses = connection.scalar(select(func.count(Response.id)).where(
                Response.attempt_id.in_(list(ledger.attempts))))
            ran_on = connection.scalar(select(CalibrationRun.worker).where(
                CalibrationRun.id == run["id"]))
    finally:
        engine.dispose()
    print(f"\ndistrict: {STUDENTS} students through the proxy, "
          f"{time.perf_counter() - started:.1f} s; requests per server {served}; "
          f"answers acknowledged {counts['acknowledged']}, stored {responses}; attempts "
          f"{len(ledger.attempts)}, stored {attempts}; calibration run {run['id']} "
          f"{seen['status']} on {ran_on}: {seen['message']}")
    assert counts["acknowledged"] >= ANSWERS
    assert len(served) == 2 and min(served.values()) > 0.3 * sum(served.values())
    assert attempts == len(ledger.attempts)
    assert responses == counts["acknowledged"] == counts["stored"]
    assert counts["lost"] == counts["duplicated"] == counts["unacknowledged"] == 0
    assert counts["gaps"] == counts["mismatched"] == counts["unusable"] == 0
    assert ran_on == f"{socket.gethostname()}:{worker.process.pid}"[:200]
