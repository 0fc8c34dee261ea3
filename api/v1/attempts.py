"""Attempts: an adaptive test over HTTP, one item per request, resumable on any worker."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api import lti_grades
from api.db import get_session
from api.site import public_url
from api.v1.auth import current_user, requires
from api.v1.common import PageArgs, UtcDateTime, id_field, page_of, paginate
from evidence import attempts as service
from evidence.attempts import BAND_CODES
from evidence.models import Attempt, AttemptStatus
from storage.accounts import Role
from storage.errors import Forbidden

blp = Blueprint("attempts", __name__, description="Taking adaptive tests")


class PresentedItemSchema(ma.Schema):
    """An item as a student sees it: no key, no parameters, no item code."""

    id = ma.fields.Integer(required=True)
    stem = ma.fields.String(required=True)
    options = ma.fields.List(ma.fields.String(), required=True)
    position = ma.fields.Integer(required=True, metadata={"description": "1-based"})
    media = ma.fields.List(ma.fields.String())
    categories = ma.fields.Integer(metadata={"description": "rating items: answer 0..n-1"})
    seconds_left = ma.fields.Integer(metadata={"description": "when the test has a time limit"})
    language = ma.fields.String(metadata={
        "description": "The language of stem and options: the attempt's, or the item's source "
                       "language where it has no version in the attempt's"})


EVIDENCE = ("too_little", "rough", "fairly_sure", "sure")


class StudentMasterySchema(ma.Schema):
    decision = ma.fields.String(validate=ma.validate.OneOf(
        ["mastered", "not_mastered", "undecided"]))
    recommendation = ma.fields.Boolean()


class StudentLevelFields(ma.Schema):
    """A level as a student sees it: words, never a number."""

    evidence = ma.fields.String(validate=ma.validate.OneOf(EVIDENCE), metadata={
        "description": "how sure the level is; too_little: fewer than 4 scored answers, so no "
                       "level is given"})
    level = ma.fields.String(validate=ma.validate.OneOf(BAND_CODES), metadata={
        "description": "band of the theta scale: below -1.5, -0.5, 0.5, 1.5 logits, or above"})
    range = ma.fields.List(ma.fields.String(validate=ma.validate.OneOf(BAND_CODES)), metadata={
        "description": "the bands the 95% interval runs from and to"})
    mastery = ma.fields.Nested(StudentMasterySchema, metadata={
        "description": "the recommendation against the cut score, which students are "
                       "not given"})


class StudentSkillSchema(StudentLevelFields):
    n_items = ma.fields.Integer(metadata={"description": "scored answers in this skill"})


class StudentResultSchema(StudentLevelFields):
    """The result as a student sees it (answers to students, and their own attempts)."""

    stop_reason = ma.fields.String()
    n_given = ma.fields.Integer()
    skills = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(StudentSkillSchema))
    skills_not_tested = ma.fields.List(ma.fields.String())


class SkillResultSchema(StudentSkillSchema):
    n_correct = ma.fields.Integer(metadata={"description": "staff only"})
    theta = ma.fields.Float(metadata={"description": "staff only"})
    se = ma.fields.Float(metadata={"description": "staff only"})
    mastery = ma.fields.Dict()


class ResultSchema(StudentResultSchema):
    """The result: staff see every field; students see those of StudentResultSchema."""

    theta = ma.fields.Float()
    se = ma.fields.Float()
    interval95 = ma.fields.List(ma.fields.Float())
    n_scored = ma.fields.Integer()
    skills = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(SkillResultSchema))
    mastery = ma.fields.Dict(metadata={"description": "overall recommendation vs the cut score "
                                                      "(with the cut score for staff)"})


class ReplySchema(ma.Schema):
    """What comes next: an item to answer, or the finished attempt's result."""

    id = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True)
    item = ma.fields.Nested(PresentedItemSchema)
    result = ma.fields.Nested(StudentResultSchema, allow_none=True)
    late = ma.fields.Boolean(metadata={"description": "the answer came after the time limit "
                                                      "and was not recorded"})


class StartSchema(ma.Schema):
    test_id = id_field(required=True)
    language = ma.fields.String(load_default=None, allow_none=True,
                                validate=ma.validate.Length(2, 35), metadata={
        "description": "The test language (BCP 47: en, ar, pt-BR), one the test is offered in; "
                       "default: the class's default test language, else the language the "
                       "items are written in. Ignored when an attempt in progress is resumed"})


class AnswerSchema(ma.Schema):
    item_id = id_field(required=True)
    response = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(
        min=0, max=1000), metadata={"description": "0-based option index (or category)"})
    response_time_ms = ma.fields.Integer(validate=ma.validate.Range(min=0, max=86_400_000))


class IdempotencyHeaderSchema(ma.Schema):
    idempotency_key = ma.fields.String(
        required=True, data_key="Idempotency-Key", validate=ma.validate.Length(1, 255),
        metadata={"description": "A new random key per answer; repeat it to retry safely"})


class HistoryEntrySchema(ma.Schema):
    position = ma.fields.Integer()
    item_id = ma.fields.Integer()
    response = ma.fields.Integer()
    answered_at = UtcDateTime()
    score = ma.fields.Integer()
    scored = ma.fields.Boolean()
    response_time_ms = ma.fields.Integer(allow_none=True)
    offline = ma.fields.Boolean(metadata={"description": "Answered while the connection was "
                                          "down and sent when it returned (staff only)."})


class AttemptSchema(ma.Schema):
    id = ma.fields.Integer()
    test_id = ma.fields.Integer()
    user_id = ma.fields.Integer()
    status = ma.fields.String()
    started_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)
    deadline = UtcDateTime(allow_none=True)
    history = ma.fields.List(ma.fields.Nested(HistoryEntrySchema))
    item = ma.fields.Nested(PresentedItemSchema)
    theta = ma.fields.Float(allow_none=True)
    se = ma.fields.Float(allow_none=True)
    stop_reason = ma.fields.String(allow_none=True)
    result = ma.fields.Nested(ResultSchema, allow_none=True)
    language = ma.fields.String(allow_none=True, metadata={
        "description": "The language the attempt is delivered in"})


class AttemptSummarySchema(ma.Schema):
    id = ma.fields.Integer()
    test_id = ma.fields.Integer()
    user_id = ma.fields.Integer()
    status = ma.fields.Enum(AttemptStatus, by_value=True)
    started_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)
    theta = ma.fields.Float(allow_none=True)
    se = ma.fields.Float(allow_none=True)


class AttemptListArgs(PageArgs):
    test_id = id_field()
    user_id = id_field()
    status = ma.fields.Enum(AttemptStatus, by_value=True)


def _without_figures(attempt: Attempt) -> dict:
    return {name: getattr(attempt, name)
            for name in ("id", "test_id", "user_id", "status", "started_at", "finished_at")}


@blp.route("/attempts")
class Attempts(MethodView):
    @requires()
    @blp.arguments(AttemptListArgs(), location="query")
    @blp.response(200, page_of(AttemptSummarySchema, "AttemptPage"))
    def get(self, args):
        """Attempts the caller may see: their own (students), those under their classes'
        assignments (teachers), all (administrators, assessors)."""
        query = service.attempt_query(current_user())
        for name in ("test_id", "user_id", "status"):
            if args.get(name) is not None:
                query = query.where(getattr(Attempt, name) == args[name])
        if current_user().role == Role.STUDENT:  # no figures for students (see student_result)
            return paginate(get_session(), query, args, transform=_without_figures)
        return paginate(get_session(), query, args)

    @requires()
    @blp.arguments(StartSchema())
    @blp.response(201, ReplySchema)
    @blp.alt_response(200, schema=ReplySchema, description="An attempt in progress, resumed")
    @blp.alt_response(404, description="No such test open for the caller")
    def post(self, data):
        """Start a test (or resume the attempt in progress): returns the first item."""
        user = current_user()
        if user.role != Role.STUDENT:
            raise Forbidden("only students take tests; try a test design with a simulation")
        session = get_session()
        _attempt, reply, created = service.start_attempt(session, user, data["test_id"],
                                                        base_url=public_url(),
                                                        language=data["language"])
        session.commit()
        return reply, 201 if created else 200


@blp.route("/attempts/<int:attempt_id>")
class AttemptById(MethodView):
    @requires()
    @blp.response(200, AttemptSchema)
    @blp.alt_response(404, description="No such attempt the caller may see")
    def get(self, attempt_id):
        """Status and history; the result once finished (theta and se for staff). The current
        item while in progress."""
        user = current_user()
        session = get_session()
        attempt = service.visible_attempt(session, user, attempt_id)
        return service.attempt_view(session, attempt, user)


@blp.route("/attempts/<int:attempt_id>/responses")
class AttemptResponses(MethodView):
    @requires(Role.STUDENT)
    @blp.arguments(IdempotencyHeaderSchema(), location="headers")
    @blp.arguments(AnswerSchema())
    @blp.response(200, ReplySchema)
    @blp.alt_response(404, description="No such attempt of the caller's")
    @blp.alt_response(409, description="Not the item presented, the attempt is over, or the "
                                       "Idempotency-Key was used for another answer")
    def post(self, headers, data, attempt_id):
        """Answer the presented item; returns the next item or the result.

        The response is committed before the reply is sent. Repeating the request with the same
        ``Idempotency-Key`` returns the same reply and records nothing twice.
        """
        session = get_session()
        reply, _replayed = service.submit_response(
            session, current_user(), attempt_id, data["item_id"], data["response"],
            headers["idempotency_key"], response_time_ms=data.get("response_time_ms"),
            base_url=public_url(),
        )
        session.commit()
        if reply.get("status") == "finished":
            lti_grades.after_attempt(attempt_id)  # an LTI launch's score goes to the platform
        return reply
