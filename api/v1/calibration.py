"""Calibration runs: uploads, runs, review, publication.

A run is queued here and carried out by a worker (``cat-engine worker``, see :mod:`api.jobs`);
callers poll ``GET /calibration/runs/{id}`` for its status and progress.
"""

from __future__ import annotations

import marshmallow as ma
from flask import current_app, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from flask_smorest.fields import Upload
from sqlalchemy import select
from sqlalchemy.orm import defer

from api import jobs
from api.db import engine_of, get_session
from api.services import calibration_runs as service
from api.v1.auth import current_user, requires
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from item_bank.models import CalibrationRun, ResponseUpload, RunStatus
from storage import utcnow
from storage.accounts import Role
from storage.errors import ServiceError

blp = Blueprint("calibration", __name__,
                description="Calibration runs: uploads, runs, review, publication")

STAFF = (Role.ASSESSOR, Role.ADMIN)


class QueueUnavailable(ServiceError):
    """The job queue is misconfigured or unreachable (503)."""

    status = 503
    title = "Service unavailable"


# -- schemas -------------------------------------------------------------------------------------


class UploadFileSchema(ma.Schema):
    file = Upload(required=True, metadata={"description": (
        "Response data: long CSV person_id,item_id,response[,group] or wide CSV (first column "
        "the person id, an optional group column, one column per item code; empty = not "
        "presented)")})


class UploadBriefSchema(ma.Schema):
    """An upload in a list: its sizes."""

    id = ma.fields.Integer()
    filename = ma.fields.String()
    layout = ma.fields.String(metadata={"description": "long or wide"})
    n_persons = ma.fields.Integer()
    n_items = ma.fields.Integer()
    n_responses = ma.fields.Integer()
    uploaded_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()


class UploadSchema(UploadBriefSchema):
    """One upload, with what the bank makes of its item codes."""

    has_groups = ma.fields.Boolean(metadata={"description": "a group column (for DIF)"})
    unknown_items = ma.fields.List(ma.fields.String(), metadata={
        "description": "Item codes the bank does not have (new items; not published)"})
    n_unknown_items = ma.fields.Integer()
    groups = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "The groups of the group column (for DIF), largest first: "
                       "{group, persons}"})


class RunSettingsSchema(ma.Schema):
    max_iterations = ma.fields.Integer(validate=ma.validate.Range(1, 10_000))
    tolerance = ma.fields.Float(validate=ma.validate.Range(0, 1, min_inclusive=False))
    min_responses = ma.fields.Integer(validate=ma.validate.Range(2, 1_000_000), metadata={
        "description": "Fewest responses an estimated item may have (default 10)"})
    dif_reference = ma.fields.String(validate=ma.validate.Length(1, 200), metadata={
        "description": "Reference group for DIF (default: the largest group)"})
    dif_focal = ma.fields.List(ma.fields.String(validate=ma.validate.Length(1, 200)),
                               validate=ma.validate.Length(min=1), metadata={
        "description": "Focal groups for DIF, each compared with the reference group "
                       "(default: every other group)"})
    languages_separately = ma.fields.Boolean(metadata={
        "description": "Online runs: give each item its own parameters per attempt language "
                       "with at least min_responses responses (columns CODE@language, "
                       "published as that language's set); default false: languages pooled"})


class RunCreateSchema(ma.Schema):
    kind = ma.fields.String(load_default="upload", validate=ma.validate.OneOf(service.KINDS),
                            metadata={"description": "upload (a response file) or online "
                                                     "(pretest items of a test)"})
    upload_id = ma.fields.Integer(validate=ma.validate.Range(1, 2**31 - 1))
    test_id = ma.fields.Integer(validate=ma.validate.Range(1, 2**31 - 1))
    model = ma.fields.String(load_default="2pl", validate=ma.validate.OneOf(service.MODELS))
    anchor = ma.fields.Boolean(load_default=False, metadata={"description": (
        "Upload runs: hold the bank's operational items at their active parameters and "
        "estimate only the others, on the bank's scale (online runs always do)")})
    settings = ma.fields.Nested(RunSettingsSchema, load_default=dict)
    items = ma.fields.List(ma.fields.String(validate=ma.validate.Length(1, 120)),
                           validate=ma.validate.Length(min=1), metadata={
                               "description": "Only these items (upload) or pretest items "
                                              "(online)"})


class RunBriefSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    upload_id = ma.fields.Integer(allow_none=True)
    test_id = ma.fields.Integer(allow_none=True)
    model = ma.fields.String()
    settings = ma.fields.Dict()
    status = ma.fields.Enum(RunStatus, by_value=True)
    progress = ma.fields.Float(metadata={"description": "0 to 1"})
    message = ma.fields.String()
    error = ma.fields.String(allow_none=True, metadata={"description": "Why the run failed"})
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
    published_by = ma.fields.Integer(allow_none=True)
    published_at = UtcDateTime(allow_none=True)


class RunSchema(RunBriefSchema):
    summary = ma.fields.Function(lambda run: (run.result or {}).get("summary"), metadata={
        "description": "Once succeeded: log-likelihood, AIC, BIC, convergence, sizes, "
                       "misfitting and DIF-flagged items"})
    input = ma.fields.Function(lambda run: (run.result or {}).get("input"))


class RunListArgs(PageArgs):
    status = ma.fields.Enum(RunStatus, by_value=True)
    kind = ma.fields.String(validate=ma.validate.OneOf(service.KINDS))


class ItemResultSchema(ma.Schema):
    item_id = ma.fields.String(metadata={"description": "Item code"})
    model = ma.fields.String()
    fixed = ma.fields.Boolean(metadata={"description": "Held fixed (anchor), not estimated"})
    n = ma.fields.Integer(metadata={"description": "Responses to the item"})
    parameters = ma.fields.Dict(metadata={"description": "model, a, b, c, d, thresholds"})
    se = ma.fields.Dict(metadata={"description": "Standard errors of a, b, c, thresholds"})
    fit = ma.fields.Dict(metadata={"description": "S-X2 (df, p), infit, outfit, flags, misfit"})
    dif = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "One entry per focal group: ETS category A/B/C, statistic, favours"})
    flags = ma.fields.List(ma.fields.String(), metadata={"description": "Fit and DIF flags"})
    bank = ma.fields.Dict(allow_none=True, metadata={
        "description": "The item in the bank now (status, active parameters), or null"})


class ItemResultArgs(PageArgs):
    flagged = ma.fields.Boolean(metadata={"description": "Only items with (or without) flags"})


class PublishSchema(ma.Schema):
    items = ma.fields.List(ma.fields.String(validate=ma.validate.Length(1, 120)), metadata={
        "description": "Item codes to publish (default: every estimated item in the bank "
                       "except those with category C DIF or flagged for misfit, which are "
                       "published only when named here)"})
    promote = ma.fields.Boolean(load_default=False, metadata={
        "description": "Also move the published pretest items to operational"})
    linking = ma.fields.String(
        allow_none=True, load_default=None, validate=ma.validate.OneOf(service.LINKING_METHODS),
        metadata={"description": (
            "An unanchored run that estimated operational items is on its own sample's scale: "
            "put its estimates on the bank's scale first, by this method, through the common "
            "operational items (the bank's active parameters are the reference)")})
    confirm_unlinked = ma.fields.Boolean(load_default=False, metadata={"description": (
        "Publish an unanchored run over operational items on its own scale, without linking "
        "(refused with a 422 unless linking or this is given)")})


class PublishedSchema(ma.Schema):
    item_id = ma.fields.String()
    parameter_set_id = ma.fields.Integer()


class SkippedSchema(ma.Schema):
    item_id = ma.fields.String()
    reason = ma.fields.String()


class LinkingSchema(ma.Schema):
    method = ma.fields.String()
    A = ma.fields.Float(metadata={"description": "theta_bank = A theta_run + B"})
    B = ma.fields.Float()
    common_items = ma.fields.List(ma.fields.String())
    criterion = ma.fields.Float(allow_none=True, metadata={
        "description": "The minimised loss (characteristic-curve methods)"})


class PublicationSchema(ma.Schema):
    run = ma.fields.Nested(RunSchema)
    published = ma.fields.List(ma.fields.Nested(PublishedSchema))
    skipped = ma.fields.List(ma.fields.Nested(SkippedSchema))
    promoted = ma.fields.List(ma.fields.String())
    linking = ma.fields.Nested(LinkingSchema, allow_none=True, metadata={
        "description": "How the estimates were put on the bank's scale, when they were linked"})


# -- views ---------------------------------------------------------------------------------------


@blp.route("/calibration/uploads")
class Uploads(MethodView):
    @requires(*STAFF)
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, page_of(UploadBriefSchema, "ResponseUploadPage"))
    def get(self, args):
        """Response-data uploads, newest first (sizes only; fetch one for its unknown items)."""
        query = (select(ResponseUpload).options(defer(ResponseUpload.content))
                 .order_by(ResponseUpload.id.desc()))
        return paginate(get_session(), query, args)

    @requires(*STAFF)
    @blp.arguments(UploadFileSchema(), location="files")
    @blp.response(201, UploadSchema)
    def post(self, files):
        """Upload response data (multipart ``file``) for calibration; checked, then kept as sent.

        Item ids are item codes; codes the bank does not know are allowed (new items) and listed.
        """
        session = get_session()
        file = files["file"]
        upload = service.create_upload(session, filename=file.filename or "",
                                       content=file.read(), user_id=current_user().id)
        view = service.upload_view(session, upload)
        session.commit()
        return view, 201, {"Location": url_for("calibration.UploadById", upload_id=upload.id)}


@blp.route("/calibration/uploads/<int:upload_id>")
class UploadById(MethodView):
    @requires(*STAFF)
    @blp.response(200, UploadSchema)
    def get(self, upload_id):
        """One upload: its layout and size, and the item codes the bank does not know."""
        session = get_session()
        return service.upload_view(session, service.get_upload(session, upload_id))


def _reap(session) -> None:
    """Fail the runs of dead workers before anyone reads a stale ``running``."""
    if service.reap_stalled_runs(session):
        session.commit()


@blp.route("/calibration/runs")
class Runs(MethodView):
    @requires(*STAFF)
    @blp.arguments(RunListArgs(), location="query")
    @blp.response(200, page_of(RunBriefSchema, "CalibrationRunPage"))
    def get(self, args):
        """Calibration runs, newest first (filter by ``status``, ``kind``)."""
        session = get_session()
        _reap(session)
        query = (select(CalibrationRun).options(defer(CalibrationRun.result))
                 .order_by(CalibrationRun.id.desc()))
        for name in ("status", "kind"):
            if args.get(name) is not None:
                query = query.where(getattr(CalibrationRun, name) == args[name])
        return paginate(session, query, args)

    @requires(*STAFF)
    @blp.arguments(RunCreateSchema())
    @blp.response(202, RunSchema)
    @blp.alt_response(404, description="No such upload or test")
    @blp.alt_response(503, description="The job queue is misconfigured or unreachable")
    def post(self, data):
        """Queue a calibration run: an upload (optionally anchored), or online (pretest items).

        Returns at once with the run (``queued``) and its ``Location``; poll it for progress.
        """
        session = get_session()
        queue = _queue()
        run = service.create_run(session, user_id=current_user().id, **data)
        session.commit()  # the worker reads the run from the database
        try:
            # A worker uses its own DATABASE_URL: credentials never travel in the queue. Only
            # immediate mode (tests) runs in this process and is handed this app's database.
            jobs.enqueue_calibration(queue, run.id, _database_url() if queue.immediate else None)
        except Exception as error:
            detail = f"could not queue calibration run {run.id}: " + service.failure_message(
                error)
            run.status, run.error, run.finished_at = RunStatus.FAILED, detail, utcnow()
            session.commit()
            raise QueueUnavailable(detail) from None
        session.refresh(run)  # immediate mode, or a quick worker, may have moved it on
        return run, 202, {"Location": url_for("calibration.RunById", run_id=run.id)}


@blp.route("/calibration/runs/<int:run_id>")
class RunById(MethodView):
    @requires(*STAFF)
    @blp.response(200, RunSchema)
    def get(self, run_id):
        """A run: status, progress, message, error, times and, once done, its summary.

        A ``running`` run whose worker has given no sign of life for five minutes is reported
        (and stored) as ``failed``.
        """
        session = get_session()
        _reap(session)
        return service.get_run(session, run_id)


@blp.route("/calibration/runs/<int:run_id>/items")
class RunItems(MethodView):
    @requires(*STAFF)
    @blp.arguments(ItemResultArgs(), location="query")
    @blp.response(200, page_of(ItemResultSchema, "CalibrationItemPage"))
    @blp.alt_response(409, description="The run has no results (queued, running or failed)")
    def get(self, args, run_id):
        """Per-item results for review: parameters, se, n, fit and DIF flags, the bank's now."""
        session = get_session()
        run = service.get_run(session, run_id)
        page, per_page = args["page"], args["per_page"]
        total, entries = service.run_items(session, run, flagged=args.get("flagged"),
                                           offset=(page - 1) * per_page, limit=per_page)
        return {"items": entries, "page": page, "per_page": per_page, "total": total,
                "pages": (total + per_page - 1) // per_page}


class ScaleArgs(ma.Schema):
    method = ma.fields.String(load_default="stocking-lord",
                              validate=ma.validate.OneOf(service.LINKING_METHODS))


class ScaleSchema(ma.Schema):
    anchored = ma.fields.Boolean(metadata={"description": "Held bank items fixed: on the bank's "
                                                          "scale already"})
    needs_decision = ma.fields.Boolean(metadata={"description": (
        "Publishing needs linking or confirm_unlinked (unanchored, over operational items)")})
    operational = ma.fields.List(ma.fields.String())
    common = ma.fields.List(ma.fields.String(), metadata={
        "description": "Operational items linking uses (same model in the run and the bank)"})
    left_out = ma.fields.Dict(metadata={"description": "Operational items linking cannot use, "
                                                       "with why"})
    linking = ma.fields.Dict(allow_none=True, metadata={"description": (
        "method, A, B, common_items, criterion; or error (why it cannot be computed)")})
    items = ma.fields.List(ma.fields.Dict(), metadata={"description": (
        "Per estimated item: estimated (the run's scale), linked (the bank's scale, when "
        "linked) and bank (the active parameters now), side by side")})


@blp.route("/calibration/runs/<int:run_id>/scale")
class RunScale(MethodView):
    @requires(*STAFF)
    @blp.arguments(ScaleArgs(), location="query")
    @blp.response(200, ScaleSchema)
    @blp.alt_response(409, description="The run has no results (queued, running or failed)")
    def get(self, args, run_id):
        """Before publishing: is the run on the bank's scale, and its estimates linked onto it.

        For an unanchored run over operational items, the linking constants by ``method``
        through the common operational items, and every estimated item's parameters as
        estimated, as linked and as they are in the bank now.
        """
        session = get_session()
        run = service.get_run(session, run_id)
        _total, entries = service.run_items(session, run)
        review = service.scale_review(session, run, methods=(args["method"],))
        result = review.links.get(args["method"])
        linking = (None if result is None else {"error": result} if isinstance(result, str)
                   else service.link_summary(result))
        estimated = [e for e in entries if not e["fixed"]]
        moved = (service.linked_entries(estimated, result)
                 if result is not None and not isinstance(result, str) else
                 [None] * len(estimated))
        items = [{"item_id": e["item_id"], "estimated": e["parameters"],
                  "linked": m["parameters"] if m else None,
                  "bank": e["bank"]["parameters"] if e["bank"] else None}
                 for e, m in zip(estimated, moved, strict=True)]
        return {"anchored": review.anchored, "needs_decision": review.needs_decision,
                "operational": list(review.operational), "common": list(review.common),
                "left_out": review.left_out, "linking": linking, "items": items}


@blp.route("/calibration/runs/<int:run_id>/publish")
class RunPublish(MethodView):
    @requires(*STAFF)
    @blp.arguments(PublishSchema())
    @blp.response(200, PublicationSchema)
    @blp.alt_response(409, description="The run has not succeeded, or is published already")
    def post(self, data, run_id):
        """Publish a succeeded run: new active parameter sets (old ones kept), optional promotion.

        Items the bank does not have, and anchors, are skipped and listed. One transaction.
        An unanchored run that estimated operational items needs ``linking`` (onto the bank's
        scale through those common items) or ``confirm_unlinked``: without either it is a 422.
        """
        session = get_session()
        outcome = service.publish_run(session, run_id, items=data.get("items"),
                                      promote=data["promote"], user_id=current_user().id,
                                      linking=data["linking"],
                                      confirm_unlinked=data["confirm_unlinked"])
        session.commit()
        return outcome


def _queue() -> jobs.Queue:
    try:
        url = jobs.queue_url(current_app.config.get("HUEY_URL"), current_app.instance_path)
        return jobs.get_queue(url)
    except Exception as error:  # misconfigured, or its storage cannot be opened
        raise QueueUnavailable("the job queue cannot be used: "
                               + service.failure_message(error)) from None


def _database_url() -> str:
    return engine_of(current_app).url.render_as_string(hide_password=False)
