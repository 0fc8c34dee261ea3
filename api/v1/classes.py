"""Classes, enrolments, assignments, a class's latest attempts, and the access audit.

Teachers manage their own classes and assignments; administrators manage every class and alone
enrol students (an enrolment is what opens a student's work to a teacher). Another teacher's
class is 404 to a teacher, so its existence is not revealed. Students and assessors get 403.
The rules live in :mod:`evidence.classes`; these views validate, call one service function
and commit.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from evidence import classes as service
from storage.accounts import AccessAction, Role

blp = Blueprint("classes", __name__,
                description="Classes, enrolments, assignments and accommodations")

MANAGERS = (Role.TEACHER, Role.ADMIN)
MAX_ID = 2**31 - 1


def no_nul(value: str) -> None:
    """Refuse text with NUL characters (PostgreSQL cannot store them)."""
    if "\x00" in value:
        raise ma.ValidationError("must not contain NUL characters")


class UserBriefSchema(ma.Schema):
    """Who a person is, as a teacher sees them: never more than a name."""

    id = ma.fields.Integer()
    username = ma.fields.String()
    display_name = ma.fields.String()


class ClassSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    teacher = ma.fields.Nested(UserBriefSchema)
    n_students = ma.fields.Function(lambda klass: len(klass.students))
    created_at = UtcDateTime()
    test_language = ma.fields.String(allow_none=True, metadata={
        "description": "The language its students' tests are delivered in unless they choose "
                       "another (null: the language of each student's pages)"})


class ClassDetailSchema(ClassSchema):
    students = ma.fields.List(ma.fields.Nested(UserBriefSchema))


class ClassListArgs(PageArgs):
    teacher_id = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID),
                                   metadata={"description": "Only this teacher's classes"})


class ClassCreateSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=[ma.validate.Length(1, 200), no_nul])
    teacher_id = ma.fields.Integer(
        validate=ma.validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Administrators: the teacher who owns the class (required)"})


class ClassPatchSchema(ma.Schema):
    name = ma.fields.String(validate=[ma.validate.Length(1, 200), no_nul])
    teacher_id = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID),
                                   metadata={"description": "Administrators only"})
    test_language = ma.fields.String(allow_none=True, validate=ma.validate.Length(2, 35),
                                     metadata={"description": "The class's default test "
                                                              "language (BCP 47: es, ar, pt-BR); "
                                                              "null clears it"})


class EnrolSchema(ma.Schema):
    """One of ``user_id`` and ``username``."""

    user_id = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID))
    username = ma.fields.String(validate=[ma.validate.Length(1, 80), no_nul])

    @ma.validates_schema
    def _one_of(self, data, **_kwargs):
        if ("user_id" in data) == ("username" in data):
            raise ma.ValidationError("give exactly one of user_id and username", "user_id")


class EnrolmentSchema(ma.Schema):
    class_id = ma.fields.Integer()
    student = ma.fields.Nested(UserBriefSchema)


class AssignmentSchema(ma.Schema):
    id = ma.fields.Integer()
    class_id = ma.fields.Integer()
    test_id = ma.fields.Integer()
    test_name = ma.fields.Function(lambda a: a.test.name)
    opens_at = UtcDateTime(allow_none=True)
    closes_at = UtcDateTime(allow_none=True)
    time_limit_minutes = ma.fields.Integer(allow_none=True)
    max_attempts = ma.fields.Integer(allow_none=True)
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()


class AssignmentPatchSchema(ma.Schema):
    """Every field may be ``null`` to remove it (an open end, no limit, no cap)."""

    opens_at = UtcDateTime(allow_none=True, metadata={"description": "ISO 8601 with a zone"})
    closes_at = UtcDateTime(allow_none=True, metadata={"description": "After opens_at"})
    time_limit_minutes = ma.fields.Integer(
        strict=True, allow_none=True,
        validate=ma.validate.Range(min=1, max=service.MAX_TIME_LIMIT_MINUTES),
        metadata={"description": "Scaled per student by their accommodation"})
    max_attempts = ma.fields.Integer(strict=True, allow_none=True,
                                     validate=ma.validate.Range(min=1, max=1000))


class AssignmentCreateSchema(AssignmentPatchSchema):
    test_id = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=MAX_ID))


class AttemptBriefSchema(ma.Schema):
    id = ma.fields.Integer()
    test_id = ma.fields.Integer()
    status = ma.fields.String()
    started_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)
    theta = ma.fields.Float(allow_none=True)
    se = ma.fields.Float(allow_none=True)
    stop_reason = ma.fields.String(allow_none=True)
    mastery = ma.fields.Dict(allow_none=True, metadata={
        "description": "The overall recommendation against the cut score, once finished"})


class StudentAttemptSchema(ma.Schema):
    student = ma.fields.Nested(UserBriefSchema)
    attempt = ma.fields.Nested(AttemptBriefSchema, allow_none=True)


class AuditEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    at = UtcDateTime()
    actor_id = ma.fields.Integer(allow_none=True)
    action = ma.fields.Enum(AccessAction, by_value=True)
    class_id = ma.fields.Integer(allow_none=True)
    student_id = ma.fields.Integer(allow_none=True)
    before = ma.fields.Dict(allow_none=True)
    after = ma.fields.Dict(allow_none=True)


class AuditArgs(PageArgs):
    student_id = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID))
    class_id = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID))


class ClassAttemptArgs(PageArgs):
    test_id = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID),
                                metadata={"description": "The latest attempt at this test"})


def _class(class_id: int):
    return service.visible_class(get_session(), current_user(), class_id)


@blp.route("/classes")
class Classes(MethodView):
    @requires(*MANAGERS)
    @blp.arguments(ClassListArgs(), location="query")
    @blp.response(200, page_of(ClassSchema, "ClassPage"))
    def get(self, args):
        """Classes: a teacher's own, or every class (administrators)."""
        query = service.class_query(current_user(), args.get("teacher_id"))
        return paginate(get_session(), query, args)

    @requires(*MANAGERS)
    @blp.arguments(ClassCreateSchema())
    @blp.response(201, ClassDetailSchema)
    @blp.alt_response(409, description="The teacher already has a class of that name")
    def post(self, data):
        """Create a class (administrators name its teacher with ``teacher_id``)."""
        session = get_session()
        klass = service.create_class(session, current_user(), data["name"],
                                     data.get("teacher_id"))
        session.commit()
        return klass


@blp.route("/classes/<int:class_id>")
class ClassById(MethodView):
    @requires(*MANAGERS)
    @blp.response(200, ClassDetailSchema)
    @blp.alt_response(404, description="No such class of the caller's")
    def get(self, class_id):
        """One class with its students."""
        return _class(class_id)

    @requires(*MANAGERS)
    @blp.arguments(ClassPatchSchema())
    @blp.response(200, ClassDetailSchema)
    @blp.alt_response(404, description="No such class of the caller's")
    @blp.alt_response(409, description="The teacher already has a class of that name")
    def patch(self, data, class_id):
        """Rename a class (administrators may also give it to another teacher)."""
        session = get_session()
        klass = service.update_class(session, current_user(), _class(class_id), **data)
        session.commit()
        return klass

    @requires(*MANAGERS)
    @blp.response(204)
    @blp.alt_response(404, description="No such class of the caller's")
    @blp.alt_response(409, description="Students have handed in work on the class's tasks")
    def delete(self, class_id):
        """Delete a class with its enrolments and assignments; attempts are kept. A class whose
        tasks hold students' drafts is kept (409): archive its tasks instead."""
        session = get_session()
        service.delete_class(session, _class(class_id), actor=current_user())
        session.commit()


@blp.route("/classes/<int:class_id>/students")
class ClassStudents(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(EnrolSchema())
    @blp.response(201, EnrolmentSchema)
    @blp.alt_response(200, schema=EnrolmentSchema, description="Already enrolled; unchanged")
    @blp.alt_response(404, description="No such class")
    def post(self, data, class_id):
        """Enrol a student by ``user_id`` or ``username`` (administrators; audited).

        Repeating it changes nothing.
        """
        session = get_session()
        klass = _class(class_id)
        student, created = service.enrol(session, current_user(), klass, **data)
        session.commit()
        return {"class_id": klass.id, "student": student}, 201 if created else 200


@blp.route("/classes/<int:class_id>/students/<int:user_id>")
class ClassStudentById(MethodView):
    @requires(Role.ADMIN)
    @blp.response(204)
    @blp.alt_response(404, description="No such class, or the student is not enrolled")
    def delete(self, class_id, user_id):
        """Remove a student from a class (administrators; audited); their attempts are kept."""
        session = get_session()
        service.unenrol(session, current_user(), _class(class_id), user_id)
        session.commit()


@blp.route("/access-audit")
class AccessAuditLog(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(AuditArgs(), location="query")
    @blp.response(200, page_of(AuditEntrySchema, "AccessAuditPage"))
    def get(self, args):
        """Every enrolment, class hand-over and accommodation change, oldest first."""
        return paginate(get_session(),
                        service.audit_query(args.get("student_id"), args.get("class_id"),
                                            current_user()), args)


@blp.route("/classes/<int:class_id>/assignments")
class ClassAssignments(MethodView):
    @requires(*MANAGERS)
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, page_of(AssignmentSchema, "AssignmentPage"))
    @blp.alt_response(404, description="No such class of the caller's")
    def get(self, args, class_id):
        """The tests assigned to a class, soonest closing first."""
        return paginate(get_session(), service.assignment_query(_class(class_id)), args)

    @requires(*MANAGERS)
    @blp.arguments(AssignmentCreateSchema())
    @blp.response(201, AssignmentSchema)
    @blp.alt_response(404, description="No such class of the caller's")
    def post(self, data, class_id):
        """Assign an active test to a class, with an optional window, time limit and cap."""
        session = get_session()
        assignment = service.create_assignment(session, current_user(), _class(class_id),
                                               **data)
        session.commit()
        return assignment


@blp.route("/assignments/<int:assignment_id>")
class AssignmentById(MethodView):
    @requires(*MANAGERS)
    @blp.response(200, AssignmentSchema)
    @blp.alt_response(404, description="No such assignment in the caller's classes")
    def get(self, assignment_id):
        """One assignment."""
        return service.visible_assignment(get_session(), current_user(), assignment_id)

    @requires(*MANAGERS)
    @blp.arguments(AssignmentPatchSchema())
    @blp.response(200, AssignmentSchema)
    @blp.alt_response(404, description="No such assignment in the caller's classes")
    def patch(self, data, assignment_id):
        """Change the window, time limit or attempt cap (``null`` removes one).

        A new time limit applies to attempts started afterwards.
        """
        session = get_session()
        assignment = service.visible_assignment(session, current_user(), assignment_id)
        service.update_assignment(session, assignment, data)
        session.commit()
        return assignment

    @requires(*MANAGERS)
    @blp.response(204)
    @blp.alt_response(404, description="No such assignment in the caller's classes")
    def delete(self, assignment_id):
        """Delete an assignment; attempts made under it are kept."""
        session = get_session()
        service.delete_assignment(session, service.visible_assignment(
            session, current_user(), assignment_id))
        session.commit()


@blp.route("/classes/<int:class_id>/attempts")
class ClassAttempts(MethodView):
    @requires(*MANAGERS)
    @blp.arguments(ClassAttemptArgs(), location="query")
    @blp.response(200, page_of(StudentAttemptSchema, "StudentAttemptPage"))
    @blp.alt_response(404, description="No such class of the caller's")
    def get(self, args, class_id):
        """Each enrolled student with their latest attempt under this class's assignments
        (at ``test_id`` when given)."""
        session = get_session()
        klass = _class(class_id)
        page = paginate(session, service.roster_query(klass), args)
        latest = service.latest_attempts(session, [s.id for s in page["items"]],
                                         args.get("test_id"), klass=klass)
        page["items"] = [{"student": s, "attempt": service.attempt_summary(latest.get(s.id))}
                         for s in page["items"]]
        return page
