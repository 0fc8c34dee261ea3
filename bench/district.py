"""Answers per second with one and with two app servers behind a proxy (district shape).

``python -m bench.district`` creates a fresh PostgreSQL database on the server of
``TEST_DATABASE_URL`` (dropped at the end), fills it with the demo and ``--students`` students,
starts a Redis server (huey's queue and the rate limiter's counts, as in a district), and for
each number of app servers asked for (``--servers 1 2``) starts that many ``cat-engine serve``
processes (gunicorn, ``--workers`` gthread workers each) behind the round-robin proxy of
:mod:`bench.cluster`, run as a process of its own. The students (threads here, one keep-alive
connection each to the proxy) sign in, then answer as fast as they can for a warm-up and a
measured window. It reports answers acknowledged per second in the window, the latency the
clients saw (p50/p95), how the proxy spread the requests, and checks the database: every
acknowledged answer stored exactly once.

On one machine the servers share its cores with PostgreSQL, the proxy and the clients: a second
server cannot add CPU, so the second row mostly shows that nothing breaks with two. Results go
to ``bench/out/district.json``; see bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from api.demo import DEMO_PASSWORD
from bench.cluster import (
    HOST,
    ROOT,
    AppServer,
    Ledger,
    RedisServer,
    Student,
    _stop,
    _wait_for,
    add_students,
    free_port,
    run_students,
    sign_in_all,
    verify,
)
from bench.http_attempts import bench_database

OUT = Path(__file__).resolve().parent / "out"


def _proxy(backends: list[int], folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = folder / f"proxy-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.cluster", str(port),
             *(f"{HOST}:{p}" for p in backends)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    _wait_for(lambda: "proxy on" in log.read_text(), 30, "proxy", process, log)
    return process, port


def measure(url: str, test_id: int, usernames: list[str], n_servers: int, workers: int,
            redis_url: str, warmup: float, duration: float, folder: Path,
            ledger: Ledger) -> dict:
    """One row: ``n_servers`` app servers behind the proxy, the students for warm-up +
    duration. ``ledger`` is shared by the rows (a student resumes the attempt a row before
    left in progress), and checked against the database after the last."""
    env = {"HUEY_URL": redis_url, "CAT_ENGINE_RATELIMIT_STORAGE": redis_url}
    servers = [AppServer(url, folder / f"s{n_servers}-{k}", workers=workers,
                         secret_key="bench-district", env=env) for k in range(n_servers)]
    for server in servers:
        server.start()
    proxy, port = _proxy([s.port for s in servers], folder)
    first_error = len(ledger.errors)
    try:
        students = [Student(port, name, DEMO_PASSWORD, ledger, seed=k)
                    for k, name in enumerate(usernames)]
        sign_in_all(students)
        stop = threading.Event()
        threads = run_students(students, test_id, stop)
        time.sleep(warmup)
        before, n_before = time.perf_counter(), ledger.acknowledged
        time.sleep(duration)
        window, answered = time.perf_counter() - before, ledger.acknowledged - n_before
        with ledger.lock:
            latencies = np.array(ledger.latencies[-max(answered, 1):]) * 1000
        stop.set()
        for thread in threads:
            thread.join(60)
        served = [_served(s) for s in servers]
    finally:
        _stop(proxy)
        for server in servers:
            server.stop()
    p50, p95 = np.percentile(latencies, [50, 95]) if latencies.size else (0.0, 0.0)
    return {"servers": n_servers, "workers_each": workers, "students": len(usernames),
            "answers_per_second": round(answered / window, 1), "p50_ms": round(float(p50), 1),
            "p95_ms": round(float(p95), 1), "answers_in_window": answered,
            "requests_per_server": served, "errors": ledger.errors[first_error:][:5]}


def _served(server: AppServer) -> int:
    """Requests the server's access log shows (answers, starts and sign-ins)."""
    return sum(1 for line in server.log.read_text(errors="replace").splitlines()
               if '"POST /api/v1/' in line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.district", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--servers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=15.0)
    args = parser.parse_args(argv)
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        print("set TEST_DATABASE_URL (a PostgreSQL role that may create databases)",
              file=sys.stderr)
        return 2
    rows, ledger = [], Ledger()
    with (bench_database(base) as (url, _name), RedisServer() as redis,
          tempfile.TemporaryDirectory(prefix="cat-district-") as tmp):
        test_id, usernames = add_students(url, args.students)
        for n in args.servers:
            row = measure(url, test_id, usernames, n, args.workers, redis.url, args.warmup,
                          args.duration, Path(tmp), ledger)
            rows.append(row)
            print(f"{n} server(s) x {args.workers} workers, {args.students} students: "
                  f"{row['answers_per_second']} answers/s, p50 {row['p50_ms']} ms, "
                  f"p95 {row['p95_ms']} ms; requests per server {row['requests_per_server']}",
                  flush=True)
        counts = verify(url, ledger)
    check = {k: counts[k] for k in ("acknowledged", "stored", "lost", "duplicated",
                                    "unacknowledged", "gaps", "mismatched", "retried")}
    ok = (not ledger.errors and counts["acknowledged"] == counts["stored"]
          and counts["lost"] == counts["duplicated"] == counts["unacknowledged"] == 0
          and counts["gaps"] == counts["mismatched"] == 0)
    print(f"database check over all rows: {check} -> {'ok' if ok else 'FAILED'}")
    OUT.mkdir(exist_ok=True)
    (OUT / "district.json").write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
        "python": platform.python_version(), "args": vars(args), "rows": rows,
        "check": check, "ok": ok},
        indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
