"""Pages for rubrics (teachers, assessors and administrators).

``/rubrics`` lists them (archived ones on request) with an import form and a "new rubric" link;
``/rubrics/new`` and ``/rubrics/<id>/versions/new`` are one form for criteria and levels that
works without JavaScript; ``/rubrics/<id>`` shows a version as a table (criteria in rows, levels
in columns with their descriptors), the version history and export links;
``/rubrics/import`` takes a CSV or JSON file, or CSV pasted into a text box;
``/rubrics/<id>/export.csv`` and ``.json`` download a version.

The form has a fixed number of criterion blocks, each with a fixed number of level rows; blank
blocks and rows are left out, and the levels of a criterion are scored in order from the
rubric's lowest score (1 by default), so a teacher never types a score. "Add a criterion" and
"Add a level" send the form back with one more block or row, keeping what was typed. Checks
that a teacher can trip over are put into words here (translated); the rest come from
:mod:`evidence.rubrics`, which does every check again before anything is stored.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import gettext as _

from api.db import get_session
from api.staff import for_roles, install_error_pages, not_found, page
from api.v1.rubrics import export_response
from evidence import rubrics as service
from evidence.models import Rubric, RubricVersion
from storage import as_utc
from storage.accounts import User
from storage.errors import Conflict, NotFound

bp = Blueprint("rubric_pages", __name__)
install_error_pages(bp)

NEW_CRITERIA = 4
NEW_LEVELS = 4
MAX_UPLOAD = 2 * 1024 * 1024
_PATH = re.compile(r"criteria\[(\d+)\](?:\.levels\[(\d+)\])?(?:\.(\w+))?")


def _refusal() -> tuple[str, str]:
    return (_("Only staff may see rubrics"),
            _("Rubrics are for teachers, assessors and administrators."))


def staff_only(view):
    """Teachers, assessors and administrators (others: sign in, or a 403 page)."""
    return for_roles(*service.STAFF, refusal=_refusal)(view)


def _rubric(user: User, rubric_id: int) -> Rubric | None:
    try:
        return service.visible_rubric(get_session(), user, rubric_id)
    except NotFound:
        return None


def _version_arg(rubric: Rubric) -> RubricVersion | None:
    raw = (request.args.get("version") or "").strip()
    number = int(raw) if raw.isascii() and raw.isdecimal() and len(raw) < 10 else None
    if raw and number is None:
        return None
    try:
        return service.get_version(get_session(), rubric, number)
    except NotFound:
        return None


# -- list and import -----------------------------------------------------------------------------


@bp.get("/rubrics")
@staff_only
def rubrics(user: User) -> Response:
    """Active rubrics by name (``?archived=1``: archived ones too)."""
    show_archived = request.args.get("archived") == "1"
    rows = get_session().scalars(service.rubrics_query(None if show_archived else False)).all()
    return page("rubrics/list.html", user=user, rubrics=rows, show_archived=show_archived,
                as_utc=as_utc, errors={}, problems=[], form={})


def _import_page(user: User, status: int, errors: dict[str, str], problems: list[dict],
                 form: dict[str, str]) -> Response:
    return page("rubrics/import.html", status, user=user, errors=errors, problems=problems,
                form=form, columns=service.CSV_COLUMNS)


@bp.get("/rubrics/import")
@staff_only
def import_form(user: User) -> Response:
    """The import form: a CSV or JSON file, or CSV pasted into a text box, and the format."""
    return _import_page(user, 200, {}, [], {})


@bp.post("/rubrics/import")
@staff_only
def import_rubric(user: User) -> Response:
    """Create a rubric from the file (or pasted CSV); all or nothing, problems by row."""
    db = get_session()
    form = {"name": request.form.get("name", ""), "csv_text": request.form.get("csv_text", "")}
    errors: dict[str, str] = {}
    upload = request.files.get("file")
    data = upload.read(MAX_UPLOAD + 1) if upload is not None and upload.filename else b""
    filename = upload.filename if upload is not None else ""
    if not data.strip() and form["csv_text"].strip():
        data, filename = form["csv_text"].encode("utf-8"), "pasted.csv"
    if not data.strip():
        errors["file"] = _("Choose a CSV or JSON file, or paste the CSV into the box.")
    elif len(data) > MAX_UPLOAD:
        errors["file"] = _("The file is too large: at most 2 MB.")
    is_json = filename.lower().endswith(".json") or (
        not filename.lower().endswith((".csv", ".txt"))
        and data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"))
    if not is_json and not form["name"].strip():
        errors["name"] = _("Give the new rubric a name.")
    if errors:
        return _import_page(user, 422, errors, [], form)
    try:
        if is_json:
            document = service.parse_json_file(data)
            if form["name"].strip():
                document = {**document, "name": form["name"]}
            rubric = service.import_rubric(db, user, **document)
        else:
            rubric = service.import_rubric(db, user, name=form["name"], csv_data=data)
    except service.RubricInvalid as error:
        db.rollback()
        return _import_page(user, 422, {"file": _("Nothing was imported: the file has the "
                                                  "problems listed below.")},
                            error.errors, form)
    except Conflict:
        db.rollback()
        return _import_page(user, 409, {"name": _("A rubric with this name exists already.")},
                            [], form)
    db.commit()
    flash(_("The rubric %(name)s is imported.", name=rubric.name))
    return redirect(url_for("rubric_pages.rubric", rubric_id=rubric.id), 303)


# -- one rubric ----------------------------------------------------------------------------------


def _level_columns(version: RubricVersion) -> list[str]:
    """The heading of each level column: the score when every criterion has the same scores."""
    width = max(len(c.levels) for c in version.criteria)
    scores = {tuple(level["score"] for level in c.levels) for c in version.criteria}
    if len(scores) == 1:
        return [_("Score %(score)d", score=s) for s in next(iter(scores))]
    return [_("Level %(n)d", n=n + 1) for n in range(width)]


@bp.get("/rubrics/<int:rubric_id>")
@staff_only
def rubric(user: User, rubric_id: int) -> Response:
    """A version (the latest, or ``?version=N``) as a table, its history and export links."""
    found = _rubric(user, rubric_id)
    if found is None:
        return not_found(user, _("There is no such rubric."))
    version = _version_arg(found)
    if version is None:
        return not_found(user, _("This rubric has no such version."))
    latest = service.latest_version(get_session(), found)
    width = max(len(c.levels) for c in version.criteria)
    return page("rubrics/rubric.html", user=user, rubric=found, version=version, latest=latest,
                columns=_level_columns(version), width=width, as_utc=as_utc)


@bp.post("/rubrics/<int:rubric_id>/archive")
@staff_only
def archive(user: User, rubric_id: int) -> Response:
    """Archive the rubric (``archived=1``) or put it back (``archived=0``)."""
    found = _rubric(user, rubric_id)
    if found is None:
        return not_found(user, _("There is no such rubric."))
    archived = request.form.get("archived") == "1"
    service.set_archived(get_session(), user, found, archived)
    get_session().commit()
    flash(_("The rubric is archived: it is no longer offered for new defenses.") if archived
          else _("The rubric is back on the list."))
    return redirect(url_for("rubric_pages.rubric", rubric_id=rubric_id), 303)


def _export(user: User, rubric_id: int, fmt: str) -> Response:
    found = _rubric(user, rubric_id)
    version = _version_arg(found) if found is not None else None
    if version is None:
        return not_found(user, _("There is no such rubric or version."))
    return export_response(found, version, fmt)


@bp.get("/rubrics/<int:rubric_id>/export.csv")
@staff_only
def export_csv(user: User, rubric_id: int) -> Response:
    """A version (``?version=N``, else the latest) as CSV."""
    return _export(user, rubric_id, "csv")


@bp.get("/rubrics/<int:rubric_id>/export.json")
@staff_only
def export_json(user: User, rubric_id: int) -> Response:
    """A version (``?version=N``, else the latest) as JSON."""
    return _export(user, rubric_id, "json")


# -- the criteria form ---------------------------------------------------------------------------


def _blank_block(n_levels: int) -> dict[str, Any]:
    return {"code": "", "name": "", "skill": "", "description": "",
            "levels": [{"label": "", "descriptor": ""} for _ in range(n_levels)]}


def _blocks_from(version: RubricVersion) -> tuple[list[dict[str, Any]], int]:
    n_levels = max(len(c.levels) for c in version.criteria)
    blocks = []
    for c in version.criteria:
        levels = [{"label": lv["label"], "descriptor": lv["descriptor"]} for lv in c.levels]
        levels += [{"label": "", "descriptor": ""}] * (n_levels - len(levels))
        blocks.append({"code": c.code, "name": c.name, "skill": c.skill,
                       "description": c.description, "levels": levels})
    return blocks, version.criteria[0].levels[0]["score"]


def _count(name: str, default: int, high: int) -> int:
    raw = (request.form.get(name) or "").strip()
    if raw.isascii() and raw.isdecimal() and len(raw) < 4:
        return max(1, min(int(raw), high))
    return default


def _read_form() -> dict[str, Any]:
    """The form as typed: rubric fields, the lowest score and every block and row."""
    f = request.form
    n_criteria = _count("n_criteria", NEW_CRITERIA, service.MAX_CRITERIA)
    n_levels = _count("n_levels", NEW_LEVELS, service.MAX_LEVELS)
    blocks = []
    for i in range(n_criteria):
        blocks.append({
            "code": f.get(f"c{i}_code", ""), "name": f.get(f"c{i}_name", ""),
            "skill": f.get(f"c{i}_skill", ""), "description": f.get(f"c{i}_description", ""),
            "levels": [{"label": f.get(f"c{i}_l{j}_label", ""),
                        "descriptor": f.get(f"c{i}_l{j}_descriptor", "")}
                       for j in range(n_levels)]})
    return {"name": f.get("name", ""), "description": f.get("description", ""),
            "note": f.get("note", ""), "lowest": f.get("lowest", "1").strip() or "1",
            "blocks": blocks}


def _criteria_of(form: dict[str, Any], errors: dict[str, str]
                 ) -> tuple[list[dict[str, Any]], list[int], dict[tuple[int, int], int]]:
    """The criteria the form holds (blank blocks and rows left out), each level scored from the
    lowest score in order; problems a teacher can make are put into ``errors`` in words."""
    raw = form["lowest"]
    lowest = int(raw) if re.fullmatch(r"-?[0-9]{1,3}", raw) else None
    if lowest is None:
        errors["lowest"] = _("Enter a whole number, such as 0 or 1.")
        lowest = 1
    criteria, block_of, row_of = [], [], {}
    codes: dict[str, int] = {}
    for b, block in enumerate(form["blocks"]):
        filled = [j for j, lv in enumerate(block["levels"])
                  if lv["label"].strip() or lv["descriptor"].strip()]
        if not (filled or any(block[k].strip() for k in ("code", "name", "description"))):
            continue
        n = b + 1
        code = block["code"].strip()
        if not code or not service.CODE.fullmatch(code):
            errors[f"c{b}_code"] = _("Criterion %(n)d: give a short code of letters, digits, "
                                     "- or _ (for example reasoning).", n=n)
        elif code.casefold() in codes:
            errors[f"c{b}_code"] = _("Criterion %(n)d: the code %(code)s is already used by "
                                     "criterion %(other)d.", n=n, code=code,
                                     other=codes[code.casefold()])
        else:
            codes[code.casefold()] = n
        if not block["name"].strip():
            errors[f"c{b}_name"] = _("Criterion %(n)d: give it a name.", n=n)
        if not block["skill"].strip():
            errors[f"c{b}_skill"] = _("Criterion %(n)d: choose the skill it gives evidence of.",
                                      n=n)
        if len(filled) < service.MIN_LEVELS:
            errors[f"c{b}_levels"] = _("Criterion %(n)d: describe at least two levels.", n=n)
        levels = []
        for k, j in enumerate(filled):
            level = block["levels"][j]
            if not level["label"].strip():
                errors[f"c{b}_l{j}_label"] = _("Criterion %(n)d, level %(m)d: give the level "
                                               "a label.", n=n, m=j + 1)
            if not level["descriptor"].strip():
                errors[f"c{b}_l{j}_descriptor"] = _("Criterion %(n)d, level %(m)d: describe "
                                                    "what it looks like.", n=n, m=j + 1)
            row_of[(len(criteria), k)] = j
            levels.append({"score": lowest + k, "label": level["label"],
                           "descriptor": level["descriptor"]})
        block_of.append(b)
        criteria.append({"code": code, "name": block["name"], "skill": block["skill"],
                         "description": block["description"], "levels": levels})
    if not criteria:
        errors["c0_code"] = _("Fill in at least one criterion.")
    return criteria, block_of, row_of


_FIELD_OF = {"code": "code", "name": "name", "description": "description", "skill": "skill",
             "label": "label", "descriptor": "descriptor", "score": "label"}


def _service_errors(error: service.RubricInvalid, block_of: list[int],
                    row_of: dict[tuple[int, int], int]) -> dict[str, str]:
    """The service's problems, each put beside the form field it concerns."""
    errors = {}
    for entry in error.errors:
        m = _PATH.fullmatch(entry["field"])
        if m is None:
            errors[entry["field"] if entry["field"] in ("name", "description", "note")
                   else "form"] = entry["message"]
            continue
        b = block_of[int(m.group(1))]
        key = _FIELD_OF.get(m.group(3) or "", "levels")
        if m.group(2) is not None and key in ("label", "descriptor"):
            j = row_of.get((int(m.group(1)), int(m.group(2))), 0)
            errors[f"c{b}_l{j}_{key}"] = entry["message"]
        else:
            errors[f"c{b}_{key}"] = entry["message"]
    return errors


def _form_page(user: User, form: dict[str, Any], errors: dict[str, str], status: int = 200,
               rubric: Rubric | None = None) -> Response:
    skills = service.bank_skills(get_session())
    n_levels = max((len(b["levels"]) for b in form["blocks"]), default=NEW_LEVELS)
    return page("rubrics/form.html", status, user=user, form=form, errors=errors,
                rubric=rubric, skills=skills, n_levels=n_levels,
                limits={"name": service.MAX_NAME, "description": service.MAX_DESCRIPTION,
                        "note": service.MAX_NOTE, "code": service.MAX_CODE,
                        "criterion_name": service.MAX_CRITERION_NAME,
                        "label": service.MAX_LABEL, "descriptor": service.MAX_DESCRIPTOR},
                max_criteria=service.MAX_CRITERIA, max_levels=service.MAX_LEVELS)


def _grown(form: dict[str, Any]) -> dict[str, Any] | None:
    """The form with one more criterion block or level row, if a "more" button was pressed."""
    grow = request.form.get("grow")
    n_levels = max(len(b["levels"]) for b in form["blocks"])
    if grow == "criterion" and len(form["blocks"]) < service.MAX_CRITERIA:
        form["blocks"].append(_blank_block(n_levels))
    elif grow == "level" and n_levels < service.MAX_LEVELS:
        for block in form["blocks"]:
            block["levels"].append({"label": "", "descriptor": ""})
    else:
        return None if grow is None else form
    return form


def _save(user: User, rubric: Rubric | None) -> Response:
    db = get_session()
    form = _read_form()
    grown = _grown(form)
    if grown is not None:
        return _form_page(user, grown, {}, rubric=rubric)
    errors: dict[str, str] = {}
    if rubric is None and not form["name"].strip():
        errors["name"] = _("Give the rubric a name.")
    criteria, block_of, row_of = _criteria_of(form, errors)
    if errors:
        return _form_page(user, form, errors, 422, rubric)
    try:
        if rubric is None:
            rubric = service.create_rubric(db, user, name=form["name"],
                                           description=form["description"], criteria=criteria,
                                           note=form["note"])
        else:
            service.add_version(db, user, rubric, criteria=criteria,
                                description=form["description"], note=form["note"])
    except service.RubricInvalid as error:
        db.rollback()
        return _form_page(user, form, _service_errors(error, block_of, row_of), 422, rubric)
    except Conflict as error:
        db.rollback()
        text = (_("A rubric with this name exists already.") if error.field == "name"
                else _("This rubric is archived: put it back on the list first."))
        return _form_page(user, form, {"name" if error.field == "name" else "form": text},
                          409, rubric)
    db.commit()
    version = service.latest_version(db, rubric)
    flash(_("Version %(n)d of %(name)s is saved.", n=version.version, name=rubric.name))
    return redirect(url_for("rubric_pages.rubric", rubric_id=rubric.id), 303)


@bp.route("/rubrics/new", methods=["GET", "POST"])
@staff_only
def new_rubric(user: User) -> Response:
    """A new rubric: its name and description, and its criteria with their levels."""
    if request.method == "POST":
        return _save(user, None)
    form = {"name": "", "description": "", "note": "", "lowest": "1",
            "blocks": [_blank_block(NEW_LEVELS) for _ in range(NEW_CRITERIA)]}
    return _form_page(user, form, {})


@bp.route("/rubrics/<int:rubric_id>/versions/new", methods=["GET", "POST"])
@staff_only
def new_version(user: User, rubric_id: int) -> Response:
    """A new version of a rubric, starting from its latest version's criteria."""
    found = _rubric(user, rubric_id)
    if found is None:
        return not_found(user, _("There is no such rubric."))
    if request.method == "POST":
        return _save(user, found)
    latest = service.latest_version(get_session(), found)
    blocks, lowest = _blocks_from(latest)
    form = {"name": found.name, "description": latest.description, "note": "",
            "lowest": str(lowest), "blocks": blocks}
    return _form_page(user, form, {}, rubric=found)
