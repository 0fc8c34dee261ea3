"""Erasure of a student's personal data: requested by an administrator, confirmed by a second
administrator or by a stated delay (as the student's school sets), then carried out in one
transaction.

Rules (see docs/decisions.md):

- Only administrators who reach the student request, confirm, cancel or list erasures. The
  endpoint is for students: a staff account is refused (422) — staff leave by deactivation,
  their names stay on the decisions and scores they signed.
- A school's ``erasure_confirmation`` decides: ``second_admin`` (also for students of no
  school) waits for a *different* administrator's confirmation, which executes it at once;
  ``delay`` sets ``due_at`` = request + ``erasure_delay_days`` and :func:`run_due` executes it
  then (``cat-engine erasures run-due``). Either may be cancelled while pending.
- Executing deletes every record of the student's (drafts with their files and comments,
  statements, defenses with their rubric scores, decisions, appeals and answers, consents,
  group variables, the accommodation, class memberships, page sessions, API tokens, the class
  packs of their classes) and turns the user row into a tombstone (``erased-<id>``, no name,
  an unusable password, inactive, a new pseudonym, ``erased_at``). Attempts and responses:
  if the current privacy note keeps anonymous responses they stay on the tombstone with what
  item statistics need (item, response, choice, time) and nothing else (no estimate, no
  engine state, no class, a new xAPI registration); otherwise, and when no note is published,
  they are deleted.
- Deleted too: the ``access_audit`` rows about the student (enrolments and accommodations;
  the table refuses UPDATE but accepts DELETE since migration 0014).
- Kept: the audit log (append-only and chained; it names no one but by id).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, func, null, or_, select, update
from sqlalchemy.orm import Session

from evidence.classes import reaches
from evidence.lti_models import LtiGrade, LtiUserLink
from evidence.models import (
    Attempt,
    AttemptStatus,
    Defense,
    DefenseRater,
    Draft,
    DraftComment,
    DraftFile,
    Response,
    RubricScore,
    Statement,
    StatementActivity,
    StoredFile,
)
from evidence.xapi_forwarding import drop_forwards
from reports.models import Appeal, AppealAnswer, MasteryDecision, ReportJob
from storage import as_utc, utcnow
from storage.accounts import (
    AccessAudit,
    Accommodation,
    ApiToken,
    ErasureConfirmation,
    PageSession,
    Role,
    School,
    User,
    class_members,
    new_pseudonym,
    school_condition,
)
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from storage.rights import (
    AuditAction,
    Consent,
    Erasure,
    ErasureStatus,
    PrivacyNote,
    StudentGroup,
    audit,
)

MAX_REASON = 2000
#: Personal columns an erasure leaves filled when the privacy note keeps anonymous responses:
#: what item statistics need, on rows that point at the tombstone only.
KEPT_ANONYMOUS: dict[str, tuple[str, ...]] = {
    "attempts": ("user_id",), "responses": ("response", "choice", "response_time_ms")}
#: Records about the student an erasure cannot delete, and why.
KEPT_RECORDS = {
    "audit_log": "append-only and hash-chained; ids only, never names or answers",
}
#: The password hash of a tombstone: no password checks against it.
UNUSABLE_PASSWORD = "!erased"


@dataclass(frozen=True)
class Executed:
    """An erasure carried out: its counts, and the stored files to remove from disk after the
    commit (their rows are gone; the bytes cannot be removed inside the transaction)."""

    erasure: Erasure
    outcome: dict[str, Any]
    orphan_files: list[str] = field(default_factory=list)


def _require_admin(user: User) -> None:
    if user.role != Role.ADMIN:
        raise Forbidden(f"erasures are for administrators; you are {user.role.value}")


def _erasable(session: Session, admin: User, student_id: int) -> User:
    student = session.get(User, student_id)
    if student is None or student.erased_at is not None or not reaches(session, admin, student):
        raise NotFound(f"no user {student_id} you may see")
    if student.role != Role.STUDENT:
        raise Invalid(f"user {student_id} is a {student.role.value}: erasure through this "
                      "endpoint is for students; deactivate a staff account instead (its "
                      "name stays on the decisions and scores it signed)", field="student_id")
    return student


def confirmation_of(session: Session, student: User) -> tuple[ErasureConfirmation, int]:
    """How the student's school confirms an erasure, and its delay in days.

    A student of no school: a second administrator (the safer of the two)."""
    school = session.get(School, student.school_id) if student.school_id is not None else None
    if school is None:
        return ErasureConfirmation.SECOND_ADMIN, 0
    return ErasureConfirmation(school.erasure_confirmation), int(school.erasure_delay_days)


def request_erasure(session: Session, admin: User, student_id: int, reason: str | None, *,
                    now: datetime | None = None) -> Erasure:
    """Record a pending erasure of ``student_id`` (records ``ERASURE_REQUESTED``).

    Raises
    ------
    Forbidden
        ``admin`` is not an administrator.
    Invalid
        No reason (``reason``), a too long one, or a staff account (``student_id``).
    NotFound
        No such user, one erased already, or one the administrator does not reach.
    Conflict
        An erasure of the student is pending already (named).
    """
    _require_admin(admin)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("reason is required: say why the student's data is erased (kept in the "
                      "audit log)", field="reason")
    if len(reason) > MAX_REASON:
        raise Invalid(f"reason is longer than {MAX_REASON} characters", field="reason")
    student = _erasable(session, admin, student_id)
    pending = session.scalar(select(Erasure.id).where(
        Erasure.student_id == student.id, Erasure.status == ErasureStatus.PENDING))
    if pending is not None:
        raise Conflict(f"erasure {pending} of user {student.id} is pending already: confirm "
                       "or cancel it")
    now = as_utc(now) if now is not None else utcnow()
    mode, days = confirmation_of(session, student)
    erasure = Erasure(student_id=student.id, reason=reason, status=ErasureStatus.PENDING,
                      requested_by=admin.id, requested_at=now,
                      due_at=now + timedelta(days=days) if mode == ErasureConfirmation.DELAY
                      else None)
    session.add(erasure)
    session.flush()
    audit(session, AuditAction.ERASURE_REQUESTED, actor_id=admin.id, subject_id=student.id,
          object_type="erasure", object_id=erasure.id,
          detail={"reason": reason, "confirmation": mode.value,
                  "due_at": None if erasure.due_at is None else erasure.due_at.isoformat()})
    return erasure


def erasures_query(admin: User, status: ErasureStatus | None = None) -> Select:
    """The erasures ``admin`` may see (of users of their school; all for a district admin),
    newest first."""
    _require_admin(admin)
    query = (select(Erasure).join(User, User.id == Erasure.student_id)
             .where(school_condition(admin, User.school_id))
             .order_by(Erasure.requested_at.desc(), Erasure.id.desc()))
    if status is not None:
        query = query.where(Erasure.status == status)
    return query


def get_erasure(session: Session, admin: User, erasure_id: int) -> Erasure:
    """Erasure ``erasure_id`` if ``admin`` may see it, else NotFound."""
    _require_admin(admin)
    found = session.execute(erasures_query(admin).where(Erasure.id == erasure_id)).scalar()
    if found is None:
        raise NotFound(f"no erasure {erasure_id} you may see")
    return found


def _pending(erasure: Erasure) -> None:
    if erasure.status != ErasureStatus.PENDING:
        raise Conflict(f"erasure {erasure.id} is {erasure.status.value}, not pending")


def confirm_erasure(session: Session, admin: User, erasure_id: int, *,
                    now: datetime | None = None) -> Executed:
    """A second administrator confirms a pending erasure, which is carried out at once.

    Raises
    ------
    Forbidden
        The administrator who requested it (a *different* one must confirm).
    Conflict
        Not pending, or confirmed by its delay (the school's setting): it runs when due.
    NotFound
        No such erasure the administrator may see.
    """
    erasure = get_erasure(session, admin, erasure_id)
    _pending(erasure)
    if erasure.due_at is not None:
        raise Conflict(f"erasure {erasure.id} is confirmed by its delay (the school's "
                       f"setting): it runs at {as_utc(erasure.due_at).isoformat()}; cancel "
                       "it to stop it")
    if erasure.requested_by == admin.id:
        raise Forbidden(f"erasure {erasure.id} was requested by you: a different "
                        "administrator must confirm it")
    now = as_utc(now) if now is not None else utcnow()
    erasure.confirmed_by, erasure.confirmed_at = admin.id, now
    audit(session, AuditAction.ERASURE_CONFIRMED, actor_id=admin.id,
          subject_id=erasure.student_id, object_type="erasure", object_id=erasure.id,
          detail={"requested_by": erasure.requested_by})
    return execute(session, erasure, actor_id=admin.id, now=now)


def cancel_erasure(session: Session, admin: User, erasure_id: int) -> Erasure:
    """Cancel a pending erasure (records ``ERASURE_CANCELLED``)."""
    erasure = get_erasure(session, admin, erasure_id)
    _pending(erasure)
    erasure.status, erasure.cancelled_by = ErasureStatus.CANCELLED, admin.id
    audit(session, AuditAction.ERASURE_CANCELLED, actor_id=admin.id,
          subject_id=erasure.student_id, object_type="erasure", object_id=erasure.id)
    return erasure


def due_erasures(session: Session, now: datetime | None = None) -> list[int]:
    """Ids of pending erasures whose delay has passed, oldest first."""
    now = as_utc(now) if now is not None else utcnow()
    return list(session.scalars(select(Erasure.id).where(
        Erasure.status == ErasureStatus.PENDING, Erasure.due_at.is_not(None),
        Erasure.due_at <= now).order_by(Erasure.due_at, Erasure.id)))


def run_due_one(session: Session, erasure_id: int, now: datetime | None = None
                ) -> Executed | None:
    """Carry out erasure ``erasure_id`` if it is still pending and due (the caller commits);
    None if not (cancelled meanwhile, run by another worker)."""
    now = as_utc(now) if now is not None else utcnow()
    erasure = session.execute(select(Erasure).where(Erasure.id == erasure_id)
                              .with_for_update()).scalar()
    if (erasure is None or erasure.status != ErasureStatus.PENDING or erasure.due_at is None
            or as_utc(erasure.due_at) > now):
        return None
    return execute(session, erasure, actor_id=None, now=now)


def keeps_anonymous_responses(session: Session) -> bool:
    """Whether the current privacy note keeps an erased student's responses (anonymous).

    No note published: no (nothing told the family they would be kept)."""
    note = session.scalar(select(PrivacyNote).order_by(PrivacyNote.version.desc()).limit(1))
    return bool(note is not None and note.keep_anonymous_responses)


def _count_delete(session: Session, statement) -> int:
    return session.execute(statement).rowcount or 0


def execute(session: Session, erasure: Erasure, *, actor_id: int | None,
            now: datetime | None = None) -> Executed:
    """Carry out ``erasure`` in the session's transaction (see the module's doc); the caller
    commits, then removes :attr:`Executed.orphan_files` from the file store.

    Records ``ERASURE_DONE`` with the counts (no personal data).
    """
    now = as_utc(now) if now is not None else utcnow()
    sid = erasure.student_id
    student = session.get(User, sid, with_for_update=True)
    if student is None or student.erased_at is not None:
        raise NotFound(f"no user {sid} to erase")
    keep = keeps_anonymous_responses(session)
    counts: dict[str, int] = {}
    run = _count_delete

    # Drafts, their files (rows no other draft refers to) and teachers' comments on them.
    drafts = select(Draft.id).where(Draft.student_id == sid)
    hashes = set(session.scalars(select(DraftFile.sha256).where(DraftFile.draft_id.in_(drafts))))
    counts["draft_comments"] = run(session, delete(DraftComment)
                                   .where(DraftComment.draft_id.in_(drafts)))
    counts["draft_files"] = run(session, delete(DraftFile).where(DraftFile.draft_id.in_(drafts)))
    counts["drafts"] = run(session, delete(Draft).where(Draft.student_id == sid))
    orphans: list[str] = []
    if hashes:
        still = set(session.scalars(select(DraftFile.sha256).where(
            DraftFile.sha256.in_(hashes))))
        orphans = sorted(hashes - still)
        if orphans:
            run(session, delete(StoredFile).where(StoredFile.sha256.in_(orphans)))
    counts["stored_files"] = len(orphans)

    # The step log: statements about the student, and the engine's about their attempts.
    attempts = select(Attempt.id).where(Attempt.user_id == sid)
    statements = select(Statement.seq).where(or_(Statement.actor_id == sid,
                                                 Statement.attempt_id.in_(attempts)))
    # Their statements' forwards to the school's LRS: pending ones are never sent.
    counts["xapi_forwards_dropped"] = drop_forwards(session, statements)
    run(session, delete(StatementActivity).where(StatementActivity.statement_seq.in_(statements)))
    counts["statements"] = run(session, delete(Statement).where(
        or_(Statement.actor_id == sid, Statement.attempt_id.in_(attempts))))

    # Defenses and their rubric scores (corrections first: they name the scores they correct).
    defenses = select(Defense.id).where(Defense.student_id == sid)
    counts["rubric_scores"] = 0
    while True:
        leaves = select(RubricScore.id).where(
            RubricScore.defense_id.in_(defenses),
            ~RubricScore.id.in_(select(RubricScore.corrects_id).where(
                RubricScore.corrects_id.is_not(None)).scalar_subquery()))
        gone = run(session, delete(RubricScore).where(RubricScore.id.in_(
            select(leaves.subquery().c.id))))
        counts["rubric_scores"] += gone
        if not gone:
            break
    run(session, delete(DefenseRater).where(DefenseRater.defense_id.in_(defenses)))
    counts["defenses"] = run(session, delete(Defense).where(Defense.student_id == sid))

    # Decisions, appeals and their answers.
    decisions = select(MasteryDecision.id).where(MasteryDecision.student_id == sid)
    appeals = select(Appeal.id).where(Appeal.student_id == sid)
    counts["appeal_answers"] = run(session, delete(AppealAnswer).where(or_(
        AppealAnswer.appeal_id.in_(appeals), AppealAnswer.decision_id.in_(decisions))))
    counts["appeals"] = run(session, delete(Appeal).where(Appeal.student_id == sid))
    counts["decisions"] = run(session, delete(MasteryDecision)
                              .where(MasteryDecision.student_id == sid))

    # Class packs of the student's classes hold their report: rendered output, rebuilt on
    # request. Then everything else that names the student.
    classes = select(class_members.c.class_id).where(class_members.c.user_id == sid)
    counts["report_jobs"] = run(session, delete(ReportJob).where(ReportJob.class_id.in_(classes)))
    counts["consents"] = run(session, delete(Consent).where(Consent.student_id == sid))
    counts["groups"] = run(session, delete(StudentGroup).where(StudentGroup.student_id == sid))
    counts["accommodations"] = run(session, delete(Accommodation)
                                   .where(Accommodation.user_id == sid))
    counts["class_memberships"] = run(session, delete(class_members)
                                      .where(class_members.c.user_id == sid))
    counts["access_changes"] = run(session, delete(AccessAudit)
                                   .where(AccessAudit.student_id == sid))
    counts["page_sessions"] = run(session, delete(PageSession).where(PageSession.user_id == sid))
    counts["api_tokens"] = run(session, delete(ApiToken).where(ApiToken.user_id == sid))
    # LTI: the platform's id of the person, and the scores waiting for the platform.
    counts["lti_links"] = run(session, delete(LtiUserLink).where(LtiUserLink.user_id == sid))
    counts["lti_grades"] = run(session, delete(LtiGrade).where(LtiGrade.attempt_id.in_(
        select(Attempt.id).where(Attempt.user_id == sid))))

    # Attempts and responses: kept anonymous, or deleted, as the privacy note says.
    if keep:
        counts["responses_kept"] = session.scalar(
            select(func.count()).select_from(Response).where(Response.attempt_id.in_(attempts))
        ) or 0
        run(session, update(Response).where(Response.attempt_id.in_(attempts))
            .values(reply=null(), idempotency_key=None))  # SQL NULL, not JSON null
        ids = list(session.scalars(attempts))
        for attempt_id in ids:  # a fresh registration each: the unique index needs one per row
            run(session, update(Attempt).where(Attempt.id == attempt_id).values(
                registration=str(uuid.uuid4())))
        run(session, update(Attempt).where(Attempt.user_id == sid).values(
            theta=None, se=None, result=null(), state=null(), assignment_id=None,
            current_item_id=None, presented_at=None, deadline=None))
        run(session, update(Attempt).where(and_(Attempt.user_id == sid,
                                                Attempt.status == AttemptStatus.IN_PROGRESS))
            .values(status=AttemptStatus.ABANDONED, finished_at=now))
        counts["attempts_kept"] = len(ids)
        counts["responses"] = counts["attempts"] = 0
    else:
        counts["responses"] = run(session, delete(Response)
                                  .where(Response.attempt_id.in_(attempts)))
        counts["attempts"] = run(session, delete(Attempt).where(Attempt.user_id == sid))
        counts["responses_kept"] = counts["attempts_kept"] = 0

    # The tombstone.
    student.username = f"erased-{sid}"
    student.display_name = ""
    student.password_hash = UNUSABLE_PASSWORD
    student.is_active = False
    student.pseudonym = new_pseudonym()
    student.erased_at = now
    erasure.status, erasure.executed_at = ErasureStatus.DONE, now
    outcome = {"deleted": {k: v for k, v in counts.items() if not k.endswith("_kept")},
               "kept": {"attempts": counts["attempts_kept"],
                        "responses": counts["responses_kept"]},
               "anonymous_responses_kept": keep}
    erasure.outcome = outcome
    session.flush()
    audit(session, AuditAction.ERASURE_DONE, actor_id=actor_id, subject_id=sid,
          object_type="erasure", object_id=erasure.id,
          detail={"reason": erasure.reason, "requested_by": erasure.requested_by,
                  "confirmed_by": erasure.confirmed_by, **outcome})
    return Executed(erasure, outcome, orphans)


def erasure_view(erasure: Erasure) -> dict[str, Any]:
    """An erasure as the API and the pages show it (its mode from ``due_at``)."""
    return {"id": erasure.id, "student_id": erasure.student_id, "reason": erasure.reason,
            "status": erasure.status.value,
            "confirmation": ("delay" if erasure.due_at is not None else "second_admin"),
            "requested_by": erasure.requested_by, "requested_at": erasure.requested_at,
            "due_at": erasure.due_at, "confirmed_by": erasure.confirmed_by,
            "confirmed_at": erasure.confirmed_at, "cancelled_by": erasure.cancelled_by,
            "executed_at": erasure.executed_at, "outcome": erasure.outcome or {}}
