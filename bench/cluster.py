"""Real parts for fault and district runs: PostgreSQL, Redis, gunicorn app servers, a huey
worker, a round-robin proxy, and simulated students that retry like a careful client.

Used by ``tests/reliability`` and ``bench/district.py``. Every part is a real process started
here and stopped (by its own process id) on the way out:

- :class:`PrivatePostgres`: a PostgreSQL cluster of its own (``initdb`` in a temporary folder, a
  free port), so that restarting it disturbs no one else's database. As root, it runs as the
  ``postgres`` account (``initdb`` refuses root).
- :class:`RedisServer`: ``redis-server`` on a free port, nothing saved to disk.
- :class:`AppServer`: ``cat-engine serve`` (gunicorn, gthread workers) on a free port; it can be
  killed with SIGKILL, a worker or the whole server, and started again on the same port.
- :class:`JobWorker`: ``cat-engine worker`` on the queue of ``HUEY_URL``.
- :class:`RoundRobinProxy`: a small threaded HTTP reverse proxy handing requests to its backends
  in turn (a backend that refuses the connection is skipped: nothing was sent to it).
- :class:`Student`: one student's keep-alive connection. Every request is retried on a
  connection error, a 502 or a 503 (answers with the same ``Idempotency-Key``) until it is
  acknowledged; the :class:`Ledger` keeps what the client was told, and :func:`verify` compares
  it with the database.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import http.server
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
#: Statuses after which a client sends the same request again (nothing was committed).
RETRY_STATUSES = frozenset({502, 503})


class Unavailable(RuntimeError):
    """A part cannot run on this machine (a program is missing); the message says which."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on just now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def children_of(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (Linux ``/proc``); empty if it is gone."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _wait_for(check, seconds: float, what: str, process: subprocess.Popen | None = None,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: the process exited with {process.returncode}\n{tail}")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready within {seconds:.0f} s")


def _stop(process: subprocess.Popen | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- PostgreSQL ----------------------------------------------------------------------------------


def postgres_bin() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: ``$PG_BIN``, else Debian's newest version."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise Unavailable("PostgreSQL server programs (initdb, pg_ctl) not found; set PG_BIN")


class PrivatePostgres:
    """A PostgreSQL cluster of its own in a temporary folder, on a free port.

    ``fsync`` is off (a restart of the server, even ``immediate``, loses nothing the operating
    system has been handed; only a machine crash would), ``synchronous_commit`` stays on: a
    commit the app acknowledged has reached the write-ahead log.
    """

    USER = "cat"

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = 0
        self.folder: Path | None = None
        self.as_postgres: list[str] = []

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_postgres, *args], check=check, capture_output=True,
                              text=True, timeout=120)

    def __enter__(self) -> PrivatePostgres:
        self.folder = Path(tempfile.mkdtemp(prefix="cat-pg-"))
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise Unavailable("running as root needs runuser to start PostgreSQL as postgres")
            self.as_postgres = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres", "postgres")
        self.port = free_port()
        try:
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.USER,
                      "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
            (self.data / "postgresql.auto.conf").write_text(
                "\n".join(f"{k} = '{v}'" for k, v in (
                    ("port", self.port), ("unix_socket_directories", self.folder),
                    ("listen_addresses", HOST), ("fsync", "off"),
                    ("full_page_writes", "off"), ("max_connections", 200),
                    ("shared_buffers", "64MB"))) + "\n")
            if self.as_postgres:
                shutil.chown(self.data / "postgresql.auto.conf", "postgres", "postgres")
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.folder / "server.log"), "-w", "-t", "60", "start")

    def restart(self, mode: str = "immediate") -> float:
        """Restart the server (``immediate``: no clean shutdown, recovery from the log at start,
        as after a crash); returns the seconds it took."""
        started = time.perf_counter()
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
                  "restart", "-l", str(self.folder / "server.log"))
        return time.perf_counter() - started

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.USER}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its SQLAlchemy URL."""
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def __exit__(self, *exc) -> None:
        if self.folder is None:
            return
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


# -- Redis ---------------------------------------------------------------------------------------


class RedisServer:
    """``redis-server`` on a free loopback port, saving nothing to disk."""

    def __init__(self) -> None:
        program = shutil.which("redis-server")
        if program is None:
            raise Unavailable("redis-server is not installed (apt-get install redis-server)")
        self.program = program
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def __enter__(self) -> RedisServer:
        import redis

        self.port = free_port()
        self.process = subprocess.Popen(
            [self.program, "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host=HOST, port=self.port)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            _wait_for(answers, 20, "redis-server", self.process)
        except BaseException:
            _stop(self.process)
            raise
        finally:
            client.close()
        return self

    def __exit__(self, *exc) -> None:
        _stop(self.process)


# -- the application -----------------------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "api.cli", *args]


@dataclass
class AppServer:
    """``cat-engine serve`` (gunicorn) on its own port, with its own instance folder.

    ``env`` adds to the environment (``HUEY_URL``, ``CAT_ENGINE_RATELIMIT_STORAGE``...). The
    database URL and the secret key travel in the environment, never on the command line.
    """

    database_url: str
    folder: Path
    workers: int = 2
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def start(self, timeout: float = 60) -> float:
        """Start the server (on the port it had, if any) and wait until every worker answers
        ``/healthz``; returns the seconds it took."""
        started = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        env = {**os.environ, "DATABASE_URL": self.database_url, "SECRET_KEY": self.secret_key,
               "CAT_ENGINE_INSTANCE": str(self.folder), **self.env}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                _cli("serve", "--host", HOST, "--port", str(self.port), "--workers",
                     str(self.workers), "--no-worker"),
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        _wait_for(lambda: len(self.worker_pids()) == self.workers and self._healthy(),
                  timeout, f"app server on port {self.port}", self.process, self.log)
        return time.perf_counter() - started

    def _healthy(self) -> bool:
        try:
            connection = http.client.HTTPConnection(HOST, self.port, timeout=5)
            connection.request("GET", "/healthz")
            ok = connection.getresponse().status == 200
            connection.close()
            return ok
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid) if self.process else []

    def kill_worker(self) -> int:
        """SIGKILL one gunicorn worker (the master starts another); returns its pid."""
        pid = self.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self) -> list[int]:
        """SIGKILL the master and every worker at once; returns their pids."""
        pids = [self.process.pid, *self.worker_pids()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()
        for pid in pids[1:]:  # orphaned workers are reparented; wait until they are gone
            _wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists()
                      or "Z" in _state(pid), 10, f"worker {pid} to die")
        return pids

    def stop(self) -> None:
        _stop(self.process, timeout=30)

    def __enter__(self) -> AppServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@dataclass
class JobWorker:
    """``cat-engine worker`` (huey consumer) on ``huey_url``."""

    database_url: str
    huey_url: str
    folder: Path
    process: subprocess.Popen | None = None

    def __enter__(self) -> JobWorker:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DATABASE_URL": self.database_url, "HUEY_URL": self.huey_url,
               "CAT_ENGINE_INSTANCE": str(self.folder)}
        log = self.folder / "worker.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(_cli("worker"), env=env, cwd=ROOT, stdout=out,
                                            stderr=subprocess.STDOUT)
        _wait_for(lambda: "Worker:" in log.read_text(errors="replace"), 60, "job worker",
                  self.process, log)
        return self

    def __exit__(self, *exc) -> None:
        _stop(self.process)


def migrate(url: str) -> None:
    """``cat-engine db upgrade`` on ``url`` (in this process)."""
    from storage import make_engine
    from storage.migrate import upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


# -- the proxy -----------------------------------------------------------------------------------


HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade", "content-length"})


class RoundRobinProxy:
    """A reverse proxy on a free port handing each request to the next backend in turn.

    Keep-alive towards clients; a fresh connection to the backend per request (a reused one
    could fail after the backend read the request, and then no one knows whether it ran). A
    backend that refuses the connection is skipped for the next one; any other failure is a 502,
    which a client retries.
    """

    def __init__(self, backends: list[tuple[str, int]], port: int = 0) -> None:
        self.backends = list(backends)
        self._turn = itertools.cycle(range(len(self.backends)))
        self._lock = threading.Lock()
        self.served: Counter = Counter()
        self.port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _next(self) -> int:
        with self._lock:
            return next(self._turn)

    def __enter__(self) -> RoundRobinProxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP}
                headers["X-Forwarded-For"] = self.client_address[0]
                if body is not None:
                    headers["Content-Length"] = str(len(body))
                first = proxy._next()
                status, reply_headers, payload = 502, [], b"no backend answered"
                for k in range(len(proxy.backends)):
                    index = (first + k) % len(proxy.backends)
                    host, port = proxy.backends[index]
                    connection = http.client.HTTPConnection(host, port, timeout=120)
                    try:
                        connection.connect()
                    except OSError:
                        connection.close()
                        continue  # refused: nothing sent, the next backend may take it
                    try:
                        connection.request(self.command, self.path, body=body, headers=headers)
                        response = connection.getresponse()
                        status, payload = response.status, response.read()
                        reply_headers = [(k, v) for k, v in response.getheaders()
                                         if k.lower() not in HOP_BY_HOP]
                        with proxy._lock:
                            proxy.served[index] += 1
                    except (OSError, http.client.HTTPException) as error:
                        status, reply_headers = 502, []
                        payload = f"backend {host}:{port} failed: {error}".encode()
                    finally:
                        connection.close()
                    break
                self.send_response(status)
                for key, value in reply_headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self._server = http.server.ThreadingHTTPServer((HOST, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


# -- the students --------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the clients were told, to compare with the database afterwards."""

    keys: Counter = field(default_factory=Counter)  # Idempotency-Key -> times acknowledged
    per_attempt: Counter = field(default_factory=Counter)  # attempt -> answers acknowledged
    attempts: dict[int, str] = field(default_factory=dict)  # attempt -> its student
    finished: set[int] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)  # seconds per acknowledged answer
    retried: int = 0  # requests sent again after a connection error, a 502 or a 503
    statuses: Counter = field(default_factory=Counter)  # retryable failures seen, by kind
    errors: list[str] = field(default_factory=list)  # anything else: each one fails the run
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def acknowledged(self) -> int:
        return sum(self.keys.values())


class GaveUp(RuntimeError):
    """A request was not acknowledged within the client's patience."""


class Student:
    """One student on one keep-alive connection, retrying until acknowledged."""

    def __init__(self, port: int, username: str, password: str, ledger: Ledger,
                 patience: float = 60.0, seed: int = 0) -> None:
        self.port, self.username, self.password = port, username, password
        self.ledger, self.patience = ledger, patience
        self.rng = random.Random(seed)
        self.token: str | None = None
        self.connection: http.client.HTTPConnection | None = None

    def _send(self, method: str, path: str, body: Any, headers: dict[str, str]
              ) -> tuple[int, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
        data = json.dumps(body).encode() if body is not None else None
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
            self.connection = None
        return response.status, payload

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """Send until the answer is neither a connection error, a 502 nor a 503."""
        headers = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        deadline = time.monotonic() + self.patience
        delay = 0.1
        while True:
            try:
                status, payload = self._send(method, path, body, headers)
                if status not in RETRY_STATUSES:
                    return status, json.loads(payload) if payload else None
                kind = f"{status}"
            except (OSError, http.client.HTTPException) as error:
                kind = error.__class__.__name__
                if self.connection is not None:
                    self.connection.close()
                self.connection = None
            with self.ledger.lock:
                self.ledger.retried += 1
                self.ledger.statuses[kind] += 1
            if time.monotonic() > deadline:
                raise GaveUp(f"{method} {path}: not acknowledged in {self.patience:.0f} s "
                             f"(last: {kind})")
            time.sleep(delay * (0.5 + self.rng.random()))
            delay = min(delay * 2, 1.0)

    def sign_in(self) -> None:
        status, reply = self.call("POST", "/api/v1/auth/token",
                                  {"username": self.username, "password": self.password})
        if status != 200:
            raise RuntimeError(f"sign-in of {self.username}: {status} {reply}")
        self.token = reply["access_token"]

    def start(self, test_id: int) -> dict[str, Any]:
        """Start the test, or resume the attempt in progress."""
        status, reply = self.call("POST", "/api/v1/attempts", {"test_id": test_id})
        if status not in (200, 201):
            raise RuntimeError(f"{self.username} start: {status} {reply}")
        with self.ledger.lock:
            self.ledger.attempts[reply["id"]] = self.username
        return reply

    def answer(self, attempt_id: int, reply: dict[str, Any]) -> dict[str, Any]:
        """Answer the presented item with a random option; returns the next reply."""
        item = reply["item"]
        options = item.get("categories") or len(item["options"])
        key = uuid.uuid4().hex
        sent = time.perf_counter()
        status, nxt = self.call("POST", f"/api/v1/attempts/{attempt_id}/responses",
                                {"item_id": item["id"], "response": self.rng.randrange(options)},
                                {"Idempotency-Key": key})
        if status != 200:
            raise RuntimeError(f"{self.username} answer in attempt {attempt_id}: {status} {nxt}")
        took = time.perf_counter() - sent
        with self.ledger.lock:
            self.ledger.latencies.append(took)
            self.ledger.keys[key] += 1
            self.ledger.per_attempt[attempt_id] += 1
            if nxt["status"] != "in_progress":
                self.ledger.finished.add(attempt_id)
        return nxt

    def run(self, test_id: int, stop: threading.Event, pause: float = 0.0) -> None:
        """Sign in, then take the test again and again until ``stop`` is set."""
        try:
            if self.token is None:
                self.sign_in()
            while not stop.is_set():
                reply = self.start(test_id)
                while reply["status"] == "in_progress" and not stop.is_set():
                    reply = self.answer(reply["id"], reply)
                    if pause:
                        time.sleep(pause * (0.5 + self.rng.random()))
        except Exception as error:  # every failure of a client is a finding, kept
            with self.ledger.lock:
                self.ledger.errors.append(f"{self.username}: {error}")
        finally:
            if self.connection is not None:
                self.connection.close()


def run_students(students: list[Student], test_id: int, stop: threading.Event,
                 pause: float = 0.0) -> list[threading.Thread]:
    """Start one thread per student; join them after setting ``stop``."""
    threads = [threading.Thread(target=s.run, args=(test_id, stop, pause), daemon=True,
                                name=f"student-{s.username}") for s in students]
    for thread in threads:
        thread.start()
    return threads


def calibration_csv(url: str, n_items: int = 10, n_persons: int = 300, seed: int = 1) -> bytes:
    """A long CSV (``person_id,item_id,response``) of simulated Rasch answers to ``n_items`` of
    the bank's items, for a calibration upload."""
    import numpy as np

    from item_bank.models import Item

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            codes = list(connection.scalars(select(Item.code).order_by(Item.id).limit(n_items)))
    finally:
        engine.dispose()
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 1.0, (n_persons, 1))
    b = np.linspace(-1.5, 1.5, len(codes))
    answers = (rng.random((n_persons, len(codes))) < 1 / (1 + np.exp(b - theta))).astype(int)
    lines = ["person_id,item_id,response"] + [
        f"p{i},{code},{answers[i, j]}" for i in range(n_persons) for j, code in enumerate(codes)]
    return ("\n".join(lines) + "\n").encode()


def post_file(port: int, token: str, path: str, filename: str, content: bytes
              ) -> tuple[int, Any]:
    """POST ``content`` as the multipart field ``file``; returns status and JSON reply."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{filename}\"\r\nContent-Type: text/csv\r\n\r\n").encode() + content \
        + f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        connection.request("POST", path, body=body, headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def sign_in_all(students: list[Student], parallel: int = 8) -> None:
    """Sign every student in (``parallel`` at a time: password hashing is slow on purpose)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(Student.sign_in, students))


def wait_for_answers(ledger: Ledger, more: int, seconds: float) -> int:
    """Wait until ``more`` answers beyond those acknowledged now are acknowledged (at most
    ``seconds``); returns how many were."""
    start = ledger.acknowledged
    deadline = time.monotonic() + seconds
    while ledger.acknowledged - start < more and time.monotonic() < deadline:
        time.sleep(0.05)
    return ledger.acknowledged - start


def add_students(url: str, n_students: int) -> tuple[int, list[str]]:
    """The demo database (320 items, the adaptive demo test) with ``n_students`` students.

    Returns
    -------
    test_id, usernames
    """
    from bench.http_attempts import prepare

    test_id, usernames, _seconds = prepare(url, n_students)
    return test_id, usernames


# -- checking the database -----------------------------------------------------------------------


def verify(url: str, ledger: Ledger) -> dict[str, int]:
    """Compare the database with what the clients were told.

    Only the attempts the clients touched count (the demo's own attempts are left out).

    Returns
    -------
    dict
        ``acknowledged`` (answers the clients saw acknowledged), ``stored`` (response rows),
        ``lost`` (acknowledged, not stored), ``duplicated`` (a key stored twice, or an
        attempt's position twice), ``unacknowledged`` (stored, never acknowledged: a client
        that gave up), ``gaps`` (attempts whose positions are not 1..n), ``mismatched``
        (attempts whose row count differs from the client's), ``attempts``, ``unusable``
        (in progress with no item presented), ``retried``.
    """
    from evidence.models import Attempt, AttemptStatus, Response

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            ours = Response.attempt_id.in_(list(ledger.attempts) or [-1])
            stored = Counter(dict(connection.execute(
                select(Response.idempotency_key, func.count()).where(ours)
                .group_by(Response.idempotency_key)).all()))
            rows = connection.scalar(select(func.count(Response.id)).where(ours))
            twice = connection.scalar(select(func.count()).select_from(
                select(Response.attempt_id).where(ours)
                .group_by(Response.attempt_id, Response.position)
                .having(func.count() > 1).subquery()))
            per_attempt = {a: (n, lo, hi) for a, n, lo, hi in connection.execute(
                select(Response.attempt_id, func.count(), func.min(Response.position),
                       func.max(Response.position)).where(ours).group_by(Response.attempt_id))}
            attempts = connection.scalar(select(func.count(Attempt.id)).where(
                Attempt.id.in_(list(ledger.attempts) or [-1])))
            unusable = connection.scalar(select(func.count(Attempt.id)).where(
                Attempt.status == AttemptStatus.IN_PROGRESS, Attempt.current_item_id.is_(None)))
    finally:
        engine.dispose()
    acknowledged = set(ledger.keys)
    counted = {a: v[0] for a, v in per_attempt.items()}
    return {
        "acknowledged": ledger.acknowledged,
        "stored": rows,
        "lost": len(acknowledged - set(stored)),
        "duplicated": sum(n - 1 for n in stored.values() if n > 1) + twice
        + sum(n - 1 for n in ledger.keys.values() if n > 1),
        "unacknowledged": len(set(stored) - acknowledged),
        "gaps": sum(1 for n, lo, hi in per_attempt.values() if lo != 1 or hi != n),
        "mismatched": sum(1 for a in set(counted) | set(ledger.per_attempt)
                          if counted.get(a, 0) != ledger.per_attempt.get(a, 0)),
        "attempts": attempts,
        "unusable": unusable,
        "retried": ledger.retried,
    }


def resume_all(port: int, ledger: Ledger, password: str) -> dict[str, int]:
    """Every attempt the clients touched, read back by its student; those in progress are
    answered once more (the attempt can go on). Returns counts: ``resumed`` (answered on),
    ``finished`` (read back with a result), ``failed`` (anything else; must be 0)."""
    by_student: dict[str, list[int]] = {}
    for attempt_id, username in ledger.attempts.items():
        by_student.setdefault(username, []).append(attempt_id)
    counts = Counter(resumed=0, finished=0, failed=0)
    for username, attempt_ids in sorted(by_student.items()):
        student = Student(port, username, password, ledger)
        student.sign_in()
        for attempt_id in attempt_ids:
            status, view = student.call("GET", f"/api/v1/attempts/{attempt_id}")
            if status != 200:
                counts["failed"] += 1
                ledger.errors.append(f"GET attempt {attempt_id}: {status} {view}")
            elif view["status"] == "in_progress":
                if not view.get("item"):
                    counts["failed"] += 1
                    ledger.errors.append(f"attempt {attempt_id} in progress with no item")
                    continue
                try:
                    student.answer(attempt_id, {"id": attempt_id, "item": view["item"]})
                    counts["resumed"] += 1
                except Exception as error:
                    counts["failed"] += 1
                    ledger.errors.append(str(error))
            elif view.get("result"):
                counts["finished"] += 1
            else:
                counts["failed"] += 1
                ledger.errors.append(f"attempt {attempt_id} is {view['status']} without result")
        if student.connection is not None:
            student.connection.close()
    return dict(counts)


def serve_proxy(argv: list[str] | None = None) -> None:
    """``python -m bench.cluster PORT HOST:PORT...``: the proxy as a process of its own."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.cluster",
                                     description="A round-robin HTTP reverse proxy.")
    parser.add_argument("port", type=int)
    parser.add_argument("backends", nargs="+", metavar="HOST:PORT")
    args = parser.parse_args(argv)
    backends = [(b.rsplit(":", 1)[0], int(b.rsplit(":", 1)[1])) for b in args.backends]
    proxy = RoundRobinProxy(backends, port=args.port)
    with proxy:
        print(f"proxy on {proxy.url} -> {', '.join(args.backends)}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    serve_proxy()
