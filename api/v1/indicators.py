"""Process indicators of an attempt and of a student: flags for a teacher, never scores.

Teachers (of the student's class), administrators and the student read them; response-time
effort, rapid-guess flags and person fit (lz*) are staff-only and never reach students.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.common import UtcDateTime
from evidence import indicators as service
from evidence.scope import student_scope

blp = Blueprint("indicators", __name__, description="Process indicators (flags, not scores)")


class _Defined(ma.Schema):
    definition = ma.fields.String(metadata={"description": "What the indicator means (help "
                                                           "text)"})


class TimeOnTaskSchema(_Defined):
    seconds = ma.fields.Float(allow_none=True, metadata={
        "description": "sum of the response times, seconds"})
    wall_seconds = ma.fields.Float(allow_none=True, metadata={
        "description": "start to finish (or to the last answer), seconds"})
    timed_responses = ma.fields.Integer()
    responses = ma.fields.Integer()


class EffortSchema(_Defined):
    """Staff only."""

    value = ma.fields.Float(allow_none=True, metadata={
        "description": "response-time effort: share of timed answers that are not rapid guesses"})
    flag = ma.fields.Boolean(metadata={"description": "value below threshold"})
    threshold = ma.fields.Float()
    rapid_guesses = ma.fields.Integer()
    timed_responses = ma.fields.Integer()
    rule = ma.fields.Dict(metadata={"description": "the NT10 settings (fraction, cap, floor, "
                                                   "minimum responses, fallback)"})


class HintsSchema(_Defined):
    responses = ma.fields.Integer(metadata={"description": "hints used while answering"})
    log = ma.fields.Integer(metadata={"description": "help requests in the step log"})


class RetriesSchema(_Defined):
    count = ma.fields.Integer()


class PersonFitSchema(_Defined):
    """Staff only."""

    lz_star = ma.fields.Float(allow_none=True, metadata={"description": "Snijders' lz*"})
    flag = ma.fields.Boolean(metadata={"description": "lz* below threshold (-1.645)"})
    threshold = ma.fields.Float()
    n_items = ma.fields.Integer(metadata={"description": "scored right-or-wrong answers used"})
    minimum_items = ma.fields.Integer()
    estimator = ma.fields.String(allow_none=True, metadata={
        "description": "mle, wle or map: whose estimate lz* is computed at"})
    theta = ma.fields.Float(allow_none=True)
    reason = ma.fields.String(allow_none=True, metadata={"description": "why no lz* is given"})


class IndicatorsSchema(ma.Schema):
    time_on_task = ma.fields.Nested(TimeOnTaskSchema)
    response_time_effort = ma.fields.Nested(EffortSchema)
    hints = ma.fields.Nested(HintsSchema)
    retries = ma.fields.Nested(RetriesSchema)
    person_fit = ma.fields.Nested(PersonFitSchema)


class ResponseIndicatorSchema(ma.Schema):
    position = ma.fields.Integer()
    item_id = ma.fields.Integer()
    scored = ma.fields.Boolean()
    response_time_ms = ma.fields.Integer(allow_none=True)
    threshold_ms = ma.fields.Integer(metadata={"description": "staff only"})
    rapid_guess = ma.fields.Boolean(metadata={"description": "staff only"})
    hints_used = ma.fields.Integer()


class AttemptIndicatorsSchema(ma.Schema):
    attempt_id = ma.fields.Integer()
    test_id = ma.fields.Integer()
    user_id = ma.fields.Integer()
    status = ma.fields.String()
    started_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)
    registration = ma.fields.String()
    indicators = ma.fields.Nested(IndicatorsSchema)
    flags = ma.fields.List(ma.fields.String(), metadata={
        "description": "staff only: low_effort, person_misfit"})
    responses = ma.fields.List(ma.fields.Nested(ResponseIndicatorSchema))


class PersonFitTotalSchema(_Defined):
    flagged_attempts = ma.fields.Integer()
    threshold = ma.fields.Float()


class TotalsSchema(ma.Schema):
    attempts = ma.fields.Integer()
    time_on_task = ma.fields.Nested(TimeOnTaskSchema)
    response_time_effort = ma.fields.Nested(EffortSchema)
    hints = ma.fields.Nested(HintsSchema)
    retries = ma.fields.Nested(RetriesSchema)
    person_fit = ma.fields.Nested(PersonFitTotalSchema)


class UserIndicatorsSchema(ma.Schema):
    user_id = ma.fields.Integer()
    totals = ma.fields.Nested(TotalsSchema)
    attempts = ma.fields.List(ma.fields.Nested(AttemptIndicatorsSchema))


@blp.route("/attempts/<int:attempt_id>/indicators")
class AttemptIndicators(MethodView):
    @requires()
    @blp.response(200, AttemptIndicatorsSchema)
    @blp.alt_response(404, description="No such attempt the caller may see")
    def get(self, attempt_id):
        """Time on task, response-time effort and rapid guesses per answer, hints, retries and
        person fit (lz*) of one attempt. Students get their own without the staff-only
        fields."""
        return service.attempt_indicators(get_session(), current_user(), attempt_id)


@blp.route("/users/<int:user_id>/indicators")
class UserIndicators(MethodView):
    @requires()
    @blp.response(200, UserIndicatorsSchema)
    @blp.alt_response(404, description="No such student the caller may see")
    def get(self, user_id):
        """A student's indicators over their attempts (newest first) with totals: for the
        teacher of their class (attempts under that class's assignments), administrators, and
        the student themself (without the staff-only fields)."""
        session = get_session()
        return service.student_indicators(session, student_scope(session, current_user(),
                                                                 user_id))
