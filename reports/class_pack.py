"""The class pack: every enrolled student's report and the class dashboard in one PDF, rendered
by a background worker as a :class:`~reports.models.ReportJob`.

The request records the job (``queued``, ``total`` = the students enrolled now) and hands its
id to the queue (:mod:`api.jobs`). The worker (:func:`run_class_pack`):

1. claims the job (``queued`` -> ``running``) in one short transaction, so one worker only runs it;
2. builds each student's report as the teacher who asked sees it
   (:func:`reports.report.student_report`) and lays it out, committing ``progress`` after each
   student in its own short transaction, which also stamps ``heartbeat_at``;
3. after the last student, makes the class dashboard (:func:`reports.dashboard.class_dashboard`,
   as of the same moment, given the reports already made so that none is made twice) and lays
   it out;
4. stores the PDF (``done``) or a one-line error (``failed``).

A job still ``running`` whose heartbeat is older than :data:`STALLED_AFTER` lost its worker (a
student's report takes well under a second): reading it marks it ``failed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, defer, sessionmaker

from evidence.classes import roster_query, visible_class
from reports.models import ReportJob
from reports.pdf import Gettext, class_pack_pdf
from storage import as_utc, make_engine, session_factory, utcnow
from storage.accounts import User
from storage.errors import NotFound, ServiceError

STALLED_AFTER = timedelta(minutes=5)
logger = logging.getLogger(__name__)


def create_class_pack(session: Session, viewer: User, class_id: int, *,
                      language: str) -> ReportJob:
    """Record a class pack of class ``class_id`` for the worker (the caller commits, then
    enqueues it).

    Raises
    ------
    NotFound
        No such class, or not one ``viewer`` may see (their own; any for administrators).
    """
    klass = visible_class(session, viewer, class_id)
    total = session.scalar(select(func.count()).select_from(roster_query(klass).subquery()))
    job = ReportJob(kind="class_pack", class_id=klass.id, language=language, status="queued",
                    progress=0, total=total or 0, requested_by=viewer.id)
    session.add(job)
    session.flush()
    return job


def reap_stalled(job: ReportJob, now: datetime | None = None) -> bool:
    """Mark ``job`` failed when it runs without a heartbeat for :data:`STALLED_AFTER`.

    Returns whether it was marked (the caller commits).
    """
    now = now or utcnow()
    beat = as_utc(job.heartbeat_at or job.started_at)
    if job.status != "running" or beat is None or now - beat < STALLED_AFTER:
        return False
    job.status, job.finished_at = "failed", now
    job.error = "the worker stopped before finishing (no sign of life for 5 minutes): ask again"
    return True


def get_job(session: Session, viewer: User, job_id: int) -> ReportJob:
    """Report job ``job_id``, for the teacher of its class and administrators.

    Raises
    ------
    NotFound
        No such job, or one of a class ``viewer`` may not see.
    """
    job = session.get(ReportJob, job_id, options=[defer(ReportJob.pdf)])  # loaded when read
    try:
        if job is None:
            raise NotFound("")
        visible_class(session, viewer, job.class_id)
    except NotFound:
        raise NotFound(f"no report job {job_id}") from None
    return job


def job_view(job: ReportJob) -> dict[str, Any]:
    """What a client sees of a job (never the PDF itself: that has its own address)."""
    return {"id": job.id, "kind": job.kind, "class_id": job.class_id, "language": job.language,
            "status": job.status, "progress": job.progress, "total": job.total,
            "error": job.error, "created_at": job.created_at, "started_at": job.started_at,
            "finished_at": job.finished_at, "heartbeat_at": job.heartbeat_at,
            "ready": job.status == "done"}


class _Progress:
    """Commits a job's progress (and heartbeat) in its own short transaction."""

    def __init__(self, factory: sessionmaker[Session], job_id: int) -> None:
        self.factory, self.job_id = factory, job_id

    def __call__(self, done: int, total: int) -> None:
        try:
            with self.factory() as session:
                session.execute(update(ReportJob)
                                .where(ReportJob.id == self.job_id, ReportJob.status == "running")
                                .values(progress=done, total=total, heartbeat_at=utcnow()))
                session.commit()
        except SQLAlchemyError as error:  # progress is a courtesy: never fail the job for it
            logger.warning("report job %s: progress not recorded: %s", self.job_id, error)


def _failure(error: Exception) -> str:
    if isinstance(error, ServiceError):
        return str(error)
    return f"the pack could not be rendered: {type(error).__name__}: {error}".splitlines()[0][:500]


def run_class_pack(job_id: int, database_url: str | None = None, *,
                   translator: Callable[[str], Gettext]) -> str:
    """Carry out report job ``job_id`` on the database at ``database_url`` (see the module).

    Parameters
    ----------
    database_url
        ``None``: the worker's own ``DATABASE_URL``.
    translator
        Gives the ``gettext`` of a language code (the job's language).

    Returns
    -------
    str
        ``done`` or ``failed``; ``skipped`` when the job was not ``queued``, ``missing`` when
        there is none.
    """
    from reports.dashboard import class_dashboard, roster_ids
    from reports.report import student_report

    engine = make_engine(database_url)
    factory = session_factory(engine)
    try:
        with factory() as session:
            claimed = session.execute(
                update(ReportJob).where(ReportJob.id == job_id, ReportJob.status == "queued")
                .values(status="running", started_at=utcnow(), heartbeat_at=utcnow(),
                        progress=0, error=None))
            session.commit()
            if claimed.rowcount != 1:
                return "missing" if session.get(ReportJob, job_id) is None else "skipped"
        progress = _Progress(factory, job_id)
        try:
            with factory() as session:
                job = session.get(ReportJob, job_id)
                language = job.language
                viewer = session.get(User, job.requested_by) if job.requested_by else None
                if viewer is None:
                    raise NotFound("the account that asked for this pack no longer exists")
                klass = visible_class(session, viewer, job.class_id)
                ids = roster_ids(session, klass)
                progress(0, len(ids))
                now = utcnow()  # the reports and the dashboard as of one moment
                built: dict[int, dict[str, Any]] = {}

                def reports() -> Iterator[dict[str, Any]]:
                    for student_id in ids:
                        built[student_id] = student_report(session, viewer, student_id, now=now)
                        yield built[student_id]

                def dashboard() -> dict[str, Any]:  # after the last student: reuses the reports
                    return class_dashboard(session, viewer, klass.id, now=now, reports=built)

                pdf = class_pack_pdf(reports(), dashboard,
                                     language=language, gettext=translator(language),
                                     progress=progress, total=len(ids))
                session.rollback()
            with factory() as session:
                job = session.get(ReportJob, job_id, with_for_update=True)
                if job.status != "running":  # reaped meanwhile: its verdict stands
                    return job.status
                job.pdf, job.status, job.finished_at = pdf, "done", utcnow()
                job.progress = job.total = len(ids)
                session.commit()
            return "done"
        except Exception as error:
            logger.exception("report job %s failed", job_id)
            with factory() as session:
                job = session.get(ReportJob, job_id, with_for_update=True)
                if job.status != "running":
                    return job.status
                job.status, job.error, job.finished_at = "failed", _failure(error), utcnow()
                session.commit()
            return "failed"
    finally:
        engine.dispose()
