"""A student's portfolio: attempts, indicators, tasks with their drafts, and the step log.

For the teacher of the student's class (what belongs to that class), administrators, and the
student themself (without the staff-only fields: theta, se, lz*, rapid guesses, flags).
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.classes import no_nul
from api.v1.common import UtcDateTime, id_field
from api.v1.indicators import UserIndicatorsSchema
from evidence import portfolio as service
from evidence.scope import student_scope
from rights.audit_log import record_read
from storage.rights import AuditAction

blp = Blueprint("portfolio", __name__, description="A student's portfolio of evidence")


class PortfolioArgs(ma.Schema):
    task_id = id_field(metadata={"description": "only log entries about this task"})
    verb = ma.fields.String(validate=[ma.validate.Length(1, service.MAX_VERB_LENGTH), no_nul],
                            metadata={"description": "only log entries with this verb IRI"})
    before = id_field(metadata={"description": "log entries older than this seq (the "
                                               "previous page's 'older')"})


class PortfolioStudentSchema(ma.Schema):
    id = ma.fields.Integer()
    display_name = ma.fields.String()
    pseudonym = ma.fields.String()


class PortfolioAttemptSchema(ma.Schema):
    id = ma.fields.Integer()
    test_id = ma.fields.Integer()
    test_name = ma.fields.String()
    status = ma.fields.String()
    state = ma.fields.String(metadata={"description": "in_progress, time_up, finished, "
                                                      "abandoned"})
    started_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)
    n_given = ma.fields.Integer()
    stop_reason = ma.fields.String(allow_none=True)
    n_scored = ma.fields.Integer(metadata={"description": "staff only"})
    theta = ma.fields.Float(allow_none=True, metadata={"description": "staff only"})
    se = ma.fields.Float(allow_none=True, metadata={"description": "staff only"})
    mastery = ma.fields.String(allow_none=True, metadata={"description": "staff only"})
    flags = ma.fields.List(ma.fields.String(), metadata={"description": "staff only"})
    result = ma.fields.Dict(metadata={"description": "students: their result in words "
                                                     "(StudentResultSchema)"})


class DraftEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    version = ma.fields.Integer()
    final = ma.fields.Boolean()
    submitted_at = UtcDateTime()
    files = ma.fields.Integer()
    comments = ma.fields.Integer()


class PortfolioTaskSchema(ma.Schema):
    id = ma.fields.Integer()
    class_id = ma.fields.Integer()
    title = ma.fields.String()
    skills = ma.fields.List(ma.fields.String())
    due_at = UtcDateTime(allow_none=True)
    archived = ma.fields.Boolean()
    drafts = ma.fields.List(ma.fields.Nested(DraftEntrySchema))


class LogEntrySchema(ma.Schema):
    seq = ma.fields.Integer()
    id = ma.fields.String()
    timestamp = UtcDateTime()
    verb = ma.fields.String()
    verb_name = ma.fields.String()
    object = ma.fields.String(allow_none=True)
    object_name = ma.fields.String()
    result = ma.fields.Dict(allow_none=True)
    registration = ma.fields.String(allow_none=True)
    attempt_id = ma.fields.Integer(allow_none=True)
    test_name = ma.fields.String(allow_none=True, metadata={
        "description": "the engine's own statements: the test of the attempt"})
    position = ma.fields.Integer(allow_none=True, metadata={
        "description": "the engine's answered statements: the question's place in the attempt"})


class VerbSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()


class LogSchema(ma.Schema):
    entries = ma.fields.List(ma.fields.Nested(LogEntrySchema))
    older = ma.fields.Integer(allow_none=True, metadata={
        "description": "pass as before= for the next (older) page; null on the last"})
    verbs = ma.fields.List(ma.fields.Nested(VerbSchema))
    task_id = ma.fields.Integer(allow_none=True)
    verb = ma.fields.String(allow_none=True)
    before = ma.fields.Integer(allow_none=True)


class PortfolioSchema(ma.Schema):
    student = ma.fields.Nested(PortfolioStudentSchema)
    class_ids = ma.fields.List(ma.fields.Integer(), allow_none=True, metadata={
        "description": "the classes the reading is limited to; null for all"})
    attempts = ma.fields.List(ma.fields.Nested(PortfolioAttemptSchema))
    indicators = ma.fields.Nested(UserIndicatorsSchema)
    tasks = ma.fields.List(ma.fields.Nested(PortfolioTaskSchema))
    log = ma.fields.Nested(LogSchema)


@blp.route("/users/<int:user_id>/portfolio")
class UserPortfolio(MethodView):
    @requires()
    @blp.arguments(PortfolioArgs(), location="query")
    @blp.response(200, PortfolioSchema)
    @blp.alt_response(404, description="No such student the caller may see")
    @blp.alt_response(422, description="A task not in this portfolio, or a bad filter")
    def get(self, args, user_id):
        """A student's attempts, indicators, tasks with drafts and step log (newest 200
        entries; ``before`` pages back), as the caller may see them."""
        session = get_session()
        scope = student_scope(session, current_user(), user_id)
        data = service.portfolio(session, scope, **args)
        record_read(session, current_user(), user_id, AuditAction.PORTFOLIO_READ,
                    object_type="portfolio", detail={"format": "json"})
        return data
