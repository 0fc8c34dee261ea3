"""Accounts, classes, enrolments, assignments and accommodations: the rules, with no HTTP.

Views (and the command line) call these functions on a session and commit once; nothing here
commits. Each function raises an :mod:`storage.errors` error naming the field or id that is
wrong.

Who may see what:

- administrators see and change every account and class, and alone enrol students and set
  accommodations: enrolment is what gives a teacher access to a student's work, so a teacher
  cannot grant it to themselves. A school's administrator (``users.school_id`` set) does so
  within that school only: another school's account, class or student is *not found*, as for
  teachers; a district administrator (no school) reaches everyone;
- a teacher sees their own classes, the students enrolled in them (and those students'
  accommodations, read-only), and the attempts made under their classes' assignments. Another
  teacher's class, or a student the teacher does not teach, is *not found*, never *forbidden*,
  so its existence is not revealed.

Every enrolment change, class hand-over and accommodation change leaves an entry in the
append-only ``access_audit`` table (who, when, what, before and after), in the same transaction.

All datetimes are stored in UTC; naive datetimes are refused, because a window without a time zone
means a different moment in every school.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, insert, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from evidence.models import Assignment, Attempt, Draft, Task
from item_bank.models import AdaptiveTest
from item_bank.services import BankError, check_language
from storage import as_utc
from storage.accounts import (
    AccessAction,
    AccessAudit,
    Accommodation,
    ApiToken,
    PageSession,
    Role,
    School,
    SchoolClass,
    TimeAccommodation,
    User,
    UsernameError,
    admin_reaches_class,
    admin_reaches_user,
    class_members,
    normalize_username,
    school_condition,
)
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from storage.rights import AuditAction
from storage.rights import audit as rights_audit

MIN_PASSWORD_LENGTH = 10
MAX_TIME_LIMIT_MINUTES = 1440
MAX_TIME_FACTOR = 4.0
DEFAULT_TIME_FACTOR = 1.5
USERNAME_PATTERN = re.compile(r"^[\w.@+-]{1,80}$")
USER_FIELDS = ("display_name", "role", "is_active", "password", "school_id")
ASSIGNMENT_FIELDS = ("opens_at", "closes_at", "time_limit_minutes", "max_attempts")


# -- the school scope ----------------------------------------------------------------------------


def _school_people(school_id: int) -> Select:
    """The ids of a school's people: its accounts, and the students enrolled in its classes
    (a class's roster is its school's to see, wherever the student's account belongs)."""
    enrolled = (select(class_members.c.user_id)
                .join(SchoolClass, SchoolClass.id == class_members.c.class_id)
                .where(SchoolClass.school_id == school_id))
    return select(User.id).where(User.school_id == school_id).union(enrolled)


def reaches_users(admin: User, column) -> ColumnElement[bool]:
    """A SQL condition on a user-id ``column``: the people the administrator ``admin`` reaches.

    ``true()`` for a district administrator (no school); for a school's administrator, the
    school's accounts and the students enrolled in its classes. Use it to filter rows that
    refer to a person (attempts, defenses, audit entries) without loading the people.
    """
    if admin.school_id is None:
        return true()
    return column.in_(_school_people(admin.school_id))


def reaches_classes(admin: User, column) -> ColumnElement[bool]:
    """A SQL condition on a class-id ``column``: the classes the administrator ``admin``
    reaches (``true()`` for a district administrator)."""
    if admin.school_id is None:
        return true()
    return column.in_(select(SchoolClass.id).where(SchoolClass.school_id == admin.school_id))


def reaches(session: Session, viewer: User, user: User | None) -> bool:
    """Whether ``viewer``, an administrator, reaches ``user``: everyone for a district
    administrator; for a school's, its accounts (see :func:`storage.accounts.
    admin_reaches_user`) and the students enrolled in its classes. False for ``None`` and for
    anyone who is not an administrator."""
    if user is None or viewer.role != Role.ADMIN:
        return False
    if admin_reaches_user(viewer, user):
        return True
    return session.scalar(select(func.count()).select_from(class_members)
                          .join(SchoolClass, SchoolClass.id == class_members.c.class_id)
                          .where(class_members.c.user_id == user.id,
                                 SchoolClass.school_id == viewer.school_id)) > 0


# -- accounts ------------------------------------------------------------------------------------


def user_query(viewer: User, role: Role | None = None, q: str | None = None) -> Select:
    """The accounts ``viewer`` may list, by username; optionally one role and a search text.

    Only administrators list accounts: they alone enrol students, so no one else needs the
    school's list of names. A school's administrator lists that school's accounts only.

    Parameters
    ----------
    viewer
        The signed-in user.
    role
        Only accounts with this role.
    q
        Only accounts whose username or display name contains this text (any case).

    Raises
    ------
    Forbidden
        The viewer is not an administrator.
    """
    query = select(User).order_by(User.username)
    if viewer.role != Role.ADMIN:
        raise Forbidden(f"listing accounts needs the role admin; you are {viewer.role.value}")
    query = query.where(school_condition(viewer, User.school_id))
    if role is not None:
        query = query.where(User.role == role)
    if q:
        query = query.where(or_(User.username.icontains(q, autoescape=True),
                                User.display_name.icontains(q, autoescape=True)))
    return query


def get_user(session: Session, user_id: int, viewer: User | None = None) -> User:
    """The account with id ``user_id`` (as the administrator ``viewer`` may see it, if given).

    Raises
    ------
    NotFound
        No such account, or (``viewer`` given) one of another school than the viewer's.
    """
    user = session.get(User, user_id)
    if user is None or (viewer is not None and not reaches(session, viewer, user)):
        raise NotFound(f"no user {user_id}")
    return user


def get_school(session: Session, school_id: int | None, field: str = "school_id") -> School | None:
    """The school ``school_id`` (``None`` for none).

    Raises
    ------
    Invalid
        No such school (named by ``field``).
    """
    if school_id is None:
        return None
    school = session.get(School, school_id)
    if school is None:
        raise Invalid(f"there is no school {school_id}", field=field)
    return school


def _school_for(session: Session, actor: User | None, school_id: Any, given: bool) -> int | None:
    """The school an account created or moved by ``actor`` is to belong to.

    A district administrator (or the command line, ``actor`` None) names any school or none; a
    school's administrator keeps accounts in their own school (naming it is allowed).
    """
    if actor is not None and actor.school_id is not None:
        if given and school_id != actor.school_id:
            raise Forbidden("a school's administrator keeps accounts in their own school "
                            f"({actor.school_id}); only a district administrator moves them",
                            field="school_id")
        return actor.school_id
    school = get_school(session, school_id) if given else None
    return school.id if school is not None else None


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {MIN_PASSWORD_LENGTH} characters long",
                      field="password")


_NO_SCHOOL = object()


def create_user(session: Session, *, username: str, role: Role, password: str,
                display_name: str = "", school_id: Any = _NO_SCHOOL,
                actor: User | None = None) -> User:
    """Create an account.

    Usernames are letters, digits and ``. @ + - _`` (at most 80), unique regardless of case, so
    ``Student1`` and ``student1`` cannot both exist. The password is stored as a salted hash.
    A school's administrator (``actor``) creates accounts in their own school; a district
    administrator (or the command line) in the school ``school_id`` names, or in none.

    Raises
    ------
    Invalid
        A malformed username, a password shorter than ``MIN_PASSWORD_LENGTH``, no such school.
    Forbidden
        A school's administrator named another school.
    Conflict
        The username is taken.
    """
    if not isinstance(username, str) or not USERNAME_PATTERN.match(username):
        raise Invalid("username must be 1 to 80 letters, digits or . @ + - _", field="username")
    try:  # look-alikes: full-width and other forms folded, mixed scripts refused
        username = normalize_username(username)
    except UsernameError as error:
        raise Invalid(str(error), field="username") from None
    if not USERNAME_PATTERN.match(username):
        raise Invalid("username must be 1 to 80 letters, digits or . @ + - _", field="username")
    _check_password(password)
    school = _school_for(session, actor, None if school_id is _NO_SCHOOL else school_id,
                         school_id is not _NO_SCHOOL)
    taken = session.scalar(select(User.id).where(func.lower(User.username) == username.lower()))
    if taken is not None:
        raise Conflict(f"the username {username!r} is taken", field="username")
    user = User(username=username, display_name=display_name or "", role=Role(role),
                is_active=True, school_id=school)
    user.set_password(password)
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"the username {username!r} is taken", field="username") from None
    return user


def _other_active_admins(session: Session, user: User) -> int:
    """Active district administrators (of no school) other than ``user``, their rows locked
    until the commit.

    The lock makes two admins demoting each other at the same moment take turns: the second
    sees the first's change and is refused, so the system never loses its last district
    administrator (school administrators cannot create schools or reach other schools).
    """
    admins = session.scalars(select(User.id).where(User.role == Role.ADMIN, User.is_active,
                                                   User.school_id.is_(None))
                             .order_by(User.id).with_for_update()).all()
    return sum(1 for admin_id in admins if admin_id != user.id)


def update_user(session: Session, user: User, changes: dict[str, Any],
                actor: User | None = None) -> User:
    """Change an account's display name, role, active flag, password or school.

    A change of role or of the active flag is recorded in the audit log (by ``actor``; None for
    the command line).

    A new password or deactivation revokes the account's API tokens and ends its page sessions
    (it is signed out everywhere, including copies of its cookies). A role change may not
    strand data: a teacher who still has classes stays a teacher, an enrolled student stays a
    student, and the last active district administrator stays one. Only a district
    administrator (or the command line, ``actor`` None) moves an account to another school
    (``school_id``, ``None`` for none); the account's classes stay where they are.

    Raises
    ------
    Invalid
        An unknown field, a password that is too short, no such school.
    Forbidden
        A school's administrator tried to move an account out of their school.
    Conflict
        The role change or deactivation would strand classes, enrolments or the administration.
    """
    unknown = set(changes) - set(USER_FIELDS)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}", field=min(unknown))
    if "password" in changes:
        _check_password(changes["password"])
    role = Role(changes.get("role", user.role))
    active = bool(changes.get("is_active", user.is_active))
    if role != user.role:
        if user.role == Role.TEACHER:
            n = session.scalar(select(func.count(SchoolClass.id))
                               .where(SchoolClass.teacher_id == user.id)) or 0
            if n:
                raise Conflict(f"{user.username} teaches {n} class(es); delete them or give them "
                               "to another teacher before changing the role", field="role")
        if user.role == Role.STUDENT:
            n = session.scalar(select(func.count()).select_from(class_members)
                               .where(class_members.c.user_id == user.id)) or 0
            if n:
                raise Conflict(f"{user.username} is enrolled in {n} class(es); remove them "
                               "before changing the role", field="role")
    school_id = user.school_id
    if "school_id" in changes:
        school_id = _school_for(session, actor, changes["school_id"], True)
    demoted = (user.role == Role.ADMIN and user.is_active and user.school_id is None
               and (role != Role.ADMIN or not active or school_id is not None))
    if demoted and not _other_active_admins(session, user):
        field = ("role" if role != Role.ADMIN else "is_active" if not active
                 else "school_id")
        raise Conflict(f"{user.username} is the last active district administrator",
                       field=field)
    if role != user.role or active != user.is_active or school_id != user.school_id:
        rights_audit(session, AuditAction.ROLE_CHANGE, actor_id=actor.id if actor else None,
                     subject_id=user.id, object_type="user", object_id=user.id,
                     detail={"before": {"role": user.role.value, "is_active": user.is_active,
                                        "school_id": user.school_id},
                             "after": {"role": role.value, "is_active": active,
                                       "school_id": school_id}})
    user.school_id = school_id
    if "display_name" in changes:
        user.display_name = changes["display_name"] or ""
    user.role = role
    revoke = False
    if "password" in changes:
        user.set_password(changes["password"])
        revoke = True
    if user.is_active and not active:
        revoke = True
    user.is_active = active
    if revoke:  # signed out everywhere: API tokens and page sessions
        session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
        session.execute(delete(PageSession).where(PageSession.user_id == user.id))
    session.flush()
    return user


# -- audit ---------------------------------------------------------------------------------------


def audit(session: Session, actor: User | None, action: AccessAction, *,
          class_id: int | None = None, student_id: int | None = None,
          before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Append an entry to the access audit, in the caller's transaction.

    Parameters
    ----------
    actor
        Who made the change (``None`` for the command line or a migration).
    action
        What changed: an enrolment, a class's teacher, an accommodation.
    before, after
        The state before and after, as JSON-ready dicts (``None`` where there was none).
    """
    session.add(AccessAudit(actor_id=actor.id if actor is not None else None, action=action,
                            class_id=class_id, student_id=student_id, before=before,
                            after=after))
    # the hash-chained log keeps that it happened, without the values (they are personal)
    rights_audit(session, AuditAction.ACCESS_CHANGE,
                 actor_id=actor.id if actor is not None else None, subject_id=student_id,
                 object_type="class" if class_id is not None else "accommodation",
                 object_id="" if class_id is None else class_id,
                 detail={"change": str(action.value if hasattr(action, "value") else action)})


def audit_query(student_id: int | None = None, class_id: int | None = None,
                viewer: User | None = None) -> Select:
    """Access audit entries, oldest first; optionally one student's or one class's.

    For a school's administrator (``viewer``), only the entries about that school's classes
    or students.
    """
    query = select(AccessAudit).order_by(AccessAudit.id)
    if viewer is not None and viewer.school_id is not None:
        query = query.where(or_(reaches_classes(viewer, AccessAudit.class_id),
                                reaches_users(viewer, AccessAudit.student_id)))
    if student_id is not None:
        query = query.where(AccessAudit.student_id == student_id)
    if class_id is not None:
        query = query.where(AccessAudit.class_id == class_id)
    return query


def _require_admin(actor: User, what: str) -> None:
    if actor.role != Role.ADMIN:
        raise Forbidden(f"{what} is an administrator's act; you are {actor.role.value}")


# -- accommodations ------------------------------------------------------------------------------


def teaches(session: Session, teacher: User, student_id: int) -> bool:
    """Whether ``student_id`` is enrolled in one of ``teacher``'s classes."""
    return (session.scalar(
        select(func.count()).select_from(class_members)
        .join(SchoolClass, SchoolClass.id == class_members.c.class_id)
        .where(SchoolClass.teacher_id == teacher.id, class_members.c.user_id == student_id)
    ) or 0) > 0


def accommodated_student(session: Session, viewer: User, user_id: int) -> User:
    """The student ``user_id`` if ``viewer`` may see their accommodation.

    Administrators may see any student's (of their school, for a school's administrator); a
    teacher those of students enrolled in their classes (enrolment is an administrator's act,
    so a teacher cannot widen this).

    Raises
    ------
    NotFound
        No such student, or (for a teacher) not one they teach.
    """
    student = session.get(User, user_id)
    allowed = reaches(session, viewer, student) or (
        viewer.role == Role.TEACHER and teaches(session, viewer, user_id))
    if student is None or student.role != Role.STUDENT or not allowed:
        raise NotFound(f"no student {user_id} you may see")
    return student


def accommodation_of(session: Session, student: User) -> dict[str, Any]:
    """A student's accommodation; the standard one (nothing recorded) when none is stored."""
    row = session.get(Accommodation, student.id)
    if row is None:
        return {"user_id": student.id, "time": TimeAccommodation.STANDARD,
                "time_factor": DEFAULT_TIME_FACTOR, "note": "", "updated_at": None}
    return {"user_id": row.user_id, "time": row.time, "time_factor": row.time_factor,
            "note": row.note, "updated_at": row.updated_at}


def _accommodation_record(row: Accommodation | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"time": TimeAccommodation(row.time).value, "time_factor": row.time_factor,
            "note": row.note}


def set_accommodation(session: Session, actor: User, student: User, *,
                      time: TimeAccommodation, time_factor: float = DEFAULT_TIME_FACTOR,
                      note: str = "") -> dict[str, Any]:
    """Replace a student's accommodation (administrators only), with an audit entry.

    ``time`` is how assignment time limits apply to them: ``standard`` (as set), ``extended``
    (multiplied by ``time_factor``, 1 to 4) or ``none`` (no limit). It applies to attempts started
    afterwards, in every class; an attempt's deadline is fixed when it starts. Because it
    changes every teacher's tests, no single teacher may set it.

    Raises
    ------
    Forbidden
        ``actor`` is not an administrator.
    Invalid
        ``time_factor`` outside 1..4.
    """
    _require_admin(actor, "setting an accommodation")
    factor = float(time_factor)
    if not 1.0 <= factor <= MAX_TIME_FACTOR:  # also false for NaN
        raise Invalid(f"time_factor must be between 1 and {MAX_TIME_FACTOR:g}",
                      field="time_factor")
    row = session.get(Accommodation, student.id, with_for_update=True)
    before = _accommodation_record(row)
    if row is None:
        row = Accommodation(user_id=student.id)
        session.add(row)
    row.time = TimeAccommodation(time)
    row.time_factor = factor
    row.note = note or ""
    audit(session, actor, AccessAction.ACCOMMODATION, student_id=student.id, before=before,
          after=_accommodation_record(row))
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"the accommodation of student {student.id} was changed by another "
                       "request at the same time; try again") from None
    return accommodation_of(session, student)


# -- classes -------------------------------------------------------------------------------------


def class_query(viewer: User, teacher_id: int | None = None) -> Select:
    """The classes ``viewer`` may see, by name: a teacher's own, or all (administrators; a
    school's administrator, that school's)."""
    query = (select(SchoolClass)
             .options(selectinload(SchoolClass.teacher), selectinload(SchoolClass.students))
             .order_by(SchoolClass.name, SchoolClass.id))
    if viewer.role == Role.TEACHER:
        query = query.where(SchoolClass.teacher_id == viewer.id)
    elif viewer.role != Role.ADMIN:
        raise Forbidden(f"classes need the role teacher or admin; you are {viewer.role.value}")
    else:
        query = query.where(school_condition(viewer, SchoolClass.school_id))
    if teacher_id is not None:
        query = query.where(SchoolClass.teacher_id == teacher_id)
    return query


def visible_class(session: Session, viewer: User, class_id: int) -> SchoolClass:
    """The class ``class_id`` if ``viewer`` may see it (their own; for administrators any, of
    their school for a school's administrator).

    Raises
    ------
    NotFound
        No such class, or another teacher's (another school's): the viewer cannot tell them
        apart.
    """
    klass = session.get(SchoolClass, class_id)
    if klass is None or not (admin_reaches_class(viewer, klass) or
                             (viewer.role == Role.TEACHER and klass.teacher_id == viewer.id)):
        raise NotFound(f"no class {class_id}")
    return klass


def _class_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise Invalid("name must be 1 to 200 characters (not only spaces)", field="name")
    return name


def _owner(session: Session, viewer: User, teacher_id: int | None, required: bool) -> int | None:
    """The teacher a class is to belong to, checked against who is asking."""
    if viewer.role == Role.TEACHER:
        if teacher_id not in (None, viewer.id):
            raise Forbidden("teachers create and keep classes of their own; only an "
                            "administrator may give a class to another teacher",
                            field="teacher_id")
        return viewer.id
    if teacher_id is None:
        if required:
            raise Invalid("teacher_id is required: the teacher who will own the class",
                          field="teacher_id")
        return None
    teacher = session.get(User, teacher_id)
    if (teacher is None or teacher.role != Role.TEACHER or not teacher.is_active
            or not reaches(session, viewer, teacher)):
        raise Invalid(f"user {teacher_id} is not an active teacher", field="teacher_id")
    return teacher.id


def _unique_name(session: Session, teacher_id: int, name: str, class_id: int | None) -> None:
    query = select(SchoolClass.id).where(SchoolClass.teacher_id == teacher_id,
                                         SchoolClass.name == name)
    if class_id is not None:
        query = query.where(SchoolClass.id != class_id)
    if session.scalar(query) is not None:
        raise Conflict(f"this teacher already has a class named {name!r}", field="name")


def _flush_class(session: Session, name: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent request took the name first
        raise Conflict(f"this teacher already has a class named {name!r}", field="name") from None


def create_class(session: Session, viewer: User, name: str,
                 teacher_id: int | None = None) -> SchoolClass:
    """Create a class: a teacher's own, or (administrators) one for ``teacher_id``.

    The class belongs to its teacher's school (none if the teacher has none).

    Raises
    ------
    Invalid
        An empty name; an administrator gave no ``teacher_id``, or not an active teacher's (of
        their school, for a school's administrator).
    Forbidden
        A teacher gave another teacher's id.
    Conflict
        The teacher already has a class of that name.
    """
    name = _class_name(name)
    owner = _owner(session, viewer, teacher_id, required=True)
    _unique_name(session, owner, name, None)
    klass = SchoolClass(name=name, teacher_id=owner,
                        school_id=session.get(User, owner).school_id)
    session.add(klass)
    _flush_class(session, name)
    return klass


_KEEP: Any = object()


def update_class(session: Session, viewer: User, klass: SchoolClass, *, name: str | None = None,
                 teacher_id: int | None = None, test_language: str | None = _KEEP
                 ) -> SchoolClass:
    """Rename a class, set its default test language, or (administrators) give it to another
    teacher.

    A class given to a teacher of another school (a district administrator's act) moves to
    that school. ``test_language`` ``None`` clears the default (each student's page language
    applies); left out, it stays.

    Raises
    ------
    Invalid, Forbidden, Conflict
        As for :func:`create_class`; ``test_language`` is not a language tag.
    """
    if test_language is not _KEEP:
        try:
            klass.test_language = (check_language(test_language, "test_language")
                                   if test_language is not None else None)
        except BankError as error:
            raise Invalid(str(error), "test_language") from None
    new_name = _class_name(name) if name is not None else klass.name
    owner = _owner(session, viewer, teacher_id, required=False) or klass.teacher_id
    if (new_name, owner) != (klass.name, klass.teacher_id):
        _unique_name(session, owner, new_name, klass.id)
        if owner != klass.teacher_id:  # another teacher now sees these students' work
            audit(session, viewer, AccessAction.CLASS_TEACHER, class_id=klass.id,
                  before={"teacher_id": klass.teacher_id}, after={"teacher_id": owner})
        if owner != klass.teacher_id:
            klass.school_id = session.get(User, owner).school_id
        klass.name, klass.teacher_id = new_name, owner
        _flush_class(session, new_name)
    return klass


def delete_class(session: Session, klass: SchoolClass, *, actor: User | None = None) -> None:
    """Delete a class with its enrolments and assignments; attempts (evidence) are kept.

    Each enrolment removed is audited as an un-enrolment by ``actor``.

    Raises
    ------
    Conflict
        Students have handed in work on the class's tasks: their drafts are evidence, which
        deleting the class would delete with its tasks.
    """
    drafts = session.scalar(select(func.count(Draft.id)).join(Task, Task.id == Draft.task_id)
                            .where(Task.class_id == klass.id))
    if drafts:
        raise Conflict(f"class {klass.name!r} holds {drafts} version(s) of students' work on "
                       "its tasks, which deleting it would delete: archive its tasks and keep "
                       "the class")
    for student_id in session.scalars(select(class_members.c.user_id).where(
            class_members.c.class_id == klass.id).order_by(class_members.c.user_id)):
        audit(session, actor, AccessAction.UNENROL, class_id=klass.id, student_id=student_id,
              before={"enrolled": True}, after={"enrolled": False, "class_deleted": True})
    session.execute(delete(Assignment).where(Assignment.class_id == klass.id))
    session.delete(klass)  # the enrolments go with it
    session.flush()


# -- enrolment -----------------------------------------------------------------------------------


def roster_query(klass: SchoolClass) -> Select:
    """The students enrolled in ``klass``, by username."""
    return (select(User).join(class_members, class_members.c.user_id == User.id)
            .where(class_members.c.class_id == klass.id).order_by(User.username))


def enrol(session: Session, actor: User, klass: SchoolClass, *, user_id: int | None = None,
          username: str | None = None) -> tuple[User, bool]:
    """Enrol a student (by id or username) in ``klass``; enrolling twice changes nothing.

    Only administrators enrol: an enrolment gives the class's teacher access to the student's
    accommodation and to the attempts made under the class's assignments. Each enrolment is
    audited.

    Returns
    -------
    student, created
        ``created`` is false when the student was already enrolled.

    Raises
    ------
    Forbidden
        ``actor`` is not an administrator.
    Invalid
        Neither or both of ``user_id`` and ``username``; no active student with that id or
        username (one message for every reason, so it reveals no account's role or state),
        of the administrator's school for a school's administrator.
    """
    _require_admin(actor, "enrolling a student")
    if (user_id is None) == (username is None):
        raise Invalid("give exactly one of user_id and username", field="user_id")
    if user_id is not None:
        field, shown = "user_id", f"user {user_id}"
        student = session.get(User, user_id)
    else:
        field, shown = "username", f"user {username!r}"
        student = session.scalar(select(User).where(User.username == username))
    if (student is None or student.role != Role.STUDENT or not student.is_active
            or not reaches(session, actor, student)):
        raise Invalid(f"{shown} cannot be enrolled: there is no active student with this "
                      f"{'id' if field == 'user_id' else 'username'}", field=field)
    if _enrolled(session, klass.id, student.id):
        return student, False
    try:
        with session.begin_nested():
            session.execute(insert(class_members).values(class_id=klass.id, user_id=student.id))
    except IntegrityError:  # a concurrent request enrolled them first
        return student, False
    audit(session, actor, AccessAction.ENROL, class_id=klass.id, student_id=student.id,
          before={"enrolled": False}, after={"enrolled": True})
    session.flush()
    session.expire(klass, ["students"])
    return student, True


def _enrolled(session: Session, class_id: int, user_id: int) -> bool:
    return session.scalar(select(func.count()).select_from(class_members).where(
        class_members.c.class_id == class_id, class_members.c.user_id == user_id)) > 0


def unenrol(session: Session, actor: User, klass: SchoolClass, user_id: int) -> None:
    """Remove a student from ``klass`` (administrators only); their attempts are kept.

    The removal is audited, so it cannot hide an enrolment that was made.

    Raises
    ------
    Forbidden
        ``actor`` is not an administrator.
    NotFound
        The student is not enrolled in this class.
    """
    _require_admin(actor, "removing a student from a class")
    done = session.execute(delete(class_members).where(
        class_members.c.class_id == klass.id, class_members.c.user_id == user_id))
    if not done.rowcount:
        raise NotFound(f"user {user_id} is not enrolled in class {klass.id}")
    audit(session, actor, AccessAction.UNENROL, class_id=klass.id, student_id=user_id,
          before={"enrolled": True}, after={"enrolled": False})
    session.flush()
    session.expire(klass, ["students"])


# -- assignments ---------------------------------------------------------------------------------


def _utc(moment: datetime | None, field: str) -> datetime | None:
    if moment is None:
        return None
    if not isinstance(moment, datetime) or moment.tzinfo is None \
            or moment.tzinfo.utcoffset(moment) is None:
        raise Invalid(f"{field} must be an ISO 8601 datetime with a time zone, e.g. "
                      "2026-09-01T08:00:00+02:00", field=field)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise Invalid(f"{field} is out of range", field=field) from None


def _check_assignment(values: dict[str, Any]) -> None:
    limit = values.get("time_limit_minutes")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or not 1 <= limit <= MAX_TIME_LIMIT_MINUTES):
        raise Invalid(f"time_limit_minutes must be a whole number from 1 to "
                      f"{MAX_TIME_LIMIT_MINUTES} (24 hours)", field="time_limit_minutes")
    most = values.get("max_attempts")
    if most is not None and (isinstance(most, bool) or not isinstance(most, int) or most < 1):
        raise Invalid("max_attempts must be a whole number of at least 1", field="max_attempts")
    opens, closes = as_utc(values.get("opens_at")), as_utc(values.get("closes_at"))
    if opens is not None and closes is not None and closes <= opens:
        raise Invalid(f"closes_at ({closes.isoformat()}) must be after opens_at "
                      f"({opens.isoformat()})", field="closes_at")


def assignment_query(klass: SchoolClass) -> Select:
    """The assignments of ``klass``, soonest closing first (open-ended last)."""
    return (select(Assignment).options(selectinload(Assignment.test))
            .where(Assignment.class_id == klass.id)
            .order_by(Assignment.closes_at.is_(None), Assignment.closes_at, Assignment.id))


def visible_assignment(session: Session, viewer: User, assignment_id: int) -> Assignment:
    """The assignment if ``viewer`` may see its class.

    Raises
    ------
    NotFound
        No such assignment, or one of another teacher's classes.
    """
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise NotFound(f"no assignment {assignment_id}")
    try:
        visible_class(session, viewer, assignment.class_id)
    except NotFound:
        raise NotFound(f"no assignment {assignment_id}") from None
    return assignment


def create_assignment(session: Session, viewer: User, klass: SchoolClass, *, test_id: int,
                      opens_at: datetime | None = None, closes_at: datetime | None = None,
                      time_limit_minutes: int | None = None,
                      max_attempts: int | None = None) -> Assignment:
    """Assign an active test to ``klass``, with an optional window, time limit and attempt cap.

    The window is ``opens_at <= now < closes_at`` (either end may be open). The time limit (in
    minutes, 1 to 1440) is scaled by each student's accommodation when an attempt starts.

    Raises
    ------
    Invalid
        No such test or an inactive one (``test_id``); a naive datetime; ``closes_at`` not after
        ``opens_at``; a time limit or attempt cap out of range.
    """
    test = session.get(AdaptiveTest, test_id)
    if test is None:
        raise Invalid(f"there is no test {test_id}", field="test_id")
    if not test.is_active:
        raise Invalid(f"test {test_id} ({test.name}) is not active", field="test_id")
    values = {"opens_at": _utc(opens_at, "opens_at"), "closes_at": _utc(closes_at, "closes_at"),
              "time_limit_minutes": time_limit_minutes, "max_attempts": max_attempts}
    _check_assignment(values)
    assignment = Assignment(class_id=klass.id, test_id=test.id, created_by=viewer.id, **values)
    session.add(assignment)
    session.flush()
    return assignment


def update_assignment(session: Session, assignment: Assignment,
                      changes: dict[str, Any]) -> Assignment:
    """Change an assignment's window, time limit or attempt cap (``None`` removes one).

    A new time limit applies to attempts started afterwards; closing the window hides the test
    from the class's students and refuses new attempts at once.

    Raises
    ------
    Invalid
        As for :func:`create_assignment`, or an unknown field (the test cannot be changed:
        attempts refer to it; delete the assignment and make another).
    """
    unknown = set(changes) - set(ASSIGNMENT_FIELDS)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}", field=min(unknown))
    values = {name: getattr(assignment, name) for name in ASSIGNMENT_FIELDS}
    for name in ("opens_at", "closes_at"):
        if name in changes:
            changes = {**changes, name: _utc(changes[name], name)}
    values |= changes
    _check_assignment(values)
    for name, value in changes.items():
        setattr(assignment, name, value)
    session.flush()
    return assignment


def delete_assignment(session: Session, assignment: Assignment) -> None:
    """Delete an assignment; attempts made under it are kept (no longer linked to it)."""
    session.delete(assignment)
    session.flush()


# -- a class's attempts --------------------------------------------------------------------------


def latest_attempts(session: Session, student_ids: list[int], test_id: int | None = None, *,
                    klass: SchoolClass) -> dict[int, Attempt]:
    """Each student's latest attempt under one of ``klass``'s assignments (at ``test_id`` when
    given), by student id.

    Attempts at other classes' assignments are not the class teacher's to see, so they are
    never picked, however recent.
    """
    if not student_ids:
        return {}
    assigned = select(Assignment.id).where(Assignment.class_id == klass.id)
    latest = (select(func.max(Attempt.id)).where(Attempt.user_id.in_(student_ids),
                                                 Attempt.assignment_id.in_(assigned))
              .group_by(Attempt.user_id))
    if test_id is not None:
        latest = latest.where(Attempt.test_id == test_id)
    rows = session.scalars(select(Attempt).where(Attempt.id.in_(latest)))
    return {a.user_id: a for a in rows}


def attempt_summary(attempt: Attempt | None) -> dict[str, Any] | None:
    """What a teacher's class page shows of an attempt; ``mastery`` is the overall
    recommendation against the test's cut score, once finished."""
    if attempt is None:
        return None
    result = attempt.result or {}
    return {"id": attempt.id, "test_id": attempt.test_id, "status": attempt.status.value,
            "started_at": attempt.started_at, "finished_at": attempt.finished_at,
            "theta": attempt.theta, "se": attempt.se, "stop_reason": attempt.stop_reason,
            "mastery": result.get("mastery")}
