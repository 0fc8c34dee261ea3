"""Oral defenses: scheduling, raters, blind score sheets, corrections, adjudication.

The class's teacher (the lead teacher) or an administrator schedules a defense and manages its
raters; assigned raters submit a whole score sheet, then may correct their scores with a reason;
the adjudicator settles criteria on which the raters differ by more than one level. Until every
rater has submitted, ``GET /defenses/{id}`` shows a rater their own scores only, and nothing of
the others (no score, note, count or time). Students read their own defenses and, once final,
the final scores with their levels. A defense the caller may not see is 404; an assessor gets
403. The rules live in :mod:`evidence.defenses`; these views validate, call one service
function and commit once.
"""

from __future__ import annotations

import marshmallow as ma
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.classes import no_nul
from api.v1.common import PageArgs, UtcDateTime, id_field, page_of, paginate
from evidence import defenses as service
from evidence.classes import visible_class
from evidence.models import Defense
from storage.accounts import Role

blp = Blueprint("defenses", __name__,
                description="Oral defenses: raters, blind score sheets, corrections and "
                            "adjudication")

MANAGERS = (Role.TEACHER, Role.ADMIN)
READERS = (Role.TEACHER, Role.ADMIN, Role.STUDENT)


# -- schemas -------------------------------------------------------------------------------------


class LevelSchema(ma.Schema):
    score = ma.fields.Integer()
    label = ma.fields.String()
    descriptor = ma.fields.String()


class DefenseCriterionSchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    description = ma.fields.String()
    skill = ma.fields.String()
    levels = ma.fields.List(ma.fields.Nested(LevelSchema))


class ScoreSchema(ma.Schema):
    id = ma.fields.Integer()
    criterion_id = ma.fields.Integer()
    rater_id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"description": "rating or adjudication"})
    score = ma.fields.Integer()
    note = ma.fields.String()
    reason = ma.fields.String(metadata={"description": "Why it was corrected or adjudicated"})
    corrects_id = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()


class DefenseRaterSchema(ma.Schema):
    rater_id = ma.fields.Integer()
    name = ma.fields.String()
    role = ma.fields.String(metadata={"description": "rater or adjudicator"})
    submitted = ma.fields.Boolean(metadata={
        "description": "Left out for another rater until every rater has submitted"})
    submitted_at = UtcDateTime(allow_none=True)


class FinalSchema(ma.Schema):
    criterion_id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    score = ma.fields.Float(allow_none=True, metadata={
        "description": "The adjudicated score, else the mean of the raters' current scores"})
    score_text = ma.fields.String(metadata={"description": "As shown: 3, 2.5"})
    adjudicated = ma.fields.Boolean()
    awaiting_adjudication = ma.fields.Boolean()
    levels = ma.fields.List(ma.fields.Nested(LevelSchema), metadata={
        "description": "The level the score equals, or the two it lies between"})
    notes = ma.fields.List(ma.fields.String(), metadata={
        "description": "Students: the raters' notes, unsigned, once final"})


STATUS_TEXT = ("scheduled, scoring, needs_adjudication, final or cancelled; a rater who has not "
               "submitted sees scheduled until all have, a student until final")


class DefenseSchema(ma.Schema):
    id = ma.fields.Integer()
    class_id = ma.fields.Integer()
    class_name = ma.fields.String()
    student_id = ma.fields.Integer()
    student_name = ma.fields.String()
    rubric_id = ma.fields.Integer()
    rubric_name = ma.fields.String()
    rubric_version_id = ma.fields.Integer()
    rubric_version = ma.fields.Integer()
    task_id = ma.fields.Integer(allow_none=True)
    title = ma.fields.String()
    scheduled_at = UtcDateTime(allow_none=True)
    recording_url = ma.fields.String(allow_none=True)
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    cancelled_at = UtcDateTime(allow_none=True)
    status = ma.fields.String(metadata={"description": STATUS_TEXT})
    lead_teacher_id = ma.fields.Integer()
    adjudicator_id = ma.fields.Integer(allow_none=True)
    raters = ma.fields.List(ma.fields.Nested(DefenseRaterSchema))
    criteria = ma.fields.List(ma.fields.Nested(DefenseCriterionSchema))
    my_role = ma.fields.String(allow_none=True)
    my_submitted = ma.fields.Boolean()
    my_scores = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(ScoreSchema),
                               metadata={"description": "A rater's own current scores"})
    open = ma.fields.Boolean(metadata={"description": "Every rater has submitted"})
    scores = ma.fields.List(ma.fields.Nested(ScoreSchema), metadata={
        "description": "Once open: every rater's current scores"})
    adjudications = ma.fields.List(ma.fields.Nested(ScoreSchema))
    history = ma.fields.List(ma.fields.Nested(ScoreSchema), metadata={
        "description": "Once open: every score stored, corrections included"})
    disputed = ma.fields.List(ma.fields.Integer(), metadata={
        "description": "Criteria whose current scores differ by more than one level"})
    final = ma.fields.List(ma.fields.Nested(FinalSchema))


class DefenseBriefSchema(ma.Schema):
    id = ma.fields.Integer()
    class_id = ma.fields.Integer()
    class_name = ma.fields.String()
    student_id = ma.fields.Integer()
    student_name = ma.fields.String()
    title = ma.fields.String()
    scheduled_at = UtcDateTime(allow_none=True)
    rubric_name = ma.fields.String()
    status = ma.fields.String(metadata={"description": STATUS_TEXT})
    my_role = ma.fields.String(allow_none=True)
    my_submitted = ma.fields.Boolean()
    pending = ma.fields.List(ma.fields.Integer(), metadata={
        "description": "Criteria awaiting adjudication"})


DefensePage = page_of(DefenseBriefSchema, "DefensePage")


class DefenseCreateSchema(ma.Schema):
    student_id = id_field(required=True)
    rubric_id = id_field(required=True, metadata={
        "description": "Scored under the rubric's latest version"})
    task_id = id_field(allow_none=True, load_default=None)
    title = ma.fields.String(required=True,
                             validate=[ma.validate.Length(1, service.MAX_TITLE), no_nul])
    scheduled_at = UtcDateTime(allow_none=True, load_default=None)
    recording_url = ma.fields.String(allow_none=True, load_default=None, validate=[
        ma.validate.Length(0, service.MAX_URL), no_nul],
        metadata={"description": "http(s) only"})
    raters = ma.fields.List(id_field(), required=True,
                            validate=ma.validate.Length(1, service.MAX_RATERS), metadata={
                                "description": "Teachers of a class the student is in, or "
                                               "the class's teacher"})
    adjudicator = id_field(allow_none=True, load_default=None, metadata={
        "description": "Optional; without one the class's teacher adjudicates"})


class RaterAddSchema(ma.Schema):
    user_id = id_field(required=True)
    role = ma.fields.String(load_default=service.RATER,
                            validate=ma.validate.OneOf(service.ROLES))


class SheetSchema(ma.Schema):
    scores = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(), required=True,
                            metadata={"description": "{criterion_id: {score, note}} for every "
                                                     "criterion of the rubric version"})


class CorrectionSchema(ma.Schema):
    criterion_id = id_field(required=True)
    score = ma.fields.Integer(required=True, strict=True)
    reason = ma.fields.String(required=True, validate=[
        ma.validate.Length(1, service.MAX_REASON), no_nul])
    note = ma.fields.String(validate=[ma.validate.Length(0, service.MAX_NOTE), no_nul],
                            metadata={"description": "Kept from the corrected score if left "
                                                     "out"})


class AdjudicationSchema(ma.Schema):
    criterion_id = id_field(required=True)
    score = ma.fields.Integer(required=True, strict=True)
    reason = ma.fields.String(required=True, validate=[
        ma.validate.Length(1, service.MAX_REASON), no_nul])


class DefenseListArgs(PageArgs):
    class_id = id_field()
    student_id = id_field()
    to_score = ma.fields.Boolean(load_default=False, metadata={
        "description": "Only the caller's queue: sheets to submit, criteria to adjudicate"})


# -- views ---------------------------------------------------------------------------------------


def _view(session, user, defense):
    return service.defense_view(session, user, defense)


def _summaries(session, user, query, args):
    return paginate(session, query, args,
                    transform=lambda d: service.defense_summary(session, user, d))


@blp.route("/classes/<int:class_id>/defenses")
class ClassDefenses(MethodView):
    @requires(*MANAGERS)
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, DefensePage)
    @blp.alt_response(404, description="No such class of the caller's")
    def get(self, args, class_id):
        """A class's defenses, soonest first (the class's teacher, administrators)."""
        session = get_session()
        user = current_user()
        klass = visible_class(session, user, class_id)
        return _summaries(session, user, service.defenses_query(user, class_id=klass.id), args)

    @requires(*MANAGERS)
    @blp.arguments(DefenseCreateSchema())
    @blp.response(201, DefenseSchema)
    @blp.alt_response(404, description="No such class of the caller's")
    def post(self, data, class_id):
        """Schedule a defense for a student of the class, under the rubric's latest version."""
        session = get_session()
        user = current_user()
        defense = service.schedule(session, user, class_id, data.pop("student_id"),
                                   data.pop("rubric_id"), **data)
        session.commit()
        return (_view(session, user, defense), 201,
                {"Location": url_for("defenses.DefenseById", defense_id=defense.id)})


@blp.route("/defenses")
class Defenses(MethodView):
    @requires(*READERS)
    @blp.arguments(DefenseListArgs(), location="query")
    @blp.response(200, DefensePage)
    def get(self, args):
        """The defenses the caller may see: a teacher's classes' and those they score, a
        student's own, all for administrators; ``to_score`` for the caller's queue."""
        session = get_session()
        user = current_user()
        if args["to_score"]:
            ids = [d.id for d in service.to_score(session, user)]
            query = service.defenses_query(user).where(Defense.id.in_(ids))
        else:
            query = service.defenses_query(user)
        if args.get("class_id"):
            query = query.where(Defense.class_id == args["class_id"])
        if args.get("student_id"):
            query = query.where(Defense.student_id == args["student_id"])
        return _summaries(session, user, query, args)


@blp.route("/users/<int:user_id>/defenses")
class UserDefenses(MethodView):
    @requires(*READERS)
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, DefensePage)
    @blp.alt_response(404, description="No such student the caller may see")
    def get(self, args, user_id):
        """A student's defenses: their own (students), or those the caller may see (staff)."""
        session = get_session()
        user = current_user()
        return _summaries(session, user, service.student_defenses(session, user, user_id), args)


@blp.route("/defenses/<int:defense_id>")
class DefenseById(MethodView):
    @requires(*READERS)
    @blp.response(200, DefenseSchema)
    @blp.alt_response(404, description="No such defense the caller may see")
    def get(self, defense_id):
        """One defense, shaped for the caller: before every rater has submitted a rater sees
        only their own scores; a student sees the rubric, and the final scores once final."""
        session = get_session()
        user = current_user()
        return _view(session, user, service.visible_defense(session, user, defense_id))


@blp.route("/defenses/<int:defense_id>/raters")
class DefenseRaters(MethodView):
    @requires(*MANAGERS)
    @blp.arguments(RaterAddSchema())
    @blp.response(201, DefenseSchema)
    @blp.alt_response(404, description="No such defense the caller may see")
    @blp.alt_response(409, description="Cancelled, already assigned, or the scores are open")
    def post(self, data, defense_id):
        """Assign a rater (or the adjudicator, ``role``)."""
        session = get_session()
        user = current_user()
        defense = service.managed_defense(session, user, defense_id)
        service.add_rater(session, user, defense, data["user_id"], data["role"])
        session.commit()
        return _view(session, user, defense), 201


@blp.route("/defenses/<int:defense_id>/raters/<int:user_id>")
class DefenseRaterById(MethodView):
    @requires(*MANAGERS)
    @blp.response(200, DefenseSchema)
    @blp.alt_response(404, description="No such defense, or the user is not assigned")
    @blp.alt_response(403, description="A lead teacher who rates the defense too (blind)")
    @blp.alt_response(409, description="The rater has submitted, or is the only one")
    def delete(self, defense_id, user_id):
        """Take a rater off a defense (not after they have submitted)."""
        session = get_session()
        user = current_user()
        defense = service.managed_defense(session, user, defense_id)
        service.remove_rater(session, user, defense, user_id)
        session.commit()
        return _view(session, user, defense)


@blp.route("/defenses/<int:defense_id>/scores")
class DefenseScores(MethodView):
    @requires(Role.TEACHER)
    @blp.arguments(SheetSchema())
    @blp.response(201, DefenseSchema)
    @blp.alt_response(404, description="No such defense the caller may see")
    @blp.alt_response(409, description="Already submitted (send a correction), or cancelled")
    def post(self, data, defense_id):
        """Submit the caller's whole score sheet: every criterion, all or nothing."""
        session = get_session()
        user = current_user()
        defense = service.visible_defense(session, user, defense_id)
        service.submit_sheet(session, user, defense, data["scores"])
        session.commit()
        return _view(session, user, defense), 201


@blp.route("/defenses/<int:defense_id>/corrections")
class DefenseCorrections(MethodView):
    @requires(Role.TEACHER)
    @blp.arguments(CorrectionSchema())
    @blp.response(201, ScoreSchema)
    @blp.alt_response(404, description="No such defense the caller may see")
    @blp.alt_response(409, description="Not submitted yet, or cancelled")
    def post(self, data, defense_id):
        """Correct one of the caller's own submitted scores, with a reason (a new record that
        points to the score it corrects)."""
        session = get_session()
        user = current_user()
        defense = service.visible_defense(session, user, defense_id)
        row = service.correct(session, user, defense, data["criterion_id"], data["score"],
                              data["reason"], data.get("note"))
        session.commit()
        return service.score_record(row), 201


@blp.route("/defenses/<int:defense_id>/adjudications")
class DefenseAdjudications(MethodView):
    @requires(Role.TEACHER)
    @blp.arguments(AdjudicationSchema())
    @blp.response(201, ScoreSchema)
    @blp.alt_response(404, description="No such defense the caller may see")
    @blp.alt_response(409, description="Raters still to submit, or no adjudication needed")
    def post(self, data, defense_id):
        """Settle a criterion on which the raters differ by more than one level (the
        adjudicator, or the class's teacher when none is assigned), with a reason."""
        session = get_session()
        user = current_user()
        defense = service.visible_defense(session, user, defense_id)
        row = service.adjudicate(session, user, defense, data["criterion_id"], data["score"],
                                 data["reason"])
        session.commit()
        return service.score_record(row), 201


@blp.route("/defenses/<int:defense_id>/cancel")
class DefenseCancel(MethodView):
    @requires(*MANAGERS)
    @blp.response(200, DefenseSchema)
    @blp.alt_response(404, description="No such defense the caller may see")
    @blp.alt_response(409, description="Already cancelled")
    def post(self, defense_id):
        """Cancel a defense; every score is kept (and counts nowhere)."""
        session = get_session()
        user = current_user()
        defense = service.managed_defense(session, user, defense_id)
        service.cancel(session, defense)
        session.commit()
        return _view(session, user, defense)
