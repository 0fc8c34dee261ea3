"""OneRoster 1.2 roster imports over HTTP (administrators).

- ``POST /rosters`` (multipart: one or more ``file`` parts, a OneRoster zip or its CSV files;
  ``dry_run``, true by default): the report of what the roster would create, update, leave
  alone or leave out, and every problem by file, line, field and ``sourcedId``. A dry run
  without errors carries a ``token``; ``dry_run=false`` imports at once (201), or answers 422
  with the report when the roster has errors (nothing is imported).
- ``POST /rosters/apply {"token"}``: import what the dry run checked, planned again against the
  database as it is now; 404 for a token that is unknown, expired, applied or another's.

A school's administrator imports their own school only. The rules live in
:mod:`evidence.roster`; one commit per request, so an import is all or nothing.
"""

from __future__ import annotations

import json

import marshmallow as ma
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.datastructures import FileStorage

from api.db import get_session
from api.v1 import problem
from api.v1.auth import current_user, requires
from evidence import roster as service
from evidence.oneroster import PackageError
from storage.accounts import Role
from storage.errors import Invalid

blp = Blueprint("rosters", __name__, description="OneRoster 1.2 roster imports (administrators)")


class RosterUploadSchema(ma.Schema):
    """A multipart/form-data upload (documentation: the view reads the form itself)."""

    file = ma.fields.List(ma.fields.Raw(metadata={"type": "string", "format": "binary"}),
                          required=True, metadata={
        "description": "A OneRoster 1.2 zip, or its CSV files (manifest.csv, orgs.csv, "
                       "users.csv, roles.csv, classes.csv, enrollments.csv...), one part each"})
    dry_run = ma.fields.Boolean(load_default=True, metadata={
        "description": "true (default): only report; false: import when there is no error"})


class ApplySchema(ma.Schema):
    token = ma.fields.String(required=True, validate=ma.validate.Length(1, 200),
                             metadata={"description": "The token of a dry run"})


class ProblemEntrySchema(ma.Schema):
    severity = ma.fields.String(metadata={"description": "error (blocks the import) or warning"})
    file = ma.fields.String()
    line = ma.fields.Integer(allow_none=True, metadata={"description": "The header is line 1"})
    field = ma.fields.String(allow_none=True)
    id = ma.fields.String(allow_none=True, metadata={"description": "The row's sourcedId"})
    message = ma.fields.String()


class RosterReportSchema(ma.Schema):
    import_id = ma.fields.Integer()
    applied = ma.fields.Boolean()
    token = ma.fields.String(allow_none=True, metadata={
        "description": "Apply this dry run with POST /rosters/apply (24 hours); none when the "
                       "roster has errors"})
    version = ma.fields.String()
    source = ma.fields.String()
    modes = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(),
                           metadata={"description": "Each file's mode: bulk, delta, absent"})
    can_apply = ma.fields.Boolean()
    counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict(), metadata={
        "description": "schools, users, classes: created, updated, unchanged (users: "
                       "deactivated, left_out); enrolments: added, removed, unchanged, left_out"})
    examples = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict())
    n_errors = ma.fields.Integer()
    n_warnings = ma.fields.Integer()
    problems = ma.fields.List(ma.fields.Nested(ProblemEntrySchema))
    problems_listed = ma.fields.Integer()


def _uploads() -> list[tuple[str, bytes]]:
    if request.mimetype != "multipart/form-data":
        raise Invalid("send the roster as multipart/form-data, in parts named 'file'",
                      field="file")
    parts = [p for p in request.files.getlist("file") if isinstance(p, FileStorage)]
    uploads = [(p.filename or "", p.read()) for p in parts]
    uploads = [(name, data) for name, data in uploads if name or data]
    if not uploads:
        raise Invalid("file: send a OneRoster zip or its CSV files in parts named 'file'",
                      field="file")
    return uploads


def _dry_run_flag() -> bool:
    text = request.form.get("dry_run", "true").strip().lower()
    if text not in ("true", "false", "1", "0"):
        raise Invalid("dry_run must be true or false", field="dry_run")
    return text in ("true", "1")


def _refused(report: dict) -> object:
    """422 with the report: the roster has errors and nothing was imported."""
    errors = [{"field": f"{p['file']}" + (f":{p['line']}" if p["line"] else "")
               + (f":{p['field']}" if p["field"] else ""), "message": p["message"]}
              for p in report["problems"] if p["severity"] == "error"]
    response = problem(422, "Unprocessable content",
                       f"the roster has {report['n_errors']} error(s); nothing was imported",
                       errors)
    body = response.get_json()
    body["report"] = report
    response.set_data(json.dumps(body))
    return response


@blp.route("/rosters")
class Rosters(MethodView):
    @requires(Role.ADMIN)
    @blp.doc(requestBody={"required": True, "content": {
        "multipart/form-data": {"schema": RosterUploadSchema}}})
    @blp.response(200, RosterReportSchema, description="The dry run's report")
    @blp.alt_response(201, schema=RosterReportSchema, description="Imported (dry_run=false)")
    @blp.alt_response(422, description="Not a OneRoster package, or (dry_run=false) a roster "
                                       "with errors: the report is in `report`")
    def post(self):
        """Check a OneRoster 1.2 roster (a dry run, by default) or import it, all or nothing."""
        session, user = get_session(), current_user()
        uploads, dry_run = _uploads(), _dry_run_flag()
        name = ", ".join(n for n, _d in uploads)[:255]
        try:
            if dry_run:
                outcome = service.dry_run(session, user, uploads, name)
            else:
                outcome, _plan = service.import_now(session, user, uploads, name)
        except PackageError as error:
            raise Invalid(str(error), field="file") from None
        if not dry_run and not outcome.applied:
            session.rollback()
            return _refused(outcome.report | {"applied": False, "token": None})
        session.commit()
        return (outcome.report | {"applied": outcome.applied, "token": outcome.token},
                201 if outcome.applied else 200)


@blp.route("/rosters/apply")
class RosterApply(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(ApplySchema())
    @blp.response(201, RosterReportSchema)
    @blp.alt_response(404, description="No dry run waits under this token")
    @blp.alt_response(422, description="The roster has errors now: the report is in `report`")
    def post(self, data):
        """Import the roster a dry run checked (planned again against the current data)."""
        session = get_session()
        outcome, _plan = service.apply_token(session, current_user(), data["token"])
        if not outcome.applied:
            session.rollback()
            return _refused(outcome.report | {"applied": False, "token": None})
        session.commit()
        return outcome.report | {"applied": True, "token": None}
