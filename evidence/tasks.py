"""Performance tasks: what a teacher sets a class to do, and which skills it gives evidence of.

Who may do what (the rules of :mod:`evidence.classes`):

- the class's teacher, or an administrator, creates, changes and archives a class's tasks;
  another teacher's class is *not found*. Assessors do not: a task is set for a class of
  students, whom assessors do not see (they keep the bank);
- a student sees the tasks of the classes they are enrolled in (archived ones drop off their
  list of open tasks) and those they have already handed work in for.

A task's skills must be skills of the item bank (some item has them), so that mastery reports
can put a task's evidence beside the tests' evidence of the same skill. ``activity_id`` is the
task as an xAPI activity, ``<public_url>/xapi/activities/tasks/<id>``, fixed at creation.

A due date is shown, never enforced: work handed in after it is accepted and marked late.
Drafts are evidence of how a student works; refusing a late one would lose evidence, and what
lateness means (a penalty, an extension) is the teacher's call.

Nothing here commits; each function raises a :mod:`storage.errors` error naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from evidence.classes import _utc, visible_class
from evidence.models import Draft, Task
from item_bank.models import Item
from storage import as_utc, utcnow
from storage.accounts import Role, SchoolClass, User, class_members
from storage.errors import Invalid, NotFound

MAX_TITLE = 200
MAX_INSTRUCTIONS = 20_000
MAX_SKILLS = 20
TASK_FIELDS = ("title", "instructions", "skills", "due_at", "archived")
ACTIVITY_PATH = "/xapi/activities/tasks/"


def activity_iri(base_url: str, task_id: int) -> str:
    """The task as an xAPI activity id: ``<base_url>/xapi/activities/tasks/<task_id>``."""
    return f"{base_url.rstrip('/')}{ACTIVITY_PATH}{task_id}"


def bank_skills(session: Session) -> list[str]:
    """Every skill some item of the bank has, sorted."""
    return list(session.scalars(select(Item.skill).distinct().order_by(Item.skill)))


def _title(value: Any) -> str:
    title = value.strip() if isinstance(value, str) else ""
    if not title or len(title) > MAX_TITLE:
        raise Invalid(f"title must be 1 to {MAX_TITLE} characters (not only spaces)",
                      field="title")
    return title


def _instructions(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_INSTRUCTIONS:
        raise Invalid(f"instructions must be Markdown text of at most {MAX_INSTRUCTIONS:,} "
                      "characters", field="instructions")
    return value.strip()


def _skills(session: Session, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise Invalid("skills must be a list of skill names", field="skills")
    if len(value) > MAX_SKILLS:
        raise Invalid(f"a task may name at most {MAX_SKILLS} skills", field="skills")
    wanted = list(dict.fromkeys(s.strip() for s in value if s.strip()))
    known = set(session.scalars(select(Item.skill).where(Item.skill.in_(wanted)).distinct()))
    for i, skill in enumerate(wanted):
        if skill not in known:
            raise Invalid(f"skills[{i}]: {skill!r} is not a skill of the item bank",
                          field=f"skills[{i}]")
    return wanted


def create_task(session: Session, viewer: User, klass: SchoolClass, *, base_url: str,
                title: str, instructions: str = "", skills: list[str] | None = None,
                due_at: datetime | None = None) -> Task:
    """Set a task for ``klass`` (which ``viewer`` may see: see :func:`visible_class`).

    Parameters
    ----------
    base_url
        The site's public address, for the task's xAPI activity id.
    due_at
        An aware datetime, or ``None`` for no due date.

    Raises
    ------
    Invalid
        An empty or long title, instructions too long, a skill the bank does not have, a naive
        due date.
    """
    task = Task(class_id=klass.id, title=_title(title), instructions=_instructions(instructions),
                skills=_skills(session, skills), due_at=_utc(due_at, "due_at"),
                created_by=viewer.id)
    session.add(task)
    session.flush()
    task.activity_id = activity_iri(base_url, task.id)
    session.flush()
    return task


def update_task(session: Session, task: Task, changes: dict[str, Any]) -> Task:
    """Change a task's title, instructions, skills or due date, or (``archived``) take it off
    students' lists or put it back. Drafts already handed in are kept either way.

    Raises
    ------
    Invalid
        As for :func:`create_task`, or an unknown field.
    """
    unknown = set(changes) - set(TASK_FIELDS)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}", field=min(unknown))
    if "title" in changes:
        task.title = _title(changes["title"])
    if "instructions" in changes:
        task.instructions = _instructions(changes["instructions"])
    if "skills" in changes:
        task.skills = _skills(session, changes["skills"])
    if "due_at" in changes:
        task.due_at = _utc(changes["due_at"], "due_at")
    if "archived" in changes:
        if changes["archived"] and task.archived_at is None:
            task.archived_at = utcnow()
        elif not changes["archived"]:
            task.archived_at = None
    session.flush()
    return task


def archive_task(session: Session, task: Task) -> Task:
    """Take a task off students' lists (its drafts are kept; they can no longer add any)."""
    return update_task(session, task, {"archived": True})


def class_tasks(klass: SchoolClass, include_archived: bool = True) -> Select:
    """The tasks of ``klass``: soonest due first (no due date last), then newest."""
    query = select(Task).where(Task.class_id == klass.id)
    if not include_archived:
        query = query.where(Task.archived_at.is_(None))
    return query.order_by(Task.archived_at.is_not(None), Task.due_at.is_(None), Task.due_at,
                          Task.id.desc())


def enrolled(session: Session, class_id: int, student_id: int) -> bool:
    """Whether the student is enrolled in the class."""
    return (session.scalar(select(func.count()).select_from(class_members).where(
        class_members.c.class_id == class_id, class_members.c.user_id == student_id)) or 0) > 0


def open_tasks(session: Session, student: User) -> list[Task]:
    """The tasks open to ``student``: not archived, in the classes they are enrolled in;
    soonest due first (no due date last)."""
    return list(session.scalars(
        select(Task).join(class_members, class_members.c.class_id == Task.class_id)
        .where(class_members.c.user_id == student.id, Task.archived_at.is_(None))
        .order_by(Task.due_at.is_(None), Task.due_at, Task.id)))


def visible_task(session: Session, viewer: User, task_id: int) -> Task:
    """The task if ``viewer`` may see it: its class's teacher or an administrator; a student
    enrolled in its class, or who has handed in work for it.

    Raises
    ------
    NotFound
        No such task, or none the viewer may see (the two look alike).
    """
    task = session.get(Task, task_id)
    missing = NotFound(f"no task {task_id}")
    if task is None:
        raise missing
    if viewer.role == Role.STUDENT:
        mine = session.scalar(select(func.count(Draft.id)).where(
            Draft.task_id == task.id, Draft.student_id == viewer.id))
        if not (enrolled(session, task.class_id, viewer.id) or mine):
            raise missing
        return task
    try:
        visible_class(session, viewer, task.class_id)
    except NotFound:
        raise missing from None
    return task


def managed_task(session: Session, viewer: User, task_id: int) -> Task:
    """The task if ``viewer`` may change it (its class's teacher, or an administrator).

    Raises
    ------
    NotFound
        No such task, or not one of the viewer's classes (students too: they cannot tell).
    """
    if viewer.role not in (Role.TEACHER, Role.ADMIN):
        raise NotFound(f"no task {task_id}")
    return visible_task(session, viewer, task_id)


def is_late(task: Task, submitted_at: datetime) -> bool:
    """Whether work handed in at ``submitted_at`` came after the task's due date."""
    return task.due_at is not None and as_utc(submitted_at) > as_utc(task.due_at)


def student_tasks_query(student_id: int, class_ids: list[int] | None = None) -> Select:
    """The tasks of a student's classes and those they handed work in for (optionally only
    of ``class_ids``), soonest due first."""
    enrolled_in = select(class_members.c.class_id).where(class_members.c.user_id == student_id)
    worked_on = select(Draft.task_id).where(Draft.student_id == student_id)
    query = select(Task).where(or_(Task.class_id.in_(enrolled_in), Task.id.in_(worked_on)))
    if class_ids is not None:
        query = query.where(Task.class_id.in_(class_ids))
    return query.order_by(Task.due_at.is_(None), Task.due_at, Task.id)
