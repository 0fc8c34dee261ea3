"""xAPI ingest over real HTTP, side by side with ralph's LRS (the named peer).

``python -m bench.xapi_peer`` compares our ``POST /xapi/statements`` with the one of ralph
(``ralph-malph[cli,lrs]``, MIT, https://github.com/openfun/ralph) in one run, as ratios:

1. For each database asked for (SQLite in a temporary file; PostgreSQL in a fresh database on the
   server of ``TEST_DATABASE_URL``, dropped at the end), a migrated database with a teacher, a
   class of 30 students and an xAPI credential for the class (built with the same services as
   :mod:`bench.xapi_ingest`), served by gunicorn (``bench.http_app:app``, ``--workers`` gthread
   workers x ``--threads``; the log level is ``warning``).
2. ralph's LRS with its filesystem backend (``ralph.api:app`` in one uvicorn process, as
   ``ralph runserver --backend fs`` serves it but without the reloader or the access log, and
   with the write fix described at ``RALPH_LAUNCHER``; a fresh store per database) and a
   basic-auth user made with ``ralph auth``. ralph
   and its pinned FastAPI/uvicorn/bcrypt live in a separate virtual environment that this script
   creates on first use (``bench/.venv-ralph``, git-ignored; ``--ralph-venv``), never in the
   project's.
3. The same statements (batches of ``--size``, actors are the site's account with the students'
   pseudonyms, valid for both) go to both servers over loopback HTTP with one keep-alive
   connection each (``http.client``), interleaved batch by batch (the order flips every batch),
   so load on the shared machine hits both alike. Then ``--queries`` GETs of ``limit=100``
   statements filtered by ``agent`` on each, also interleaved.

It prints statements per second over the measured batches, p50/p95 per batch, p50/p95 of the
filtered GET, for each server, and ours/ralph (for statements/s above 1 means we are faster; for
latencies below 1 does). Both servers must acknowledge every batch with 200 and return the
statements asked for.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

from bench.databases import scratch_database
from bench.http_attempts import HOST, Server, free_port
from bench.xapi_ingest import SITE, fill, statements

ROOT = Path(__file__).resolve().parent.parent
RALPH_VENV = Path(__file__).resolve().parent / ".venv-ralph"
RALPH_REQUIREMENT = "ralph-malph[cli,lrs]==5.1.0"
# ralph 5.1.0's ``lrs`` extra imports requests (OIDC module) without depending on it.
RALPH_EXTRA = ("requests",)
RALPH_USER, RALPH_PASSWORD = "bench", "bench-secret"
# ``ralph runserver`` is uvicorn with the reloader and an access log; this is the same app
# (``ralph.api:app``, settings from the environment) served as in production: one uvicorn
# process, warnings only, as our gunicorn logs. One change: ralph 5.1.0's filesystem LRS backend
# writes each POST with the data backend's default operation, CREATE, which refuses to write to
# an existing file, so every POST after the first fails with 500 "Statements bulk indexation
# failed" ("fs_lrs.jsonl already exists and overwrite is not allowed with operation_type create
# or index"). Its writes are made to APPEND (what its ``write`` offers for an existing file).
RALPH_LAUNCHER = """
import sys
import uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend
FSLRSBackend.default_operation_type = BaseOperationType.APPEND
uvicorn.run("ralph.api:app", host=sys.argv[1], port=int(sys.argv[2]), log_level="warning",
            access_log=False)
"""


def ralph_venv(path: Path) -> Path:
    """The ``ralph`` executable of the virtual environment at ``path``, created on first use."""
    executable = path / "bin" / "ralph"
    if not executable.exists():
        print(f"creating {path} and installing {RALPH_REQUIREMENT} (first use)...",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "-q",
                        RALPH_REQUIREMENT, *RALPH_EXTRA], check=True)
    return executable


@contextmanager
def ralph_server(executable: Path):
    """ralph's LRS (filesystem backend, a fresh store) on a loopback port; yields the port and
    the ``Authorization`` header of its basic-auth user."""
    with tempfile.TemporaryDirectory(prefix="ralph-") as folder, \
            open(Path(folder) / "ralph.log", "wb") as log:
        env = {**os.environ, "RALPH_APP_DIR": folder,
               "RALPH_AUTH_FILE": str(Path(folder) / "auth.json"),
               "RALPH_RUNSERVER_BACKEND": "fs"}
        subprocess.run([str(executable), "auth", "-u", RALPH_USER, "-p", RALPH_PASSWORD,
                        "-s", "all", "-M", "mailto:bench@example.org", "-w"],
                       env=env, cwd=folder, check=True, capture_output=True)
        port = free_port()
        env["RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH"] = str(Path(folder) / "data")
        process = subprocess.Popen(
            [str(executable.parent / "python"), "-c", RALPH_LAUNCHER, HOST, str(port)],
            env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        token = base64.b64encode(f"{RALPH_USER}:{RALPH_PASSWORD}".encode()).decode()
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError("ralph exited with "
                                       f"{process.returncode}: "
                                       f"{(Path(folder) / 'ralph.log').read_text()[-2000:]}")
                try:
                    connection = http.client.HTTPConnection(HOST, port, timeout=5)
                    connection.request("GET", "/__heartbeat__")
                    if connection.getresponse().status == 200:
                        connection.close()
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("ralph did not answer within 60 s")
                time.sleep(0.2)
            yield port, f"Basic {token}"
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Lrs:
    """One keep-alive HTTP connection to an LRS's statements resource."""

    def __init__(self, name: str, port: int, path: str, authorization: str) -> None:
        self.name, self.port, self.path = name, port, path
        self.headers = {"Authorization": authorization, "X-Experience-API-Version": "1.0.3",
                        "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection(HOST, port, timeout=120)
        self.post_s: list[float] = []
        self.get_s: list[float] = []

    def request(self, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.connection.request(method, url, body=body, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def post(self, body: bytes, ids: list[str], measured: bool) -> None:
        """Post one batch; check the reply lists the batch's ids."""
        start = time.perf_counter()
        status, payload = self.request("POST", self.path, body)
        elapsed = time.perf_counter() - start
        if status != 200:
            raise RuntimeError(f"{self.name}: POST {status} {payload[:300]!r}")
        if sorted(json.loads(payload)) != sorted(ids):
            raise RuntimeError(f"{self.name}: POST acknowledged other ids than it was sent")
        if measured:
            self.post_s.append(elapsed)

    def get(self, agent: dict[str, Any], expected: set[str]) -> None:
        """The first page (100) of the agent's statements; check they are the agent's."""
        url = f"{self.path}?{urlencode({'agent': json.dumps(agent), 'limit': '100'})}"
        start = time.perf_counter()
        status, payload = self.request("GET", url)
        self.get_s.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(f"{self.name}: GET {status} {payload[:300]!r}")
        got = {s["id"] for s in json.loads(payload)["statements"]}
        if len(got) != min(100, len(expected)) or not got <= expected:
            raise RuntimeError(f"{self.name}: GET returned {len(got)} statements, "
                               f"{len(got - expected)} not the agent's")

    def figures(self, size: int) -> dict[str, float]:
        post_ms, get_ms = np.array(self.post_s) * 1000, np.array(self.get_s) * 1000
        return {"statements_per_s": len(self.post_s) * size / float(np.sum(self.post_s)),
                "batch_p50_ms": float(np.percentile(post_ms, 50)),
                "batch_p95_ms": float(np.percentile(post_ms, 95)),
                # the last quarter of the batches: how the cost grows with the store
                "late_batch_p50_ms": float(np.percentile(post_ms[-max(1, len(post_ms) // 4):],
                                                         50)),
                "get_p50_ms": float(np.percentile(get_ms, 50)),
                "get_p95_ms": float(np.percentile(get_ms, 95))}

    def close(self) -> None:
        self.connection.close()


def run(kind: str, ralph: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One side-by-side run on a fresh database of ``kind`` and a fresh ralph store."""
    with scratch_database(kind, "cat_xapi_peer") as url:
        pseudonyms, key, secret = fill(url)
        ours_auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        extra = {"CAT_ENGINE_PUBLIC_URL": SITE, "CAT_ENGINE_XAPI_RATE_LIMIT": "100000 per second"}
        with Server(url, args.workers, args.threads, env_extra=extra) as server, \
                ralph_server(ralph) as (ralph_port, ralph_auth):
            lrss = [Lrs("ours", server.port, "/xapi/statements", ours_auth),
                    Lrs("ralph", ralph_port, "/xAPI/statements", ralph_auth)]
            rng = np.random.default_rng(args.seed)
            by_agent: dict[str, set[str]] = {}
            for k in range(args.warmup + args.batches):
                batch = statements(rng, pseudonyms, args.size)
                for s in batch:
                    by_agent.setdefault(s["actor"]["account"]["name"], set()).add(s["id"])
                body, ids = json.dumps(batch).encode(), [s["id"] for s in batch]
                for lrs in (lrss if k % 2 == 0 else lrss[::-1]):
                    lrs.post(body, ids, measured=k >= args.warmup)
            for q in range(args.queries):
                name = pseudonyms[q % len(pseudonyms)]
                agent = {"objectType": "Agent", "account": {"homePage": SITE, "name": name}}
                for lrs in (lrss if q % 2 == 0 else lrss[::-1]):
                    lrs.get(agent, by_agent[name])
            ours, theirs = (lrs.figures(args.size) for lrs in lrss)
            for lrs in lrss:
                lrs.close()
    return {"database": kind, "ours": ours, "ralph": theirs,
            "ratio": {k: ours[k] / theirs[k] for k in ours}}


def format_table(results: list[dict[str, Any]]) -> str:
    columns = (("statements_per_s", "statements/s", "{:.0f}"),
               ("batch_p50_ms", "batch p50 ms", "{:.1f}"),
               ("batch_p95_ms", "batch p95 ms", "{:.1f}"),
               ("late_batch_p50_ms", "last-quarter batch p50 ms", "{:.1f}"),
               ("get_p50_ms", "GET p50 ms", "{:.1f}"),
               ("get_p95_ms", "GET p95 ms", "{:.1f}"))
    lines = ["| database | server | " + " | ".join(c[1] for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for result in results:
        for who in ("ours", "ralph", "ratio"):
            label = "ours/ralph" if who == "ratio" else who
            cells = [("{:.2f}" if who == "ratio" else fmt).format(result[who][key])
                     for key, _, fmt in columns]
            lines.append(f"| {result['database']} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default=None,
                        help="comma-separated; default sqlite, plus postgresql when "
                        "TEST_DATABASE_URL is set")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--ralph-venv", type=Path, default=RALPH_VENV)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    kinds = (args.databases.split(",") if args.databases else
             ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else []))
    ralph = ralph_venv(args.ralph_venv)
    version = subprocess.run([str(args.ralph_venv / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('ralph-malph'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    command = "python -m bench.xapi_peer " + " ".join(
        argv if argv is not None else sys.argv[1:])
    print(f"xAPI ingest over HTTP, ours (gunicorn {args.workers}x{args.threads} gthread) vs "
          f"ralph-malph {version} (uvicorn, fs backend, appending): {args.batches} batches of "
          f"{args.size} after {args.warmup} warm-up, interleaved; {args.queries} GETs by agent; "
          f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} "
          f"CPUs, load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    results = [run(kind, ralph, args) for kind in kinds]
    print(format_table(results))
    print(f"command: {command}")
    if args.json:
        args.json.write_text(json.dumps({"command": command, "ralph": version,
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
