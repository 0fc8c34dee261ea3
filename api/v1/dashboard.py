"""A class's dashboard: ``GET /classes/{class_id}/dashboard``.

The data of :func:`reports.dashboard.class_dashboard`: the students-by-skills grid of mastery
probabilities and decisions, who is flagged and why, success metrics per skill and the fairness
table. For the class's teacher and administrators; another teacher's class is 404, students and
assessors get 403, as for the other class endpoints.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from reports.dashboard import class_dashboard
from storage.accounts import Role

blp = Blueprint("dashboard", __name__, description="A class's mastery dashboard")


class _Open(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE


class PersonSchema(_Open):
    id = ma.fields.Integer()
    name = ma.fields.String()


class CellSchema(_Open):
    skill = ma.fields.String()
    probability = ma.fields.Float(allow_none=True, metadata={
        "description": "P(theta > cut | evidence); null without a cut score"})
    theta = ma.fields.Float(allow_none=True)
    se = ma.fields.Float(allow_none=True)
    interval95 = ma.fields.List(ma.fields.Float(), allow_none=True)
    cut_score = ma.fields.Float(allow_none=True)
    decision = ma.fields.String(allow_none=True)
    suggested_decision = ma.fields.String(allow_none=True)
    decided_by = ma.fields.String(allow_none=True, metadata={"enum": ["model", "teacher"]})
    flags = ma.fields.List(ma.fields.String())


class GridRowSchema(_Open):
    student = ma.fields.Nested(PersonSchema)
    status = ma.fields.String(metadata={"enum": ["ok", "no_evidence"]})
    cells = ma.fields.List(ma.fields.Nested(CellSchema, allow_none=True), metadata={
        "description": "One per skill of `skills`, in order; null: no evidence of the skill"})


class MetricSchema(_Open):
    skill = ma.fields.String()
    n_students = ma.fields.Integer()
    gain = ma.fields.Dict(metadata={
        "description": "n, theta (mean change in logits since the first test or defense), "
                       "n_probability, probability (mean change in P(mastery)), "
                       "n_single_source (students with one test or defense only)"})
    time_to_mastery = ma.fields.Dict(metadata={
        "description": "n, median_days, mean_days (from the first evidence to the first "
                       "teacher decision or model suggestion 'mastered'), n_not_yet"})
    share_mastered = ma.fields.Dict(metadata={"description": "n, mastered, share"})


class DashboardSchema(_Open):
    class_ = ma.fields.Nested(PersonSchema, data_key="class", attribute="class")
    generated_at = ma.fields.String()
    n_students = ma.fields.Integer()
    model = ma.fields.Dict(allow_none=True, metadata={
        "description": "The report settings (half-life, se limit, probability thresholds)"})
    min_group = ma.fields.Integer(metadata={
        "description": "Groups with fewer students are not compared (no figures)"})
    skills = ma.fields.List(ma.fields.String(), metadata={"description": "The grid's columns"})
    grid = ma.fields.List(ma.fields.Nested(GridRowSchema))
    flagged = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "student, skills: [{skill, decision, flags: [report flag + drivers]}]"})
    flag_counts = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "skill, counts: {flag code: students}"})
    metrics = ma.fields.List(ma.fields.Nested(MetricSchema))
    fairness = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "variable, groups: [{group, too_few, n, overall, skills: [{skill, n, "
                       "rates, theta: {mean, interval95}}]}]"})
    dif = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "skill, n_items, n_checked, flags: stored DIF rows in category B or C"})


@blp.route("/classes/<int:class_id>/dashboard")
class ClassDashboard(MethodView):
    @requires(Role.TEACHER, Role.ADMIN)
    @blp.response(200, DashboardSchema)
    @blp.alt_response(404, description="No such class of the caller's")
    def get(self, class_id):
        """The class's mastery dashboard: the students-by-skills grid (probability, decision,
        who decided, interval), flagged students with what drives each flag, success metrics
        per skill (gain, time to mastery, share mastered) and the fairness table (decision rates
        and mean theta per group, groups under ``min_group`` not compared; stored DIF flags of
        the items behind each skill)."""
        return class_dashboard(get_session(), current_user(), class_id)
