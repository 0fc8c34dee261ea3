"""The audit log over HTTP (administrators): ``GET /audit?subject=&actor=&action=&since=&until=``.

Newest first, a page at a time; a school's administrator sees the entries about or by people of
their school. Reading the log is itself recorded. The rules live in :mod:`rights.audit_log`.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.common import UtcDateTime
from rights import audit_log as service
from storage.accounts import Role
from storage.rights import AuditAction

blp = Blueprint("audit", __name__, description="The tamper-evident audit log (administrators)")


class AuditArgs(ma.Schema):
    subject = ma.fields.Integer(validate=ma.validate.Range(min=1, max=2**31 - 1), metadata={
        "description": "The person whose data the entries concern (a user id)"})
    actor = ma.fields.Integer(validate=ma.validate.Range(min=1, max=2**31 - 1), metadata={
        "description": "Who acted (a user id)"})
    action = ma.fields.String(validate=ma.validate.OneOf([a.value for a in AuditAction]))
    since = ma.fields.AwareDateTime(default_timezone=None, metadata={
        "description": "From this moment (ISO 8601 with a time zone)"})
    until = ma.fields.AwareDateTime(default_timezone=None, metadata={
        "description": "Up to this moment (ISO 8601 with a time zone)"})
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=10**6))
    per_page = ma.fields.Integer(load_default=50, validate=ma.validate.Range(
        min=1, max=service.MAX_PER_PAGE))


class AuditLogEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    at = UtcDateTime()
    action = ma.fields.String()
    actor_id = ma.fields.Integer(allow_none=True)
    actor = ma.fields.String(allow_none=True, metadata={
        "description": "The actor's name now (the log stores ids only)"})
    subject_id = ma.fields.Integer(allow_none=True)
    subject = ma.fields.String(allow_none=True)
    object_type = ma.fields.String()
    object_id = ma.fields.String()
    detail = ma.fields.Dict()
    hash = ma.fields.String(metadata={"description": "SHA-256 of the entry and the one before"})


class AuditLogPageSchema(ma.Schema):
    entries = ma.fields.List(ma.fields.Nested(AuditLogEntrySchema))
    page = ma.fields.Integer()
    per_page = ma.fields.Integer()
    has_more = ma.fields.Boolean()


@blp.route("/audit")
class AuditLog(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(AuditArgs(), location="query")
    @blp.response(200, AuditLogPageSchema)
    def get(self, args):
        """Audit entries, newest first: sign-ins, reads of reports, portfolios and exports,
        decisions, overrides, appeals, consents, role and access changes, erasures."""
        where = service.AuditFilter(subject_id=args.get("subject"), actor_id=args.get("actor"),
                                    action=args.get("action"), since=args.get("since"),
                                    until=args.get("until"))
        return service.list_entries(get_session(), current_user(), where, page=args["page"],
                                    per_page=args["per_page"])
