"""Schools: the level of scope between a class and the whole deployment, with no HTTP.

A school has its own administrators (``users.school_id`` set, role admin), who see and manage
only its classes, teachers and students; an administrator of no school is a district
administrator and reaches everyone. District administrators create schools and move accounts
between them; a school's administrator changes that school's settings (how erasures are
confirmed, and whether students record their own consents). Another school is *not found* to
a school's administrator, as another teacher's class is to a teacher.

Creating a school and changing its settings are audited (``AuditAction.SCHOOL``). Functions
here flush; the caller commits once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.accounts import (
    ErasureConfirmation,
    Role,
    School,
    SchoolClass,
    User,
    is_district_admin,
)
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from storage.rights import AuditAction, audit

#: The settings a school's administrator may change.
SETTINGS = ("name", "erasure_confirmation", "erasure_delay_days", "students_may_consent")
MAX_NAME = 200
#: The longest delay before an erasure confirmed by delay is carried out (a year).
MAX_DELAY_DAYS = 365


def _require_admin(viewer: User) -> None:
    if viewer.role != Role.ADMIN:
        raise Forbidden(f"schools are managed by administrators; you are {viewer.role.value}")


def _name(name: Any) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_NAME or "\x00" in text:
        raise Invalid(f"name must be 1 to {MAX_NAME} characters (not only spaces)", field="name")
    return text


def _unique(session: Session, name: str, school_id: int | None) -> None:
    query = select(School.id).where(func.lower(School.name) == name.lower())
    if school_id is not None:
        query = query.where(School.id != school_id)
    if session.scalar(query) is not None:
        raise Conflict(f"there is already a school named {name!r}", field="name")


def _flush(session: Session, name: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent request took the name first
        raise Conflict(f"there is already a school named {name!r}", field="name") from None


def school_query(viewer: User) -> Select:
    """The schools ``viewer`` reaches, by name: all for a district administrator, their own for
    a school's administrator.

    Raises
    ------
    Forbidden
        The viewer is not an administrator.
    """
    _require_admin(viewer)
    query = select(School).order_by(School.name, School.id)
    if not is_district_admin(viewer):
        query = query.where(School.id == viewer.school_id)
    return query


def visible_school(session: Session, viewer: User, school_id: int) -> School:
    """The school ``school_id`` if the administrator ``viewer`` reaches it.

    Raises
    ------
    Forbidden
        The viewer is not an administrator.
    NotFound
        No such school, or (for a school's administrator) another school.
    """
    _require_admin(viewer)
    school = session.get(School, school_id)
    if school is None or not (is_district_admin(viewer) or viewer.school_id == school.id):
        raise NotFound(f"no school {school_id}")
    return school


def _settings(school: School) -> dict[str, Any]:
    return {"name": school.name,
            "erasure_confirmation": ErasureConfirmation(school.erasure_confirmation).value,
            "erasure_delay_days": school.erasure_delay_days,
            "students_may_consent": bool(school.students_may_consent)}


def _check(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}", field=min(unknown))
    out = dict(changes)
    if "name" in out:
        out["name"] = _name(out["name"])
    if "erasure_confirmation" in out:
        try:
            out["erasure_confirmation"] = ErasureConfirmation(out["erasure_confirmation"])
        except ValueError:
            raise Invalid("erasure_confirmation must be one of: "
                          + ", ".join(e.value for e in ErasureConfirmation),
                          field="erasure_confirmation") from None
    if "erasure_delay_days" in out:
        days = out["erasure_delay_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DELAY_DAYS:
            raise Invalid(f"erasure_delay_days must be a whole number from 1 to "
                          f"{MAX_DELAY_DAYS}", field="erasure_delay_days")
    if "students_may_consent" in out and not isinstance(out["students_may_consent"], bool):
        raise Invalid("students_may_consent must be true or false", field="students_may_consent")
    return out


def create_school(session: Session, actor: User | None, name: str,
                  **settings: Any) -> School:
    """Create a school (district administrators, or the command line with ``actor`` None).

    Parameters
    ----------
    settings
        Any of ``erasure_confirmation`` (``second_admin`` or ``delay``), ``erasure_delay_days``
        (1 to 365, default 14) and ``students_may_consent`` (default false).

    Raises
    ------
    Forbidden
        ``actor`` is not a district administrator.
    Invalid
        An empty name, an unknown setting or one out of range.
    Conflict
        A school of that name (any case) exists.
    """
    if actor is not None:
        _require_admin(actor)
        if not is_district_admin(actor):
            raise Forbidden("schools are created by a district administrator (one of no "
                            "school); you administer a school")
    values = _check({"name": name, **settings})
    _unique(session, values["name"], None)
    school = School(**values)
    session.add(school)
    _flush(session, values["name"])
    audit(session, AuditAction.SCHOOL, actor_id=actor.id if actor else None,
          object_type="school", object_id=school.id,
          detail={"created": True, "settings": _settings(school)})
    return school


def update_school(session: Session, actor: User | None, school: School,
                  changes: dict[str, Any]) -> School:
    """Change a school's name or settings (its administrators or a district administrator;
    ``actor`` None for the command line). Audited with the settings before and after.

    Raises
    ------
    Forbidden
        ``actor`` is not an administrator.
    NotFound
        ``actor`` administers another school.
    Invalid, Conflict
        As for :func:`create_school`.
    """
    if actor is not None:
        visible_school(session, actor, school.id)
    values = _check(changes)
    if "name" in values:
        _unique(session, values["name"], school.id)
    before = _settings(school)
    for key, value in values.items():
        setattr(school, key, value)
    _flush(session, school.name)
    after = _settings(school)
    if after != before:
        audit(session, AuditAction.SCHOOL, actor_id=actor.id if actor else None,
              object_type="school", object_id=school.id,
              detail={"before": {k: v for k, v in before.items() if after[k] != v},
                      "after": {k: v for k, v in after.items() if before[k] != v}})
    return school


def school_view(session: Session, school: School) -> dict[str, Any]:
    """A school with its settings and how many accounts and classes it holds."""
    counts = dict(session.execute(
        select(User.role, func.count(User.id)).where(User.school_id == school.id,
                                                    User.erased_at.is_(None))
        .group_by(User.role)).tuples().all())
    n_classes = session.scalar(select(func.count(SchoolClass.id))
                               .where(SchoolClass.school_id == school.id)) or 0
    return {"id": school.id, "created_at": school.created_at, **_settings(school),
            "n_students": counts.get(Role.STUDENT, 0), "n_teachers": counts.get(Role.TEACHER, 0),
            "n_admins": counts.get(Role.ADMIN, 0), "n_classes": n_classes}


def school_by_name(session: Session, name: str) -> School:
    """The school named ``name`` (any case).

    Raises
    ------
    NotFound
        No such school.
    """
    school = session.scalar(select(School).where(func.lower(School.name) == name.lower()))
    if school is None:
        raise NotFound(f"no school named {name!r}")
    return school
