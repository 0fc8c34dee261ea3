"""A school's external learning record store (xAPI out) and its dead letters, over HTTP.

- ``GET/PUT /schools/{id}/lrs``: the settings (the secret is write-only: ``has_secret`` says
  whether one is stored), and how many statements are pending, sent, dead or discarded;
- ``POST /schools/{id}/lrs/send``: wake the sender now (after fixing the settings, say);
- ``GET /schools/{id}/lrs/dead-letters``; ``POST .../retry`` and ``POST .../discard`` with
  ``{"ids": [...]}`` (or no ids: all of them), audited.

School administrators for their school, district administrators for every school; another
school is 404, other roles 403. The rules live in :mod:`evidence.xapi_forwarding`.
"""

from __future__ import annotations

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from api import xapi_out
from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.common import UtcDateTime
from evidence import xapi_forwarding as service
from storage.accounts import Role
from storage.errors import NotFound

blp = Blueprint("xapi_out", __name__,
                description="xAPI out: a school's learning record store and dead letters")


class CountsSchema(ma.Schema):
    pending = ma.fields.Integer()
    sent = ma.fields.Integer()
    dead = ma.fields.Integer()
    discarded = ma.fields.Integer()


class LrsSchema(ma.Schema):
    school_id = ma.fields.Integer()
    school = ma.fields.String()
    configured = ma.fields.Boolean()
    endpoint = ma.fields.String()
    xapi_version = ma.fields.String()
    key = ma.fields.String()
    has_secret = ma.fields.Boolean(metadata={"description": "The secret is never shown"})
    enabled = ma.fields.Boolean()
    scope = ma.fields.String(metadata={"enum": ["own", "received", "both"]})
    max_tries = ma.fields.Integer()
    updated_at = UtcDateTime()
    counts = ma.fields.Nested(CountsSchema)


class LrsSettingsSchema(ma.Schema):
    endpoint = ma.fields.String(metadata={
        "description": "The LRS's xAPI base URL; statements go to <endpoint>statements"})
    xapi_version = ma.fields.String(metadata={"enum": ["1.0.0", "1.0.1", "1.0.2", "1.0.3"]})
    key = ma.fields.String(metadata={"description": "HTTP Basic user"})
    secret = ma.fields.String(load_only=True, metadata={
        "description": "HTTP Basic password; stored encrypted, never shown back"})
    enabled = ma.fields.Boolean()
    scope = ma.fields.String(metadata={"enum": ["own", "received", "both"]})
    max_tries = ma.fields.Integer(strict=True, metadata={
        "description": f"Failed posts before a statement goes to the dead letters "
                       f"(1 to {service.MAX_TRIES})"})


class DeadLetterSchema(ma.Schema):
    id = ma.fields.Integer()
    statement_id = ma.fields.String()
    verb = ma.fields.String()
    own = ma.fields.Boolean(metadata={"description": "The engine's statement (else a tool's)"})
    stored_at = UtcDateTime()
    tries = ma.fields.Integer()
    last_try_at = UtcDateTime(allow_none=True)
    last_error = ma.fields.String(allow_none=True)


class DeadLettersSchema(ma.Schema):
    dead_letters = ma.fields.List(ma.fields.Nested(DeadLetterSchema))


class IdsSchema(ma.Schema):
    ids = ma.fields.List(ma.fields.Integer(strict=True), load_default=None,
                         validate=ma.validate.Length(max=10000), metadata={
                             "description": "Dead letters to act on; absent: all of them"})


class CountSchema(ma.Schema):
    count = ma.fields.Integer()


class QueuedSchema(ma.Schema):
    queued = ma.fields.Boolean()


def _lrs(session, school_id: int):
    school = service.visible_school(session, current_user(), school_id)
    lrs = service.lrs_of(session, school.id)
    if lrs is None:
        raise NotFound(f"school {school_id} has no LRS settings (PUT /schools/{school_id}/lrs)")
    return school, lrs


@blp.route("/schools/<int:school_id>/lrs")
class SchoolLrs(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, LrsSchema)
    @blp.alt_response(404, description="No such school the caller administers")
    def get(self, school_id):
        """The school's LRS settings (without the secret) and its outbox's counts."""
        session = get_session()
        school = service.visible_school(session, current_user(), school_id)
        return service.lrs_view(session, school, service.lrs_of(session, school.id))

    @requires(Role.ADMIN)
    @blp.arguments(LrsSettingsSchema())
    @blp.response(200, LrsSchema)
    @blp.alt_response(404, description="No such school the caller administers")
    def put(self, data, school_id):
        """Set the school's LRS (the first time: endpoint, key and secret); audited."""
        session, user = get_session(), current_user()
        school = service.visible_school(session, user, school_id)
        lrs = service.configure_lrs(session, user, school, data,
                                    xapi_out.secret_box(current_app.config))
        session.commit()
        xapi_out.forget_enabled_cache()
        return service.lrs_view(session, school, lrs)


@blp.route("/schools/<int:school_id>/lrs/send")
class SendNow(MethodView):
    @requires(Role.ADMIN)
    @blp.response(202, QueuedSchema)
    @blp.alt_response(404, description="No such school, or no LRS settings")
    def post(self, school_id):
        """Wake the sender now (it posts what is due, for every school)."""
        _lrs(get_session(), school_id)
        xapi_out.enqueue_forward(current_app)
        return {"queued": True}


@blp.route("/schools/<int:school_id>/lrs/dead-letters")
class DeadLetters(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, DeadLettersSchema)
    @blp.alt_response(404, description="No such school, or no LRS settings")
    def get(self, school_id):
        """The statements given up after their tries, oldest first, with the last error."""
        session = get_session()
        _school, lrs = _lrs(session, school_id)
        return {"dead_letters": service.dead_letters(session, lrs)}


@blp.route("/schools/<int:school_id>/lrs/dead-letters/retry")
class RetryDead(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(IdsSchema())
    @blp.response(200, CountSchema)
    @blp.alt_response(404, description="No such school, LRS or dead letter")
    def post(self, data, school_id):
        """Put dead letters back in the outbox with fresh tries (audited); wakes the sender."""
        session = get_session()
        _school, lrs = _lrs(session, school_id)
        count = service.retry_dead(session, current_user(), lrs, data["ids"])
        session.commit()
        if count:
            xapi_out.enqueue_forward(current_app)
        return {"count": count}


@blp.route("/schools/<int:school_id>/lrs/dead-letters/discard")
class DiscardDead(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(IdsSchema())
    @blp.response(200, CountSchema)
    @blp.alt_response(404, description="No such school, LRS or dead letter")
    def post(self, data, school_id):
        """Give dead letters up for good (audited)."""
        session = get_session()
        _school, lrs = _lrs(session, school_id)
        count = service.discard_dead(session, current_user(), lrs, data["ids"])
        session.commit()
        return {"count": count}
