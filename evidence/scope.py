"""Whose evidence a viewer may read about one student, and through which classes: no HTTP.

A student reads all of their own work. An administrator reads any student's (a school's
administrator, any of that school's students; another school's is *not found*), or one class's
part of it when a class is named. A teacher reads, of a student enrolled in their classes, what
belongs to those classes only: attempts made under the classes' assignments (as
:func:`evidence.attempts.may_see_attempt` has it), the classes' tasks and drafts, and the
statements sent by the classes' xAPI clients or written by the engine for those attempts. A
student of another teacher is *not found*, so that a teacher cannot learn that they exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.orm import Session

from evidence.classes import reaches, visible_class
from evidence.models import Assignment, Attempt, Draft, Statement, Task, XapiClient
from storage.accounts import Role, SchoolClass, User, class_members
from storage.errors import Forbidden, NotFound


@dataclass(frozen=True)
class StudentScope:
    """One student's evidence as one viewer may read it.

    Attributes
    ----------
    student : User
    viewer : User
    class_ids : tuple of int, or None
        The classes the reading is limited to; None for all of the student's evidence.
    """

    student: User
    viewer: User
    class_ids: tuple[int, ...] | None

    @property
    def staff(self) -> bool:
        """Whether the viewer is staff (sees staff-only fields), not the student."""
        return self.viewer.role != Role.STUDENT

    def _assignments(self):
        return select(Assignment.id).where(Assignment.class_id.in_(self.class_ids or ()))

    def attempts(self) -> ColumnElement[bool]:
        """A condition on :class:`Attempt` rows: the student's, within the scope."""
        own = Attempt.user_id == self.student.id
        if self.class_ids is None:
            return own
        return own & Attempt.assignment_id.in_(self._assignments())

    def statements(self) -> ColumnElement[bool]:
        """A condition on :class:`Statement` rows: about the student, within the scope."""
        own = Statement.actor_id == self.student.id
        if self.class_ids is None:
            return own
        clients = select(XapiClient.id).where(XapiClient.class_id.in_(self.class_ids))
        attempts = select(Attempt.id).where(self.attempts())
        return own & or_(Statement.client_id.in_(clients), Statement.attempt_id.in_(attempts))

    def tasks(self) -> ColumnElement[bool]:
        """A condition on :class:`Task` rows: set for a class of the scope (for the student
        themself and admins: any class they are enrolled in, and any task they handed work in
        for, as :func:`evidence.tasks.student_tasks_query` has it)."""
        if self.class_ids is None:
            if self.viewer.role == Role.ADMIN or self.viewer.id == self.student.id:
                enrolled = select(class_members.c.class_id).where(
                    class_members.c.user_id == self.student.id)
                worked_on = select(Draft.task_id).where(Draft.student_id == self.student.id)
                return or_(Task.class_id.in_(enrolled), Task.id.in_(worked_on))
            return false()
        return Task.class_id.in_(self.class_ids) if self.class_ids else false()


def _enrolled(session: Session, class_id: int, student_id: int) -> bool:
    return session.scalar(select(class_members.c.user_id).where(
        class_members.c.class_id == class_id, class_members.c.user_id == student_id)) is not None


def student_scope(session: Session, viewer: User, student_id: int,
                  class_id: int | None = None) -> StudentScope:
    """What ``viewer`` may read of student ``student_id``'s evidence (in class ``class_id``).

    Raises
    ------
    NotFound
        No such student; another student (for a student); a student not enrolled in any of the
        teacher's classes (or not in ``class_id``); a class that is not the viewer's.
    Forbidden
        Roles other than student, teacher and administrator (assessors read items, not
        learners' portfolios).
    """
    missing = NotFound(f"no student {student_id} you may see")
    student = session.get(User, student_id)
    if student is not None and student.erased_at is not None:  # a tombstone: nothing to see
        student = None
    if viewer.role == Role.STUDENT:
        if student is None or student.id != viewer.id or class_id is not None:
            raise missing
        return StudentScope(student, viewer, None)
    if viewer.role not in (Role.TEACHER, Role.ADMIN):
        raise Forbidden("a student's evidence is for their teacher, an administrator or the "
                        f"student; you are {viewer.role.value}")
    if class_id is not None:
        klass = visible_class(session, viewer, class_id)
        if student is None or student.role != Role.STUDENT or not _enrolled(
                session, klass.id, student_id):
            raise NotFound(f"no student {student_id} in class {class_id}")
        return StudentScope(student, viewer, (klass.id,))
    if student is None or student.role != Role.STUDENT:
        raise missing
    if viewer.role == Role.ADMIN:
        if not reaches(session, viewer, student):
            raise missing
        return StudentScope(student, viewer, None)
    taught = tuple(session.scalars(
        select(SchoolClass.id).join(class_members, class_members.c.class_id == SchoolClass.id)
        .where(SchoolClass.teacher_id == viewer.id, class_members.c.user_id == student_id)
        .order_by(SchoolClass.id)))
    if not taught:
        raise missing
    return StudentScope(student, viewer, taught)

