"""Mastery reports over HTTP: a student's report, teachers' decisions, appeals and answers.

- ``GET /students/{student_id}/report``: the report of :func:`reports.report.student_report`
  (the student themself, their teachers, administrators; anyone else 404). A student gets the
  student view (no per-answer right/wrong or shift, no staff-only flags).
- ``POST /students/{student_id}/skills/{skill}/decisions``: a teacher of the student or an
  administrator records a decision with a reason (201); the report's entry for the skill (the
  model's suggestion, P(mastery), theta, se) is kept on the record beside it.
- ``POST /students/{student_id}/skills/{skill}/appeals``: the student appeals the skill's
  current decision (201); a second open appeal on the same decision is 409.
- ``POST /appeals/{appeal_id}/answer``: the student's teacher or an administrator answers
  ``upheld`` or ``revised`` (200); a revision records the new decision too.

The rules live in :mod:`reports.decisions`; these views validate, call it and commit once.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from reports import decisions as service
from reports.models import DECISIONS, OUTCOMES, MasteryDecision
from reports.report import student_report
from rights.audit_log import record_read
from storage.accounts import Role
from storage.rights import AuditAction

blp = Blueprint("reports", __name__,
                description="Mastery reports, teachers' decisions, appeals and answers")

TEXT_LIMIT = ma.validate.Length(max=service.MAX_TEXT)


def skill_entry(report: dict[str, Any], skill: str) -> dict[str, Any] | None:
    """The report's entry for ``skill``, or None (no evidence of it)."""
    return next((e for e in report["skills"] if e["skill"] == skill), None)


# -- schemas -------------------------------------------------------------------------------------


class MasteryDecisionSchema(ma.Schema):
    id = ma.fields.Integer()
    skill = ma.fields.String()
    decision = ma.fields.String(metadata={"enum": list(DECISIONS)})
    reason = ma.fields.String()
    decided_by = ma.fields.Integer(allow_none=True)
    decided_by_name = ma.fields.String(allow_none=True)
    decided_at = ma.fields.String(metadata={"description": "ISO 8601, UTC"})
    suggested_decision = ma.fields.String(allow_none=True, metadata={
        "description": "The model's suggestion when the teacher decided"})
    mastery_probability = ma.fields.Float(allow_none=True)
    theta = ma.fields.Float(allow_none=True)
    se = ma.fields.Float(allow_none=True)


class AppealAnswerSchema(ma.Schema):
    id = ma.fields.Integer()
    outcome = ma.fields.String(metadata={"enum": list(OUTCOMES)})
    reason = ma.fields.String()
    answered_by = ma.fields.Integer(allow_none=True)
    answered_by_name = ma.fields.String(allow_none=True)
    answered_at = ma.fields.String()
    decision_id = ma.fields.Integer(allow_none=True, metadata={
        "description": "The decision a revision recorded"})


class AppealSchema(ma.Schema):
    id = ma.fields.Integer()
    skill = ma.fields.String()
    decision_id = ma.fields.Integer(allow_none=True, metadata={
        "description": "The teacher's decision appealed; null: the model's suggestion"})
    appealed_decision = ma.fields.String(allow_none=True)
    message = ma.fields.String()
    created_at = ma.fields.String()
    answer = ma.fields.Nested(AppealAnswerSchema, allow_none=True)


class AppealAnswerResultSchema(AppealAnswerSchema):
    appeal_id = ma.fields.Integer()
    decision = ma.fields.Nested(MasteryDecisionSchema, allow_none=True, metadata={
        "description": "The new decision of a revision"})


class ReportSkillSchema(ma.Schema):
    skill = ma.fields.String()
    theta = ma.fields.Float(allow_none=True)
    se = ma.fields.Float(allow_none=True)
    interval95 = ma.fields.List(ma.fields.Float(allow_none=True))
    cut_score = ma.fields.Float(allow_none=True)
    cut_source = ma.fields.Dict(allow_none=True)
    mastery_probability = ma.fields.Float(allow_none=True, metadata={
        "description": "P(theta > cut | evidence); null without a cut score"})
    suggested_decision = ma.fields.String(metadata={"enum": list(DECISIONS)})
    decision = ma.fields.String(metadata={"enum": list(DECISIONS)})
    decided_by = ma.fields.String(metadata={"enum": ["model", "teacher"]})
    teacher_decision = ma.fields.Nested(MasteryDecisionSchema, allow_none=True)
    open_appeal = ma.fields.Dict(allow_none=True)
    adds_value = ma.fields.Boolean(allow_none=True, metadata={
        "description": "Haberman's PRMSE: the skill's own score adds to the overall"})
    prmse = ma.fields.Dict(allow_none=True)
    prior = ma.fields.Dict()
    prior_weight = ma.fields.Float(allow_none=True, metadata={
        "description": "The prior's share of the information; with the evidence's weights it "
                       "sums to 1"})
    n_items = ma.fields.Integer()
    n_ratings = ma.fields.Integer()
    flags = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "{code, ...}: rapid_guess, person_misfit, rater_disagreement, "
                       "too_little_evidence, not_on_scale, no_cut_score"})
    evidence = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "Newest first: {kind: item | rubric, source_id, response, at, weight, "
                       "shift, ...}; students see no source_id, response or shift of items"})
    not_on_scale = ma.fields.List(ma.fields.Dict())
    next_steps = ma.fields.List(ma.fields.Dict())


class MasteryReportSchema(ma.Schema):
    student_id = ma.fields.Integer()
    student = ma.fields.Dict()
    generated_at = ma.fields.String()
    status = ma.fields.String(metadata={"enum": ["ok", "no_evidence"]})
    viewer_role = ma.fields.String()
    model = ma.fields.Dict(metadata={"description": "The model's stated settings"})
    overall = ma.fields.Dict(allow_none=True, metadata={
        "description": "theta, se, interval95, n_items, n_ratings; null without evidence"})
    skills = ma.fields.List(ma.fields.Nested(ReportSkillSchema))
    trajectory = ma.fields.List(ma.fields.Dict())
    decisions = ma.fields.List(ma.fields.Nested(MasteryDecisionSchema))
    appeals = ma.fields.List(ma.fields.Nested(AppealSchema))
    not_on_scale = ma.fields.List(ma.fields.Dict())


class MasteryDecisionCreateSchema(ma.Schema):
    decision = ma.fields.String(required=True, validate=ma.validate.OneOf(DECISIONS))
    reason = ma.fields.String(required=True, validate=TEXT_LIMIT,
                              error_messages={"required": "a reason is required"})


class AppealCreateSchema(ma.Schema):
    message = ma.fields.String(required=True, validate=TEXT_LIMIT,
                               error_messages={"required": "a message is required"})


class AppealAnswerCreateSchema(ma.Schema):
    outcome = ma.fields.String(required=True, validate=ma.validate.OneOf(OUTCOMES))
    reason = ma.fields.String(required=True, validate=TEXT_LIMIT,
                              error_messages={"required": "a reason is required"})
    decision = ma.fields.String(load_default=None, validate=ma.validate.OneOf(DECISIONS),
                                metadata={"description": "The new decision; required for "
                                                         "'revised', refused for 'upheld'"})


# -- views ---------------------------------------------------------------------------------------


def _names(user) -> dict[int, str]:
    return {user.id: user.display_name or user.username}


@blp.route("/students/<int:student_id>/report")
class StudentReport(MethodView):
    @requires()
    @blp.response(200, MasteryReportSchema)
    @blp.alt_response(404, description="No such student the caller may see")
    def get(self, student_id):
        """A student's mastery report: per skill the estimate, its interval, P(mastery), the
        model's suggestion and the teacher's decision, flags and the evidence with its weight and
        shift; the history of decisions and appeals. A student with no evidence gets
        ``status: no_evidence``."""
        session, user = get_session(), current_user()
        report = student_report(session, user, student_id)
        record_read(session, user, student_id, AuditAction.REPORT_READ, object_type="report",
                    detail={"format": "json"})
        return report


@blp.route("/students/<int:student_id>/skills/<skill>/decisions")
class SkillDecisions(MethodView):
    @requires(Role.TEACHER, Role.ADMIN)
    @blp.arguments(MasteryDecisionCreateSchema())
    @blp.response(201, MasteryDecisionSchema)
    @blp.alt_response(404, description="No such student of the caller's, or unknown skill")
    def post(self, data, student_id, skill):
        """Record a teacher's decision on the skill (mastered, not_mastered, needs_evidence)
        with a required reason; it becomes the skill's decision, the model's suggestion kept
        beside it."""
        session, user = get_session(), current_user()
        report = student_report(session, user, student_id, with_next_steps=False)
        row = service.record_decision(session, user, student_id, skill, data["decision"],
                                      data["reason"], suggestion=skill_entry(report, skill))
        session.commit()
        return service.decision_entry(row, _names(user))


@blp.route("/students/<int:student_id>/skills/<skill>/appeals")
class SkillAppeals(MethodView):
    @requires(Role.STUDENT)
    @blp.arguments(AppealCreateSchema())
    @blp.response(201, AppealSchema)
    @blp.alt_response(404, description="Another student's skill, or an unknown skill")
    @blp.alt_response(409, description="An open appeal on this decision waits for its answer")
    def post(self, data, student_id, skill):
        """Appeal the skill's current decision (the teacher's, else the model's suggestion)
        with a message."""
        session, user = get_session(), current_user()
        report = student_report(session, user, student_id, with_next_steps=False)
        row = service.appeal(session, user, skill, data["message"], student_id=student_id,
                             suggestion=skill_entry(report, skill))
        session.commit()
        return service.appeal_entry(row, None, {})


@blp.route("/appeals/<int:appeal_id>/answer")
class AppealAnswerView(MethodView):
    @requires(Role.TEACHER, Role.ADMIN)
    @blp.arguments(AppealAnswerCreateSchema())
    @blp.response(200, AppealAnswerResultSchema)
    @blp.alt_response(404, description="No such appeal of a student of the caller's")
    @blp.alt_response(409, description="The appeal is answered already")
    def post(self, data, appeal_id):
        """Answer an appeal: ``upheld`` (the decision stands) or ``revised`` with the new
        ``decision``, which is recorded as the skill's decision; a reason either way."""
        session, user = get_session(), current_user()
        appealed = service.get_appeal(session, user, appeal_id)
        suggestion = None
        if data["outcome"] == "revised":
            report = student_report(session, user, appealed.student_id, with_next_steps=False)
            suggestion = skill_entry(report, appealed.skill)
        answer = service.answer_appeal(session, user, appeal_id, data["outcome"],
                                       data["reason"], data["decision"], suggestion=suggestion)
        session.commit()
        new = None if answer.decision_id is None else service.decision_entry(
            session.get(MasteryDecision, answer.decision_id), _names(user))
        return {**service.answer_entry(answer, _names(user)), "appeal_id": appeal_id,
                "decision": new}
