"""Adaptive tests over HTTP: PostgreSQL behind gunicorn, simulated students on loopback.

``python -m bench.http_attempts`` creates a fresh PostgreSQL database on the server of
``TEST_DATABASE_URL`` (dropped at the end), fills it with the demo (320 items, the adaptive demo
test assigned to the students), and serves ``bench.http_app:app`` with gunicorn (gthread workers).
Then, for each number of students asked for:

1. **answers**: N simulated students, one thread and one keep-alive connection each, sign in
   once and loop as fast as they can: ``POST /api/v1/attempts``, answer every item with a random
   option and a fresh ``Idempotency-Key`` until the attempt finishes, start again. Every 50th
   answer is sent twice with the same key (a deliberate replay, which must return the same reply
   and record nothing). A warm-up runs first; only requests that end inside the measured window
   count.
2. **bare**: the same N connections post to ``/bench/bare`` (Flask on the same gunicorn, no
   database) for the same time.

It reports answered items per second, answer latency (p50/p95/p99, measured by the client from
sending the request to reading the whole reply), starts separately, the bare endpoint's requests
per second and latency, and the CPU seconds taken by the client, the gunicorn workers and the
PostgreSQL backends. Afterwards it counts in the database: every answer acknowledged with 200
must be stored exactly once (by its Idempotency-Key), no replay may add a row, and each attempt's
positions must run 1..n without gaps.

``--profile`` adds a run with ``BENCH_TIMING`` (SQL round trips and named sections per request,
see :mod:`bench.http_app`) and one with cProfile in a single one-thread worker.

Targets (issue 5): at least 300 answered items per second with p95 at most 50 ms, and no lost or
duplicated response.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import pstats
import random
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"
SOURCES = ("evidence/attempts.py", "api/v1/attempts.py", "api/v1/auth.py", "api/db.py",
           "item_bank/services.py", "storage/database.py", "cat_engine/session.py")
TARGET_RATE = 300.0
TARGET_P95_MS = 50.0
REPLAY_EVERY = 50
HOST = "127.0.0.1"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


# -- the database --------------------------------------------------------------------------------


@contextmanager
def bench_database(base_url: str):
    """A new, empty PostgreSQL database on ``base_url``'s server; dropped on the way out."""
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    name = f"cat_bench_http_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False), name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepare(url: str, n_students: int) -> tuple[int, list[str], float]:
    """Build the demo, add students beyond the demo's 30, store the test's snapshot.

    Returns
    -------
    test_id, usernames, seconds
        The demo test, the students' usernames (``student1``...), the time the build took.
    """
    from api.demo import build_demo
    from item_bank.models import AdaptiveTest
    from item_bank.services import current_snapshot
    from storage import make_engine, session_factory, session_scope
    from storage.accounts import Role, SchoolClass, User

    started = time.perf_counter()
    engine = make_engine(url)
    try:
        build_demo(engine, n_items=320)
        with session_scope(session_factory(engine)) as session:
            first = session.scalar(select(User).where(User.username == "student1"))
            have = session.scalar(select(func.count(User.id)).where(User.role == Role.STUDENT))
            if n_students > have:
                school_class = session.scalar(select(SchoolClass).order_by(SchoolClass.id))
                for i in range(have + 1, n_students + 1):
                    school_class.students.append(User(
                        username=f"student{i}", display_name=f"Student {i}", role=Role.STUDENT,
                        password_hash=first.password_hash))
            test = session.scalar(select(AdaptiveTest))
            current_snapshot(session, test)  # stored now, not raced for by the first starts
            test_id = test.id
    finally:
        engine.dispose()
    return test_id, [f"student{i}" for i in range(1, n_students + 1)], \
        time.perf_counter() - started


# -- the server ----------------------------------------------------------------------------------


def reference_ms(repeats: int = 5) -> float:
    """CPU ms of a fixed pure-Python workload (best of ``repeats``): how fast this machine runs
    Python right now, to compare runs made on a busy or a quiet machine."""
    best = float("inf")
    document = {"items": [{"id": i, "stem": "x" * 40, "options": ["a", "b", "c", "d"]}
                          for i in range(50)]}
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(200):
            json.loads(json.dumps(document))
        best = min(best, time.process_time() - started)
    return 1000 * best


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def machine_busy() -> tuple[float, float]:
    """Cumulative (busy, total) jiffies of all CPUs, from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class Server:
    """gunicorn serving ``bench.http_app:app`` on a loopback port."""

    url: str
    workers: int
    threads: int
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
                "--workers", str(self.workers), "--threads", str(self.threads),
                "--bind", f"{HOST}:{self.port}", "--log-level", "warning",
                "--chdir", str(ROOT), "bench.http_app:app"]

    def __enter__(self) -> Server:
        self.port = free_port()
        env = {**os.environ, "DATABASE_URL": self.url, "SECRET_KEY": secrets.token_hex(16),
               **self.env_extra}
        self.process = subprocess.Popen(self.command(), env=env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            pids = self.worker_pids()
            # Every worker must have booted (imported the app) and answered, or the first one
            # up would take every keep-alive connection of the next phase.
            if len(pids) == self.workers and {str(p) for p in pids} <= self._answering():
                return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("gunicorn did not come up (all workers answering) within 60 s")

    def _answering(self) -> set[str]:
        """The workers that answer a burst of requests on fresh connections."""
        seen: set[str] = set()

        def probe() -> None:
            try:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=5)
                connection.request("POST", "/bench/bare", body=b"{}",
                                   headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    seen.add(response.getheader("X-Worker"))
                connection.close()
            except OSError:
                pass

        probes = [threading.Thread(target=probe) for _ in range(4 * self.workers)]
        for thread in probes:
            thread.start()
        for thread in probes:
            thread.join()
        return seen

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid) if self.process else []

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- the simulated students ----------------------------------------------------------------------


@dataclass
class Ledger:
    """What the clients were told, to compare with the database afterwards."""

    keys: set[str] = field(default_factory=set)  # answers acknowledged with 200
    per_attempt: Counter = field(default_factory=Counter)
    created: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)
    presented: int = 0  # items presented by new attempts and answers (exposure counter)
    replays: int = 0
    replays_identical: int = 0
    errors: Counter = field(default_factory=Counter)
    retries: int = 0

    def merge(self, other: Ledger) -> None:
        self.keys |= other.keys
        self.per_attempt.update(other.per_attempt)
        self.created |= other.created
        self.finished |= other.finished
        self.presented += other.presented
        self.replays += other.replays
        self.replays_identical += other.replays_identical
        self.errors.update(other.errors)
        self.retries += other.retries


class Client:
    """One keep-alive connection; ``call`` reconnects once after a dropped connection."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.connection = http.client.HTTPConnection(HOST, port, timeout=60)
        self.workers: Counter = Counter()
        self.retries = 0

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {**self.headers, **(headers or {})}
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=data, headers=all_headers)
                response = self.connection.getresponse()
                payload = response.read()
                self.workers[response.getheader("X-Worker")] += 1
                return response.status, payload
            except (http.client.HTTPException, OSError):
                if attempt == 2:
                    raise
                # A dropped keep-alive connection: resend on a new one (answers carry their
                # Idempotency-Key, so a resent answer is recorded once).
                self.retries += 1
                self.connection.close()
                self.connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


def sign_in(port: int, username: str, password: str) -> str:
    client = Client(port)
    status, payload = client.call("POST", "/api/v1/auth/token",
                                  {"username": username, "password": password})
    client.close()
    if status != 200:
        raise RuntimeError(f"sign-in of {username} failed: {status} {payload[:200]!r}")
    return json.loads(payload)["access_token"]


@dataclass
class Timeline:
    """When the phase measures, and when it stops."""

    measure_from: float
    measure_to: float
    stop: threading.Event = field(default_factory=threading.Event)


def student_loop(client: Client, test_id: int, timeline: Timeline, seed: int,
                 samples: dict[str, list], ledger: Ledger) -> None:
    """Start, answer until finished, start again, until the phase stops."""
    rng = random.Random(seed)
    answered = 0
    clock = time.perf_counter
    while not timeline.stop.is_set():
        sent = clock()
        status, payload = client.call("POST", "/api/v1/attempts", {"test_id": test_id})
        done = clock()
        samples["start"].append((sent, done, status))
        if status not in (200, 201):
            ledger.errors[f"start {status}"] += 1
            time.sleep(0.05)
            continue
        reply = json.loads(payload)
        attempt_id = reply["id"]
        if status == 201:
            ledger.created.add(attempt_id)
            ledger.presented += 1
        while reply["status"] == "in_progress" and not timeline.stop.is_set():
            item = reply["item"]
            options = item.get("categories") or len(item["options"])
            body = {"item_id": item["id"], "response": rng.randrange(options)}
            key = uuid.uuid4().hex
            path = f"/api/v1/attempts/{attempt_id}/responses"
            headers = {"Idempotency-Key": key}
            sent = clock()
            status, payload = client.call("POST", path, body, headers)
            done = clock()
            samples["answer"].append((sent, done, status))
            if status != 200:
                ledger.errors[f"answer {status}: {payload[:120]!r}"] += 1
                break  # start again: the start resumes the attempt where it stands
            answered += 1
            ledger.keys.add(key)
            ledger.per_attempt[attempt_id] += 1
            reply = json.loads(payload)
            if reply["status"] == "in_progress":
                ledger.presented += 1
            else:
                ledger.finished.add(attempt_id)
            if answered % REPLAY_EVERY == 0:
                sent = clock()
                again, replayed = client.call("POST", path, body, headers)
                samples["replay"].append((sent, clock(), again))
                ledger.replays += 1
                if again == 200 and json.loads(replayed) == reply:
                    ledger.replays_identical += 1
                else:
                    ledger.errors[f"replay {again}"] += 1


def bare_loop(client: Client, timeline: Timeline, seed: int, samples: dict[str, list],
              ledger: Ledger) -> None:
    """Post to the bare endpoint as fast as possible until the phase stops."""
    clock = time.perf_counter
    n = seed
    while not timeline.stop.is_set():
        n += 1
        sent = clock()
        status, _payload = client.call("POST", "/bench/bare", {"n": n})
        samples["bare"].append((sent, clock(), status))
        if status != 200:
            ledger.errors[f"bare {status}"] += 1


def _guarded(target, args: tuple, ledger: Ledger) -> None:
    """Run a client loop; a failure is counted (and fails the check), not lost with the thread."""
    try:
        target(*args)
    except Exception as error:  # any failure of a client is a finding
        ledger.errors[f"client {error.__class__.__name__}: {error}"] += 1


def postgres_backends(admin_url: str, database: str) -> list[int]:
    engine = create_engine(admin_url)
    try:
        with engine.connect() as connection:
            return list(connection.scalars(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :name "
                "AND pid <> pg_backend_pid()"), {"name": database}))
    finally:
        engine.dispose()


def run_phase(kind: str, server: Server, tokens: list[str], test_id: int, warmup: float,
              duration: float, admin_url: str, database: str) -> dict[str, Any]:
    """N students (one per token) against ``kind`` ("answers" or "bare") for warm-up + duration."""
    clients = [Client(server.port, token) for token in tokens]
    ledger_parts = [Ledger() for _ in tokens]
    samples = [defaultdict(list) for _ in tokens]
    start = time.perf_counter() + 0.2
    timeline = Timeline(start + warmup, start + warmup + duration)
    threads = []
    for i, client in enumerate(clients):
        if kind == "answers":
            target, args = student_loop, (client, test_id, timeline, 1000 * i + 7, samples[i],
                                          ledger_parts[i])
        else:
            target, args = bare_loop, (client, timeline, 1000 * i, samples[i], ledger_parts[i])
        threads.append(threading.Thread(target=_guarded, args=(target, args, ledger_parts[i]),
                                        daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, timeline.measure_from - time.perf_counter()))
    # CPU accounting over the measured window only.
    backends = postgres_backends(admin_url, database)
    pids = {"gunicorn workers": server.worker_pids(), "postgres backends": backends}
    cpu_before = {name: {p: cpu_seconds(p) for p in group} for name, group in pids.items()}
    client_before = _own_cpu()
    busy_before = machine_busy()
    time.sleep(max(0.0, timeline.measure_to - time.perf_counter()))
    client_cpu = _own_cpu() - client_before
    busy_after = machine_busy()
    backends_after = postgres_backends(admin_url, database)
    cpu = {"client": client_cpu}
    for name, group in (("gunicorn workers", server.worker_pids()),
                        ("postgres backends", backends_after)):
        cpu[name] = sum(cpu_seconds(p) - cpu_before[name].get(p, 0.0) for p in group)
    timeline.stop.set()
    for thread in threads:
        thread.join(120)
    ledger = Ledger()
    for part in ledger_parts:
        ledger.merge(part)
    workers: Counter = Counter()
    for client in clients:
        ledger.retries += client.retries
        workers.update(client.workers)
        client.close()
    merged: dict[str, list] = defaultdict(list)
    for part in samples:
        for name, values in part.items():
            merged[name].extend(values)
    busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    # CPU that neither the client, the workers nor the database's backends used: other jobs on
    # the machine (and the kernel's work for everyone).
    cpu["others (estimate)"] = max(0.0, busy * (os.cpu_count() or 1) * duration - sum(cpu.values()))
    return {
        "kind": kind, "students": len(tokens), "warmup_s": warmup, "duration_s": duration,
        "stats": {name: latency_stats(values, timeline) for name, values in merged.items()},
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "machine_busy": round(busy, 3), "cores": os.cpu_count(),
        "requests_per_worker": dict(workers),
        "ledger": ledger,
    }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def latency_stats(values: list[tuple[float, float, int]], timeline: Timeline) -> dict[str, Any]:
    """Rate and latency of the requests that ended inside the measured window."""
    inside = [(s, d, status) for s, d, status in values
              if timeline.measure_from <= d <= timeline.measure_to]
    ok = np.array([d - s for s, d, status in inside if status in (200, 201)]) * 1000
    window = timeline.measure_to - timeline.measure_from
    out: dict[str, Any] = {"n": len(inside), "ok": int(ok.size), "total_sent": len(values),
                           "per_second": ok.size / window}
    if ok.size:
        p50, p95, p99 = np.percentile(ok, [50, 95, 99])
        out |= {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
                "mean_ms": float(ok.mean()), "max_ms": float(ok.max())}
    return out


# -- checking the database -----------------------------------------------------------------------


def verify(url: str, test_id: int, ledger: Ledger) -> dict[str, Any]:
    """Count in the database what the clients were told; every check must hold."""
    from evidence.models import Attempt, AttemptStatus, Response
    from item_bank.models import ItemExposure

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            keys = set(connection.scalars(select(Response.idempotency_key)))
            rows = connection.scalar(select(func.count(Response.id)))
            duplicates = connection.scalar(select(func.count()).select_from(
                select(Response.attempt_id).group_by(Response.attempt_id, Response.position)
                .having(func.count() > 1).subquery()))
            per_attempt = {a: (n, lo, hi) for a, n, lo, hi in connection.execute(
                select(Response.attempt_id, func.count(), func.min(Response.position),
                       func.max(Response.position)).group_by(Response.attempt_id))}
            attempts = set(connection.scalars(select(Attempt.id)))
            finished = set(connection.scalars(select(Attempt.id).where(
                Attempt.status == AttemptStatus.FINISHED)))
            exposure = connection.scalar(select(func.coalesce(func.sum(
                ItemExposure.administered), 0)).where(ItemExposure.test_id == test_id))
    finally:
        engine.dispose()
    gaps = sum(1 for n, lo, hi in per_attempt.values() if lo != 1 or hi != n)
    counted = {a: v[0] for a, v in per_attempt.items()}
    mismatched = sum(1 for a in set(counted) | set(ledger.per_attempt)
                     if counted.get(a, 0) != ledger.per_attempt.get(a, 0))
    checks = {
        "acknowledged answers == response rows": (len(ledger.keys), rows),
        "lost (acknowledged, not stored)": (0, len(ledger.keys - keys)),
        "unacknowledged rows (stored, never acknowledged)": (0, len(keys - ledger.keys)),
        "duplicated (attempt, position)": (0, duplicates),
        "attempts whose positions are not 1..n": (0, gaps),
        "attempts whose row count differs from the client's": (0, mismatched),
        "attempts created (201) == attempt rows": (len(ledger.created), len(attempts)),
        "attempts seen finished == finished rows": (len(ledger.finished), len(finished)),
        "items presented == exposure counter": (ledger.presented, int(exposure)),
        "replays answered identically": (ledger.replays, ledger.replays_identical),
        "failed requests": (0, sum(ledger.errors.values())),
    }
    return {"checks": {k: {"expected": e, "found": f, "ok": e == f}
                       for k, (e, f) in checks.items()},
            "ok": all(e == f for e, f in checks.values()), "errors": dict(ledger.errors),
            "replays": ledger.replays, "retries": ledger.retries, "response_rows": rows}


# -- profiling -----------------------------------------------------------------------------------


# Sections of bench.http_app's timing that do not nest in one another (the report's top level);
# the others are parts of one of these. (Not imported from bench.http_app: importing it builds
# the app.)
TOP_SECTIONS = (
    "auth: token lookup (current_user)",
    "webargs: parse arguments",
    "service: submit_response",
    "service: start_attempt",
    "orm: Session.commit (flush + COMMIT)",
    "marshmallow: ReplySchema.dump",
    "flask: JSON response",
)


def timing_breakdown(directory: Path) -> dict[str, Any]:
    """Merge the workers' ``timing-*.json``: per request kind, ms per request for each part.

    Wall ms include waiting (PostgreSQL, locks, a busy machine); CPU ms are the worker thread's
    own work, which other jobs on the machine do not inflate much.
    """
    kinds: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("timing-*.json")):
        for kind, entry in json.loads(path.read_text())["kinds"].items():
            total = kinds.setdefault(kind, {"n": 0, "wall_s": 0.0, "cpu_s": 0.0, "walls_ms": [],
                                            "sql": {}, "sections": {}})
            for key in ("n", "wall_s", "cpu_s", "walls_ms"):
                total[key] += entry[key]
            for group in ("sql", "sections"):
                for name, values in entry[group].items():
                    value = total[group].setdefault(name, [0, 0.0, 0.0])
                    for i in range(3):
                        value[i] += values[i]
    out = {}
    for kind, total in kinds.items():
        n = total["n"]
        walls = np.array(total["walls_ms"])

        def per_request(values, n=n):
            count, wall, cpu = values
            return {"per_request": count / n, "wall_ms_each": 1000 * wall / count if count else 0,
                    "wall_ms": 1000 * wall / n, "cpu_ms": 1000 * cpu / n}

        sql = {name: per_request(v) for name, v in
               sorted(total["sql"].items(), key=lambda kv: -kv[1][1])}
        sections = {name: per_request(v) for name, v in
                    sorted(total["sections"].items(), key=lambda kv: -kv[1][2])}
        top = {k: v for k, v in sections.items() if k in TOP_SECTIONS}
        wall_ms, cpu_ms = 1000 * total["wall_s"] / n, 1000 * total["cpu_s"] / n
        top["other in-app work (Flask, flask-smorest, hooks, teardown)"] = {
            "per_request": 1.0, "wall_ms": wall_ms - sum(v["wall_ms"] for v in top.values()),
            "cpu_ms": cpu_ms - sum(v["cpu_ms"] for v in top.values())}
        out[kind] = {
            "n": n, "wall_ms_mean": wall_ms, "cpu_ms_mean": cpu_ms,
            "wall_ms_p50": float(np.percentile(walls, 50)),
            "wall_ms_p95": float(np.percentile(walls, 95)),
            "db_round_trips_per_request": sum(v["per_request"] for k, v in sql.items()
                                              if k != "ROLLBACK"),
            "db_wall_ms_per_request": sum(v["wall_ms"] for v in sql.values()),
            "db_cpu_ms_per_request": sum(v["cpu_ms"] for v in sql.values()),
            "sql": sql, "top_sections": top,
            "nested_sections": {k: v for k, v in sections.items() if k not in TOP_SECTIONS},
        }
    return out


def profile_runs(url: str, database: str, admin_url: str, tokens: list[str], test_id: int,
                 args: argparse.Namespace, ledger: Ledger) -> dict[str, Any]:
    """The timing run (same server shape) and the cProfile run (one worker, one thread)."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        n = min(args.profile_students, len(tokens))
        with Server(url, args.workers, args.threads, {"BENCH_TIMING": tmp}) as server:
            phase = run_phase("answers", server, tokens[:n], test_id, args.warmup,
                              args.profile_duration, admin_url, database)
        ledger.merge(phase.pop("ledger"))
        result["timing"] = {"students": n, "workers": args.workers, "threads": args.threads,
                            "client": phase["stats"], "kinds": timing_breakdown(directory),
                            "process_cpu_ms_per_answer": per_answer_cpu_ms(phase)}
        with Server(url, 1, 1, {"BENCH_CPROFILE": tmp}) as server:
            phase = run_phase("answers", server, tokens[:2], test_id, 1.0,
                              args.profile_duration, admin_url, database)
        ledger.merge(phase.pop("ledger"))
        stats = pstats.Stats(*[str(p) for p in directory.glob("cprofile-*.prof")],
                             stream=(buffer := StringIO()))
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        result["cprofile"] = {"students": 2, "workers": 1, "threads": 1,
                              "answers": phase["stats"].get("answer", {}).get("ok", 0),
                              "text": _trim_pstats(buffer.getvalue())}
    return result


def _trim_pstats(report: str) -> str:
    return "\n".join(line.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")
                     for line in report.splitlines() if line.strip())


def variant_runs(url: str, database: str, admin_url: str, tokens: list[str], test_id: int,
                 args: argparse.Namespace, ledger: Ledger) -> list[dict[str, Any]]:
    """Answers only, at one number of students, on a fresh server per variant (baseline first)."""
    rows = []
    n = min(args.variant_students, len(tokens))
    for variant in ["baseline", *args.variants.split(",")]:
        env = {} if variant == "baseline" else {"BENCH_VARIANT": variant.replace("+", ",")}
        print(f"variant {variant}, {n} students...", file=sys.stderr)
        with Server(url, args.workers, args.threads, env) as server:
            phase = run_phase("answers", server, tokens[:n], test_id, args.warmup,
                              args.duration, admin_url, database)
        ledger.merge(phase.pop("ledger"))
        rows.append({"variant": variant, "students": n, **phase})
    return rows


def per_answer_cpu_ms(phase: dict[str, Any]) -> dict[str, float]:
    answers = phase["stats"]["answer"]["per_second"] * phase["duration_s"]
    return {k: 1000 * v / max(1.0, answers) for k, v in phase["cpu_seconds"].items()}


def source_digests() -> dict[str, str]:
    """SHA-256 (12 hex digits) of the files whose code the answers run, as measured."""
    return {name: hashlib.sha256((ROOT / name).read_bytes()).hexdigest()[:12]
            for name in SOURCES if (ROOT / name).exists()}


# -- report --------------------------------------------------------------------------------------


def format_report(result: dict[str, Any]) -> str:
    lines = [
        f"HTTP attempts benchmark, {result['when']} (Python {result['python']}, "
        f"{result['cores']} cores, load average before {result['loadavg_before']})",
        f"gunicorn {result['gunicorn']}: {result['server']}",
        f"PostgreSQL {result['postgres']}; demo bank of 320 items, test stops at se 0.35 or "
        f"25 items; warm-up {result['warmup_s']} s, measured {result['duration_s']} s per phase",
        f"command: {result['command']}",
        f"machine: reference workload {result['reference_ms_before']:.1f} ms before, "
        f"{result['reference_ms_after']:.1f} ms after (CPU ms of a fixed Python "
        f"workload: lower is faster); load average after {result['loadavg_after']}",
        "",
        "| server | students | answers/s | p50 ms | p95 ms | p99 ms | starts/s | start p95 ms "
        "| bare req/s | bare p50 ms | bare p95 ms | answers/bare | cpu s: client / gunicorn / "
        "postgres / others | machine busy | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in result["levels"]:
        a = level["answers"]["stats"]["answer"]
        s = level["answers"]["stats"].get("start", {})
        b = level["bare"]["stats"]["bare"]
        cpu = level["answers"]["cpu_seconds"]
        lines.append(
            f"| {level['server']} | {level['students']} | {a['per_second']:.0f} | "
            f"{a['p50_ms']:.1f} | "
            f"{a['p95_ms']:.1f} | {a['p99_ms']:.1f} | {s.get('per_second', 0):.1f} | "
            f"{s.get('p95_ms', float('nan')):.1f} | {b['per_second']:.0f} | {b['p50_ms']:.1f} | "
            f"{b['p95_ms']:.1f} | {a['per_second'] / b['per_second']:.2f} | "
            f"{cpu['client']:.1f} / {cpu['gunicorn workers']:.1f} / "
            f"{cpu['postgres backends']:.1f} / {cpu['others (estimate)']:.1f} | "
            f"{100 * level['answers']['machine_busy']:.0f}% | "
            f"{'PASS' if level['meets_target'] else 'miss'} |")
    lines.append("")
    lines.append("Requests per gunicorn worker (answers phase): " + "; ".join(
        f"{level['server']} {level['students']} students: "
        + ", ".join(str(v) for v in level["answers"]["requests_per_worker"].values())
        for level in result["levels"]))
    lines.append("CPU ms per answered item (answers phase), gunicorn workers / postgres backends: "
                 + "; ".join(f"{lv['server']} {lv['students']} students: "
                             f"{per_answer_cpu_ms(lv['answers'])['gunicorn workers']:.1f} / "
                             f"{per_answer_cpu_ms(lv['answers'])['postgres backends']:.1f}"
                             for lv in result["levels"]))
    if result.get("variants"):
        lines += ["", "What-if variants (answers only, a fresh server each, same run; see "
                  "bench/http_app.py):", "",
                  "| variant | students | answers/s | p50 ms | p95 ms | p99 ms | cpu ms/answer: "
                  "gunicorn / postgres | cpu s others | machine busy | requests per worker |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in result["variants"]:
            a = row["stats"]["answer"]
            per = per_answer_cpu_ms(row)
            lines.append(
                f"| {row['variant']} | {row['students']} | {a['per_second']:.0f} | "
                f"{a['p50_ms']:.1f} | {a['p95_ms']:.1f} | {a['p99_ms']:.1f} | "
                f"{per['gunicorn workers']:.1f} / {per['postgres backends']:.1f} | "
                f"{row['cpu_seconds']['others (estimate)']:.1f} | "
                f"{100 * row['machine_busy']:.0f}% | "
                f"{', '.join(str(v) for v in row['requests_per_worker'].values())} |")
    lines.append("")
    check = result["integrity"]
    lines.append(f"Database check after all phases ({check['response_rows']} response rows, "
                 f"{check['replays']} deliberate replays, {check['retries']} resent after a "
                 "dropped connection):")
    for name, entry in check["checks"].items():
        lines.append(f"  {'ok  ' if entry['ok'] else 'FAIL'} {name}: expected "
                     f"{entry['expected']}, found {entry['found']}")
    if check["errors"]:
        lines.append(f"  errors: {check['errors']}")
    lines.append("")
    lines.append(f"Targets: >= {TARGET_RATE:.0f} answered items/s with p95 <= {TARGET_P95_MS:.0f}"
                 " ms at some number of students, and no lost or duplicated response.")
    lines.append(f"RESULT: {'PASS' if result['pass'] else 'FAIL'} - {result['verdict']}")
    profile = result.get("profile")
    if profile:
        lines += ["", f"Where the time goes (BENCH_TIMING run, {profile['timing']['students']} "
                  f"students, {profile['timing']['workers']} x {profile['timing']['threads']}; "
                  "the instruments add some time):"]
        per = profile["timing"]["process_cpu_ms_per_answer"]
        lines.append(f"  process CPU per answered item (from /proc, everything the processes did "
                     f"over the window, starts included): gunicorn workers "
                     f"{per['gunicorn workers']:.2f} ms, postgres backends "
                     f"{per['postgres backends']:.2f} ms, client {per['client']:.2f} ms")
        for kind in ("answer", "start", "bare"):
            entry = profile["timing"]["kinds"].get(kind)
            if not entry:
                continue
            lines.append(
                f"  {kind}: {entry['n']} requests; inside the app: wall mean "
                f"{entry['wall_ms_mean']:.2f} ms (p50 {entry['wall_ms_p50']:.2f}, p95 "
                f"{entry['wall_ms_p95']:.2f}), CPU {entry['cpu_ms_mean']:.2f} ms; "
                f"{entry['db_round_trips_per_request']:.1f} DB round trips: wall "
                f"{entry['db_wall_ms_per_request']:.2f} ms, CPU "
                f"{entry['db_cpu_ms_per_request']:.2f} ms")
            lines.append(f"    {'':9s}{'':56s} {'n/req':>5s}  {'wall ms':>7s}  {'cpu ms':>7s}")
            for group, rows in (("sql", entry["sql"]), ("top", entry["top_sections"]),
                                ("  nested", entry["nested_sections"])):
                for name, value in rows.items():
                    lines.append(f"    {group:9s}{name:56s} {value['per_request']:5.2f}  "
                                 f"{value['wall_ms']:7.3f}  {value['cpu_ms']:7.3f}")
        lines += ["", f"cProfile (1 worker x 1 thread, 2 students, "
                  f"{profile['cprofile']['answers']} answers):", profile["cprofile"]["text"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", default="4,8,16,24",
                        help="comma-separated numbers of concurrent students, one level each")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--compare-servers", default="",
                        help="more gunicorn shapes to run the same levels on, e.g. 4x1,4x2 "
                        "(workers x threads); variants and profiling use --workers/--threads")
    parser.add_argument("--profile", action="store_true",
                        help="add a timing run and a cProfile run, and report where time goes")
    parser.add_argument("--profile-students", type=int, default=8)
    parser.add_argument("--variants", default="",
                        help="what-if server variants to run after the levels, comma-separated "
                        "(pre-ping, no-token-cache, async-commit; join with + to combine); "
                        "see bench/http_app.py")
    parser.add_argument("--variant-students", type=int, default=8)
    parser.add_argument("--profile-duration", type=float, default=10.0)
    parser.add_argument("--text", type=Path, default=OUT / "http_attempts.txt")
    parser.add_argument("--json", type=Path, default=OUT / "http_attempts.json")
    args = parser.parse_args(argv)
    levels = sorted({int(v) for v in args.students.split(",")})
    servers = [(args.workers, args.threads)] + [
        tuple(int(x) for x in shape.split("x")) for shape in args.compare_servers.split(",")
        if shape]
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        print("set TEST_DATABASE_URL to a PostgreSQL role that may create databases "
              "(source .envrc.local)", file=sys.stderr)
        return 2
    import gunicorn

    from api.demo import DEMO_PASSWORD

    result: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(), "cores": os.cpu_count(),
        "loadavg_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "gunicorn": gunicorn.__version__,
        "server": f"{args.workers} gthread workers x {args.threads} threads" + (
            f" (also {args.compare_servers})" if args.compare_servers else ""),
        "workers": args.workers, "threads": args.threads,
        "warmup_s": args.warmup, "duration_s": args.duration,
        "command": "python -m bench.http_attempts " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "levels": [], "sources": source_digests(), "reference_ms_before": reference_ms(),
    }
    ledger = Ledger()
    with bench_database(base) as (url, database):
        test_id, usernames, build_s = prepare(url, max(levels))
        result["build_seconds"] = round(build_s, 1)
        with create_engine(url).connect() as connection:
            result["postgres"] = connection.scalar(text("SHOW server_version"))
        print(f"demo built in {build_s:.1f} s; starting gunicorn ({result['server']})",
              file=sys.stderr)
        tokens: list[str] = []
        for workers, threads in servers:
            print(f"gunicorn {workers} x {threads}", file=sys.stderr)
            with Server(url, workers, threads) as server:
                if not tokens:
                    tokens = [sign_in(server.port, name, DEMO_PASSWORD) for name in usernames]
                for n in levels:
                    level: dict[str, Any] = {"students": n, "server": f"{workers}x{threads}"}
                    for kind in ("answers", "bare"):
                        print(f"{n} students: {kind}...", file=sys.stderr)
                        phase = run_phase(kind, server, tokens[:n], test_id, args.warmup,
                                          args.duration, base, database)
                        ledger.merge(phase.pop("ledger"))
                        level[kind] = phase
                    a = level["answers"]["stats"]["answer"]
                    level["meets_target"] = (a["per_second"] >= TARGET_RATE
                                             and a["p95_ms"] <= TARGET_P95_MS)
                    result["levels"].append(level)
        if args.variants:
            result["variants"] = variant_runs(url, database, base, tokens, test_id, args, ledger)
        if args.profile:
            print("profiling...", file=sys.stderr)
            result["profile"] = profile_runs(url, database, base, tokens, test_id, args, ledger)
        result["integrity"] = verify(url, test_id, ledger)
    result["reference_ms_after"] = reference_ms()
    result["loadavg_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    meeting = [f"{lv['students']} ({lv['server']})" for lv in result["levels"]
               if lv["meets_target"]]
    best = max(result["levels"], key=lambda lv: lv["answers"]["stats"]["answer"]["per_second"])
    best_stats = best["answers"]["stats"]["answer"]
    result["pass"] = bool(meeting) and result["integrity"]["ok"]
    result["verdict"] = (
        (f"rate and p95 met with {', '.join(meeting)} students"
         if meeting else
         f"best rate {best_stats['per_second']:.0f}/s (p95 {best_stats['p95_ms']:.1f} ms) "
         f"with {best['students']} students on {best['server']}: target not met")
        + ("; database counts exact" if result["integrity"]["ok"]
           else "; DATABASE CHECK FAILED"))
    report = format_report(result)
    print(report)
    args.text.parent.mkdir(parents=True, exist_ok=True)
    args.text.write_text(report)
    args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
