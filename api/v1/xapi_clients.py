"""Credentials for learning tools that send xAPI statements (``/xapi/``) about one class.

Administrators, and the teacher of the class, issue, list and revoke them. The secret is in the
reply to ``POST`` only; listings never carry it. The rules live in :mod:`evidence.xapi_clients`.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.classes import no_nul
from api.v1.common import PageArgs, UtcDateTime, id_field, page_of, paginate
from evidence import xapi_clients as service
from storage.accounts import Role

blp = Blueprint("xapi_clients", __name__,
                description="Credentials of learning tools that send xAPI statements")

MANAGERS = (Role.TEACHER, Role.ADMIN)


class XapiClientSchema(ma.Schema):
    """A credential, without its secret."""

    id = ma.fields.Integer()
    name = ma.fields.String()
    class_id = ma.fields.Integer()
    key = ma.fields.String(metadata={"description": "The HTTP Basic user name on /xapi/"})
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    revoked_at = UtcDateTime(allow_none=True)


class XapiClientCreatedSchema(XapiClientSchema):
    secret = ma.fields.String(metadata={
        "description": "The HTTP Basic password on /xapi/; shown this once, never again"})


class XapiClientCreateSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=[ma.validate.Length(1, 200), no_nul],
                            metadata={"description": "What the tool is, for people"})
    class_id = id_field(required=True, metadata={
        "description": "The class whose students the tool may send and read statements about"})


class XapiClientListArgs(PageArgs):
    class_id = id_field(metadata={"description": "Only this class's credentials"})


@blp.route("/xapi/clients")
class XapiClients(MethodView):
    @requires(*MANAGERS)
    @blp.arguments(XapiClientListArgs(), location="query")
    @blp.response(200, page_of(XapiClientSchema, "XapiClientPage"))
    def get(self, args):
        """Credentials of the caller's classes (administrators: all), oldest first."""
        return paginate(get_session(), service.client_query(current_user(),
                                                            args.get("class_id")), args)

    @requires(*MANAGERS)
    @blp.arguments(XapiClientCreateSchema())
    @blp.response(201, XapiClientCreatedSchema)
    @blp.alt_response(404, description="No such class of the caller's")
    def post(self, data):
        """Issue a credential for a class; the reply holds its secret, shown only this once."""
        session = get_session()
        client, secret = service.create_client(session, current_user(), **data)
        session.commit()
        return {**XapiClientSchema().dump(client), "secret": secret}


@blp.route("/xapi/clients/<int:client_id>")
class XapiClientById(MethodView):
    @requires(*MANAGERS)
    @blp.response(200, XapiClientSchema)
    @blp.alt_response(404, description="No such credential of the caller's classes")
    def get(self, client_id):
        """One credential (without its secret)."""
        return service.visible_client(get_session(), current_user(), client_id)

    @requires(*MANAGERS)
    @blp.response(204)
    @blp.alt_response(404, description="No such credential of the caller's classes")
    def delete(self, client_id):
        """Revoke a credential: it is refused from now on; its statements stay."""
        session = get_session()
        service.revoke_client(session, service.visible_client(session, current_user(),
                                                              client_id))
        session.commit()
