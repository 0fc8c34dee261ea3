"""Retention: how long each kind of record is kept, and the purge that enforces it.

The current privacy note's ``retention`` maps a kind of :data:`KINDS` to days; a kind it does
not name is kept. :func:`purge` counts (dry run, the default) or deletes the records older than
that. Each kind says how its age is measured and what goes with it; the counts are of the kind's
own rows, and a dry run's counts are exactly what ``apply`` deletes at the same moment.

Never purged: the audit log (append-only and hash-chained: deleting entries would break the
chain, and it holds no personal data but ids) and ``access_audit`` (who could see a student
when: kept as long as the student is; an erasure deletes it).
Users are not a kind: a person leaves by erasure. Files no draft refers to any more are removed
by ``cat-engine files gc``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from evidence.models import (
    Attempt,
    AttemptStatus,
    Draft,
    DraftComment,
    DraftFile,
    Response,
    RubricScore,
    Statement,
    StatementActivity,
)
from reports.models import Appeal, AppealAnswer, MasteryDecision, ReportJob
from storage import as_utc, utcnow
from storage.accounts import PageSession
from storage.errors import Invalid
from storage.rights import AuditAction, PrivacyNote, audit


@dataclass(frozen=True)
class Kind:
    """A kind of record with a retention period: its table's model, how its age is measured
    (in words, for the note's readers) and the condition selecting rows older than a cutoff."""

    name: str
    model: Any
    age: str
    older: Callable[[datetime], ColumnElement[bool]]
    dependents: str = ""


def _attempts_older(cutoff: datetime) -> ColumnElement[bool]:
    # In progress attempts are never purged (and see _conditions: nor while a statement that
    # stays names them, since statements cannot be changed to drop the link).
    return (Attempt.status != AttemptStatus.IN_PROGRESS) & (
        func.coalesce(Attempt.finished_at, Attempt.started_at) < cutoff)


def _statements_older(cutoff: datetime) -> ColumnElement[bool]:
    return Statement.stored_at < cutoff


def _drafts_older(cutoff: datetime) -> ColumnElement[bool]:
    return Draft.submitted_at < cutoff


def _scores_older(cutoff: datetime) -> ColumnElement[bool]:
    newest = (select(RubricScore.defense_id).group_by(RubricScore.defense_id)
              .having(func.max(RubricScore.created_at) < cutoff))
    return RubricScore.defense_id.in_(newest)


def _appeals_older(cutoff: datetime) -> ColumnElement[bool]:
    answered = select(AppealAnswer.appeal_id, AppealAnswer.answered_at).subquery()
    late = select(answered.c.appeal_id).where(answered.c.answered_at >= cutoff)
    return (Appeal.created_at < cutoff) & ~Appeal.id.in_(late)


def _decisions_older(cutoff: datetime, appeals_cutoff: datetime | None) -> ColumnElement[bool]:
    # A decision stays while an appeal (or an answer) that stays names it.
    staying_appeals = select(Appeal.id) if appeals_cutoff is None else select(Appeal.id).where(
        ~_appeals_older(appeals_cutoff))
    named = select(Appeal.decision_id).where(Appeal.id.in_(staying_appeals),
                                             Appeal.decision_id.is_not(None))
    answered = select(AppealAnswer.decision_id).where(
        AppealAnswer.appeal_id.in_(staying_appeals), AppealAnswer.decision_id.is_not(None))
    return ((MasteryDecision.decided_at < cutoff) & ~MasteryDecision.id.in_(named)
            & ~MasteryDecision.id.in_(answered))


#: The kinds of record a privacy note may give a retention period, in purge order.
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("statements", Statement, "when the statement was stored", _statements_older),
    Kind("attempts", Attempt, "when the attempt finished (or started, if abandoned); never "
         "while in progress", _attempts_older, "their responses"),
    Kind("drafts", Draft, "when the draft was submitted", _drafts_older,
         "their files' references and teachers' comments"),
    Kind("rubric_scores", RubricScore, "a defense's newest score: all of a defense's scores "
         "go together", _scores_older),
    Kind("appeals", Appeal, "when the appeal was made, or answered if later", _appeals_older,
         "their answers"),
    Kind("decisions", MasteryDecision, "when the teacher decided; kept while an appeal that "
         "stays names it", lambda c: MasteryDecision.decided_at < c),
    Kind("page_sessions", PageSession, "when the browser was last seen",
         lambda c: PageSession.last_seen_at < c),
    Kind("report_jobs", ReportJob, "when the class pack was requested; never while queued or "
         "running", lambda c: (ReportJob.created_at < c)
         & ReportJob.status.in_(("done", "failed"))),
)}
#: Records a privacy note cannot set a period for, and why.
KEPT = {"audit_log": "append-only and hash-chained; holds ids, never names or answers",
        "access_audit": "who could see a student, and when; deleted by the student's erasure",
        "users": "a person leaves by erasure, not by age"}


def retention_of(session: Session) -> dict[str, int]:
    """The current privacy note's retention in days per kind (kinds it names only).

    Raises
    ------
    Invalid
        A period that is not a whole number of days >= 1.
    """
    note = session.scalar(select(PrivacyNote).order_by(PrivacyNote.version.desc()).limit(1))
    days: dict[str, int] = {}
    for name, value in ((note.retention or {}) if note is not None else {}).items():
        if name not in KINDS:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise Invalid(f"the privacy note's retention of {name} is {value!r}, not a whole "
                          "number of days of at least 1", field="retention")
        days[name] = value
    return days


@dataclass(frozen=True)
class PurgeResult:
    """What a purge counted (dry run) or deleted (``applied``): rows per kind, the days and
    cutoff of each kind the note names, and the kinds it does not name (kept)."""

    applied: bool
    counts: dict[str, int]
    days: dict[str, int]
    cutoffs: dict[str, str]
    kept: list[str]


def _conditions(session: Session, now: datetime) -> tuple[dict[str, Any], dict[str, int],
                                                             dict[str, datetime]]:
    days = retention_of(session)
    cutoffs = {name: now - timedelta(days=d) for name, d in days.items()}
    conditions: dict[str, Any] = {}
    for name in KINDS:
        if name not in cutoffs:
            continue
        cutoff = cutoffs[name]
        if name == "decisions":
            conditions[name] = _decisions_older(cutoff, cutoffs.get("appeals"))
        elif name == "attempts":
            statements_stay = select(Statement.attempt_id).where(Statement.attempt_id.is_not(None))
            if "statements" in cutoffs:
                statements_stay = statements_stay.where(
                    ~_statements_older(cutoffs["statements"]))
            conditions[name] = (KINDS[name].older(cutoff)
                                & ~Attempt.id.in_(statements_stay))
        else:
            conditions[name] = KINDS[name].older(cutoff)
    return conditions, days, cutoffs


def _delete(session: Session, name: str, condition) -> int:
    """Delete the rows of kind ``name`` matching ``condition``, with what goes with them."""
    model = KINDS[name].model
    ids = select(model.__mapper__.primary_key[0]).where(condition)
    if name == "statements":
        session.execute(delete(StatementActivity).where(StatementActivity.statement_seq.in_(ids)))
    elif name == "attempts":
        session.execute(delete(Response).where(Response.attempt_id.in_(ids)))
    elif name == "drafts":
        session.execute(delete(DraftComment).where(DraftComment.draft_id.in_(ids)))
        session.execute(delete(DraftFile).where(DraftFile.draft_id.in_(ids)))
    elif name == "appeals":
        session.execute(delete(AppealAnswer).where(AppealAnswer.appeal_id.in_(ids)))
    count = select(func.count()).select_from(model).where(condition)
    before = session.scalar(count) or 0
    # Whole defenses' scores go together; corrections follow what they correct (ON DELETE
    # CASCADE), so the rows gone are counted, not the statement's rowcount.
    session.execute(delete(model).where(model.__mapper__.primary_key[0].in_(
        select(ids.subquery().c[0]))))
    return before - (session.scalar(count) or 0)


def purge(session: Session, *, apply: bool = False, actor_id: int | None = None,
          now: datetime | None = None) -> PurgeResult:
    """Count (default) or delete the records older than the current note's retention.

    With ``apply`` the rows are deleted in the session's transaction and ``PURGE`` is recorded
    with the counts; the caller commits. A dry run writes nothing.
    """
    now = as_utc(now) if now is not None else utcnow()
    conditions, days, cutoffs = _conditions(session, now)
    counts: dict[str, int] = {}
    for name, condition in conditions.items():
        model = KINDS[name].model
        counts[name] = session.scalar(select(func.count()).select_from(model).where(condition)
                                      ) or 0
    if apply:
        for name, condition in conditions.items():
            if counts[name]:
                counts[name] = _delete(session, name, condition)
        audit(session, AuditAction.PURGE, actor_id=actor_id, object_type="retention",
              detail={"counts": counts, "days": days})
        session.flush()
    return PurgeResult(apply, counts, days, {k: v.isoformat() for k, v in cutoffs.items()},
                       sorted(set(KINDS) - set(days)))
