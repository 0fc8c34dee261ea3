"""Background jobs: one huey queue built from configuration, the calibration task, the
task that carries out large item imports (:mod:`api.services.item_imports`) and the one that
renders report PDFs (:mod:`reports.class_pack`), and the one that sends LTI scores to the
learning platforms (:mod:`api.lti_grades`).

Where the queue lives is one setting, ``HUEY_URL`` (the app's configuration, else the
environment):

``sqlite:///path/to/huey.sqlite3`` (default: ``<instance>/huey.sqlite3``)
    huey's SQLite storage: durable, no server to run. The embedded default for one machine; a run
    queued while no worker runs waits in the file until ``cat-engine worker`` starts.
``redis://host:6379/0`` (also ``rediss://``, ``unix://``)
    huey's Redis storage, for app servers and workers on several machines. Needs the ``redis``
    package, which is not a dependency; asking for Redis without it is a clear error.
``immediate``
    Tasks run at once, inside the process that enqueues them (huey's immediate mode, in-memory
    storage). For tests and debugging only; never the default.

The task :func:`run_calibration` opens its own engine on the database it is given, claims the run
(``queued`` -> ``running``) in one short transaction, calibrates with progress committed in its
own short transactions (at most every :data:`PROGRESS_INTERVAL` seconds), and stores the result
(``succeeded``) or a one-line error (``failed``). The API never sees a traceback; the worker's log
does.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huey import Huey, MemoryHuey, SqliteHuey
from huey.api import TaskWrapper
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from storage import make_engine, mask_url, session_factory, utcnow

HUEY_NAME = "cat-engine"
IMMEDIATE = "immediate"
QUEUE_FILE = "huey.sqlite3"
PROGRESS_INTERVAL = 0.5
HEARTBEAT_SECONDS = 30.0
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

logger = logging.getLogger(__name__)


class QueueConfigError(ValueError):
    """``HUEY_URL`` cannot be used; the message says why (password masked)."""


@dataclass(frozen=True, eq=False)
class Queue:
    """A huey instance with this project's tasks registered on it."""

    url: str
    huey: Huey
    calibration: TaskWrapper
    item_import: TaskWrapper
    report: TaskWrapper
    forward: TaskWrapper
    lti_grades: TaskWrapper

    @property
    def immediate(self) -> bool:
        return bool(self.huey.immediate)


_queues: dict[str, Queue] = {}
_lock = threading.Lock()


def instance_path() -> Path:
    """The instance folder, resolved as the app resolves it (``CAT_ENGINE_INSTANCE``)."""
    return Path(os.environ.get("CAT_ENGINE_INSTANCE", "instance")).resolve()


def queue_url(value: str | None = None, instance: str | Path | None = None) -> str:
    """The queue's URL: ``value``, else ``$HUEY_URL``, else the SQLite file in the instance folder.

    The default file's folder is created when missing.
    """
    url = (value or os.environ.get("HUEY_URL") or "").strip()
    if url:
        return url
    folder = Path(instance) if instance is not None else instance_path()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / QUEUE_FILE).resolve()}"


def make_huey(url: str) -> Huey:
    """Build the huey instance ``url`` asks for (see the module notes).

    Raises
    ------
    QueueConfigError
        An unknown scheme, an empty SQLite path, or Redis without the ``redis`` package.
    """
    if url == IMMEDIATE:
        return MemoryHuey(HUEY_NAME, immediate=True, results=False)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise QueueConfigError("HUEY_URL sqlite:/// needs a file path, e.g. "
                                   "sqlite:///instance/huey.sqlite3")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(HUEY_NAME, filename=path, results=False)
    if url.startswith(REDIS_SCHEMES):
        if importlib.util.find_spec("redis") is None:
            raise QueueConfigError(
                f"HUEY_URL {mask_url(url)} asks for Redis, but the 'redis' package is not "
                "installed: pip install redis (or use the default SQLite queue on one machine)")
        from huey import RedisHuey

        return RedisHuey(HUEY_NAME, url=url, results=False)
    raise QueueConfigError(
        f"HUEY_URL {mask_url(url)} is not understood: use sqlite:///path/to/huey.sqlite3, "
        f"redis://host:port/db, or '{IMMEDIATE}' (tests only)")


def get_queue(url: str | None = None) -> Queue:
    """The queue for ``url`` (see :func:`queue_url`), built once per process and reused."""
    url = queue_url(url)
    with _lock:
        queue = _queues.get(url)
        if queue is None:
            huey = make_huey(url)
            task = huey.task(name="run_calibration")(run_calibration)
            imports = huey.task(name="run_item_import")(run_item_import)
            report = huey.task(name="run_report_job")(run_report_job)
            forward = huey.task(name="forward_statements")(forward_statements)
            grades = huey.task(name="run_lti_grades")(run_lti_grades)
            queue = _queues[url] = Queue(url=url, huey=huey, calibration=task,
                                         item_import=imports, report=report, forward=forward,
                                         lti_grades=grades)
    return queue


def enqueue_calibration(queue: Queue, run_id: int, database_url: str | None) -> None:
    """Put a calibration run on ``queue`` (in immediate mode: run it now, in this thread)."""
    queue.calibration(run_id, database_url)


def enqueue_item_import(queue: Queue, import_id: int, database_url: str | None) -> None:
    """Put a large item import on ``queue`` (in immediate mode: run it now, in this thread)."""
    queue.item_import(import_id, database_url)


def run_item_import(import_id: int, database_url: str | None = None) -> str:
    """The item-import task (see :mod:`api.services.item_imports`)."""
    from api.services.item_imports import run_item_import as run

    return run(import_id, database_url)


def enqueue_report_job(queue: Queue, job_id: int, database_url: str | None) -> None:
    """Put a report job (a class pack) on ``queue`` (in immediate mode: run it now)."""
    queue.report(job_id, database_url)


def run_report_job(job_id: int, database_url: str | None = None) -> str:
    """The report-job task: a class pack PDF (see :mod:`reports.class_pack`), translated with
    the pages' catalogues."""
    from api.i18n import translator
    from reports.class_pack import run_class_pack

    return run_class_pack(job_id, database_url, translator=translator)


def forward_statements(database_url: str | None = None) -> str:
    """The xAPI-out task: post every due statement to the schools' LRSs
    (:func:`evidence.xapi_forwarding.send_due`), then, outside immediate mode, schedule itself
    for the earliest retry still waiting."""
    from flask import current_app, has_app_context

    from api.xapi_out import secret_box, sender_settings
    from evidence.xapi_forwarding import next_due, send_due

    config = current_app.config if has_app_context() else None
    engine = make_engine(database_url)
    try:
        factory = session_factory(engine)
        reports = send_due(factory, secret_box(config), **sender_settings(config))
        with factory() as session:
            upcoming = next_due(session)
    finally:
        engine.dispose()
    for report in reports:
        if report.errors:
            logger.warning("xAPI out to school %s: %s", report.school_id, report.errors[-1])
    queue = get_queue(queue_url(current_app.config.get("HUEY_URL"), current_app.instance_path)
                      if has_app_context() else None)
    if upcoming is not None and not queue.immediate:
        delay = max(1.0, (upcoming - utcnow()).total_seconds())
        queue.forward.schedule((database_url,), delay=delay)
    sent = sum(r.sent for r in reports)
    return f"{sent} statement(s) sent"
def run_lti_grades(database_url: str | None = None, queue: str | None = None) -> str:
    """The task that sends LTI scores from the outbox (see :mod:`api.lti_grades`)."""
    from api.lti_grades import run_send_grades

    return run_send_grades(database_url, queue)


def make_consumer(url: str | None = None, *, workers: int = 1, worker_type: str = "thread",
                  max_delay: float = 2.0):
    """huey's :class:`~huey.consumer.Consumer` for the queue, ready to ``run()``."""
    from huey.consumer import Consumer

    queue = get_queue(url)
    if queue.immediate:
        raise QueueConfigError(f"HUEY_URL is '{IMMEDIATE}': tasks run where they are "
                               "enqueued, there is nothing for a worker to consume")
    return Consumer(queue.huey, workers=workers, worker_type=worker_type, periodic=False,
                    initial_delay=0.1, backoff=1.15, max_delay=max_delay)


def __getattr__(name: str) -> Any:
    """``api.jobs.huey``: the configured instance, for ``huey_consumer api.jobs.huey``."""
    if name == "huey":
        return get_queue().huey
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the calibration task ------------------------------------------------------------------------


class _Progress:
    """Writes a run's progress in its own short transactions, at most every ``interval`` s."""

    def __init__(self, factory: sessionmaker[Session], run_id: int,
                 interval: float = PROGRESS_INTERVAL) -> None:
        self.factory = factory
        self.run_id = run_id
        self.interval = interval
        self._last = -float("inf")

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        from item_bank.models import CalibrationRun, RunStatus

        try:
            with self.factory() as session:
                session.execute(
                    update(CalibrationRun)
                    .where(CalibrationRun.id == self.run_id,
                           CalibrationRun.status == RunStatus.RUNNING)
                    .values(progress=round(min(max(fraction, 0.0), 1.0), 4),
                            message=message[:500]))
                session.commit()
        except SQLAlchemyError as error:  # progress is a courtesy: never fail the run for it
            logger.warning("run %s: could not record progress: %s", self.run_id, error)


def _given_up(run) -> str:
    """The run was marked failed while this worker was silent: its verdict stands."""
    logger.warning("run %s was marked %s while it ran (no heartbeat for too long); its result "
                   "is discarded: start a new run", run.id, run.status.value)
    return run.status.value


def worker_name() -> str:
    """``host:pid`` of this process, as recorded on the runs it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


class Heartbeat(threading.Thread):
    """Stamps ``heartbeat_at`` on a running run every ``interval`` seconds until stopped.

    A run whose worker dies (killed, machine lost) stops getting stamps; see
    :func:`api.services.calibration_runs.reap_stalled_runs`.
    """

    def __init__(self, factory: sessionmaker[Session], run_id: int,
                 interval: float = HEARTBEAT_SECONDS) -> None:
        super().__init__(name=f"heartbeat-run-{run_id}", daemon=True)
        self.factory, self.run_id, self.interval = factory, run_id, interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        from item_bank.models import CalibrationRun, RunStatus

        while not self._stop_event.wait(self.interval):
            try:
                with self.factory() as session:
                    session.execute(update(CalibrationRun).where(
                        CalibrationRun.id == self.run_id,
                        CalibrationRun.status == RunStatus.RUNNING).values(heartbeat_at=utcnow()))
                    session.commit()
            except SQLAlchemyError as error:  # the next beat may get through
                logger.warning("run %s: heartbeat not recorded: %s", self.run_id, error)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def run_calibration(run_id: int, database_url: str | None = None) -> str:
    """Carry out calibration run ``run_id`` on the database at ``database_url``.

    ``database_url`` None means the worker's own ``DATABASE_URL``. A run that is not ``queued``
    any more (taken by another worker, or run already) is left alone.

    Returns
    -------
    str
        The run's final status (``succeeded``, ``failed``), or ``skipped`` / ``missing``.
    """
    from api.services import calibration_runs as service
    from item_bank.models import CalibrationRun, RunStatus

    engine = make_engine(database_url)
    factory = session_factory(engine)
    try:
        with factory() as session:  # claim the run: one worker only, whatever the queue does
            claimed = session.execute(
                update(CalibrationRun)
                .where(CalibrationRun.id == run_id, CalibrationRun.status == RunStatus.QUEUED)
                .values(status=RunStatus.RUNNING, started_at=utcnow(), progress=0.01,
                        message="loading the responses", error=None, worker=worker_name(),
                        heartbeat_at=utcnow()))
            session.commit()
            if claimed.rowcount != 1:
                found = session.get(CalibrationRun, run_id)
                logger.warning("run %s: %s, not queued; left alone", run_id,
                               "no such run" if found is None else f"is {found.status.value}")
                return "missing" if found is None else "skipped"
        heartbeat = Heartbeat(factory, run_id)
        heartbeat.start()
        try:
            with factory() as session:
                run = session.get(CalibrationRun, run_id)
                model, settings = run.model, dict(run.settings or {})
                run_input = service.load_input(session, run)
                session.rollback()
            started = time.perf_counter()
            result = service.calibrate_input(run_input, model, settings,
                                             report=_Progress(factory, run_id))
            summary = result["summary"]
            state = "converged" if summary["converged"] else "did not converge"
            message = (f"{state} after {summary['iterations']} EM cycles in "
                       f"{time.perf_counter() - started:.1f} s; {summary['n_estimated']} items "
                       f"estimated, {len(summary['misfitting_items'])} flagged for misfit")
            with factory() as session:
                run = session.get(CalibrationRun, run_id, with_for_update=True)
                if run.status != RunStatus.RUNNING:
                    return _given_up(run)
                run.result = result
                run.status = RunStatus.SUCCEEDED
                run.progress = 1.0
                run.message = message
                run.finished_at = utcnow()
                session.commit()
            logger.info("run %s: %s", run_id, message)
            return RunStatus.SUCCEEDED.value
        except Exception as error:
            logger.exception("calibration run %s failed", run_id)
            with factory() as session:
                run = session.get(CalibrationRun, run_id, with_for_update=True)
                if run.status != RunStatus.RUNNING:
                    return _given_up(run)
                run.status = RunStatus.FAILED
                run.error = service.failure_message(error)
                run.message = "failed"
                run.finished_at = utcnow()
                session.commit()
            return RunStatus.FAILED.value
        finally:
            heartbeat.stop()
    finally:
        engine.dispose()
