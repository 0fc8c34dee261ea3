"""Pages of the assessment team (assessors and admins): the item bank, an item with its curves,
imports, calibration runs, pretest items (test design by simulation: :mod:`api.assess_simulation`).

Every view calls the services (:mod:`item_bank.services`, :mod:`item_bank.importing`,
:mod:`api.services.calibration_runs`, :func:`cat_engine.simulate`) directly and commits once.
Forms are posted, then redirected to a page (303); a form with errors is shown again, with the
errors next to the fields and what was typed kept (422). Other roles get a 403 page.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import defer, selectinload

from api import assess_words as words
from api import jobs
from api.db import engine_of, get_session
from api.pages import safe_next
from api.services import calibration_runs as runs
from api.services.language_dif import language_dif
from api.staff import for_roles, form_int, install_error_pages, not_found, page
from api.v1.items import EXPORTS
from cat_engine import ItemBank
from evidence.models import Attempt
from item_bank.importing import (
    MODES,
    ExistingItems,
    ImportRejected,
    apply_import,
    item_record,
    read_upload,
)
from item_bank.interchange import (
    InterchangeError,
    ItemRecord,
    ParameterRecord,
    write_items_csv,
)
from item_bank.models import (
    AdaptiveTest,
    CalibrationRun,
    Item,
    ItemExposure,
    ItemParameterSet,
    ItemStatus,
    ItemTag,
    ResponseUpload,
    RunStatus,
)
from item_bank.services import (
    BankError,
    change_status,
    save_test,
    update_item,
)
from item_bank.services import Conflict as BankConflict
from reports import charts
from storage import utcnow
from storage.accounts import Role, User
from storage.errors import Conflict, Invalid, NotFound

bp = Blueprint("assess", __name__, url_prefix="/assess")
install_error_pages(bp)

STAFF = (Role.ASSESSOR, Role.ADMIN)
PER_PAGE = 25
MAX_REASON = 2000
IMPORT_RESULT = "assess_import_result"
IMPORT_SHOWN = 20
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.PUBLISHED)

STATUS_NAMES = {
    "draft": _l("draft"), "pretest": _l("pretest"), "operational": _l("operational"),
    "retired": _l("retired"),
}
LINKING_NAMES = {
    "stocking-lord": _l("Stocking-Lord (test characteristic curves)"),
    "mean-sigma": _l("mean/sigma (difficulties)"),
    "haebara": _l("Haebara (item characteristic curves)"),
    "mean-mean": _l("mean/mean (discriminations)"),
}
RUN_STATUS_NAMES = {
    "queued": _l("queued"), "running": _l("running"), "succeeded": _l("succeeded"),
    "failed": _l("failed"), "published": _l("published"),
}


def _refusal() -> tuple[str, str]:
    return (_("Only the assessment team may see this page"),
            _("These pages are for assessors and administrators."))


def staff_only(view):
    """Assessors and admins only (others: sign in, or a 403 page)."""
    return for_roles(*STAFF, refusal=_refusal)(view)


def _render(template: str, user: User, status: int = 200, **context: Any) -> Response:
    return page(template, status, user=user, status_names=STATUS_NAMES,
                run_status_names=RUN_STATUS_NAMES, **context)


# -- the bank ------------------------------------------------------------------------------------


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


#: Sortable columns of the bank page: code, discrimination, difficulty, exposure.
SORTS = ("code", "a", "b", "exposure")
#: Export formats offered on the bank page (:data:`api.v1.items.EXPORTS`).
EXPORT_NAMES = {"csv": _l("Items (CSV)"), "parameters-csv": _l("Parameters only (CSV)"),
                "qti-zip": _l("QTI 3.0 package (zip)")}


def _bank_query(form: dict[str, str], errors: dict[str, str]):
    """Items matching the bank page's filters (text, skill, status, tag)."""
    query = select(Item)
    if form["q"]:
        pattern = _like(form["q"])
        query = query.where(Item.code.ilike(pattern, escape="\\")
                            | Item.stem.ilike(pattern, escape="\\"))
    if form["skill"]:
        query = query.where(Item.skill == form["skill"])
    if form["status"]:
        if form["status"] in STATUS_NAMES:
            query = query.where(Item.status == ItemStatus(form["status"]))
        else:
            errors["status"] = _("Choose one of the statuses offered.")
    if form["tag"]:
        query = query.where(Item.id.in_(select(ItemTag.item_id).where(ItemTag.tag == form["tag"])))
    return query


@bp.get("/items")
@staff_only
def bank(user: User) -> Response:
    """The bank's items, filtered by text (code or stem), skill, status and tag, sorted by code,
    a, b or exposure; the exposure rate of each; the information and difficulty distribution of
    the items found (with parameters); export of the items found."""
    db = get_session()
    errors: dict[str, str] = {}
    form = {k: (request.args.get(k) or "").strip()[:200] for k in ("q", "skill", "status", "tag")}
    sort = request.args.get("sort", "code")
    sort = sort if sort in SORTS else "code"
    descending = request.args.get("dir") == "desc"
    number = form_int("page", errors, low=1, high=10**6, default=1) or 1
    query = _bank_query(form, errors)
    active = (select(ItemParameterSet.item_id, ItemParameterSet.a, ItemParameterSet.b)
              .where(ItemParameterSet.is_active).subquery())
    exposure = (select(ItemExposure.item_id,
                       func.sum(ItemExposure.administered).label("given"))
                .group_by(ItemExposure.item_id).subquery())
    key = {"code": Item.code, "a": active.c.a, "b": active.c.b,
           "exposure": func.coalesce(exposure.c.given, 0)}[sort]
    ordered = (query.outerjoin(active, active.c.item_id == Item.id)
               .outerjoin(exposure, exposure.c.item_id == Item.id)
               .add_columns(func.coalesce(exposure.c.given, 0))
               .options(selectinload(Item.tags), selectinload(Item.parameter_sets))
               .order_by(key.is_(None), key.desc() if descending else key.asc(), Item.code))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, math.ceil(total / PER_PAGE))
    number = min(number, pages)
    rows = db.execute(ordered.limit(PER_PAGE).offset((number - 1) * PER_PAGE)).unique().all()
    attempts = db.scalar(select(func.count(Attempt.id))) or 0
    items = [row[0] for row in rows]
    rates = {row[0].id: (row[1] / attempts if attempts else None) for row in rows}
    given = {row[0].id: int(row[1]) for row in rows}
    skills = db.scalars(select(Item.skill).distinct().order_by(Item.skill)).all()
    links = {k: v for k, v in form.items() if v}
    overview = _bank_overview(db, query) if not errors else None
    return _render("assess/bank.html", user, 422 if errors else 200, items=items, form=form,
                   errors=errors, skills=skills, total=total, page=number, pages=pages,
                   links=links, sort=sort, descending=descending, rates=rates, given=given,
                   attempts=attempts, overview=overview, export_names=EXPORT_NAMES)


def _bank_overview(db, query) -> dict[str, Any] | None:
    """Information and difficulty charts of the filtered items that have active parameters."""
    found = select(ItemParameterSet).where(ItemParameterSet.is_active,
                                           ItemParameterSet.item_id.in_(
                                               query.with_only_columns(Item.id)))
    records = [{"item_id": str(p.item_id), **{k: v for k, v in p.as_dict().items()
                                               if v is not None}}
               for p in db.scalars(found)]
    if not records:
        return None
    return charts.bank_overview(ItemBank.from_records(records))


@bp.get("/items/export")
@staff_only
def export(user: User) -> Response:
    """The items the bank page's filters find, as a file (:data:`api.v1.items.EXPORTS`)."""
    errors: dict[str, str] = {}
    form = {k: (request.args.get(k) or "").strip()[:200] for k in ("q", "skill", "status", "tag")}
    fmt = request.args.get("format", "csv")
    if fmt not in EXPORTS:
        fmt = "csv"
    query = (_bank_query(form, errors)
             .options(selectinload(Item.tags), selectinload(Item.parameter_sets))
             .order_by(Item.code))
    if errors:
        return redirect(url_for(".bank", **{k: v for k, v in form.items() if v}), 303)
    writer, content_type, name = EXPORTS[fmt]
    try:
        body = writer([item_record(i) for i in get_session().scalars(query)])
    except InterchangeError as error:
        flash(_("The items could not be exported: %(why)s", why=str(error)))
        return redirect(url_for(".bank", **{k: v for k, v in form.items() if v}), 303)
    response = Response(body, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# -- one item ------------------------------------------------------------------------------------


def _usernames(ids: set[int | None]) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return dict(get_session().execute(select(User.id, User.username)
                                      .where(User.id.in_(ids))).all())


def _item_page(user: User, item: Item, errors: dict[str, str] | None = None,
               form: dict[str, str] | None = None, status: int = 200) -> Response:
    names = _usernames({e.changed_by for e in item.status_events}
                       | {p.created_by for p in item.parameter_sets}
                       | {v.created_by for v in item.versions})
    active = item.active_parameters
    curves = charts.item_curves(active.as_dict(), item.code) if active is not None else None
    moves = [s.value for s in ItemStatus if s != item.status]
    return _render("assess/item.html", user, status, item=item, names=names, active=active,
                   curves=curves, moves=moves, errors=errors or {}, form=form or {},
                   flag_words=words.fit_flags, linking_names=LINKING_NAMES,
                   sets=list(reversed(item.parameter_sets)),
                   events=list(reversed(item.status_events)))


def _get_item(item_id: int) -> Item | None:
    return get_session().get(Item, item_id)


@bp.get("/items/<int:item_id>")
@staff_only
def item(user: User, item_id: int) -> Response:
    """An item: content (key marked), status history, parameter sets, curves, status change."""
    found = _get_item(item_id)
    if found is None:
        return not_found(user, _("There is no item %(id)d in the bank.", id=item_id))
    return _item_page(user, found)


def _status_errors(item: Item, status: str, reason: str) -> dict[str, str]:
    errors = {}
    if status not in STATUS_NAMES:
        errors["status"] = _("Choose one of the statuses offered.")
    elif status == item.status.value:
        errors["status"] = _("The item is %(status)s already.", status=STATUS_NAMES[status])
    elif status == ItemStatus.OPERATIONAL and item.active_parameters is None:
        errors["status"] = _("An item needs an active parameter set (calibrate it or import "
                             "its parameters) before it can be operational.")
    if not reason:
        errors["reason"] = _("Say why the status changes.")
    elif len(reason) > MAX_REASON:
        errors["reason"] = _("Keep the reason under %(n)d characters.", n=MAX_REASON)
    return errors


@bp.post("/items/<int:item_id>/status")
@staff_only
def item_status(user: User, item_id: int) -> Response:
    """Move an item to another status, with a reason (recorded with who and when)."""
    db = get_session()
    found = _get_item(item_id)
    if found is None:
        return not_found(user, _("There is no item %(id)d in the bank.", id=item_id))
    status = request.form.get("status", "").strip()
    reason = request.form.get("reason", "").strip()
    errors = _status_errors(found, status, reason)
    if not errors:
        try:
            change_status(db, found, status, user_id=user.id, reason=reason)
        except BankError as error:
            errors[error.field or "status"] = str(error)
    if errors:
        db.rollback()
        return _item_page(user, db.get(Item, item_id), errors,
                          {"status": status, "reason": reason}, 422)
    db.commit()
    flash(_("%(code)s is now %(status)s.", code=found.code, status=STATUS_NAMES[status]))
    return redirect(url_for(".item", item_id=item_id), 303)


EXTRA_OPTION_SLOTS = 2
MAX_OPTIONS = 26


def _edit_form_of(item: Item) -> dict[str, Any]:
    return {"stem": item.stem, "options": list(item.options),
            "key": "" if item.key is None else str(item.key + 1), "rationale": item.rationale,
            "skill": item.skill, "tags": "; ".join(item.content_tags), "note": "",
            "version": str(item.version)}


def _edit_page(user: User, item: Item, form: dict[str, Any], status: int = 200,
               errors: dict[str, str] | None = None) -> Response:
    slots = min(MAX_OPTIONS, max(len(form["options"]) + EXTRA_OPTION_SLOTS, 4))
    options = list(form["options"]) + [""] * (slots - len(form["options"]))
    return _render("assess/edit.html", user, status, item=item, form=form, options=options,
                   errors=errors or {})


@bp.get("/items/<int:item_id>/edit")
@staff_only
def edit_item(user: User, item_id: int) -> Response:
    """The item's content, skill and tags in a form (saving makes a new version)."""
    found = _get_item(item_id)
    if found is None:
        return not_found(user, _("There is no item %(id)d in the bank.", id=item_id))
    return _edit_page(user, found, _edit_form_of(found))


def _edit_changes(form: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """The changes :func:`item_bank.services.update_item` takes, from the edit form."""
    filled = [o for o in form["options"] if o.strip()]
    key = None
    if form["key"]:
        if not (form["key"].isdecimal() and 1 <= int(form["key"]) <= len(filled)):
            errors["key"] = _("Choose the correct option among the options filled in.")
        else:
            key = int(form["key"]) - 1
    if not form["stem"].strip():
        errors["stem"] = _("Write the question.")
    if len(filled) == 1:
        errors["options"] = _("Give at least two options (or none, for an open item).")
    if not form["skill"].strip():
        errors["skill"] = _("Name the skill the item measures.")
    tags = [t.strip() for t in form["tags"].replace(",", ";").split(";") if t.strip()]
    return {"stem": form["stem"].strip(), "options": [o.strip() for o in filled], "key": key,
            "rationale": form["rationale"].strip(), "skill": form["skill"].strip(),
            "content_tags": tags}


@bp.post("/items/<int:item_id>/edit")
@staff_only
def save_item(user: User, item_id: int) -> Response:
    """Save the edited content as a new version (skill and tags as they are); one transaction."""
    db = get_session()
    found = _get_item(item_id)
    if found is None:
        return not_found(user, _("There is no item %(id)d in the bank.", id=item_id))
    form = {name: request.form.get(name, "")[:20_000] for name in
            ("stem", "key", "rationale", "skill", "tags", "note", "version")}
    form["options"] = [o[:2000] for o in request.form.getlist("options")][:MAX_OPTIONS]
    errors: dict[str, str] = {}
    changes = _edit_changes(form, errors)
    expected = int(form["version"]) if form["version"].isdecimal() else None
    before = found.version
    if not errors:
        try:
            update_item(db, found, changes, user_id=user.id, note=form["note"].strip()[:500],
                        expected_version=expected)
        except BankConflict:
            errors["version"] = _("Someone saved this item while you edited it (it is now at "
                                  "version %(n)d). Copy your changes, reload the item and make "
                                  "them again.", n=found.version)
        except BankError as error:
            field = {"content_tags": "tags", "media": "stem"}.get(error.field or "", error.field)
            errors[field if field in form else "stem"] = str(error)
    if errors:
        db.rollback()
        return _edit_page(user, db.get(Item, item_id), form, 422, errors)
    db.commit()
    if found.version != before:
        flash(_("%(code)s is saved as version %(n)d.", code=found.code, n=found.version))
    else:
        flash(_("%(code)s is saved (its content did not change, so no new version).",
                code=found.code))
    return redirect(url_for(".item", item_id=item_id), 303)


@bp.post("/items/<int:item_id>/promote")
@staff_only
def promote(user: User, item_id: int) -> Response:
    """Promote a calibrated pretest item to operational, then go back where the form was."""
    db = get_session()
    back = safe_next(request.form.get("next")) or url_for(".item", item_id=item_id)
    found = _get_item(item_id)
    if found is None:
        return not_found(user, _("There is no item %(id)d in the bank.", id=item_id))
    if found.status != ItemStatus.PRETEST:
        flash(_("%(code)s is not a pretest item.", code=found.code))
    elif found.active_parameters is None:
        flash(_("%(code)s has no parameters yet: calibrate it before promoting it.",
                code=found.code))
    else:
        try:
            change_status(db, found, ItemStatus.OPERATIONAL, user_id=user.id,
                          reason=_("promoted from pretest after calibration"))
        except BankError as error:  # includes the bank's Conflict
            db.rollback()
            flash(_("%(code)s was not promoted: %(why)s", code=found.code, why=str(error)))
        else:
            db.commit()
            flash(_("%(code)s is now operational.", code=found.code))
    return redirect(back, 303)


# -- import --------------------------------------------------------------------------------------


@bp.get("/import")
@staff_only
def import_form(user: User) -> Response:
    """The import form, and the result of the import just made."""
    result = session.pop(IMPORT_RESULT, None)
    if result is not None:
        ids = [item_id for item_id, _outcome in result["items"]]
        found = {i.id: i for i in get_session().scalars(select(Item).where(Item.id.in_(ids)))}
        result["items"] = [
            {"id": item_id, "code": found[item_id].code, "status": found[item_id].status.value,
             "outcome": outcome}
            for item_id, outcome in result["items"] if item_id in found]
    return _render("assess/import.html", user, form={"mode": "create", "skill": ""}, errors={},
                   example_csv=write_items_csv(EXAMPLE_ITEMS),
                   problems=[], result=result)


#: The columns of the item CSV, in the order of the template (read_items_csv reads any order).
TEMPLATE_COLUMNS = ("item_id", "stem", "option_1", "option_2", "option_3", "option_4", "key",
                    "rationale", "skill", "tags", "status", "media", "model", "a", "b", "c", "d")

#: The example file: three items as the bank reads them (written by write_items_csv).
EXAMPLE_ITEMS = (
    ItemRecord(item_id="FRAC-001", stem="Which fraction equals 0.5?",
               options=["1/3", "2/4", "3/5", "5/2"], key=1,
               rationale="2/4 simplifies to 1/2.", skill="fractions",
               content_tags=["grade-6", "equivalence"], status="operational",
               parameters=ParameterRecord("2pl", a=1.2, b=-0.4)),
    ItemRecord(item_id="FRAC-002", stem="What is 3/4 + 1/8?",
               options=["4/12", "7/8", "1", "4/8"], key=1, skill="fractions",
               content_tags=["grade-6"], status="operational",
               parameters=ParameterRecord("3pl", a=1.5, b=0.6, c=0.2)),
    ItemRecord(item_id="FRAC-003", stem="Which is larger: 2/3 or 3/5?",
               options=["2/3", "3/5", "They are equal"], key=0, skill="fractions",
               content_tags=["grade-6", "new"], status="draft"),
)


def _csv_download(text: str, filename: str) -> Response:
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/import/template.csv")
@staff_only
def import_template(user: User) -> Response:
    """An empty item CSV: the header row with every column the import reads."""
    return _csv_download(",".join(TEMPLATE_COLUMNS) + "\r\n", "items-template.csv")


@bp.get("/import/example.csv")
@staff_only
def import_example(user: User) -> Response:
    """An item CSV with three example items (with and without parameters) that imports as is."""
    return _csv_download(write_items_csv(EXAMPLE_ITEMS), "items-example.csv")


@bp.post("/import")
@staff_only
def import_items(user: User) -> Response:
    """Import a CSV or QTI file, all or nothing; problems are listed by line, item and field."""
    db = get_session()
    upload = request.files.get("file")
    form = {"mode": request.form.get("mode", "create"),
            "skill": request.form.get("skill", "").strip()}
    filename = (upload.filename or "") if upload is not None else ""
    errors: dict[str, str] = {}
    problems: list[dict[str, Any]] = []
    data = upload.read() if upload is not None else b""
    if upload is None or not filename:
        errors["file"] = _("Choose a CSV or QTI file to import.")
    elif not data:
        errors["file"] = _("The file %(name)s is empty.", name=filename)
    if form["mode"] not in MODES:
        errors["mode"] = _("Choose one of the modes offered.")
    if len(form["skill"]) > 80:
        errors["skill"] = _("Keep the skill under %(n)d characters.", n=80)
    summary = None
    if not errors:
        try:
            parsed = read_upload(data, filename)
            summary = apply_import(db, parsed, mode=form["mode"], user_id=user.id,
                                   default_skill=form["skill"] or None)
        except InterchangeError as error:
            problems = [{"line": d["line"], "item_id": d["item_id"], "field": d["field"],
                         "message": d["message"]} for d in error.details]
        except (ExistingItems, ImportRejected) as error:
            problems = [{"line": p.get("line"), "item_id": p.get("item_id"),
                         "field": p.get("field"), "message": p["message"]}
                        for p in error.problems]
        except BankError as error:
            problems = [{"line": None, "item_id": None, "field": error.field,
                         "message": str(error)}]
        if problems:
            errors["file"] = _("Nothing was imported: %(name)s has problems (listed below).",
                               name=filename)
    if errors:
        db.rollback()
        return _render("assess/import.html", user, 422, form=form, errors=errors,
                       example_csv=write_items_csv(EXAMPLE_ITEMS),
                       problems=problems, result=None, filename=filename)
    db.commit()
    result = summary.as_dict()
    session[IMPORT_RESULT] = {
        "filename": filename[:120], "format": result["format"], "mode": result["mode"],
        "created": result["created"], "updated": result["updated"],
        "unchanged": result["unchanged"], "parameter_sets": result["parameter_sets"],
        "total": len(result["items"]),
        # Ids and outcomes only: the session is a cookie (4 KB at most); codes are read back.
        "items": [[i["id"], i["outcome"]] for i in result["items"][:IMPORT_SHOWN]],
    }
    flash(_("Imported %(name)s.", name=filename))
    return redirect(url_for(".import_form"), 303)


# -- calibration ---------------------------------------------------------------------------------


def _reap_stalled_runs() -> None:
    """Fail the runs of dead workers before a page shows them as running (and polls forever)."""
    db = get_session()
    if runs.reap_stalled_runs(db):
        db.commit()


def _recent_runs(limit: int = 20) -> list[CalibrationRun]:
    _reap_stalled_runs()
    return list(get_session().scalars(select(CalibrationRun).options(defer(CalibrationRun.result))
                                      .order_by(CalibrationRun.id.desc()).limit(limit)))


def _tests() -> list[AdaptiveTest]:
    return list(get_session().scalars(select(AdaptiveTest).order_by(AdaptiveTest.name)))


def _calibration_page(user: User, status: int = 200, errors: dict[str, str] | None = None,
                      form: dict[str, Any] | None = None) -> Response:
    uploads = get_session().scalars(select(ResponseUpload).options(defer(ResponseUpload.content))
                                    .order_by(ResponseUpload.id.desc()).limit(10)).all()
    return _render("assess/calibration.html", user, status, uploads=uploads,
                   runs=_recent_runs(), tests=_tests(), models=runs.MODELS,
                   errors=errors or {}, form=form or {"model": "2pl"})


@bp.get("/calibration")
@staff_only
def calibration(user: User) -> Response:
    """Upload response data, start an online run, and the recent uploads and runs."""
    return _calibration_page(user)


@bp.post("/calibration/uploads")
@staff_only
def upload_responses(user: User) -> Response:
    """Check and keep a response file; then choose how to calibrate it."""
    db = get_session()
    upload = request.files.get("file")
    filename = (upload.filename or "") if upload is not None else ""
    if upload is None or not filename:
        return _calibration_page(user, 422, {"file": _("Choose a response file (CSV).")})
    data = upload.read()
    if not data:
        return _calibration_page(user, 422, {"file": _("The file %(name)s is empty.",
                                                       name=filename)})
    try:
        stored = runs.create_upload(db, filename=filename, content=data, user_id=user.id)
    except Invalid as error:
        db.rollback()
        return _calibration_page(user, 422, {"file": str(error)})
    db.commit()
    flash(_("%(name)s is uploaded: choose how to calibrate it.", name=filename))
    return redirect(url_for(".upload", upload_id=stored.id), 303)


def _upload_page(user: User, upload: ResponseUpload, status: int = 200,
                 errors: dict[str, str] | None = None,
                 form: dict[str, Any] | None = None) -> Response:
    view = runs.upload_view(get_session(), upload)
    groups = [g["group"] for g in view["groups"]]
    return _render("assess/upload.html", user, status, upload=view, models=runs.MODELS,
                   errors=errors or {}, form=form or {"model": "2pl", "anchor": True,
                                                      "max_iterations": 500,
                                                      "min_responses": 10,
                                                      "dif_reference": "",
                                                      "dif_focal": groups,
                                                      "dif_choice": True})


@bp.get("/calibration/uploads/<int:upload_id>")
@staff_only
def upload(user: User, upload_id: int) -> Response:
    """An upload's size and new items, and the form that starts a run on it."""
    found = get_session().get(ResponseUpload, upload_id)
    if found is None:
        return not_found(user, _("There is no response upload %(id)d.", id=upload_id))
    return _upload_page(user, found)


def _largest_group(upload_row: ResponseUpload) -> str | None:
    groups = runs.upload_view(get_session(), upload_row)["groups"]
    return groups[0]["group"] if groups else None


def _run_form() -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    form = {"kind": request.form.get("kind", "upload"),
            "model": request.form.get("model", "").strip().lower(),
            "anchor": request.form.get("anchor") == "1",
            "dif_reference": request.form.get("dif_reference", "").strip()[:200],
            "dif_focal": [g.strip()[:200] for g in request.form.getlist("dif_focal")
                          if g.strip()],
            "dif_choice": request.form.get("dif_choice") == "1",
            "languages_separately": request.form.get("languages_separately") == "1"}
    if form["kind"] not in runs.KINDS:
        errors["kind"] = _("Choose one of the kinds offered.")
    if form["model"] not in runs.MODELS:
        errors["model"] = _("Choose one of the models offered.")
    form["max_iterations"] = form_int("max_iterations", errors, low=1, high=10_000, default=500)
    form["min_responses"] = form_int("min_responses", errors, low=2, high=1_000_000, default=10)
    form["upload_id"] = form_int("upload_id", errors, low=1, high=2**31 - 1, required=False)
    form["test_id"] = form_int("test_id", errors, low=1, high=2**31 - 1, required=False)
    for name in ("max_iterations", "min_responses"):
        if name in errors:  # shown again as typed
            form[name] = request.form.get(name, "")[:20]
    if form["kind"] == "online" and form["test_id"] is None and "test_id" not in errors:
        errors["test_id"] = _("Choose a test.")
    return form, errors


def _plain_run_error(error: Invalid | NotFound) -> str:
    """What stops a run from starting, in words an assessor reads (the API keeps its text)."""
    if isinstance(error, runs.TooFewResponses):
        shown = sorted(error.few.items())[:10]
        counts = ", ".join(_("%(item)s has %(n)d", item=code, n=n) for code, n in shown)
        if len(error.few) > 10:
            counts += " " + _("and %(n)d more", n=len(error.few) - 10)
        if error.test is not None:
            return _("Not enough students have answered the pretest items of %(test)s yet "
                     "(%(counts)s). Each item needs at least %(n)d answers, the “Fewest "
                     "responses per item” below: wait until more students have taken the test, "
                     "or lower that number.", test=error.test, counts=counts, n=error.minimum)
        return _("Some items have too few responses in this file to be calibrated (%(counts)s). "
                 "Each needs at least %(n)d, the “Fewest responses per item” below: lower that "
                 "number, or upload more responses.", counts=counts, n=error.minimum)
    if isinstance(error, runs.NoPretestItems):
        return _("%(test)s has no pretest items to calibrate: choose some on the Pretest page "
                 "first, and let students take the test.", test=error.test)
    return str(error)


@bp.post("/calibration/runs")
@staff_only
def start_run(user: User) -> Response:
    """Queue a calibration run (an upload, anchored or not; or online) and go to its page."""
    db = get_session()
    form, errors = _run_form()
    upload_row = db.get(ResponseUpload, form["upload_id"]) if form["upload_id"] else None
    if form["kind"] == "upload" and upload_row is None:
        return not_found(user, _("There is no such response upload."))
    run = None
    if not errors:
        settings = {"max_iterations": form["max_iterations"],
                    "min_responses": form["min_responses"],
                    "dif_reference": form["dif_reference"] or None,
                    "languages_separately": form["languages_separately"]}
        if form["dif_choice"]:  # the upload page's focal groups (unticked: none compared)
            reference = form["dif_reference"] or (upload_row and _largest_group(upload_row))
            focal = [g for g in form["dif_focal"] if g != reference]
            if not focal:
                errors["dif_focal"] = _("Tick at least one focal group other than the "
                                        "reference group.")
            settings["dif_focal"] = focal
    if not errors:
        try:
            run = runs.create_run(db, kind=form["kind"], model=form["model"],
                                  upload_id=form["upload_id"], test_id=form["test_id"],
                                  anchor=form["anchor"], settings=settings, user_id=user.id)
        except (Invalid, NotFound) as error:
            field = (error.field or "model").removeprefix("settings.")
            errors[field if field in form else "model"] = _plain_run_error(error)
    if errors:
        db.rollback()
        if form["kind"] == "upload":
            return _upload_page(user, upload_row, 422, errors, form)
        return _calibration_page(user, 422, errors, form)
    db.commit()  # the worker reads the run from the database
    try:
        url = jobs.queue_url(current_app.config.get("HUEY_URL"), current_app.instance_path)
        queue = jobs.get_queue(url)
        database = (engine_of(current_app).url.render_as_string(hide_password=False)
                    if queue.immediate else None)
        jobs.enqueue_calibration(queue, run.id, database)
    except Exception as error:  # the queue is misconfigured or unreachable
        run.status, run.finished_at = RunStatus.FAILED, utcnow()
        run.error = "could not queue the run: " + runs.failure_message(error)
        db.commit()
    flash(_("Calibration run %(id)d is started.", id=run.id))
    return redirect(url_for(".run", run_id=run.id), 303)


def _run_or_none(run_id: int) -> CalibrationRun | None:
    _reap_stalled_runs()
    try:
        return runs.get_run(get_session(), run_id)
    except NotFound:
        return None


#: Linking methods the run page offers (the API takes every method of calibration.linking).
PAGE_LINKING = ("stocking-lord", "mean-sigma")


def _run_page(user: User, run: CalibrationRun, status: int = 200,
              errors: dict[str, str] | None = None,
              chosen: list[str] | None = None,
              form: dict[str, Any] | None = None) -> Response:
    db = get_session()
    flagged = request.args.get("flagged") == "1"
    entries, total = [], 0
    if run.result:
        total, entries = runs.run_items(db, run, flagged=True if flagged else None)
    publishable = [e["item_id"] for e in entries if e["bank"] is not None and not e["fixed"]]
    summary = (run.result or {}).get("summary") or {}
    review = None
    if run.status == RunStatus.SUCCEEDED and run.result:
        review = runs.scale_review(db, run, methods=PAGE_LINKING)
    preview = None  # the estimates on the bank's scale by Stocking-Lord, beside the bank's now
    if review is not None and review.needs_decision:
        preview = review.links.get("stocking-lord")
        if not isinstance(preview, str):
            estimated = [e for e in entries if not e["fixed"]]
            for entry, moved in zip(estimated, runs.linked_entries(estimated, preview),
                                    strict=True):
                entry["linked"] = moved["parameters"]
    usable = [m for m in PAGE_LINKING if review is not None
              and not isinstance(review.links.get(m), str | None)]
    if form is None:
        form = {"linking": usable[0] if usable else "none", "confirm_unlinked": False}
    default = set(runs.default_selection(entries))
    held = {e["item_id"]: runs.held_back(e) for e in entries}
    return _render("assess/run.html", user, status, run=run, entries=entries, total=total,
                   flagged=flagged, summary=summary, finished=run.status in FINISHED,
                   publishable=publishable, errors=errors or {},
                   chosen=set([c for c in publishable if c in default]
                              if chosen is None else chosen),
                   held=held, review=review, preview=preview, usable=usable, form=form,
                   dif=(run.result or {}).get("dif"), flag_words=words.fit_flags,
                   language_dif=(run.result or {}).get("language_dif"),
                   language_dif_rows=_language_dif_rows((run.result or {}).get("language_dif")),
                   language_dif_at=_computed_at((run.result or {}).get("language_dif")),
                   dif_words=words.dif_words, linking_names=LINKING_NAMES)


def _computed_at(analysis: dict[str, Any] | None) -> datetime | None:
    return datetime.fromisoformat(analysis["computed_at"]) if analysis else None


def _language_dif_rows(analysis: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The flagged (item, language) results of a DIF-by-language analysis, for its table."""
    rows = []
    for report in (analysis or {}).get("reports", []):
        if report.get("error"):
            continue
        for row in (*report["mantel_haenszel"], *report["standardized_mean_difference"]):
            if row["category"] == "A":
                continue
            labelled = {**row, "focal": report["focal"], "reference": report["reference"]}
            rows.append({"item_id": row["item_id"], "focal": report["focal"],
                         "words": words.dif_words(labelled), "delta": row.get("delta_mh"),
                         "se": row.get("se_delta"), "effect_size": row.get("effect_size")})
    return sorted(rows, key=lambda r: (r["item_id"], r["focal"]))


@bp.get("/calibration/runs/<int:run_id>")
@staff_only
def run(user: User, run_id: int) -> Response:
    """A run's progress (refreshing until it ends), then its fit and DIF review and publish."""
    found = _run_or_none(run_id)
    if found is None:
        return not_found(user, _("There is no calibration run %(id)d.", id=run_id))
    return _run_page(user, found)


@bp.post("/calibration/runs/<int:run_id>/language-dif")
@staff_only
def run_language_dif(user: User, run_id: int) -> Response:
    """DIF by test language for the run's test, in one click: kept with the run's result."""
    db = get_session()
    found = _run_or_none(run_id)
    if found is None:
        return not_found(user, _("There is no calibration run %(id)d.", id=run_id))
    if found.test_id is None or found.status not in FINISHED or not found.result:
        flash(_("DIF by language needs a finished run on the attempts at a test."))
        return redirect(url_for(".run", run_id=run_id), 303)
    try:
        analysis = language_dif(db, found.test_id)
    except (Invalid, NotFound) as error:
        db.rollback()
        flash(_("DIF by language could not be computed: %(why)s", why=str(error)))
        return redirect(url_for(".run", run_id=run_id), 303)
    found.result = {**found.result, "language_dif": analysis}
    db.commit()
    return redirect(url_for(".run", run_id=run_id, _anchor="language-dif"), 303)


@bp.get("/calibration/runs/<int:run_id>/items/<path:code>")
@staff_only
def run_item(user: User, run_id: int, code: str) -> Response:
    """One item of a run: observed versus expected scores by ability (fit), and by group (DIF)."""
    found = _run_or_none(run_id)
    if found is None:
        return not_found(user, _("There is no calibration run %(id)d.", id=run_id))
    try:
        evidence = runs.item_evidence(get_session(), found, code)
    except (NotFound, Conflict):
        return not_found(user, _("Calibration run %(id)d has no results for item %(code)s.",
                                 id=run_id, code=code))
    except Invalid as error:  # the data cannot be gathered again (upload or test deleted)
        return not_found(user, _("The data of calibration run %(id)d cannot be read again: "
                                 "%(why)s", id=run_id, why=str(error)))
    bank_item = get_session().scalar(select(Item).where(Item.code == code))
    return _render("assess/run_item.html", user, run=found, evidence=evidence,
                   charts=charts.evidence_charts(evidence), entry=evidence["entry"],
                   bank_item=bank_item, flag_words=words.fit_flags, dif_words=words.dif_words)


@bp.get("/calibration/runs/<int:run_id>/status")
@staff_only
def run_status(user: User, run_id: int) -> Response:
    """The run's status and progress as JSON, for the status page's poll."""
    found = _run_or_none(run_id)
    if found is None:
        return jsonify({"error": "not found"}), 404
    response = jsonify({
        "status": found.status.value, "progress": found.progress,
        "label": str(RUN_STATUS_NAMES[found.status.value]),
        "message": found.message or "", "error": found.error,
        "finished": found.status in FINISHED})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/calibration/runs/<int:run_id>/publish")
@staff_only
def publish(user: User, run_id: int) -> Response:
    """Publish the chosen items' estimates as new active parameter sets (optionally promote)."""
    db = get_session()
    found = _run_or_none(run_id)
    if found is None:
        return not_found(user, _("There is no calibration run %(id)d.", id=run_id))
    chosen = [c.strip() for c in request.form.getlist("items") if c.strip()]
    promote_items = request.form.get("promote") == "1"
    form = {"linking": request.form.get("linking", "none").strip(),
            "confirm_unlinked": request.form.get("confirm_unlinked") == "1"}
    errors: dict[str, str] = {}
    if not chosen:
        errors["items"] = _("Choose at least one item to publish.")
    if form["linking"] not in (*PAGE_LINKING, "none"):
        errors["linking"] = _("Choose one of the ways offered.")
    if errors:
        return _run_page(user, found, 422, errors, chosen, form)
    linking = None if form["linking"] == "none" else form["linking"]
    try:
        outcome = runs.publish_run(db, run_id, items=chosen, promote=promote_items,
                                   user_id=user.id, linking=linking,
                                   confirm_unlinked=form["confirm_unlinked"])
    except Invalid as error:
        db.rollback()
        if error.field == "linking":
            message = (_("Put the estimates on the bank's scale (choose a linking method), or "
                         "tick the box that confirms publishing them on this run's own scale.")
                       if linking is None else
                       _("These estimates cannot be linked by %(method)s: %(why)s",
                         method=LINKING_NAMES[linking], why=str(error)))
            return _run_page(user, runs.get_run(db, run_id), 422, {"linking": message},
                             chosen, form)
        return _run_page(user, runs.get_run(db, run_id), 422, {"items": str(error)}, chosen,
                         form)
    except (Conflict, BankError) as error:  # BankError: an estimate the bank refuses
        db.rollback()
        return _run_page(user, runs.get_run(db, run_id), 422, {"items": str(error)}, chosen,
                         form)
    db.commit()
    flash(_("Published %(published)d parameter sets; %(promoted)d items promoted, %(skipped)d "
            "skipped.", published=len(outcome["published"]), promoted=len(outcome["promoted"]),
            skipped=len(outcome["skipped"])))
    if outcome["linking"]:
        linked = outcome["linking"]
        flash(_("The estimates were put on the bank's scale by %(method)s through %(n)d common "
                "items (A = %(A)s, B = %(B)s).", method=LINKING_NAMES[linked["method"]],
                n=len(outcome["linking"]["common_items"]),
                A=format_decimal(outcome["linking"]["A"], "0.000"),
                B=format_decimal(outcome["linking"]["B"], "0.000")))
    return redirect(url_for(".run", run_id=run_id), 303)


# -- pretest items -------------------------------------------------------------------------------


def _pretest_page(user: User, test: AdaptiveTest | None, status: int = 200,
                  errors: dict[str, str] | None = None,
                  form: dict[str, Any] | None = None) -> Response:
    db = get_session()
    candidates = db.scalars(select(Item).where(Item.status == ItemStatus.PRETEST)
                            .options(selectinload(Item.parameter_sets))
                            .order_by(Item.code)).all()
    plan = ((test.config or {}).get("pretest") or {}) if test is not None else {}
    if form is None:
        form = {"items": list(plan.get("items", [])),
                "positions": ", ".join(str(p) for p in plan.get("positions", []))}
    seeded = set(plan.get("items", []))
    return _render("assess/pretest.html", user, status, tests=_tests(), test=test,
                   candidates=candidates, plan=plan, seeded=seeded, form=form,
                   errors=errors or {})


@bp.get("/pretest")
@staff_only
def pretest(user: User) -> Response:
    """Pretest items of a test (seed them, unscored) and those ready to promote."""
    errors: dict[str, str] = {}
    test_id = form_int("test_id", errors, low=1, high=2**31 - 1, required=False)
    test = get_session().get(AdaptiveTest, test_id) if test_id else None
    if test_id and test is None:
        return not_found(user, _("There is no test %(id)d.", id=test_id))
    return _pretest_page(user, test, 422 if errors else 200, errors)


def _positions(text: str, errors: dict[str, str]) -> list[int]:
    values = []
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        if not (part.isascii() and part.isdecimal()) or not 1 <= int(part) <= 500:
            errors["positions"] = _("Give positions as whole numbers from 1 to 500, separated "
                                    "by commas (e.g. 3, 6).")
            return []
        values.append(int(part))
    if len(set(values)) != len(values):
        errors["positions"] = _("Give each position once.")
    return sorted(set(values))


@bp.post("/pretest/<int:test_id>")
@staff_only
def seed_pretest(user: User, test_id: int) -> Response:
    """Set a test's pretest items and the positions they are given at (unscored)."""
    db = get_session()
    test = db.get(AdaptiveTest, test_id)
    if test is None:
        return not_found(user, _("There is no test %(id)d.", id=test_id))
    codes = list(dict.fromkeys(c.strip() for c in request.form.getlist("items") if c.strip()))
    raw_positions = request.form.get("positions", "")
    form = {"items": codes, "positions": raw_positions}
    errors: dict[str, str] = {}
    positions = _positions(raw_positions, errors)
    if codes and not positions and "positions" not in errors:
        errors["positions"] = _("Give at least one position for the pretest items.")
    if not errors:
        config = dict(test.config or {})
        if codes:
            config["pretest"] = {"items": codes, "positions": positions}
        else:
            config.pop("pretest", None)
        try:
            save_test(db, test, config=config)
        except BankError as error:
            errors["items"] = str(error)
    if errors:
        db.rollback()
        return _pretest_page(user, db.get(AdaptiveTest, test_id), 422, errors, form)
    db.commit()
    flash(_("The pretest items of %(test)s are saved.", test=test.name))
    return redirect(url_for(".pretest", test_id=test_id), 303)


@bp.get("/")
@staff_only
def home(user: User) -> Response:
    """The assessment pages start at the bank."""
    return redirect(url_for(".bank"))



from api import assess_simulation  # noqa: E402,F401  (registers the simulation page on bp)
