"""LTI 1.3 platforms: administrators register the learning platforms that may launch this tool.

A district administrator registers a platform for any school (or none); a school's
administrator for their own school, and lists only that school's platforms. The launch
endpoints themselves are under ``/lti`` (:mod:`api.lti`); the tool's keys are at
``/lti/jwks.json``. The rules live in :mod:`evidence.lti`.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.classes import no_nul
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from evidence import lti as service
from storage.accounts import Role

blp = Blueprint("lti_platforms", __name__,
                description="LTI 1.3 platforms that launch this tool (administrators)")

_URL = [ma.validate.Length(1, service.MAX_URL), no_nul]
_ID = [ma.validate.Length(1, 255), no_nul]


class PlatformSchema(ma.Schema):
    """A registered platform."""

    id = ma.fields.Integer()
    name = ma.fields.String()
    issuer = ma.fields.String(metadata={"description": "The platform's issuer (iss)"})
    client_id = ma.fields.String(metadata={"description": "The client id it gave this tool"})
    auth_login_url = ma.fields.String(metadata={"description": "Its OIDC authorisation URL"})
    auth_token_url = ma.fields.String(metadata={"description": "Its OAuth2 token URL"})
    key_set_url = ma.fields.String(metadata={"description": "Its JWKS URL"})
    auth_audience = ma.fields.String(allow_none=True)
    deployment_ids = ma.fields.List(ma.fields.String())
    school_id = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()


class PlatformCreateSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=[ma.validate.Length(1, service.MAX_NAME),
                                                     no_nul])
    issuer = ma.fields.String(required=True, validate=_ID)
    client_id = ma.fields.String(required=True, validate=_ID)
    auth_login_url = ma.fields.String(required=True, validate=_URL)
    auth_token_url = ma.fields.String(required=True, validate=_URL)
    key_set_url = ma.fields.String(required=True, validate=_URL)
    auth_audience = ma.fields.String(validate=_URL, load_default=None)
    deployment_ids = ma.fields.List(ma.fields.String(validate=_ID), required=True,
                                    validate=ma.validate.Length(1, 100))
    school_id = ma.fields.Integer(strict=True, load_default=None, allow_none=True,
                                  validate=ma.validate.Range(1, 2**31 - 1))


@blp.route("/lti/platforms")
class Platforms(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, page_of(PlatformSchema, "PlatformPage"))
    def get(self, args):
        """The platforms the caller administers (all for a district administrator)."""
        session = get_session()
        return paginate(session, service.platform_query(current_user()), args,
                        transform=service.platform_view)

    @requires(Role.ADMIN)
    @blp.arguments(PlatformCreateSchema())
    @blp.response(201, PlatformSchema)
    @blp.alt_response(403, description="Another school's administrator")
    @blp.alt_response(409, description="The issuer and client id are registered already")
    def post(self, data):
        """Register a platform (a school's administrator: for their school)."""
        session = get_session()
        platform = service.register_platform(session, current_user(), **data)
        session.commit()
        return service.platform_view(platform)
