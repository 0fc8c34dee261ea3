"""Schools: district administrators create them; a school's administrators change its settings.

An administrator lists the schools they reach (all for a district administrator, their own for
a school's). Another school is 404 to a school's administrator; other roles get 403. Accounts
join a school through ``PATCH /users/{id}`` (``school_id``, district administrators); classes
take their teacher's school. The rules live in :mod:`rights.schools`.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.classes import no_nul
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from rights import schools as service
from storage.accounts import ErasureConfirmation, Role

blp = Blueprint("schools", __name__, description="Schools and their settings (administrators)")


class SchoolSchema(ma.Schema):
    """A school, its settings and what it holds."""

    id = ma.fields.Integer()
    name = ma.fields.String()
    created_at = UtcDateTime()
    erasure_confirmation = ma.fields.String(metadata={
        "description": "How an erasure is confirmed: second_admin or delay"})
    erasure_delay_days = ma.fields.Integer(metadata={
        "description": "Days between an erasure's request and its execution (delay mode)"})
    students_may_consent = ma.fields.Boolean(metadata={
        "description": "Whether students record their own consents"})
    n_students = ma.fields.Integer()
    n_teachers = ma.fields.Integer()
    n_admins = ma.fields.Integer()
    n_classes = ma.fields.Integer()


class SchoolSettingsSchema(ma.Schema):
    name = ma.fields.String(validate=[ma.validate.Length(1, service.MAX_NAME), no_nul])
    erasure_confirmation = ma.fields.Enum(ErasureConfirmation, by_value=True)
    erasure_delay_days = ma.fields.Integer(
        strict=True, validate=ma.validate.Range(1, service.MAX_DELAY_DAYS))
    students_may_consent = ma.fields.Boolean()


class SchoolCreateSchema(SchoolSettingsSchema):
    name = ma.fields.String(required=True,
                            validate=[ma.validate.Length(1, service.MAX_NAME), no_nul])


@blp.route("/schools")
class Schools(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, page_of(SchoolSchema, "SchoolPage"))
    def get(self, args):
        """The schools the caller administers (all of them for a district administrator)."""
        session = get_session()
        return paginate(session, service.school_query(current_user()), args,
                        transform=lambda school: service.school_view(session, school))

    @requires(Role.ADMIN)
    @blp.arguments(SchoolCreateSchema())
    @blp.response(201, SchoolSchema)
    @blp.alt_response(403, description="Not a district administrator")
    @blp.alt_response(409, description="A school of that name exists")
    def post(self, data):
        """Create a school (district administrators; audited)."""
        session = get_session()
        school = service.create_school(session, current_user(), **data)
        session.commit()
        return service.school_view(session, school)


@blp.route("/schools/<int:school_id>")
class SchoolById(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, SchoolSchema)
    @blp.alt_response(404, description="No such school the caller administers")
    def get(self, school_id):
        """One school with its settings."""
        session = get_session()
        return service.school_view(session,
                                   service.visible_school(session, current_user(), school_id))

    @requires(Role.ADMIN)
    @blp.arguments(SchoolSettingsSchema())
    @blp.response(200, SchoolSchema)
    @blp.alt_response(404, description="No such school the caller administers")
    @blp.alt_response(409, description="A school of that name exists")
    def patch(self, data, school_id):
        """Change a school's name or settings (its administrators or a district
        administrator; audited)."""
        session, user = get_session(), current_user()
        school = service.update_school(session, user,
                                       service.visible_school(session, user, school_id), data)
        session.commit()
        return service.school_view(session, school)
