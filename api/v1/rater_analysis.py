"""The rater analysis of a rubric: rater severity (many-facet Rasch) and agreement.

``GET /rubrics/{rubric_id}/rater-analysis?version=N&model=rating-scale|partial-credit`` returns
the JSON that ``cat-engine raters`` writes, computed from the current submitted ratings of the
version (:mod:`evidence.rater_analysis`). Teachers get their own classes' defenses only.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from evidence import rater_analysis as service
from storage.accounts import Role, User
from storage.errors import ServiceError

blp = Blueprint("rater_analysis", __name__,
                description="Rater analysis of a rubric: severity, fit and agreement")


class AnalysisArgs(ma.Schema):
    version = ma.fields.Integer(validate=ma.validate.Range(1, 2**31 - 1), metadata={
        "description": "The rubric version (default: the latest with scores you may analyse)"})
    model = ma.fields.String(load_default="rating-scale", metadata={
        "description": "rating-scale (Andrich thresholds shared by the criteria, default) or "
                       "partial-credit (thresholds per criterion)",
        "enum": list(service.MODELS)})


class RaterMeasureSchema(ma.Schema):
    rater = ma.fields.String(metadata={"description": "The rater's display name"})
    severity = ma.fields.Float(allow_none=True, metadata={
        "description": "Logits, raters centred at 0; higher is harsher"})
    se = ma.fields.Float(allow_none=True)
    infit = ma.fields.Float(allow_none=True, metadata={"description": "Information-weighted "
                                                                        "mean square"})
    outfit = ma.fields.Float(allow_none=True, metadata={"description": "Unweighted mean square"})
    n = ma.fields.Integer(metadata={"description": "Ratings given"})


class PairSchema(ma.Schema):
    raters = ma.fields.List(ma.fields.String())
    n = ma.fields.Integer(metadata={"description": "Units (student x criterion) both rated"})
    exact = ma.fields.Float(allow_none=True)
    adjacent = ma.fields.Float(allow_none=True)
    qwk = ma.fields.Float(allow_none=True, metadata={
        "description": "Quadratic weighted kappa on the criteria's full scales"})


class AgreementSchema(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE

    exact = ma.fields.Float(allow_none=True, metadata={
        "description": "Share of pairs of ratings of the same student and criterion that agree"})
    adjacent = ma.fields.Float(allow_none=True, metadata={
        "description": "Share of those pairs at most one level apart"})
    krippendorff_alpha_ordinal = ma.fields.Float(allow_none=True)
    krippendorff_alpha_interval = ma.fields.Float(allow_none=True)
    krippendorff_alpha_nominal = ma.fields.Float(allow_none=True)
    icc1_1 = ma.fields.Float(allow_none=True)
    icc2_1 = ma.fields.Float(allow_none=True, metadata={
        "description": "Shrout-Fleiss ICC(2,1): raters random, absolute agreement"})
    icc3_1 = ma.fields.Float(allow_none=True, metadata={
        "description": "Shrout-Fleiss ICC(3,1): raters fixed, consistency"})
    icc_method = ma.fields.String()
    n_units = ma.fields.Integer()
    n_pairs = ma.fields.Integer()
    n_ratings = ma.fields.Integer()
    pairs = ma.fields.List(ma.fields.Nested(PairSchema))
    criteria = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "The same figures per criterion"})


class AnalysisSchema(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE

    model = ma.fields.String()
    n_ratings = ma.fields.Integer()
    rubric = ma.fields.Dict(metadata={"description": "id, name, version, rubric_version_id, "
                                                     "criteria (code, name, levels)"})
    raters = ma.fields.List(ma.fields.Nested(RaterMeasureSchema))
    criteria = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "criterion, difficulty, se, infit, outfit"})
    thresholds = ma.fields.List(ma.fields.Raw())
    students = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "student_id (display name for a teacher, pseudonym prefix otherwise), "
                       "measure, se, fair_average"})
    agreement = ma.fields.Nested(AgreementSchema)
    log_likelihood = ma.fields.Float(allow_none=True)
    seconds = ma.fields.Float(allow_none=True)


def analysis(user: User, rubric_id: int, version: int | None, model: str) -> dict:
    """The analysis of version ``version`` (None: the latest with scores) for ``user``."""
    if model not in service.MODELS:
        raise ServiceError(f"model must be one of {', '.join(service.MODELS)}, not {model!r}",
                           field="model")
    session = get_session()
    rubric = service.get_rubric(session, rubric_id)
    chosen = service.resolve_version(session, rubric, version, viewer=user)
    return service.analyse_rubric(session, chosen.id, viewer=user, model=model)


@blp.route("/rubrics/<int:rubric_id>/rater-analysis")
class RaterAnalysis(MethodView):
    @requires(Role.TEACHER, Role.ASSESSOR, Role.ADMIN)
    @blp.arguments(AnalysisArgs(), location="query")
    @blp.response(200, AnalysisSchema)
    @blp.alt_response(400, description="An unknown model (field model)")
    @blp.alt_response(404, description="No such rubric or version")
    @blp.alt_response(409, description="Too little to analyse: no scores, one rater only, or "
                                       "raters in groups that never score the same student")
    def get(self, args, rubric_id):
        """Rater severity with its standard error and fit, criteria difficulties, thresholds,
        students' measures and fair averages (many-facet Rasch), and agreement: exact and
        adjacent agreement, quadratic weighted kappa per pair of raters, ICC(2,1), ICC(3,1) and
        Krippendorff's alpha. From the current submitted ratings of the version; teachers
        analyse their own classes' defenses only."""
        return analysis(current_user(), rubric_id, args.get("version"), args["model"])
