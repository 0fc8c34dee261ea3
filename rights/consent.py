"""Consents per student and purpose, and the group variables the demographics consent allows.

Who records a consent: an administrator who reaches the student (a district administrator, or
their school's), or the student themself where their school lets students decide. Teachers and
assessors may not (403); another student, an erased one or one outside the administrator's
school is *not found*. Every change is an append-only record and an audit entry; withdrawing
the demographics consent deletes the student's group variables in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from evidence.classes import reaches
from storage import as_utc, utcnow
from storage.accounts import Role, School, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from storage.rights import (
    AuditAction,
    Consent,
    Purpose,
    StudentGroup,
    audit,
    has_consent,
)

MAX_NOTE = 2000
#: Group variables: a name of letters, digits and underscores, a value up to 80 characters.
MAX_VARIABLES = 20


def _purpose(value: str | None) -> Purpose:
    try:
        return Purpose(value)
    except ValueError:
        allowed = ", ".join(p.value for p in Purpose)
        raise Invalid(f"unknown purpose {value!r}; one of: {allowed}", field="purpose") from None


def students_may_consent(session: Session, student: User) -> bool:
    """Whether the student's school lets students record their own consents."""
    if student.school_id is None:
        return False
    school = session.get(School, student.school_id)
    return bool(school is not None and school.students_may_consent)


def consent_student(session: Session, viewer: User, student_id: int) -> User:
    """The student whose consents ``viewer`` may read.

    Raises
    ------
    Forbidden
        ``viewer`` is a teacher or an assessor.
    NotFound
        No such student, an erased one, another student, or one the administrator does not
        reach.
    """
    if viewer.role in (Role.TEACHER, Role.ASSESSOR):
        raise Forbidden("consents are recorded by administrators (and by students themselves "
                        f"where their school allows it); you are {viewer.role.value}")
    student = session.get(User, student_id)
    missing = (student is None or student.role != Role.STUDENT or student.erased_at is not None
               or (viewer.role == Role.STUDENT and viewer.id != student_id)
               or (viewer.role == Role.ADMIN and not reaches(session, viewer, student)))
    if missing:
        raise NotFound(f"no student {student_id} you may see")
    return student


def consents(session: Session, viewer: User, student_id: int) -> dict[str, Any]:
    """The student's consents: the current state per purpose and the whole history."""
    student = consent_student(session, viewer, student_id)
    rows = session.scalars(select(Consent).where(Consent.student_id == student.id)
                           .order_by(Consent.at.desc(), Consent.id.desc())).all()
    names = dict(session.execute(select(User.id, User.display_name).where(
        User.id.in_({r.actor_id for r in rows if r.actor_id}))).all())
    current = {p.value: {"granted": False, "at": None} for p in Purpose}
    seen: set[str] = set()
    history = []
    for row in rows:
        entry = {"id": row.id, "purpose": row.purpose.value, "granted": row.granted,
                 "at": as_utc(row.at), "actor_id": row.actor_id,
                 "actor": names.get(row.actor_id), "note": row.note}
        history.append(entry)
        if row.purpose.value not in seen:
            seen.add(row.purpose.value)
            current[row.purpose.value] = {"granted": row.granted, "at": as_utc(row.at)}
    return {"student_id": student.id, "current": current, "history": history,
            "students_may_consent": students_may_consent(session, student)}


def record_consent(session: Session, actor: User, student_id: int, purpose: str | None,
                   granted: bool, note: str = "") -> Consent:
    """Record a consent given or withdrawn (it becomes the current state of the purpose).

    Raises
    ------
    Forbidden
        A teacher or assessor; or the student themself where their school does not let
        students decide.
    NotFound
        See :func:`consent_student`.
    Invalid
        An unknown purpose or a note that is too long.
    """
    student = consent_student(session, actor, student_id)
    chosen = _purpose(purpose)
    if actor.role == Role.STUDENT and not students_may_consent(session, student):
        raise Forbidden("your school records consents itself: ask your school's "
                        "administrator")
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise Invalid(f"the note is longer than {MAX_NOTE} characters", field="note")
    row = Consent(student_id=student.id, purpose=chosen, granted=bool(granted),
                  actor_id=actor.id, at=utcnow(), note=note)
    session.add(row)
    removed = 0
    if chosen == Purpose.DEMOGRAPHICS and not granted:
        removed = session.execute(delete(StudentGroup)
                                  .where(StudentGroup.student_id == student.id)).rowcount
    session.flush()
    audit(session, AuditAction.CONSENT, actor_id=actor.id, subject_id=student.id,
          object_type="consent", object_id=row.id,
          detail={"purpose": chosen.value, "granted": bool(granted),
                  "group_variables_deleted": removed})
    return row


def _require_demographics(session: Session, student: User) -> None:
    if not has_consent(session, student.id, Purpose.DEMOGRAPHICS):
        raise Conflict(f"student {student.id} has not given the demographics consent: group "
                       "variables are neither stored nor shown without it",
                       field="demographics")


def groups(session: Session, viewer: User, student_id: int) -> dict[str, str]:
    """The student's group variables (administrators and the student; none without the
    demographics consent)."""
    student = consent_student(session, viewer, student_id)
    _require_demographics(session, student)
    return dict(session.execute(select(StudentGroup.variable, StudentGroup.value)
                                .where(StudentGroup.student_id == student.id)).all())


def set_groups(session: Session, admin: User, student_id: int,
               values: dict[str, Any]) -> dict[str, str]:
    """Replace the student's group variables with ``values`` (an empty value removes one).

    Raises
    ------
    Forbidden
        Not an administrator.
    Conflict
        The student has not given the demographics consent.
    Invalid
        A bad variable name or value, or too many variables.
    """
    if admin.role != Role.ADMIN:
        raise Forbidden(f"group variables are set by administrators; you are "
                        f"{admin.role.value}")
    student = consent_student(session, admin, student_id)
    _require_demographics(session, student)
    if not isinstance(values, dict) or len(values) > MAX_VARIABLES:
        raise Invalid(f"send an object of at most {MAX_VARIABLES} variable: value pairs",
                      field="groups")
    clean: dict[str, str] = {}
    for name, value in values.items():
        if not (isinstance(name, str) and 0 < len(name) <= 40
                and name.replace("_", "").isascii() and name.replace("_", "").isalnum()):
            raise Invalid(f"a variable name is 1 to 40 letters, digits or underscores, not "
                          f"{name!r}", field="groups")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str) or len(value.strip()) > 80:
            raise Invalid(f"the value of {name} must be text of at most 80 characters",
                          field=name)
        clean[name] = value.strip()
    session.execute(delete(StudentGroup).where(StudentGroup.student_id == student.id))
    session.add_all(StudentGroup(student_id=student.id, variable=k, value=v)
                    for k, v in clean.items())
    session.flush()
    audit(session, AuditAction.GROUPS, actor_id=admin.id, subject_id=student.id,
          object_type="groups", detail={"variables": sorted(clean)})
    return clean
