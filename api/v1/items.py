"""The item bank: items, versions, status, parameter sets, import and export (assessment teams).

Every endpoint needs the role assessor or admin. Content changes add versions, status changes and
parameter sets are recorded with who and when; nothing is ever edited in place, so what a test
delivered can always be traced. Imports (CSV, QTI XML, QTI zip) are one transaction: any refused
record leaves the bank as it was.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, current_app, json, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict, FileStorage

from api import jobs
from api.db import engine_of, get_session
from api.services.item_imports import SYNC_LIMIT, create_import, reap_stalled
from api.v1 import problem
from api.v1.auth import current_user, requires
from api.v1.calibration import QueueUnavailable
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from item_bank.importing import (
    MODES,
    ExistingItems,
    ImportRejected,
    apply_import,
    export_records,
    read_upload,
)
from item_bank.interchange import (
    InterchangeError,
    write_items_csv,
    write_parameters_csv,
    write_qti_package,
)
from item_bank.models import ImportStatus, Item, ItemParameterSet, ItemStatus, ItemTag, ItemVersion
from item_bank.models import ItemImport as ImportJob
from item_bank.services import (
    MAX_MEDIA,
    MAX_OPTION_LENGTH,
    MAX_OPTIONS,
    MAX_RATIONALE_LENGTH,
    MAX_STEM_LENGTH,
    add_parameter_set,
    change_status,
    create_item,
    update_item,
)
from item_bank.translations import delete_translation, set_translation, translations_of
from storage import utcnow
from storage.accounts import Role, User
from storage.errors import Invalid, NotFound


class _MultipartParser(FlaskParser):
    """Reads the ``files`` location from files and form fields together (one multipart body)."""

    def load_files(self, req, schema):
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)


blp = Blueprint("items", __name__, description="The item bank: items, versions, status, "
                                               "parameter sets, import and export")
blp.ARGUMENTS_PARSER = _MultipartParser()

STAFF = (Role.ASSESSOR, Role.ADMIN)
EXPORTS = {
    "csv": (write_items_csv, "text/csv; charset=utf-8", "items.csv"),
    "parameters-csv": (write_parameters_csv, "text/csv; charset=utf-8", "item-parameters.csv"),
    "qti-zip": (write_qti_package, "application/zip", "items-qti.zip"),
}


# -- schemas -------------------------------------------------------------------------------------


class ItemListArgs(PageArgs):
    q = ma.fields.String(validate=ma.validate.Length(1, 200),
                         metadata={"description": "Text in the code or stem (any case)"})
    skill = ma.fields.String()
    status = ma.fields.Enum(ItemStatus, by_value=True)
    tag = ma.fields.String(metadata={"description": "Items with this content tag"})


class ItemSummarySchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    skill = ma.fields.String()
    status = ma.fields.String()
    content_tags = ma.fields.List(ma.fields.String())
    version = ma.fields.Integer()
    stem = ma.fields.String()
    has_parameters = ma.fields.Boolean()
    model = ma.fields.String(allow_none=True, metadata={"description": "IRT model of the "
                                                                      "active parameter set"})


_OPTION = ma.fields.String(validate=ma.validate.Length(max=MAX_OPTION_LENGTH))
_OPTIONS = ma.validate.Length(max=MAX_OPTIONS)
_MEDIUM = ma.fields.String(validate=ma.validate.Length(max=2000))
_MEDIA = ma.validate.Length(max=MAX_MEDIA)


class ItemInputSchema(ma.Schema):
    """A new item; it starts as a draft at version 1."""

    code = ma.fields.String(required=True, validate=ma.validate.Length(1, 120))
    stem = ma.fields.String(required=True, validate=ma.validate.Length(1, MAX_STEM_LENGTH))
    options = ma.fields.List(_OPTION, load_default=list, validate=_OPTIONS)
    key = ma.fields.Integer(load_default=None, allow_none=True, strict=True,
                            metadata={"description": "0-based index of the correct option"})
    rationale = ma.fields.String(load_default="",
                                 validate=ma.validate.Length(max=MAX_RATIONALE_LENGTH))
    skill = ma.fields.String(required=True, validate=ma.validate.Length(1, 80))
    content_tags = ma.fields.List(ma.fields.String(validate=ma.validate.Length(1, 80)),
                                  load_default=list)
    media = ma.fields.List(_MEDIUM, load_default=list, validate=_MEDIA)
    language = ma.fields.String(load_default="en", validate=ma.validate.Length(2, 35),
                                metadata={"description": "The language of stem, options and "
                                                         "rationale (BCP 47: en, ar, pt-BR)"})


class ItemPatchSchema(ma.Schema):
    """Changes to an item; a change of stem, options, key, rationale or media adds a version."""

    stem = ma.fields.String(validate=ma.validate.Length(1, MAX_STEM_LENGTH))
    options = ma.fields.List(_OPTION, validate=_OPTIONS)
    key = ma.fields.Integer(allow_none=True, strict=True)
    rationale = ma.fields.String(validate=ma.validate.Length(max=MAX_RATIONALE_LENGTH))
    media = ma.fields.List(_MEDIUM, validate=_MEDIA)
    skill = ma.fields.String(validate=ma.validate.Length(1, 80))
    content_tags = ma.fields.List(ma.fields.String(validate=ma.validate.Length(1, 80)))
    note = ma.fields.String(load_default="", validate=ma.validate.Length(max=2000),
                            metadata={"description": "Why the content changed (on the version)"})
    expected_version = ma.fields.Integer(metadata={
        "description": "The version you edited; 409 when the item has moved on"})


class StatusEventSchema(ma.Schema):
    id = ma.fields.Integer()
    from_status = ma.fields.String(data_key="from", allow_none=True)
    to_status = ma.fields.String(data_key="to")
    by = ma.fields.String(allow_none=True, metadata={"description": "username"})
    at = UtcDateTime()
    reason = ma.fields.String()


class StatusChangeSchema(ma.Schema):
    status = ma.fields.Enum(ItemStatus, by_value=True, required=True)
    reason = ma.fields.String(load_default="", validate=ma.validate.Length(max=2000))


class ParameterSetSchema(ma.Schema):
    id = ma.fields.Integer()
    model = ma.fields.String()
    a = ma.fields.Float(allow_none=True)
    b = ma.fields.Float(allow_none=True)
    c = ma.fields.Float(allow_none=True)
    d = ma.fields.Float(allow_none=True)
    thresholds = ma.fields.List(ma.fields.Float(), allow_none=True)
    is_active = ma.fields.Boolean()
    source = ma.fields.String()
    provenance = ma.fields.Dict()
    calibration_run_id = ma.fields.Integer(allow_none=True)
    sample_size = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    created_by = ma.fields.String(allow_none=True, metadata={"description": "username"})


class ParameterSetInputSchema(ma.Schema):
    """IRT parameters on the bank's logistic scale; they become the item's active set."""

    model = ma.fields.String(required=True, metadata={
        "description": "rasch, 1pl, 2pl, 3pl, 4pl, grm, gpcm or pcm"})
    a = ma.fields.Float(allow_none=True, load_default=None)
    b = ma.fields.Float(allow_none=True, load_default=None)
    c = ma.fields.Float(allow_none=True, load_default=None)
    d = ma.fields.Float(allow_none=True, load_default=None)
    thresholds = ma.fields.List(ma.fields.Float(), allow_none=True, load_default=None)
    source = ma.fields.String(load_default="manual", validate=ma.validate.Length(1, 40))
    sample_size = ma.fields.Integer(allow_none=True, load_default=None,
                                    validate=ma.validate.Range(min=1, max=10**9))


class VersionSummarySchema(ma.Schema):
    version = ma.fields.Integer()
    created_at = UtcDateTime()
    created_by = ma.fields.String(allow_none=True)
    note = ma.fields.String()


class VersionSchema(VersionSummarySchema):
    item_id = ma.fields.Integer()
    code = ma.fields.String()
    stem = ma.fields.String()
    options = ma.fields.List(ma.fields.String())
    key = ma.fields.Integer(allow_none=True)
    rationale = ma.fields.String()
    media = ma.fields.List(ma.fields.String())


class ItemSchema(ma.Schema):
    """An item with its content, key, history, versions and parameter sets."""

    id = ma.fields.Integer()
    code = ma.fields.String()
    stem = ma.fields.String()
    options = ma.fields.List(ma.fields.String())
    key = ma.fields.Integer(allow_none=True)
    rationale = ma.fields.String()
    media = ma.fields.List(ma.fields.String())
    skill = ma.fields.String()
    content_tags = ma.fields.List(ma.fields.String())
    status = ma.fields.String()
    version = ma.fields.Integer()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    parameters = ma.fields.Nested(ParameterSetSchema, allow_none=True,
                                  metadata={"description": "The active parameter set"})
    parameter_sets = ma.fields.List(ma.fields.Nested(ParameterSetSchema))
    status_history = ma.fields.List(ma.fields.Nested(StatusEventSchema))
    versions = ma.fields.List(ma.fields.Nested(VersionSummarySchema))
    language = ma.fields.String(metadata={"description": "The language of the item's own text"})
    translations = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Nested("TranslationTextSchema"),
        metadata={"description": "The item's text in other languages, by language tag"})


class TranslationTextSchema(ma.Schema):
    stem = ma.fields.String()
    options = ma.fields.List(ma.fields.String())
    rationale = ma.fields.String()


class TranslationInputSchema(ma.Schema):
    """An item's text in one more language; as many options as the item, in its order."""

    stem = ma.fields.String(required=True, validate=ma.validate.Length(1, MAX_STEM_LENGTH))
    options = ma.fields.List(_OPTION, load_default=list, validate=_OPTIONS)
    rationale = ma.fields.String(load_default="",
                                 validate=ma.validate.Length(max=MAX_RATIONALE_LENGTH))


class TranslationSchema(TranslationTextSchema):
    item_id = ma.fields.Integer()
    code = ma.fields.String()
    language = ma.fields.String()
    source_language = ma.fields.String()
    source_version = ma.fields.Integer(metadata={
        "description": "The item's content version the translation was saved against"})
    updated_at = UtcDateTime()


class ImportArgs(ma.Schema):
    """A multipart/form-data upload."""

    file = ma.fields.Raw(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "CSV (items, or parameters only when it has no stem column), a QTI 3.0 "
                       "or 2.1 item XML, or a QTI zip package"})
    mode = ma.fields.String(load_default="create", validate=ma.validate.OneOf(MODES), metadata={
        "description": "create: existing codes are refused (409); upsert: existing items get "
                       "a new version / parameter set where the file differs"})
    skill = ma.fields.String(validate=ma.validate.Length(1, 80), metadata={
        "description": "Skill of new items whose file states none (QTI from other tools)"})


class ImportedItemSchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    version = ma.fields.Integer()
    status = ma.fields.String()
    outcome = ma.fields.String(metadata={"description": "created, updated or unchanged"})


class ImportResultSchema(ma.Schema):
    format = ma.fields.String(metadata={"description": "csv or qti"})
    mode = ma.fields.String()
    parameters_only = ma.fields.Boolean()
    created = ma.fields.Integer()
    updated = ma.fields.Integer()
    unchanged = ma.fields.Integer()
    parameter_sets = ma.fields.Integer(metadata={"description": "New active parameter sets"})
    item_ids = ma.fields.List(ma.fields.Integer())
    items = ma.fields.List(ma.fields.Nested(ImportedItemSchema))


class ItemImportJobSchema(ma.Schema):
    """A large import carried out by a background worker, all or nothing."""

    id = ma.fields.Integer()
    filename = ma.fields.String()
    mode = ma.fields.String()
    n_records = ma.fields.Integer(metadata={"description": "Records in the file"})
    status = ma.fields.Enum(ImportStatus, by_value=True, metadata={
        "description": "queued, running, succeeded (every record applied) or failed (none)"})
    message = ma.fields.String()
    error = ma.fields.String(allow_none=True, metadata={"description": "Why it failed"})
    problems = ma.fields.List(ma.fields.Dict(), allow_none=True, metadata={
        "description": "When it failed: each refused record, with line, item_id and field"})
    result = ma.fields.Nested(ImportResultSchema, allow_none=True, metadata={
        "description": "When it succeeded: what the import did"})
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)


class ExportArgs(ma.Schema):
    format = ma.fields.String(load_default="csv", validate=ma.validate.OneOf(list(EXPORTS)))
    status = ma.fields.Enum(ItemStatus, by_value=True)
    skill = ma.fields.String()
    tag = ma.fields.String()


# -- helpers -------------------------------------------------------------------------------------


def _item(item_id: int) -> Item:
    item = get_session().get(Item, item_id)
    if item is None:
        raise NotFound(f"no item {item_id}")
    return item


def _summary(item: Item) -> dict[str, Any]:
    active = item.active_parameters
    return {"id": item.id, "code": item.code, "skill": item.skill, "status": item.status.value,
            "content_tags": item.content_tags, "version": item.version, "stem": item.stem,
            "has_parameters": active is not None, "model": active.model if active else None}


def _usernames(ids: set[int | None]) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    rows = get_session().execute(select(User.id, User.username).where(User.id.in_(ids)))
    return dict(rows.all())


def _parameter_set(p: ItemParameterSet, names: dict[int, str]) -> dict[str, Any]:
    return {"id": p.id, **p.as_dict(), "is_active": p.is_active, "source": p.source,
            "provenance": p.provenance or {}, "calibration_run_id": p.calibration_run_id,
            "sample_size": p.sample_size, "created_at": p.created_at,
            "created_by": names.get(p.created_by)}


def _detail(item: Item) -> dict[str, Any]:
    names = _usernames({e.changed_by for e in item.status_events}
                       | {v.created_by for v in item.versions}
                       | {p.created_by for p in item.parameter_sets})
    active = item.active_parameters
    return {
        "id": item.id, "code": item.code, "stem": item.stem, "options": list(item.options),
        "key": item.key, "rationale": item.rationale, "media": list(item.media or ()),
        "skill": item.skill, "content_tags": item.content_tags, "status": item.status.value,
        "version": item.version, "created_at": item.created_at, "updated_at": item.updated_at,
        "parameters": _parameter_set(active, names) if active is not None else None,
        "parameter_sets": [_parameter_set(p, names) for p in item.parameter_sets],
        "status_history": [_event(e, names) for e in item.status_events],
        "versions": [{"version": v.version, "created_at": v.created_at,
                      "created_by": names.get(v.created_by), "note": v.note}
                     for v in item.versions],
        "language": item.language, "translations": translations_of(item),
    }


def _translation(item: Item, translation) -> dict[str, Any]:
    return {"item_id": item.id, "code": item.code, "language": translation.language,
            "source_language": item.language, "source_version": translation.source_version,
            "updated_at": translation.updated_at, **translation.as_dict()}


def _event(event, names: dict[int, str]) -> dict[str, Any]:
    return {"id": event.id,
            "from_status": event.from_status.value if event.from_status else None,
            "to_status": event.to_status.value, "by": names.get(event.changed_by),
            "at": event.changed_at, "reason": event.reason}


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _file_problem(status: int, title: str, detail: str, errors: list[dict[str, Any]],
                  **members: Any) -> Response:
    """A problem+json response with extension members (``line``, ``item_id``...) when known."""
    response = problem(status, title, detail, errors)
    body = json.loads(response.get_data(as_text=True))
    body.update({k: v for k, v in members.items() if v is not None})
    response.set_data(json.dumps(body))
    return response


def _interchange_problem(error: InterchangeError, filename: str) -> Response:
    label = filename or "the file"
    return _file_problem(
        422, "Unprocessable content", f"{label}: {error}",
        [{"field": "file", "message": text} for text in error.problems],
        line=error.line, location=error.field, item_id=error.item_id, source=error.source,
    )


# -- views ---------------------------------------------------------------------------------------


@blp.route("/items")
class Items(MethodView):
    @requires(*STAFF)
    @blp.arguments(ItemListArgs(), location="query")
    @blp.response(200, page_of(ItemSummarySchema, "ItemPage"))
    def get(self, args):
        """The bank's items, by code; filter by text (code or stem), skill, status or tag."""
        query = (select(Item).options(selectinload(Item.tags), selectinload(Item.parameter_sets))
                 .order_by(Item.code))
        if args.get("q"):
            pattern = _like(args["q"])
            query = query.where(Item.code.ilike(pattern, escape="\\")
                                | Item.stem.ilike(pattern, escape="\\"))
        if args.get("skill"):
            query = query.where(Item.skill == args["skill"])
        if args.get("status"):
            query = query.where(Item.status == args["status"])
        if args.get("tag"):
            query = query.where(Item.id.in_(select(ItemTag.item_id)
                                            .where(ItemTag.tag == args["tag"])))
        return paginate(get_session(), query, args, transform=_summary)

    @requires(*STAFF)
    @blp.arguments(ItemInputSchema())
    @blp.response(201, ItemSchema)
    @blp.alt_response(409, description="An item with this code exists")
    def post(self, data):
        """Add an item (a draft, version 1)."""
        session = get_session()
        item = create_item(session, **data, user_id=current_user().id)
        session.flush()
        session.commit()
        return _detail(item)


@blp.route("/items/<int:item_id>")
class ItemById(MethodView):
    @requires(*STAFF)
    @blp.response(200, ItemSchema)
    @blp.alt_response(404, description="No such item")
    def get(self, item_id):
        """One item: content, key, status history, versions and every parameter set."""
        return _detail(_item(item_id))

    @requires(*STAFF)
    @blp.arguments(ItemPatchSchema())
    @blp.response(200, ItemSchema)
    @blp.alt_response(409, description="expected_version is not the item's version")
    def patch(self, data, item_id):
        """Change an item's content (a new version), skill or content tags."""
        session = get_session()
        item = _item(item_id)
        note, expected = data.pop("note"), data.pop("expected_version", None)
        update_item(session, item, data, user_id=current_user().id, note=note,
                    expected_version=expected)
        session.commit()
        return _detail(item)


@blp.route("/items/<int:item_id>/translations/<language>")
class ItemTranslationByLanguage(MethodView):
    @requires(*STAFF)
    @blp.response(200, TranslationSchema)
    @blp.alt_response(404, description="No such item, or no translation in this language")
    def get(self, item_id, language):
        """The item's text in one language other than its source language."""
        item = _item(item_id)
        found = next((t for t in item.translations if t.language == language), None)
        if found is None:
            raise NotFound(f"item {item_id} has no translation in {language!r}")
        return _translation(item, found)

    @requires(*STAFF)
    @blp.arguments(TranslationInputSchema())
    @blp.response(200, TranslationSchema)
    @blp.alt_response(422, description="Not a language tag, the item's own language, or not "
                                       "as many options as the item")
    def put(self, data, item_id, language):
        """Save the item's stem, options and rationale in ``language`` (created or replaced).

        The key, media and parameters stay the item's. Tests deliver it to attempts in this
        language started from now on.
        """
        session = get_session()
        item = _item(item_id)
        translation, _created = set_translation(session, item, language,
                                                user_id=current_user().id, **data)
        session.commit()
        return _translation(item, translation)

    @requires(*STAFF)
    @blp.response(204)
    @blp.alt_response(404, description="No such item, or no translation in this language")
    def delete(self, item_id, language):
        """Remove the item's text in ``language``; attempts in it show the source text."""
        session = get_session()
        delete_translation(session, _item(item_id), language)
        session.commit()
        return ""


@blp.route("/items/<int:item_id>/versions/<int:version>")
class ItemVersionById(MethodView):
    @requires(*STAFF)
    @blp.response(200, VersionSchema)
    @blp.alt_response(404, description="No such item or version")
    def get(self, item_id, version):
        """One saved version of an item's content."""
        item = _item(item_id)
        row = get_session().scalar(select(ItemVersion).where(ItemVersion.item_id == item.id,
                                                             ItemVersion.version == version))
        if row is None:
            raise NotFound(f"item {item_id} has no version {version} (it is at version "
                           f"{item.version})")
        names = _usernames({row.created_by})
        return {"item_id": item.id, "code": item.code, "version": row.version,
                "stem": row.stem, "options": list(row.options), "key": row.key,
                "rationale": row.rationale, "media": list(row.media or ()),
                "created_at": row.created_at, "created_by": names.get(row.created_by),
                "note": row.note}


@blp.route("/items/<int:item_id>/status")
class ItemStatusChange(MethodView):
    @requires(*STAFF)
    @blp.arguments(StatusChangeSchema())
    @blp.response(200, StatusEventSchema)
    @blp.alt_response(409, description="The item has this status already, or would be "
                                       "operational without parameters")
    def post(self, data, item_id):
        """Move an item through its lifecycle (draft, pretest, operational, retired)."""
        session = get_session()
        item = _item(item_id)
        user = current_user()
        event = change_status(session, item, data["status"], user_id=user.id,
                              reason=data["reason"])
        session.commit()
        return _event(event, {user.id: user.username})


@blp.route("/items/<int:item_id>/parameter-sets")
class ItemParameterSets(MethodView):
    @requires(*STAFF)
    @blp.arguments(ParameterSetInputSchema())
    @blp.response(201, ParameterSetSchema)
    def post(self, data, item_id):
        """Publish new parameters: they become the active set; the earlier sets are kept.

        Tests deliver the new parameters to attempts started from now on; attempts in progress
        keep the bank snapshot they started with.
        """
        session = get_session()
        item = _item(item_id)
        user = current_user()
        source, sample_size = data.pop("source"), data.pop("sample_size")
        new = add_parameter_set(session, item, data, source=source, sample_size=sample_size,
                                provenance={"via": "api"}, user_id=user.id)
        session.commit()
        return _parameter_set(new, {user.id: user.username})


@blp.route("/items/import")
class ItemImport(MethodView):
    @requires(*STAFF)
    @blp.arguments(ImportArgs(), location="files")
    @blp.response(200, ImportResultSchema)
    @blp.alt_response(202, schema=ItemImportJobSchema, description=(
        "A large file (more records than the server imports at once, 1,000 by default) is "
        "imported by a background worker: poll the import at Location"))
    @blp.alt_response(409, description="mode=create and some codes exist (listed in errors)")
    @blp.alt_response(413, description="The upload is larger than the server accepts")
    @blp.alt_response(503, description="A large file, and the job queue cannot be used")
    def post(self, args):
        """Import items from CSV, QTI XML or a QTI zip package, all or nothing.

        A CSV without a ``stem`` column updates the parameters of existing items. Parameters
        that differ from an item's active set become a new active set with source ``import``.
        Errors name the CSV line, or the XML element and its line, in ``detail`` and ``errors``.
        A file that does not parse is refused at once (422). A parsed file of more than 1,000
        records is queued for a background worker (202 with the import and its ``Location``);
        until the import has succeeded none of its items is in the bank, and a failed import
        (its ``problems`` list every refused record) leaves none.
        """
        upload = args["file"]
        if not isinstance(upload, FileStorage):
            raise Invalid("file must be a file part of a multipart/form-data body", "file")
        data, filename = upload.read(), upload.filename or ""
        if not data:
            raise Invalid(f"{filename or 'the file'} is empty", "file")
        try:
            parsed = read_upload(data, filename)
        except InterchangeError as error:
            return _interchange_problem(error, filename)
        session = get_session()
        if len(parsed.records) > current_app.config.get("ITEM_IMPORT_SYNC_LIMIT", SYNC_LIMIT):
            return _queue_import(session, data, filename, args, len(parsed.records))
        try:
            summary = apply_import(session, parsed, mode=args["mode"],
                                   user_id=current_user().id, default_skill=args.get("skill"))
        except ExistingItems as error:
            return _file_problem(409, "Conflict", str(error), error.problems)
        except ImportRejected as error:
            return _file_problem(422, "Unprocessable content",
                                 f"{filename or 'the file'}: {error}", error.problems,
                                 line=error.line, item_id=error.item_id)
        session.commit()
        return summary.as_dict()


def _queue_import(session, data: bytes, filename: str, args: dict[str, Any],
                  n_records: int) -> Response:
    """Record a large import, hand it to the worker and answer 202 with where to poll it."""
    try:
        url = jobs.queue_url(current_app.config.get("HUEY_URL"), current_app.instance_path)
        queue = jobs.get_queue(url)
    except Exception as error:  # misconfigured, or its storage cannot be opened
        raise QueueUnavailable(f"the job queue cannot be used: {error}") from None
    job = create_import(session, data=data, filename=filename, mode=args["mode"],
                        skill=args.get("skill"), n_records=n_records,
                        user_id=current_user().id)
    session.commit()  # the worker reads the import from the database
    try:
        database_url = (engine_of(current_app).url.render_as_string(hide_password=False)
                        if queue.immediate else None)  # credentials never travel in the queue
        jobs.enqueue_item_import(queue, job.id, database_url)
    except Exception as error:
        detail = f"could not queue item import {job.id}: {error}"
        job.status, job.error, job.content = ImportStatus.FAILED, detail, None
        job.finished_at = utcnow()
        session.commit()
        raise QueueUnavailable(detail) from None
    session.refresh(job)  # immediate mode, or a quick worker, may have moved it on
    location = url_for("items.ItemImportById", import_id=job.id)
    return Response(json.dumps(ItemImportJobSchema().dump(job)), status=202,
                    mimetype="application/json", headers={"Location": location})


@blp.route("/items/imports/<int:import_id>")
class ItemImportById(MethodView):
    @requires(*STAFF)
    @blp.response(200, ItemImportJobSchema)
    @blp.alt_response(404, description="No such import")
    def get(self, import_id):
        """A large import: its status, then what it did, or every record it refused.

        An import still ``running`` 30 minutes after it started lost its worker: it is reported
        (and stored) as ``failed``, with nothing of it in the bank.
        """
        session = get_session()
        job = session.get(ImportJob, import_id)
        if job is None:
            raise NotFound(f"no item import {import_id}")
        if reap_stalled(session, job):
            session.commit()
        return job


@blp.route("/items/export")
class ItemExport(MethodView):
    @requires(*STAFF)
    @blp.arguments(ExportArgs(), location="query")
    @blp.doc(responses={"200": {"description": "The file, as an attachment", "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/zip": {"schema": {"type": "string", "format": "binary"}}}}})
    def get(self, args):
        """Export items as CSV, parameters-only CSV or a QTI 3.0 zip package (with parameters)."""
        writer, content_type, name = EXPORTS[args["format"]]
        records = export_records(get_session(), status=args.get("status"),
                                 skill=args.get("skill"), tag=args.get("tag"))
        try:
            body = writer(records)
        except InterchangeError as error:
            return _interchange_problem(error, name)
        response = Response(body, content_type=content_type)
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
