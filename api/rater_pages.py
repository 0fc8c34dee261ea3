"""The rater-analysis page of a rubric, for assessors and lead teachers: a rater table with
severity and its 95% interval (also as a chart), a Wright map, the criteria, and the agreement
between raters with a table per pair.

``GET /rubrics/<rubric_id>/raters?version=N&model=rating-scale|partial-credit``: the same
analysis as the JSON API (:func:`evidence.rater_analysis.analyse_rubric`), its query parameters
a form on the page. Teachers see their own classes' defenses only; students get a 403 page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from api.db import get_session
from api.staff import for_roles, form_int, install_error_pages, not_found, page
from evidence import rater_analysis as service
from reports import rater_charts
from storage.accounts import Role, User
from storage.errors import Conflict, NotFound

bp = Blueprint("rater_pages", __name__)
install_error_pages(bp)

MODEL_NAMES = {"rating-scale": _l("Rating scale (thresholds shared by the criteria)"),
               "partial-credit": _l("Partial credit (thresholds per criterion)")}


def _refusal() -> tuple[str, str]:
    return (_("Only teachers and the assessment team may see this page"),
            _("The rater analysis is for lead teachers, assessors and administrators."))


@bp.get("/rubrics/<int:rubric_id>/raters")
@for_roles(Role.TEACHER, Role.ASSESSOR, Role.ADMIN, refusal=_refusal)
def raters(user: User, rubric_id: int) -> Response:
    """The rater analysis of a version of the rubric (default: the latest with scores)."""
    session = get_session()
    try:
        rubric = service.get_rubric(session, rubric_id)
    except NotFound:
        return not_found(user)
    errors: dict[str, str] = {}
    version_number = form_int("version", errors, low=1, high=2**31 - 1, required=False)
    model = request.args.get("model") or "rating-scale"
    if model not in service.MODELS:
        errors["model"] = _("Choose one of the models offered.")
        model = "rating-scale"
    versions = service.scored_versions(session, rubric, viewer=user)
    context: dict[str, Any] = {"user": user, "rubric": rubric, "versions": versions,
                               "model": model, "model_names": MODEL_NAMES, "errors": errors,
                               "result": None, "refusal": None,
                               "fit_range": rater_charts.FIT_RANGE}
    if errors:
        context["chosen"] = version_number
        return page("raters/analysis.html", 400, **context)
    try:
        version = service.resolve_version(session, rubric, version_number, viewer=user)
    except NotFound:
        return not_found(user, _("This rubric has no such version."))
    context["chosen"] = version.version
    try:
        result = service.analyse_rubric(session, version.id, viewer=user, model=model)
    except Conflict as refusal:
        context["refusal"] = str(refusal)
        return page("raters/analysis.html", 409, **context)
    context |= {
        "result": result,
        "forest": rater_charts.severity_forest(result["raters"]),
        "wright": rater_charts.wright_map(result["students"], result["criteria"],
                                          result["raters"], result["thresholds"]),
        "misfit": rater_charts.misfit,
        "z95": rater_charts.Z95,
    }
    return page("raters/analysis.html", **context)
