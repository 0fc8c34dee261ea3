"""Tests: what a caller may take (students) or manage (assessment teams)."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import func, select

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from evidence.attempts import open_assignments
from evidence.models import Attempt
from item_bank.models import AdaptiveTest, Item
from item_bank.services import exposure_counts, save_test
from storage.accounts import Role
from storage.errors import NotFound

blp = Blueprint("tests", __name__, description="Named adaptive tests")

STAFF = (Role.ASSESSOR, Role.ADMIN)


class AssignmentInfoSchema(ma.Schema):
    id = ma.fields.Integer()
    class_id = ma.fields.Integer()
    opens_at = UtcDateTime(allow_none=True)
    closes_at = UtcDateTime(allow_none=True)
    time_limit_minutes = ma.fields.Integer(allow_none=True)


class TestSchema(ma.Schema):
    """A test as any caller sees it; assessment teams also get its design."""

    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))
    description = ma.fields.String(load_default="")
    translations = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict(),
                                  load_default=dict, metadata={
        "description": "Texts in other languages: {language: {name, description, skills: "
                       "{skill: name}}}, every part optional; English is the fallback"})
    assignment = ma.fields.Nested(AssignmentInfoSchema, dump_only=True, allow_none=True)


class TestDesignSchema(TestSchema):
    config = ma.fields.Dict(load_default=dict, metadata={
        "description": "cat_engine configuration: start, estimator, selection, exposure, "
                       "constraints, stopping, pretest"})
    bank_filter = ma.fields.Dict(load_default=dict, metadata={
        "description": "Which operational items: {skills: [...], tags: [...], items: [codes]}"})
    cut_scores = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Float(),
                                load_default=dict,
                                metadata={"description": "theta cut score per skill, or overall"})
    is_active = ma.fields.Boolean(load_default=True)
    version = ma.fields.Integer(dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)


class TestPatchSchema(ma.Schema):
    name = ma.fields.String(validate=ma.validate.Length(1, 200))
    description = ma.fields.String()
    config = ma.fields.Dict()
    bank_filter = ma.fields.Dict()
    cut_scores = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Float())
    is_active = ma.fields.Boolean()
    translations = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict(), metadata={
        "description": "replaces the texts in other languages (see TestDesign)"})


class ExposureSchema(ma.Schema):
    item_id = ma.fields.Integer()
    code = ma.fields.String()
    administered = ma.fields.Integer()
    rate = ma.fields.Float()


class ExposureReportSchema(ma.Schema):
    test_id = ma.fields.Integer()
    attempts = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Nested(ExposureSchema))


def _public(test: AdaptiveTest, assignment=None) -> dict:
    """What students and teachers see of a test: not its design (configuration, cut scores)."""
    return {"id": test.id, "name": test.name, "description": test.description,
            "translations": test.translations or {}, "assignment": assignment}


def _visible_test(test_id: int) -> AdaptiveTest:
    user = current_user()
    session = get_session()
    test = session.get(AdaptiveTest, test_id)
    if test is None:
        raise NotFound(f"no test {test_id}")
    if user.role == Role.STUDENT:
        assignments = open_assignments(session, user, test_id=test_id)
        if not assignments:
            raise NotFound(f"no test {test_id} is open for you")
        test.assignment = assignments[0]
    elif user.role == Role.TEACHER and not test.is_active:
        raise NotFound(f"no test {test_id}")
    return test


@blp.route("/tests")
class Tests(MethodView):
    @requires()
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, page_of(TestDesignSchema, "TestPage"))
    def get(self, args):
        """The tests the caller may take (students: assigned and open now) or manage (staff)."""
        user = current_user()
        session = get_session()
        query = select(AdaptiveTest).order_by(AdaptiveTest.name)
        if user.role == Role.STUDENT:
            assignments = {a.test_id: a for a in reversed(open_assignments(session, user))}
            query = query.where(AdaptiveTest.id.in_(list(assignments)))
            return paginate(session, query, args,
                            lambda t: _public(t, assignments.get(t.id)))
        if user.role == Role.TEACHER:
            query = query.where(AdaptiveTest.is_active)
            return paginate(session, query, args, _public)
        return paginate(session, query, args)

    @requires(*STAFF)
    @blp.arguments(TestDesignSchema())
    @blp.response(201, TestDesignSchema)
    def post(self, data):
        """Create a test: a bank filter, an engine configuration and cut scores."""
        session = get_session()
        test = save_test(session, None, **{k: data[k] for k in (
            "name", "description", "config", "bank_filter", "cut_scores", "is_active",
            "translations")})
        session.commit()
        return test


@blp.route("/tests/<int:test_id>")
class TestById(MethodView):
    @requires()
    @blp.response(200, TestDesignSchema)
    def get(self, test_id):
        """One test; its design (configuration, bank filter, cut scores) for assessment teams."""
        test = _visible_test(test_id)
        if current_user().role not in STAFF:
            return _public(test, getattr(test, "assignment", None))
        return test

    @requires(*STAFF)
    @blp.arguments(TestPatchSchema())
    @blp.response(200, TestDesignSchema)
    def patch(self, data, test_id):
        """Change a test; a change to what it delivers makes a new version."""
        session = get_session()
        test = session.get(AdaptiveTest, test_id)
        if test is None:
            raise NotFound(f"no test {test_id}")
        save_test(session, test, **data)
        session.commit()
        return test


@blp.route("/tests/<int:test_id>/exposure")
class TestExposure(MethodView):
    @requires(*STAFF)
    @blp.response(200, ExposureReportSchema)
    def get(self, test_id):
        """How often each item was presented in this test, and its exposure rate."""
        session = get_session()
        if session.get(AdaptiveTest, test_id) is None:
            raise NotFound(f"no test {test_id}")
        counts = exposure_counts(session, test_id)
        attempts = session.scalar(select(func.count(Attempt.id))
                                  .where(Attempt.test_id == test_id)) or 0
        codes = dict(session.execute(select(Item.id, Item.code)
                                     .where(Item.id.in_(list(counts)))).all())
        items = sorted(({"item_id": i, "code": codes.get(i, ""), "administered": n,
                         "rate": n / attempts if attempts else 0.0} for i, n in counts.items()),
                       key=lambda e: -e["administered"])
        return {"test_id": test_id, "attempts": attempts, "items": items}
