"""Scores back to the platforms (LTI Assignment and Grade Services), from the outbox.

:func:`send_due` sends every score that is due (:func:`evidence.lti.due_grades`), each claimed
in its own short transaction so that two workers never send the same one, and posted with
pylti1p3's :class:`~pylti1p3.assignments_grades.AssignmentsGradesService` (an OAuth2 token from
the platform, signed with the tool's key, then ``POST {lineitem}/scores``). A platform that is
down or refuses leaves the score ``pending`` with ``next_try_at`` later (1, 2, 4... minutes);
the next run takes it. Runs come from the job queue (after an LTI attempt finishes, and again at
the next try's time when the queue has a worker) and from ``cat-engine lti send-grades`` (cron).

Exactly once: a score is marked ``sent`` in the transaction after the platform said yes. A
worker that dies between the two leaves it ``sending``; after
:data:`evidence.lti.STALE_CLAIM` it is sent again. AGS scores carry a timestamp and the
platform keeps the latest per user and line item, so that rare repeat changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from pylti1p3.assignments_grades import AssignmentsGradesService
from pylti1p3.contrib.flask import FlaskServiceConnector
from pylti1p3.grade import Grade
from sqlalchemy.orm import Session, sessionmaker

from evidence import lti as service
from storage import utcnow

logger = logging.getLogger(__name__)


@dataclass
class SendReport:
    """What one run did: scores sent, failed (to be tried again), given up."""

    sent: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    given_up: list[int] = field(default_factory=list)
    next_try_at: datetime | None = None


def _grade(score: dict) -> Grade:
    return (Grade().set_user_id(score["userId"]).set_score_given(score["scoreGiven"])
            .set_score_maximum(score["scoreMaximum"]).set_comment(score["comment"])
            .set_activity_progress(score["activityProgress"])
            .set_grading_progress(score["gradingProgress"])
            .set_timestamp(score["timestamp"]))


def post_score(session: Session, grade) -> None:
    """Post ``grade``'s stored score to its line item; raises on any failure."""
    from api.lti import TimeoutSession, registration_of

    registration = registration_of(grade.platform, service.tool_key(session))
    connector = FlaskServiceConnector(registration, TimeoutSession())
    ags = AssignmentsGradesService(connector, grade.endpoint)
    ags.put_grade(_grade(grade.score))


def send_due(factory: sessionmaker[Session], now: datetime | None = None) -> SendReport:
    """Send every score that is due, each in its own transactions (see the module notes)."""
    report = SendReport()
    with factory() as session:
        due = service.due_grades(session, now)
    for grade_id in due:
        with factory() as session:
            grade = service.claim_grade(session, grade_id, now)
            session.commit()
            if grade is None:
                continue
            try:
                post_score(session, grade)
            except Exception as error:  # the platform is down, refuses, or answers nonsense
                message = f"{error.__class__.__name__}: {error}"
                logger.warning("LTI score %s not sent: %s", grade_id, message)
                later = service.grade_failed(session, grade, message, now)
                (report.retry if later else report.given_up).append(grade_id)
                if later and (report.next_try_at is None or later < report.next_try_at):
                    report.next_try_at = later
            else:
                service.grade_sent(session, grade, now or utcnow())
                report.sent.append(grade_id)
            session.commit()
    return report


def run_send_grades(database_url: str | None = None, queue: str | None = None) -> str:
    """The queue's task: send what is due; when something failed, schedule the next run at
    its next try (a worker carries it out; in immediate mode, cron does)."""
    from api.jobs import get_queue
    from storage import make_engine, session_factory

    engine = make_engine(database_url)
    try:
        report = send_due(session_factory(engine))
    finally:
        engine.dispose()
    if report.next_try_at is not None:
        jobs = get_queue(queue)
        if not jobs.immediate:
            jobs.lti_grades.schedule(args=(database_url, jobs.url), eta=report.next_try_at)
    return f"{len(report.sent)} sent, {len(report.retry)} to retry, {len(report.given_up)} failed"


def after_attempt(attempt_id: int) -> None:
    """Called by the pages and the API after a request that may have finished ``attempt_id``:
    queue the sending when it is an LTI attempt whose score is due. Failing to queue loses
    nothing (the outbox row stays for the next run)."""
    from flask import current_app

    from api.db import engine_of, get_session
    from api.jobs import get_queue, queue_url
    from evidence.lti_models import GradeStatus, LtiGrade
    from evidence.models import Attempt, AttemptStatus

    session = get_session()
    due = session.scalar(
        LtiGrade.__table__.select().with_only_columns(LtiGrade.id)
        .join(Attempt.__table__, Attempt.id == LtiGrade.attempt_id)
        .where(LtiGrade.attempt_id == attempt_id,
               LtiGrade.status.in_([GradeStatus.WAITING, GradeStatus.PENDING]),
               Attempt.status == AttemptStatus.FINISHED))
    session.rollback()
    if due is None:
        return
    try:
        queue = get_queue(queue_url(current_app.config.get("HUEY_URL"),
                                    current_app.instance_path))
        queue.lti_grades(engine_of(current_app).url.render_as_string(hide_password=False),
                         queue.url)
    except Exception:  # the queue is down: cron's run sends it
        logger.exception("could not queue the LTI score of attempt %s", attempt_id)
