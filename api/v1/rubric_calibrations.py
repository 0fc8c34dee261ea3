"""Rubric calibrations: a rubric version's criteria put on the bank's scale, reviewed, published.

Assessors and admins only (teachers and students get 403). A calibration runs synchronously in
the request: 2,000 students take about a second and a half (``bench/rubric_calibration.py``).
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from calibration.rubric_scale import MODELS
from evidence import rubric_calibration as service
from storage.accounts import Role

blp = Blueprint("rubric_calibrations", __name__,
                description="Rubric criteria and rater severities on the bank's theta scale")

STAFF = (Role.ASSESSOR, Role.ADMIN)


class CalibrationCreateSchema(ma.Schema):
    version = ma.fields.Integer(validate=ma.validate.Range(1, 2**31 - 1), metadata={
        "description": "The rubric's version number (default: its latest)"})
    model = ma.fields.String(load_default="gpcm", validate=ma.validate.OneOf(MODELS), metadata={
        "description": "gpcm (a slope per criterion) or pcm (slopes fixed at 1)"})


class CalibratedCriterionSchema(ma.Schema):
    criterion_id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String(allow_none=True)
    skill = ma.fields.String(allow_none=True)
    model = ma.fields.String()
    a = ma.fields.Float()
    thresholds = ma.fields.List(ma.fields.Float(), metadata={
        "description": "Step difficulties for the average rater, theta metric (D = 1)"})
    se = ma.fields.Dict(metadata={"description": "{a, thresholds}; a is null under pcm"})
    n = ma.fields.Integer(metadata={"description": "Ratings of the criterion"})


class RaterSeveritySchema(ma.Schema):
    rater_id = ma.fields.Integer()
    name = ma.fields.String(allow_none=True)
    severity = ma.fields.Float(metadata={
        "description": "Shift of every threshold, theta metric; raters centred at 0"})
    se = ma.fields.Float(allow_none=True)
    n = ma.fields.Integer()


class CalibrationBriefSchema(ma.Schema):
    id = ma.fields.Integer()
    rubric_id = ma.fields.Integer(allow_none=True)
    rubric_version_id = ma.fields.Integer()
    version = ma.fields.Integer(allow_none=True)
    model = ma.fields.String()
    status = ma.fields.String(metadata={"description": "draft, published or retired"})
    n_students = ma.fields.Integer()
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    published_by = ma.fields.Integer(allow_none=True)
    published_at = UtcDateTime(allow_none=True)


class CalibrationSchema(CalibrationBriefSchema):
    criteria = ma.fields.List(ma.fields.Nested(CalibratedCriterionSchema))
    raters = ma.fields.List(ma.fields.Nested(RaterSeveritySchema))
    provenance = ma.fields.Dict(metadata={"description": (
        "students, ratings, responses, items, model, settings, log_likelihood, converged, "
        "iterations, seconds, latent_mean, latent_sd, identification, created_by, created_at")})


@blp.route("/rubrics/<int:rubric_id>/calibrations")
class RubricCalibrations(MethodView):
    @requires(*STAFF)
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, page_of(CalibrationBriefSchema, "RubricCalibrationPage"))
    def get(self, args, rubric_id):
        """The rubric's calibrations, newest first."""
        session = get_session()
        query = service.calibrations_of(session, rubric_id)
        return paginate(session, query, args,
                        transform=lambda c: service.calibration_view(session, c))

    @requires(*STAFF)
    @blp.arguments(CalibrationCreateSchema())
    @blp.response(201, CalibrationSchema)
    @blp.alt_response(404, description="No such rubric")
    @blp.alt_response(422, description="No such version, too few students, no ratings, a level "
                                       "nobody used, a rater with too few ratings")
    def post(self, data, rubric_id):
        """Calibrate a version's criteria onto the bank's scale (a draft to review).

        Students with both scored answers to the bank's operational items (finished attempts)
        and submitted ratings of the version; the bank's active parameters stay fixed.
        """
        session = get_session()
        version = service.get_version(session, rubric_id, data.get("version"))
        calibration = service.run_rubric_calibration(session, version.id, user=current_user(),
                                                     model=data["model"])
        view = service.calibration_view(session, calibration)
        session.commit()
        return view


@blp.route("/rubric-calibrations/<int:calibration_id>")
class RubricCalibrationItem(MethodView):
    @requires(*STAFF)
    @blp.response(200, CalibrationSchema)
    def get(self, calibration_id):
        """One calibration: criteria with standard errors, raters, provenance."""
        session = get_session()
        return service.calibration_view(session, service.get_calibration(session,
                                                                         calibration_id))


@blp.route("/rubric-calibrations/<int:calibration_id>/publish")
class RubricCalibrationPublish(MethodView):
    @requires(*STAFF)
    @blp.response(200, CalibrationSchema)
    @blp.alt_response(409, description="Not a draft (published already, or retired)")
    def post(self, calibration_id):
        """Publish a draft; the version's published calibration is retired (one transaction)."""
        session = get_session()
        calibration = service.publish_rubric_calibration(session, calibration_id,
                                                         user=current_user())
        view = service.calibration_view(session, calibration)
        session.commit()
        return view

