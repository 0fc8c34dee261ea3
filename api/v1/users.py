"""Accounts and accommodations.

Administrators list, create and change accounts, and set accommodations (audited); a school's
administrator those of the school only (another school's account is 404), and creates accounts
in it. Only a district administrator moves an account to another school (``school_id``).
Teachers may read the accommodations of students enrolled in their classes. Password hashes
never leave the server.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.classes import no_nul
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from evidence import classes as service
from storage.accounts import Role, TimeAccommodation

blp = Blueprint("users", __name__, description="Accounts (administrators)")


class AccountSchema(ma.Schema):
    """An account as administrators see it (never its password hash)."""

    id = ma.fields.Integer()
    username = ma.fields.String()
    display_name = ma.fields.String()
    role = ma.fields.Enum(Role, by_value=True)
    is_active = ma.fields.Boolean()
    created_at = UtcDateTime()
    pseudonym = ma.fields.String(metadata={
        "description": "The person in xAPI statements (never the username or name)"})
    school_id = ma.fields.Integer(allow_none=True, metadata={
        "description": "The account's school; null for none (an admin of none: district)"})


class UserCreateSchema(ma.Schema):
    username = ma.fields.String(
        required=True, validate=ma.validate.Regexp(
            service.USERNAME_PATTERN, error="1 to 80 letters, digits or . @ + - _"))
    display_name = ma.fields.String(load_default="",
                                    validate=[ma.validate.Length(max=200), no_nul])
    role = ma.fields.Enum(Role, by_value=True, required=True)
    password = ma.fields.String(
        required=True, load_only=True,
        validate=ma.validate.Length(service.MIN_PASSWORD_LENGTH, 1024),
        metadata={"description": f"At least {service.MIN_PASSWORD_LENGTH} characters"})
    school_id = ma.fields.Integer(
        allow_none=True, validate=ma.validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "The school (district administrators; a school's "
                                 "administrator's accounts go to their school)"})


class UserPatchSchema(ma.Schema):
    display_name = ma.fields.String(validate=[ma.validate.Length(max=200), no_nul])
    role = ma.fields.Enum(Role, by_value=True)
    is_active = ma.fields.Boolean(metadata={"description": "false signs the account out"})
    password = ma.fields.String(
        load_only=True, validate=ma.validate.Length(service.MIN_PASSWORD_LENGTH, 1024),
        metadata={"description": "A new password; signs the account out everywhere"})
    school_id = ma.fields.Integer(
        allow_none=True, validate=ma.validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "Move the account to this school, null for none (district "
                                 "administrators only)"})


class UserListArgs(PageArgs):
    role = ma.fields.Enum(Role, by_value=True,
                          metadata={"description": "Teachers may only ask for students"})
    q = ma.fields.String(validate=[ma.validate.Length(1, 200), no_nul],
                         metadata={"description": "Text in the username or display name"})


class AccommodationSchema(ma.Schema):
    user_id = ma.fields.Integer(dump_only=True)
    time = ma.fields.Enum(TimeAccommodation, by_value=True, required=True, metadata={
        "description": "standard: time limits as set; extended: multiplied by time_factor; "
                       "none: no time limit"})
    time_factor = ma.fields.Float(
        load_default=service.DEFAULT_TIME_FACTOR,
        validate=ma.validate.Range(min=1, max=service.MAX_TIME_FACTOR),
        metadata={"description": "For extended time, 1 to 4"})
    note = ma.fields.String(load_default="", validate=[ma.validate.Length(max=2000), no_nul])
    updated_at = UtcDateTime(dump_only=True, allow_none=True)


@blp.route("/users")
class Users(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(UserListArgs(), location="query")
    @blp.response(200, page_of(AccountSchema, "AccountPage"))
    def get(self, args):
        """Accounts, by username."""
        query = service.user_query(current_user(), args.get("role"), args.get("q"))
        return paginate(get_session(), query, args)

    @requires(Role.ADMIN)
    @blp.arguments(UserCreateSchema())
    @blp.response(201, AccountSchema)
    @blp.alt_response(409, description="The username is taken")
    def post(self, data):
        """Create an account."""
        session = get_session()
        user = service.create_user(session, actor=current_user(), **data)
        session.commit()
        return user


@blp.route("/users/<int:user_id>")
class UserById(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, AccountSchema)
    @blp.alt_response(404, description="No such account")
    def get(self, user_id):
        """One account."""
        return service.get_user(get_session(), user_id, current_user())

    @requires(Role.ADMIN)
    @blp.arguments(UserPatchSchema())
    @blp.response(200, AccountSchema)
    @blp.alt_response(404, description="No such account")
    @blp.alt_response(409, description="The change would strand classes, enrolments or leave "
                                       "no active administrator")
    def patch(self, data, user_id):
        """Change the display name, role, active flag, password or school of an account.

        A new password or deactivation revokes the account's access tokens and ends its page
        sessions.
        """
        session = get_session()
        actor = current_user()
        user = service.update_user(session, service.get_user(session, user_id, actor), data,
                                   actor=actor)
        session.commit()
        return user


@blp.route("/users/<int:user_id>/accommodation")
class UserAccommodation(MethodView):
    @requires(Role.ADMIN, Role.TEACHER)
    @blp.response(200, AccommodationSchema)
    @blp.alt_response(404, description="No such student (for teachers: none in their classes)")
    def get(self, user_id):
        """A student's accommodation (``standard`` when none was recorded)."""
        session = get_session()
        student = service.accommodated_student(session, current_user(), user_id)
        return service.accommodation_of(session, student)

    @requires(Role.ADMIN)
    @blp.arguments(AccommodationSchema())
    @blp.response(200, AccommodationSchema)
    @blp.alt_response(404, description="No such student")
    def put(self, data, user_id):
        """Set a student's accommodation (audited); it applies to attempts started afterwards,
        in every class."""
        session = get_session()
        user = current_user()
        student = service.accommodated_student(session, user, user_id)
        result = service.set_accommodation(session, user, student, **data)
        session.commit()
        return result
