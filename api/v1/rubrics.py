"""Rubrics: scoring guides in versions, with their import and export as JSON and CSV.

Teachers, assessors and administrators see every rubric and create, version, archive and
unarchive them; students get 403. A rubric's versions never change: ``POST .../versions`` adds
a whole new set of criteria, and the old versions (and the scores given under them) stay.

Bodies are checked by :mod:`evidence.rubrics`, which names every problem at once with its path:
``errors: [{"field": "criteria[2].levels[1].score", "message": ...}]`` (422); for a CSV upload
the field is the row and column (``row 7, score``). Nothing of a refused request is stored.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.datastructures import FileStorage

from api.db import get_session
from api.v1 import problem
from api.v1.auth import current_user, requires
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from evidence import rubrics as service
from evidence.models import Rubric, RubricVersion
from storage.errors import Invalid

blp = Blueprint("rubrics", __name__,
                description="Rubrics in versions (criteria with ordered levels, each criterion "
                            "linked to a skill of the bank), imported and exported as JSON or "
                            "CSV")

STAFF = service.STAFF
MAX_FILE_BYTES = 2 * 1024 * 1024


@blp.errorhandler(service.RubricInvalid)
def _rubric_invalid(error: service.RubricInvalid) -> Response:
    """Every problem of a rubric, each with its field, in one 422 problem."""
    return problem(error.status, error.title, str(error), error.errors)


# -- schemas -------------------------------------------------------------------------------------


class RubricLevelSchema(ma.Schema):
    score = ma.fields.Integer(required=True, metadata={
        "description": "Consecutive integers across a criterion's levels, lowest first"})
    label = ma.fields.String(required=True, metadata={"description": "1 to 80 characters"})
    descriptor = ma.fields.String(required=True, metadata={
        "description": "What performance at this level looks like (1 to 2,000 characters)"})


class RubricCriterionSchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={
        "description": "Letters, digits, - and _; unique in the version, kept across versions"})
    name = ma.fields.String(required=True)
    description = ma.fields.String()
    skill = ma.fields.String(required=True, metadata={"description": "A skill of the item bank"})
    levels = ma.fields.List(ma.fields.Nested(RubricLevelSchema), required=True,
                            metadata={"description": "2 to 10 levels, lowest first"})


class RubricDocumentSchema(ma.Schema):
    """The JSON form of one version of a rubric (what export writes and import reads)."""

    name = ma.fields.String(required=True, metadata={"description": "Unique (any case)"})
    description = ma.fields.String()
    criteria = ma.fields.List(ma.fields.Nested(RubricCriterionSchema), required=True,
                              metadata={"description": "1 to 30 criteria"})


class RubricCreateSchema(RubricDocumentSchema):
    note = ma.fields.String(metadata={"description": "What version 1 is"})


class RubricVersionCreateSchema(ma.Schema):
    description = ma.fields.String(metadata={
        "description": "The new version's description (default: the latest version's)"})
    note = ma.fields.String(metadata={"description": "What changed, in the author's words"})
    criteria = ma.fields.List(ma.fields.Nested(RubricCriterionSchema), required=True)


class RubricVersionBriefSchema(ma.Schema):
    id = ma.fields.Integer(metadata={"description": "The version's id (defenses and scores "
                                                    "refer to it)"})
    version = ma.fields.Integer()
    note = ma.fields.String()
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    n_criteria = ma.fields.Function(lambda v: len(v.criteria))


class RubricSummarySchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    archived = ma.fields.Function(lambda r: r.archived_at is not None)
    archived_at = UtcDateTime(allow_none=True)
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    latest_version = ma.fields.Function(lambda r: RubricVersionBriefSchema().dump(r.versions[-1]))


class RubricCriterionOutSchema(RubricCriterionSchema):
    id = ma.fields.Integer()
    position = ma.fields.Integer(metadata={"description": "0-based"})


class RubricVersionDetailSchema(RubricVersionBriefSchema):
    description = ma.fields.String()
    criteria = ma.fields.List(ma.fields.Nested(RubricCriterionOutSchema))


class RubricDetailSchema(RubricSummarySchema):
    version = ma.fields.Nested(RubricVersionDetailSchema, metadata={
        "description": "The version asked for (?version=N), else the latest"})
    versions = ma.fields.List(ma.fields.Nested(RubricVersionBriefSchema),
                              metadata={"description": "The history, oldest first"})


class RubricListArgs(PageArgs):
    archived = ma.fields.Boolean(metadata={
        "description": "true: archived only; false: active only; absent: all"})


class RubricVersionArgs(ma.Schema):
    version = ma.fields.Integer(validate=ma.validate.Range(min=1, max=2**31 - 1), metadata={
        "description": "Which version (default: the latest)"})


class RubricExportArgs(RubricVersionArgs):
    format = ma.fields.String(load_default="json", validate=ma.validate.OneOf(("json", "csv")))


class RubricImportFormSchema(ma.Schema):
    """A multipart/form-data upload (documentation: the view reads the form itself)."""

    file = ma.fields.Raw(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "A rubric as CSV (one row per level) or JSON (UTF-8)"})
    name = ma.fields.String(metadata={
        "description": "The new rubric's name: required for CSV; for JSON it replaces the "
                       "file's"})
    description = ma.fields.String(metadata={"description": "CSV: the rubric's description"})


# -- helpers -------------------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    """The request's JSON object (the service checks what is in it)."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object (Content-Type: application/json)",
                      field="body")
    return data


class _Detail:
    """A rubric with one of its versions, as the detail schema reads it."""

    def __init__(self, rubric: Rubric, version: RubricVersion) -> None:
        self.id, self.name, self.archived_at = rubric.id, rubric.name, rubric.archived_at
        self.created_by, self.created_at = rubric.created_by, rubric.created_at
        self.versions, self.version = rubric.versions, version


def _created(rubric: Rubric) -> tuple[Any, int, dict[str, str]]:
    session = get_session()
    session.commit()
    version = service.get_version(session, rubric)
    return (_Detail(rubric, version), 201,
            {"Location": url_for("rubrics.RubricById", rubric_id=rubric.id)})


# -- views ---------------------------------------------------------------------------------------


@blp.route("/rubrics")
class Rubrics(MethodView):
    @requires(*STAFF)
    @blp.arguments(RubricListArgs(), location="query")
    @blp.response(200, page_of(RubricSummarySchema, "RubricPage"))
    def get(self, args):
        """Rubrics by name, each with its latest version and whether it is archived."""
        return paginate(get_session(), service.rubrics_query(args.get("archived")), args)

    @requires(*STAFF)
    @blp.doc(requestBody={"required": True, "content": {
        "application/json": {"schema": RubricCreateSchema}}})
    @blp.response(201, RubricDetailSchema)
    @blp.alt_response(409, description="A rubric with this name exists")
    @blp.alt_response(422, description="Problems, each with its field "
                                       "(criteria[2].levels[1].score)")
    def post(self):
        """Create a rubric with its first version."""
        session = get_session()
        data = _body()
        _unknown(data, ("name", "description", "criteria", "note"))
        rubric = service.create_rubric(session, current_user(), name=data.get("name"),
                                       description=data.get("description", ""),
                                       criteria=data.get("criteria"),
                                       note=data.get("note", ""))
        return _created(rubric)


def _unknown(data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(str(k) for k in data if k not in allowed)
    if extra:
        raise service.RubricInvalid([{"field": k, "message": f"{k}: unknown field (expected "
                                      f"{', '.join(allowed)})"} for k in extra])


@blp.route("/rubrics/<int:rubric_id>")
class RubricById(MethodView):
    @requires(*STAFF)
    @blp.arguments(RubricVersionArgs(), location="query")
    @blp.response(200, RubricDetailSchema)
    @blp.alt_response(404, description="No such rubric, or no such version of it")
    def get(self, args, rubric_id):
        """A rubric with one version in full (the latest, or ``?version=N``) and its history."""
        session = get_session()
        rubric = service.visible_rubric(session, current_user(), rubric_id)
        return _Detail(rubric, service.get_version(session, rubric, args.get("version")))


@blp.route("/rubrics/<int:rubric_id>/versions")
class RubricVersions(MethodView):
    @requires(*STAFF)
    @blp.doc(requestBody={"required": True, "content": {
        "application/json": {"schema": RubricVersionCreateSchema}}})
    @blp.response(201, RubricDetailSchema)
    @blp.alt_response(404, description="No such rubric")
    @blp.alt_response(409, description="The rubric is archived")
    @blp.alt_response(422, description="Problems, each with its field")
    def post(self, rubric_id):
        """Add a version: a whole new set of criteria. Earlier versions and their scores stay."""
        session = get_session()
        user = current_user()
        rubric = service.visible_rubric(session, user, rubric_id)
        data = _body()
        _unknown(data, ("description", "note", "criteria"))
        service.add_version(session, user, rubric, criteria=data.get("criteria"),
                            description=data.get("description"), note=data.get("note", ""))
        return _created(rubric)


def _archive(rubric_id: int, archived: bool) -> Rubric:
    session = get_session()
    user = current_user()
    rubric = service.set_archived(session, user, service.visible_rubric(session, user,
                                                                        rubric_id), archived)
    session.commit()
    return rubric


@blp.route("/rubrics/<int:rubric_id>/archive")
class RubricArchive(MethodView):
    @requires(*STAFF)
    @blp.response(200, RubricSummarySchema)
    @blp.alt_response(404, description="No such rubric")
    def post(self, rubric_id):
        """Archive a rubric: off the lists for new defenses; versions and scores are kept."""
        return _archive(rubric_id, True)


@blp.route("/rubrics/<int:rubric_id>/unarchive")
class RubricUnarchive(MethodView):
    @requires(*STAFF)
    @blp.response(200, RubricSummarySchema)
    @blp.alt_response(404, description="No such rubric")
    def post(self, rubric_id):
        """Put an archived rubric back on the lists."""
        return _archive(rubric_id, False)


@blp.route("/rubrics/import")
class RubricImport(MethodView):
    @requires(*STAFF)
    @blp.doc(requestBody={"required": True, "content": {
        "application/json": {"schema": RubricDocumentSchema},
        "multipart/form-data": {"schema": RubricImportFormSchema}}})
    @blp.response(201, RubricDetailSchema)
    @blp.alt_response(409, description="A rubric with this name exists")
    @blp.alt_response(422, description="Problems, each with its field, or its row and column "
                                       "for CSV; nothing is stored")
    def post(self):
        """Create a rubric from a JSON document (the body, or a file) or a CSV file, all or
        nothing."""
        session = get_session()
        user = current_user()
        if request.mimetype == "multipart/form-data":
            upload = request.files.get("file")
            if not isinstance(upload, FileStorage):
                raise Invalid("file: send the rubric as the file part 'file'", field="file")
            data = upload.read(MAX_FILE_BYTES + 1)
            if not data.strip():
                raise Invalid(f"file: {upload.filename or 'the file'} is empty", field="file")
            if len(data) > MAX_FILE_BYTES:
                raise Invalid(f"file: larger than {MAX_FILE_BYTES:,} bytes", field="file")
            name = request.form.get("name")
            if _looks_like_json(upload.filename or "", data):
                document = service.parse_json_file(data)
                if name is not None and name.strip():
                    document = {**document, "name": name}
                rubric = service.import_rubric(session, user, **document)
            else:
                if name is None or not name.strip():
                    raise Invalid("name: a CSV file needs the new rubric's name in the field "
                                  "'name'", field="name")
                rubric = service.import_rubric(
                    session, user, name=name, description=request.form.get("description", ""),
                    csv_data=data)
        else:
            rubric = service.import_rubric(session, user,
                                           **service.read_json_document(_body()))
        return _created(rubric)


def _looks_like_json(filename: str, data: bytes) -> bool:
    """A JSON file by its name, or (no telling name) by its first character."""
    lower = filename.lower()
    if lower.endswith(".json"):
        return True
    if lower.endswith((".csv", ".txt")):
        return False
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


@blp.route("/rubrics/<int:rubric_id>/export")
class RubricExport(MethodView):
    @requires(*STAFF)
    @blp.arguments(RubricExportArgs(), location="query")
    @blp.doc(responses={"200": {"description": "The file, as an attachment", "content": {
        "application/json": {"schema": RubricDocumentSchema},
        "text/csv": {"schema": {"type": "string"}}}}})
    @blp.alt_response(404, description="No such rubric, or no such version of it")
    def get(self, args, rubric_id):
        """One version (the latest, or ``version``) as JSON or CSV, to import elsewhere."""
        session = get_session()
        rubric = service.visible_rubric(session, current_user(), rubric_id)
        version = service.get_version(session, rubric, args.get("version"))
        return export_response(rubric, version, args["format"])


def export_response(rubric: Rubric, version: RubricVersion, fmt: str) -> Response:
    """A version as a JSON or CSV download named ``rubric-<id>-v<version>.<fmt>``."""
    if fmt == "csv":
        body, mimetype = service.export_csv(version), "text/csv"
    else:
        body, mimetype = service.export_json(rubric, version), "application/json"
    response = Response(body.encode("utf-8"), mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="rubric-{rubric.id}-v{version.version}.{fmt}"')
    response.headers["Cache-Control"] = "no-store"
    return response
