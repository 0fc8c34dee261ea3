"""The WSGI application of the HTTP benchmark: the real app plus one bare route.

``gunicorn bench.http_app:app`` serves :func:`api.app.create_app` (configured from
``DATABASE_URL`` and ``SECRET_KEY``) with one extra route, ``POST /bench/bare``, that reads a small
JSON body and returns a tiny JSON reply without touching the database: the floor that Flask and
gunicorn alone cost, measured in the same processes as the adaptive test. Every reply carries
``X-Worker`` (the worker's pid), so the client can see how connections spread over workers.

``BENCH_VARIANT`` (comma-separated) changes the app for what-if runs, to measure an optimisation
(or what a safety costs) before anyone changes ``api/``; the headline run uses none:

``pre-ping``
    The engine with ``pool_pre_ping`` (one ``SELECT 1`` more per request), as
    ``DATABASE_PRE_PING=1`` would configure it.
``no-token-cache``
    ``API_TOKEN_CACHE_SECONDS = 0``: every request looks its token up in the database.
``async-commit``
    ``synchronous_commit = off`` for the app's connections: a DIAGNOSTIC that shows what the WAL
    flush at commit costs. Not a recommendation: an acknowledged answer could be lost in a crash.

Two optional instruments, off unless their environment variable is set (they cost time, so the
benchmark's headline run leaves them off):

``BENCH_TIMING=<directory>``
    Per request kind (answer, start, bare), the server-side wall time, every SQL statement's
    round trip grouped by statement shape, and named sections (token lookup, the service call,
    engine steps, marshmallow, JSON, commit). Written as ``timing-<pid>.json`` in the directory
    when the worker exits.
``BENCH_CPROFILE=<directory>``
    cProfile of every request, written as ``cprofile-<pid>.prof`` when the worker exits. Only
    meaningful with one thread per worker (a profiler follows one thread).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import jsonify, request

import api.db
from api.app import create_app

VARIANTS = frozenset(v for v in os.environ.get("BENCH_VARIANT", "").split(",") if v)
KNOWN_VARIANTS = frozenset({"pre-ping", "no-token-cache", "async-commit"})


def _apply_variants(variants: frozenset[str]) -> dict[str, Any]:
    """Patch the app's engine for the variants in ``BENCH_VARIANT``; returns app settings."""
    unknown = variants - KNOWN_VARIANTS
    if unknown:
        raise ValueError(f"BENCH_VARIANT: unknown {sorted(unknown)}; "
                         f"known {sorted(KNOWN_VARIANTS)}")
    if variants & {"pre-ping", "async-commit"}:
        make_engine = api.db.make_engine

        def variant_engine(url=None, **kwargs):
            if "pre-ping" in variants:
                kwargs["pool_pre_ping"] = True
            if "async-commit" in variants:
                kwargs["connect_args"] = {"options": "-c synchronous_commit=off"}
            return make_engine(url, **kwargs)

        api.db.make_engine = variant_engine
    return {"API_TOKEN_CACHE_SECONDS": 0} if "no-token-cache" in variants else {}


app = create_app(_apply_variants(VARIANTS) or None)


@app.post("/bench/bare")
def bare():
    """The floor: parse a small JSON body, reply with a small JSON document, no database."""
    body = request.get_json(silent=True) or {}
    return jsonify({"ok": True, "echo": body.get("n")})


@app.after_request
def _worker_header(response):
    response.headers["X-Worker"] = str(os.getpid())
    return response


# -- instruments (off by default) ----------------------------------------------------------------

_ANSWER = re.compile(r"^/api/v1/attempts/\d+/responses$")
_local = threading.local()


def request_kind(method: str, path: str) -> str:
    """``answer``, ``start``, ``bare``, ``sign-in`` or ``other`` for a request line."""
    if method == "POST" and _ANSWER.match(path):
        return "answer"
    if method == "POST" and path == "/api/v1/attempts":
        return "start"
    if path == "/bench/bare":
        return "bare"
    if path == "/api/v1/auth/token":
        return "sign-in"
    return "other"


_LABELS: dict[str, str] = {}
_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?(\w+)', re.IGNORECASE)


def statement_label(statement: str) -> str:
    """A short name for a SQL statement's shape: verb, first table, ``FOR UPDATE``."""
    label = _LABELS.get(statement)
    if label is None:
        words = statement.split(None, 2)
        verb = words[0].upper() if words else "?"
        if verb in {"SAVEPOINT", "RELEASE", "ROLLBACK"}:
            label = "SAVEPOINT" if verb == "SAVEPOINT" else f"{verb} SAVEPOINT"
        else:
            table = _TABLE.search(statement)
            label = f"{verb} {table.group(1) if table else ''}".strip()
            if verb == "SELECT" and " JOIN " in statement.upper():
                label += " (join)"
            if "FOR UPDATE" in statement.upper():
                label += " FOR UPDATE"
            if "ON CONFLICT" in statement.upper():
                label += " ON CONFLICT (upsert)"
        _LABELS[statement] = label
    return label


class Timing:
    """Totals per request kind: requests, wall and CPU seconds, SQL by label, sections by name.

    Every total is ``[count, wall seconds, thread CPU seconds]``: wall time includes waiting (for
    PostgreSQL, for a lock, for a core on a busy machine), CPU time is this thread's own work.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kinds: dict[str, dict[str, Any]] = {}

    def add(self, kind: str, wall: float, cpu: float, sql: dict, sections: dict) -> None:
        with self.lock:
            entry = self.kinds.setdefault(kind, {"n": 0, "wall_s": 0.0, "cpu_s": 0.0,
                                                 "walls_ms": [], "sql": {}, "sections": {}})
            entry["n"] += 1
            entry["wall_s"] += wall
            entry["cpu_s"] += cpu
            entry["walls_ms"].append(round(wall * 1000, 3))
            for group, values in (("sql", sql), ("sections", sections)):
                for name, (count, wall_s, cpu_s) in values.items():
                    total = entry[group].setdefault(name, [0, 0.0, 0.0])
                    total[0] += count
                    total[1] += wall_s
                    total[2] += cpu_s

    def dump(self, directory: str) -> None:
        path = Path(directory) / f"timing-{os.getpid()}.json"
        with self.lock:
            path.write_text(json.dumps({"pid": os.getpid(), "kinds": self.kinds}))


def _record(group: str, name: str, wall: float, cpu: float) -> None:
    bucket = getattr(_local, group, None)
    if bucket is not None:
        entry = bucket[name]
        entry[0] += 1
        entry[1] += wall
        entry[2] += cpu


def _new_bucket() -> defaultdict:
    return defaultdict(lambda: [0, 0.0, 0.0])


def _timed(name: str, function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            _record("sections", name, time.perf_counter() - wall, time.thread_time() - cpu)

    wrapper.__bench_timed__ = True
    return wrapper


def _patch(owner: Any, attribute: str, name: str) -> None:
    function = getattr(owner, attribute)
    if not getattr(function, "__bench_timed__", False):
        setattr(owner, attribute, _timed(name, function))


def install_timing(flask_app, directory: str) -> Timing:
    """Time SQL statements and named sections of every request, per worker."""
    from flask_smorest.arguments import ArgumentsMixin
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    import api.v1.auth as auth
    import evidence.attempts as attempts_service
    from api.db import engine_of
    from api.v1.attempts import ReplySchema
    from cat_engine import CATSession

    timing = Timing()
    engine = engine_of(flask_app)

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = (time.perf_counter(), time.thread_time())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        started = conn.info.pop("bench_started", None)
        if started is not None:
            _record("sql", statement_label(statement), time.perf_counter() - started[0],
                    time.thread_time() - started[1])

    dialect = engine.dialect
    for attribute, label in (("do_commit", "COMMIT"), ("do_rollback", "ROLLBACK"),
                             ("do_ping", "pre-ping SELECT 1")):
        original = getattr(dialect, attribute)

        def make(original=original, label=label):
            def wrapper(*args, **kwargs):
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    _record("sql", label, time.perf_counter() - wall, time.thread_time() - cpu)
            return wrapper

        setattr(dialect, attribute, make())

    _patch(auth, "current_user", "auth: token lookup (current_user)")
    _patch(attempts_service, "submit_response", "service: submit_response")
    _patch(attempts_service, "start_attempt", "service: start_attempt")
    _patch(attempts_service, "current_snapshot_id", "service: current_snapshot_id (start)")
    _patch(attempts_service, "open_assignments", "service: open_assignments (start)")
    _patch(attempts_service, "delivery_bank", "service: delivery_bank (cached)")
    _patch(attempts_service, "record_exposure", "service: record_exposure")
    _patch(attempts_service, "summarise", "service: summarise (finish)")
    _patch(attempts_service, "_engine_session", "service: rebuild engine session")
    _patch(attempts_service, "_step", "service: next item or finish (_step)")
    _patch(attempts_service, "_update_attempt", "service: UPDATE attempt")
    for method in ("from_json", "answer", "next_item", "to_json"):
        _patch(CATSession, method, f"engine: CATSession.{method}")
    _patch(Session, "commit", "orm: Session.commit (flush + COMMIT)")
    _patch(Session, "flush", "orm: Session.flush")
    _patch(ReplySchema, "dump", "marshmallow: ReplySchema.dump")
    parser = ArgumentsMixin.ARGUMENTS_PARSER
    _patch(parser, "parse", "webargs: parse arguments")
    _patch(flask_app.json, "response", "flask: JSON response")

    inner = flask_app.wsgi_app

    def timed_wsgi(environ, start_response):
        kind = request_kind(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""))
        _local.sql, _local.sections = _new_bucket(), _new_bucket()
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return inner(environ, start_response)
        finally:
            timing.add(kind, time.perf_counter() - wall, time.thread_time() - cpu,
                       _local.sql, _local.sections)
            _local.sql = _local.sections = None

    flask_app.wsgi_app = timed_wsgi
    atexit.register(timing.dump, directory)
    return timing


def install_cprofile(flask_app, directory: str) -> None:
    """Profile every request with one cProfile object (use one thread per worker)."""
    import cProfile

    profile = cProfile.Profile()
    inner = flask_app.wsgi_app

    def profiled_wsgi(environ, start_response):
        profile.enable()
        try:
            return inner(environ, start_response)
        finally:
            profile.disable()

    flask_app.wsgi_app = profiled_wsgi
    atexit.register(lambda: profile.dump_stats(
        str(Path(directory) / f"cprofile-{os.getpid()}.prof")))


if os.environ.get("BENCH_TIMING"):
    install_timing(app, os.environ["BENCH_TIMING"])
if os.environ.get("BENCH_CPROFILE"):
    install_cprofile(app, os.environ["BENCH_CPROFILE"])
