"""Erasure and retention over HTTP (administrators only).

- ``POST /students/{student_id}/erasure {"reason"}``: request an erasure (201, pending). The
  student's school decides how it is confirmed: ``second_admin`` (and no school) waits for
  ``POST /erasures/{id}/confirm`` by a *different* administrator, which carries it out;
  ``delay`` runs it when ``due_at`` passes (``cat-engine erasures run-due``).
- ``POST /erasures/{id}/cancel``, ``GET /erasures`` (``?status=pending|done|cancelled``),
  ``GET /erasures/{id}``.
- ``POST /retention/purge {"dry_run": true}``: the retention purge (district administrators).

The rules live in :mod:`rights.erasure` and :mod:`rights.retention`; one commit per request.
"""

from __future__ import annotations

import marshmallow as ma
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.uploads import file_store
from api.v1.auth import current_user, requires
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from rights import erasure as service
from rights import retention
from storage.accounts import Role, is_district_admin
from storage.errors import Forbidden
from storage.rights import ErasureStatus

blp = Blueprint("erasures", __name__, description="Erasure of a student's data; retention")


class ErasureRequestSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(
        max=service.MAX_REASON), metadata={"description": "Why (kept in the audit log)"})


class ErasureSchema(ma.Schema):
    id = ma.fields.Integer()
    student_id = ma.fields.Integer()
    reason = ma.fields.String()
    status = ma.fields.String(metadata={"enum": [s.value for s in ErasureStatus]})
    confirmation = ma.fields.String(metadata={"enum": ["second_admin", "delay"]})
    requested_by = ma.fields.Integer()
    requested_at = UtcDateTime()
    due_at = UtcDateTime(allow_none=True, metadata={"description": "When a delay runs it"})
    confirmed_by = ma.fields.Integer(allow_none=True)
    confirmed_at = UtcDateTime(allow_none=True)
    cancelled_by = ma.fields.Integer(allow_none=True)
    executed_at = UtcDateTime(allow_none=True)
    outcome = ma.fields.Dict(metadata={"description": "Counts deleted and kept"})


class ErasureListArgs(PageArgs):
    status = ma.fields.String(validate=ma.validate.OneOf([s.value for s in ErasureStatus]))


class PurgeRequestSchema(ma.Schema):
    dry_run = ma.fields.Boolean(load_default=True, metadata={
        "description": "Count only (default); false deletes"})


class PurgeSchema(ma.Schema):
    applied = ma.fields.Boolean()
    counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    days = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    cutoffs = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    kept = ma.fields.List(ma.fields.String(), metadata={
        "description": "Kinds the privacy note gives no period (not purged)"})


def _remove_files(executed: service.Executed) -> None:
    """After the commit: the bytes of files no draft refers to any more."""
    store = file_store()
    for sha256 in executed.orphan_files:
        store.path_of(sha256).unlink(missing_ok=True)


@blp.route("/students/<int:student_id>/erasure")
class StudentErasure(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(ErasureRequestSchema())
    @blp.response(201, ErasureSchema)
    @blp.alt_response(404, description="No such user the administrator reaches, or erased")
    @blp.alt_response(409, description="An erasure of the student is pending already")
    @blp.alt_response(422, description="No reason, or a staff account")
    def post(self, data, student_id):
        """Request the erasure of a student's personal data (pending until confirmed)."""
        session = get_session()
        erasure = service.request_erasure(session, current_user(), student_id, data["reason"])
        session.commit()
        return (service.erasure_view(erasure), 201,
                {"Location": url_for("erasures.ErasureById", erasure_id=erasure.id)})


@blp.route("/erasures")
class Erasures(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(ErasureListArgs(), location="query")
    @blp.response(200, page_of(ErasureSchema))
    def get(self, args):
        """Erasures of the users the administrator reaches, newest first."""
        status = ErasureStatus(args["status"]) if args.get("status") else None
        return paginate(get_session(), service.erasures_query(current_user(), status), args,
                        service.erasure_view)


@blp.route("/erasures/<int:erasure_id>")
class ErasureById(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, ErasureSchema)
    @blp.alt_response(404, description="No such erasure the administrator may see")
    def get(self, erasure_id):
        """One erasure."""
        return service.erasure_view(service.get_erasure(get_session(), current_user(),
                                                        erasure_id))


@blp.route("/erasures/<int:erasure_id>/confirm")
class ConfirmErasure(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, ErasureSchema)
    @blp.alt_response(404, description="No such erasure the administrator may see")
    @blp.alt_response(409, description="Not pending, or confirmed by its delay")
    def post(self, erasure_id):
        """Confirm a pending erasure (a different administrator than the requester); it is
        carried out at once."""
        session = get_session()
        executed = service.confirm_erasure(session, current_user(), erasure_id)
        session.commit()
        _remove_files(executed)
        return service.erasure_view(executed.erasure)


@blp.route("/erasures/<int:erasure_id>/cancel")
class CancelErasure(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, ErasureSchema)
    @blp.alt_response(404, description="No such erasure the administrator may see")
    @blp.alt_response(409, description="Not pending")
    def post(self, erasure_id):
        """Cancel a pending erasure."""
        session = get_session()
        erasure = service.cancel_erasure(session, current_user(), erasure_id)
        session.commit()
        return service.erasure_view(erasure)


@blp.route("/retention/purge")
class RetentionPurge(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(PurgeRequestSchema())
    @blp.response(200, PurgeSchema)
    @blp.alt_response(422, description="The privacy note's retention is not usable")
    def post(self, data):
        """Count (dry run, the default) or delete the records older than the privacy note's
        retention (district administrators only)."""
        user = current_user()
        if not is_district_admin(user):
            raise Forbidden("the retention purge is for district administrators (of no "
                            "school): it acts on every school's records")
        session = get_session()
        result = retention.purge(session, apply=not data["dry_run"], actor_id=user.id)
        session.commit()
        return result.__dict__
