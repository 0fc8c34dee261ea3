"""Attempts: an adaptive test over HTTP, one item per request, resumable on any worker."""

from __future__ import annotations

import marshmallow as ma
from flask import jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from webargs.flaskparser import abort

from api.db import get_session
from api.services import attempts as service
from api.services.errors import Forbidden
from api.v1.auth import current_user, requires
from api.v1.common import PageArgs, id_field, page_of, paginate
from evidence.models import Attempt, AttemptStatus
from storage.accounts import Role, SchoolClass, class_members

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


class SkillResultSchema(ma.Schema):
    n_items = ma.fields.Integer()
    n_correct = ma.fields.Integer()
    theta = ma.fields.Float()
    se = ma.fields.Float()
    mastery = ma.fields.Dict()


class ResultSchema(ma.Schema):
    theta = ma.fields.Float()
    se = ma.fields.Float()
    interval95 = ma.fields.List(ma.fields.Float())
    stop_reason = ma.fields.String()
    n_scored = ma.fields.Integer()
    n_given = ma.fields.Integer()
    skills = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(SkillResultSchema))
    mastery = ma.fields.Dict(metadata={"description": "overall recommendation vs the cut score"})


class ReplySchema(ma.Schema):
    """What comes next: an item to answer, or the finished attempt's result."""

    id = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True)
    item = ma.fields.Nested(PresentedItemSchema)
    result = ma.fields.Nested(ResultSchema, allow_none=True)
    late = ma.fields.Boolean(metadata={"description": "the answer came after the time limit "
                                                      "and was not recorded"})


class StartSchema(ma.Schema):
    test_id = id_field(required=True)


class AnswerSchema(ma.Schema):
    item_id = id_field(required=True)
    response = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(
        min=0, max=1000), metadata={"description": "0-based option index (or category)"})
    response_time_ms = ma.fields.Integer(validate=ma.validate.Range(min=0, max=86_400_000))


class HistoryEntrySchema(ma.Schema):
    position = ma.fields.Integer()
    item_id = ma.fields.Integer()
    response = ma.fields.Integer()
    answered_at = ma.fields.AwareDateTime(default_timezone=None)
    score = ma.fields.Integer()
    scored = ma.fields.Boolean()
    response_time_ms = ma.fields.Integer(allow_none=True)


class AttemptSchema(ma.Schema):
    id = ma.fields.Integer()
    test_id = ma.fields.Integer()
    user_id = ma.fields.Integer()
    status = ma.fields.String()
    started_at = ma.fields.DateTime()
    finished_at = ma.fields.DateTime(allow_none=True)
    deadline = ma.fields.DateTime(allow_none=True)
    history = ma.fields.List(ma.fields.Nested(HistoryEntrySchema))
    item = ma.fields.Nested(PresentedItemSchema)
    theta = ma.fields.Float(allow_none=True)
    se = ma.fields.Float(allow_none=True)
    stop_reason = ma.fields.String(allow_none=True)
    result = ma.fields.Nested(ResultSchema, allow_none=True)


class AttemptSummarySchema(ma.Schema):
    id = ma.fields.Integer()
    test_id = ma.fields.Integer()
    user_id = ma.fields.Integer()
    status = ma.fields.Enum(AttemptStatus, by_value=True)
    started_at = ma.fields.DateTime()
    finished_at = ma.fields.DateTime(allow_none=True)
    theta = ma.fields.Float(allow_none=True)
    se = ma.fields.Float(allow_none=True)


class AttemptListArgs(PageArgs):
    test_id = id_field()
    user_id = id_field()
    status = ma.fields.Enum(AttemptStatus, by_value=True)


@blp.route("/attempts")
class Attempts(MethodView):
    @requires()
    @blp.arguments(AttemptListArgs(), location="query")
    @blp.response(200, page_of(AttemptSummarySchema, "AttemptPage"))
    def get(self, args):
        """Attempts the caller may see: their own (students), their classes' (teachers), all."""
        user = current_user()
        session = get_session()
        query = select(Attempt).order_by(Attempt.id.desc())
        if user.role == Role.STUDENT:
            query = query.where(Attempt.user_id == user.id)
        elif user.role == Role.TEACHER:
            students = (select(class_members.c.user_id)
                        .join(SchoolClass, SchoolClass.id == class_members.c.class_id)
                        .where(SchoolClass.teacher_id == user.id))
            query = query.where(Attempt.user_id.in_(students))
        for name in ("test_id", "user_id", "status"):
            if args.get(name) is not None:
                query = query.where(getattr(Attempt, name) == args[name])
        return paginate(session, query, args)

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
        _attempt, reply, created = service.start_attempt(session, user, data["test_id"])
        session.commit()
        return reply, 201 if created else 200


@blp.route("/attempts/<int:attempt_id>")
class AttemptById(MethodView):
    @requires()
    @blp.response(200, AttemptSchema)
    @blp.alt_response(404, description="No such attempt the caller may see")
    def get(self, attempt_id):
        """Status and history; theta and se once finished. The current item while in progress."""
        user = current_user()
        session = get_session()
        attempt = service.visible_attempt(session, user, attempt_id)
        return service.attempt_view(session, attempt, user)


_ANSWER = AnswerSchema()
_REPLY = ReplySchema()
IDEMPOTENCY_HEADER = "Idempotency-Key"


def _load_answer() -> tuple[str, dict]:
    """The Idempotency-Key header and the JSON body, validated as ``blp.arguments`` would.

    The answer is the hottest request of the product; webargs' machinery around these two
    small schemas cost about a tenth of it. Errors are the same 400/422 problems, naming
    ``headers.Idempotency-Key`` or ``json.<field>``.
    """
    key = request.headers.get(IDEMPOTENCY_HEADER, "")
    if not 1 <= len(key) <= 255:
        message = ("Missing data for required field." if not key
                   else "Length must be between 1 and 255.")
        abort(422, messages={"headers": {IDEMPOTENCY_HEADER: [message]}})
    body = request.get_json(silent=True)
    if body is None and request.get_data(cache=True):
        abort(400, messages={"json": ["Invalid JSON body."]})
    try:
        return key, _ANSWER.load(body if body is not None else {})
    except ma.ValidationError as error:
        abort(422, exc=error, messages={"json": error.messages})


@blp.route("/attempts/<int:attempt_id>/responses")
class AttemptResponses(MethodView):
    @requires(Role.STUDENT)
    @blp.doc(
        parameters=[{"in": "header", "name": IDEMPOTENCY_HEADER, "required": True,
                     "description": "A new random key per answer; repeat it to retry safely",
                     "schema": {"type": "string", "minLength": 1, "maxLength": 255}}],
        requestBody={"required": True, "content": {"application/json": {"schema": AnswerSchema}}},
    )
    @blp.alt_response(200, schema=ReplySchema, description="OK", success=True)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    @blp.alt_response(404, description="No such attempt of the caller's")
    @blp.alt_response(409, description="Not the item presented, the attempt is over, or the "
                                       "Idempotency-Key was used for another answer")
    def post(self, attempt_id):
        """Answer the presented item; returns the next item or the result.

        The response is committed before the reply is sent. Repeating the request with the same
        ``Idempotency-Key`` returns the same reply and records nothing twice.
        """
        key, data = _load_answer()
        session = get_session()
        reply, _replayed = service.submit_response(
            session, current_user(), attempt_id, data["item_id"], data["response"], key,
            response_time_ms=data.get("response_time_ms"),
        )
        session.commit()
        return jsonify(_REPLY.dump(reply))
