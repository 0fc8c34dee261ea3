"""Credentials of delivery platforms that use the 1EdTech CAT Service (``/ims/cat/v1p0``).

District administrators issue, list and revoke them. The secret is in the reply to ``POST``
only; listings never carry it. A platform exchanges the ``client_id`` (``key``) and secret for
a bearer token at ``POST /ims/cat/v1p0/token``. The rules live in :mod:`evidence.cat_service`.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.classes import no_nul
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from evidence import cat_service as service
from storage.accounts import Role

blp = Blueprint("cat_clients", __name__,
                description="Credentials of delivery platforms that use the CAT service")


class CatClientSchema(ma.Schema):
    """A credential, without its secret."""

    id = ma.fields.Integer()
    name = ma.fields.String()
    key = ma.fields.String(metadata={
        "description": "The OAuth 2 client_id at /ims/cat/v1p0/token"})
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    revoked_at = UtcDateTime(allow_none=True)


class CatClientCreatedSchema(CatClientSchema):
    secret = ma.fields.String(metadata={
        "description": "The OAuth 2 client_secret; shown this once, never again"})


class CatClientCreateSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=[ma.validate.Length(1, 200), no_nul],
                            metadata={"description": "Which platform it is, for people"})


@blp.route("/cat/clients")
class CatClients(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, page_of(CatClientSchema, "CatClientPage"))
    def get(self, args):
        """Every CAT service client, oldest first (district administrators)."""
        return paginate(get_session(), service.client_query(current_user()), args)

    @requires(Role.ADMIN)
    @blp.arguments(CatClientCreateSchema())
    @blp.response(201, CatClientCreatedSchema)
    def post(self, data):
        """Issue a credential for a platform; the reply holds its secret, shown only this once
        (district administrators)."""
        session = get_session()
        client, secret = service.create_client(session, current_user(), **data)
        session.commit()
        return {**CatClientSchema().dump(client), "secret": secret}


@blp.route("/cat/clients/<int:client_id>")
class CatClientById(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, CatClientSchema)
    @blp.alt_response(404, description="No such client")
    def get(self, client_id):
        """One credential (without its secret)."""
        return service.visible_client(get_session(), current_user(), client_id)

    @requires(Role.ADMIN)
    @blp.response(204)
    @blp.alt_response(404, description="No such client")
    def delete(self, client_id):
        """Revoke a credential: it and its tokens are refused from now on."""
        session = get_session()
        viewer = current_user()
        service.revoke_client(session, service.visible_client(session, viewer, client_id),
                              viewer)
        session.commit()
