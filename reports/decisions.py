"""Teachers' mastery decisions, students' appeals and teachers' answers: append-only records.

Who may act (decided here, see docs/decisions.md):

- a *decision* on a student's skill is recorded by a teacher of the student (a teacher of a class
  the student is enrolled in) or by an administrator; any other teacher gets ``NotFound`` (a
  teacher must not learn that a student exists), any other role ``Forbidden``;
- an *appeal* is made by the student, on a skill of their own; another student's skill is
  ``NotFound``;
- an *answer* is given by a teacher of the appeal's student or an administrator, as for
  decisions.

Nothing is ever updated: a teacher who changes their mind records a new decision (the newest is
the current one), and a revised appeal records a new decision too, which the answer names. The
model's view when the teacher decided (suggested decision, P(mastery), theta, se) is copied onto
the decision row and kept beside the teacher's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.classes import reaches, teaches
from evidence.models import RubricCriterion
from item_bank.models import Item
from reports.models import DECISIONS, OUTCOMES, Appeal, AppealAnswer, MasteryDecision
from storage import as_utc
from storage.accounts import Role, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from storage.rights import AuditAction, audit

#: The longest reason or appeal message accepted, in characters.
MAX_TEXT = 4000


def _iso(moment) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()


def _name(user: User | None) -> str | None:
    return None if user is None else (user.display_name or user.username)


def _text(value: str | None, field: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise Invalid(f"{what} is required", field=field)
    if len(text) > MAX_TEXT:
        raise Invalid(f"{field} is longer than {MAX_TEXT} characters", field=field)
    if "\x00" in text:
        raise Invalid(f"{field} holds a NUL character", field=field)
    return text


def _decision_value(value: str | None, field: str = "decision") -> str:
    if value not in DECISIONS:
        raise Invalid(f"{field} must be one of {', '.join(DECISIONS)}; got {value!r}",
                      field=field)
    return value


def known_skill(session: Session, skill: str) -> str:
    """``skill`` if the bank knows it (an item's or a rubric criterion's skill).

    Raises
    ------
    NotFound
        No item and no rubric criterion has this skill.
    """
    if not skill or len(skill) > 80 or "\x00" in skill:  # no column holds such a name
        raise NotFound(f"no skill {skill[:80]!r} in the bank", field="skill")
    found = session.scalar(select(Item.skill).where(Item.skill == skill).limit(1)) or \
        session.scalar(select(RubricCriterion.skill).where(RubricCriterion.skill == skill)
                       .limit(1))
    if found is None:
        raise NotFound(f"no skill {skill!r} in the bank", field="skill")
    return skill


def _student_for_staff(session: Session, staff: User, student_id: int) -> User:
    """The student ``student_id`` if ``staff`` teaches them or is an administrator."""
    if staff.role not in (Role.TEACHER, Role.ADMIN):
        raise Forbidden("decisions and answers to appeals are for the student's teacher or an "
                        f"administrator; you are {staff.role.value}")
    student = session.get(User, student_id)
    allowed = reaches(session, staff, student) or teaches(session, staff, student_id)
    if (student is None or student.role != Role.STUDENT or student.erased_at is not None
            or not allowed):
        raise NotFound(f"no student {student_id} you may see")
    return student


def _lock(session: Session, student_id: int) -> None:
    """Serialise writers of one student's decisions and appeals (a row lock on PostgreSQL;
    SQLite has one writer at a time anyway and ignores FOR UPDATE)."""
    session.execute(select(User.id).where(User.id == student_id).with_for_update())


def _new_decision(session: Session, teacher: User, student_id: int, skill: str, decision: str,
                  reason: str, suggestion: dict[str, Any] | None) -> MasteryDecision:
    suggestion = suggestion or {}
    row = MasteryDecision(
        student_id=student_id, skill=skill, decision=decision, reason=reason,
        suggested_decision=suggestion.get("suggested_decision"),
        mastery_probability=suggestion.get("mastery_probability"),
        theta=suggestion.get("theta"), se=suggestion.get("se"), decided_by=teacher.id)
    session.add(row)
    session.flush()
    # A decision that differs from the model's suggestion overrides it.
    suggested = row.suggested_decision
    action = (AuditAction.OVERRIDE if suggested is not None and suggested != decision
              else AuditAction.DECISION)
    audit(session, action, actor_id=teacher.id, subject_id=student_id,
          object_type="decision", object_id=row.id,
          detail={"skill": skill, "decision": decision, "suggested": suggested})
    return row


def record_decision(session: Session, teacher: User, student_id: int, skill: str,
                    decision: str, reason: str, *, suggestion: dict[str, Any] | None = None
                    ) -> MasteryDecision:
    """Record a teacher's decision on one skill of a student (it becomes the current one).

    Parameters
    ----------
    teacher : User
        A teacher of the student (of a class the student is enrolled in) or an administrator.
    decision : str
        One of :data:`reports.models.DECISIONS`.
    reason : str
        Why; required (whitespace alone is no reason).
    suggestion : dict, optional
        The report's entry for the skill when the teacher decided: its ``suggested_decision``,
        ``mastery_probability``, ``theta`` and ``se`` are kept on the row beside the teacher's
        decision. None when the report has no entry for the skill (no evidence of it).

    Raises
    ------
    Forbidden
        ``teacher`` is neither a teacher nor an administrator.
    NotFound
        No such student, one the teacher does not teach, or a skill the bank does not know.
    Invalid
        ``decision`` is not a known value, or no reason.
    """
    student = _student_for_staff(session, teacher, student_id)
    decision = _decision_value(decision)
    reason = _text(reason, "reason", "a reason")
    skill = known_skill(session, skill)
    _lock(session, student.id)
    return _new_decision(session, teacher, student.id, skill, decision, reason, suggestion)


def _current_decision(session: Session, student_id: int, skill: str) -> MasteryDecision | None:
    return session.scalars(
        select(MasteryDecision)
        .where(MasteryDecision.student_id == student_id, MasteryDecision.skill == skill)
        .order_by(MasteryDecision.decided_at.desc(), MasteryDecision.id.desc()).limit(1)
    ).first()


def _open_appeals(session: Session, student_id: int, skill: str | None = None):
    query = (select(Appeal).outerjoin(AppealAnswer, AppealAnswer.appeal_id == Appeal.id)
             .where(Appeal.student_id == student_id, AppealAnswer.id.is_(None)))
    if skill is not None:
        query = query.where(Appeal.skill == skill)
    return session.scalars(query.order_by(Appeal.created_at.desc(), Appeal.id.desc())).all()


def appeal(session: Session, student: User, skill: str, message: str, *,
           student_id: int | None = None, suggestion: dict[str, Any] | None = None) -> Appeal:
    """A student appeals the current decision on one of their skills.

    The appeal names the skill's current teacher decision (``decision_id``); when no teacher has
    decided, it appeals the model's suggestion (``decision_id`` None, ``appealed_decision`` the
    suggested value, taken from ``suggestion``, the report's entry for the skill).

    Parameters
    ----------
    student : User
        The student appealing.
    student_id : int, optional
        The student named by the request; another than ``student`` is not found.
    suggestion : dict, optional
        The report's entry for the skill (its ``suggested_decision``).

    Raises
    ------
    Forbidden
        ``student`` is not a student.
    NotFound
        Another student's skill, a skill the bank does not know, or a skill with neither a
        teacher's decision nor a suggestion to appeal.
    Invalid
        An empty message.
    Conflict
        An open appeal on the same decision already waits for an answer.
    """
    if student.role != Role.STUDENT:
        raise Forbidden(f"only the student may appeal; you are {student.role.value}")
    if student_id is not None and student_id != student.id:
        raise NotFound(f"no student {student_id} you may see")
    message = _text(message, "message", "a message")
    skill = known_skill(session, skill)
    _lock(session, student.id)
    current = _current_decision(session, student.id, skill)
    if current is not None:
        appealed = current.decision
    elif suggestion and suggestion.get("suggested_decision") in DECISIONS:
        appealed = suggestion["suggested_decision"]
    else:
        raise NotFound(f"no decision on skill {skill!r} to appeal (no evidence of it yet)",
                       field="skill")
    target = None if current is None else current.id
    for other in _open_appeals(session, student.id, skill):
        if other.decision_id == target:
            raise Conflict(f"appeal {other.id} on this decision of skill {skill!r} is still open "
                           "(sent " + as_utc(other.created_at).strftime("%Y-%m-%d %H:%M UTC")
                           + "); wait for its answer", field="skill")
    row = Appeal(student_id=student.id, skill=skill, decision_id=target,
                 appealed_decision=appealed, message=message)
    session.add(row)
    session.flush()
    audit(session, AuditAction.APPEAL, actor_id=student.id, subject_id=student.id,
          object_type="appeal", object_id=row.id, detail={"skill": skill, "decision_id": target})
    return row


def get_appeal(session: Session, viewer: User, appeal_id: int) -> Appeal:
    """Appeal ``appeal_id`` if ``viewer`` may answer it (a teacher of its student, an
    administrator).

    Raises
    ------
    Forbidden
        Neither a teacher nor an administrator.
    NotFound
        No such appeal, or one of a student the teacher does not teach.
    """
    if viewer.role not in (Role.TEACHER, Role.ADMIN):
        raise Forbidden("appeals are answered by the student's teacher or an administrator; "
                        f"you are {viewer.role.value}")
    row = session.get(Appeal, appeal_id)
    if row is None:
        raise NotFound(f"no appeal {appeal_id} you may see")
    try:
        _student_for_staff(session, viewer, row.student_id)
    except NotFound:
        raise NotFound(f"no appeal {appeal_id} you may see") from None
    return row


def answer_appeal(session: Session, teacher: User, appeal_id: int, outcome: str, reason: str,
                  decision: str | None = None, *, suggestion: dict[str, Any] | None = None
                  ) -> AppealAnswer:
    """A teacher answers an appeal: ``upheld`` (the decision stands) or ``revised``.

    A revision records a new :class:`MasteryDecision` with ``decision`` and the answer's reason
    (it becomes the skill's current decision); the answer names it.

    Parameters
    ----------
    teacher : User
        A teacher of the appeal's student, or an administrator.
    outcome : str
        One of :data:`reports.models.OUTCOMES`.
    decision : str, optional
        The new decision, required for a revision and refused for an upheld appeal; it must
        differ from the appealed one.
    suggestion : dict, optional
        The report's entry for the skill, kept on the new decision as for
        :func:`record_decision`.

    Raises
    ------
    NotFound
        No such appeal, or one of a student the teacher does not teach.
    Invalid
        Unknown outcome, no reason, a revision without a (new, known) decision.
    Conflict
        The appeal is answered already.
    """
    row = get_appeal(session, teacher, appeal_id)
    if outcome not in OUTCOMES:
        raise Invalid(f"outcome must be one of {', '.join(OUTCOMES)}; got {outcome!r}",
                      field="outcome")
    reason = _text(reason, "reason", "a reason")
    if outcome == "revised":
        if decision is None:
            raise Invalid("a revision needs the new decision", field="decision")
        decision = _decision_value(decision)
        if decision == row.appealed_decision:
            raise Invalid(f"the appealed decision is already {decision!r}: uphold it, or choose "
                          "another decision", field="decision")
    elif decision is not None:
        raise Invalid("a decision is given only with the outcome 'revised'", field="decision")
    _lock(session, row.student_id)
    answered = session.scalar(select(AppealAnswer).where(AppealAnswer.appeal_id == row.id))
    if answered is not None:
        raise Conflict(f"appeal {row.id} was answered already ({answered.outcome}, "
                       + as_utc(answered.answered_at).strftime("%Y-%m-%d %H:%M UTC") + ")",
                       field="appeal_id")
    new = None
    if outcome == "revised":
        new = _new_decision(session, teacher, row.student_id, row.skill, decision, reason,
                            suggestion)
    answer = AppealAnswer(appeal_id=row.id, outcome=outcome, reason=reason,
                          decision_id=None if new is None else new.id, answered_by=teacher.id)
    session.add(answer)
    session.flush()
    audit(session, AuditAction.APPEAL_ANSWER, actor_id=teacher.id, subject_id=row.student_id,
          object_type="appeal", object_id=row.id,
          detail={"skill": row.skill, "outcome": outcome, "decision_id": answer.decision_id})
    return answer


# -- the history, as the report shows it ---------------------------------------------------------


def decision_entry(row: MasteryDecision, names: dict[int, str]) -> dict[str, Any]:
    """A decision as the report shows it (``teacher_decision`` and the history's rows)."""
    return {"id": row.id, "skill": row.skill, "decision": row.decision, "reason": row.reason,
            "decided_by": row.decided_by, "decided_by_name": names.get(row.decided_by),
            "decided_at": _iso(row.decided_at), "suggested_decision": row.suggested_decision,
            "mastery_probability": None if row.mastery_probability is None
            else round(float(row.mastery_probability), 4),
            "theta": None if row.theta is None else round(float(row.theta), 4),
            "se": None if row.se is None else round(float(row.se), 4)}


def answer_entry(answer: AppealAnswer, names: dict[int, str]) -> dict[str, Any]:
    """An answer to an appeal as the report shows it."""
    return {"id": answer.id, "outcome": answer.outcome, "reason": answer.reason,
            "answered_by": answer.answered_by, "answered_by_name": names.get(answer.answered_by),
            "answered_at": _iso(answer.answered_at), "decision_id": answer.decision_id}


def appeal_entry(row: Appeal, answer: AppealAnswer | None, names: dict[int, str]
                 ) -> dict[str, Any]:
    """An appeal (with its answer, if any) as the report shows it."""
    return {"id": row.id, "skill": row.skill, "decision_id": row.decision_id,
            "appealed_decision": row.appealed_decision, "message": row.message,
            "created_at": _iso(row.created_at),
            "answer": None if answer is None else answer_entry(answer, names)}


def history(session: Session, student_id: int) -> dict[str, Any]:
    """Every decision and appeal of the student, newest first, and each skill's current ones.

    Returns
    -------
    dict
        ``decisions``: every decision (see :func:`decision_entry`); ``appeals``: every appeal
        ``{"id", "skill", "decision_id", "appealed_decision", "message", "created_at",
        "answer": None | {"id", "outcome", "reason", "answered_by", "answered_by_name",
        "answered_at", "decision_id"}}``; ``current``: ``{skill: newest decision}``;
        ``open``: ``{skill: {"id", "message", "created_at", "decision_id",
        "appealed_decision"}}``, the newest unanswered appeal of each skill. No access check:
        the caller (the report) has made it.
    """
    decisions = session.scalars(
        select(MasteryDecision).where(MasteryDecision.student_id == student_id)
        .order_by(MasteryDecision.decided_at.desc(), MasteryDecision.id.desc())).all()
    rows = session.execute(
        select(Appeal, AppealAnswer).outerjoin(AppealAnswer, AppealAnswer.appeal_id == Appeal.id)
        .where(Appeal.student_id == student_id)
        .order_by(Appeal.created_at.desc(), Appeal.id.desc())).all()
    people = {d.decided_by for d in decisions} | {a.answered_by for _, a in rows if a}
    people.discard(None)
    names = {u.id: _name(u) for u in session.scalars(select(User).where(User.id.in_(people)))}
    entries = [decision_entry(d, names) for d in decisions]
    current: dict[str, Any] = {}
    for entry in entries:
        current.setdefault(entry["skill"], entry)
    appeals: list[dict[str, Any]] = []
    open_: dict[str, Any] = {}
    for row, answer in rows:
        entry = appeal_entry(row, answer, names)
        appeals.append(entry)
        if answer is None:
            open_.setdefault(row.skill, {k: entry[k] for k in (
                "id", "message", "created_at", "decision_id", "appealed_decision")})
    return {"decisions": entries, "appeals": appeals, "current": current, "open": open_}
