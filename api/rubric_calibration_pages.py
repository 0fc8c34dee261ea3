"""Pages of the assessment team for rubric calibrations: a rubric's calibrations with a form to
run one, and the review of one (criteria with standard errors and their category curves for an
average rater, rater severities with 95% intervals, provenance, and publication).

The views call :mod:`evidence.rubric_calibration` and commit once. A form with errors is shown
again with the errors next to the fields (422); success redirects (303). Assessors and admins
only; others get a 403 page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from api.db import get_session
from api.staff import for_roles, install_error_pages, not_found, page
from calibration.rubric_scale import MODELS
from evidence import rubric_calibration as service
from evidence.models import Rubric, RubricCalibration, RubricVersion
from reports import charts
from storage.accounts import Role, User
from storage.errors import Conflict, Invalid, NotFound

bp = Blueprint("rubric_calibration_pages", __name__)
install_error_pages(bp)

STAFF = (Role.ASSESSOR, Role.ADMIN)
MODEL_NAMES = {"gpcm": _l("Generalized partial credit (a slope per criterion)"),
               "pcm": _l("Partial credit (slopes fixed at 1)")}
STATUS_NAMES = {"draft": _l("draft"), "published": _l("published"), "retired": _l("retired")}
Z95 = 1.959964


def _refusal() -> tuple[str, str]:
    return (_("Only the assessment team may see this page"),
            _("These pages are for assessors and administrators."))


def staff_only(view):
    """Assessors and admins only (others: sign in, or a 403 page)."""
    return for_roles(*STAFF, refusal=_refusal)(view)


def _versions(rubric: Rubric) -> list[RubricVersion]:
    return sorted(rubric.versions, key=lambda v: v.version, reverse=True)


def _list_page(user: User, rubric: Rubric, status: int = 200,
               errors: dict[str, str] | None = None,
               form: dict[str, Any] | None = None) -> Response:
    session = get_session()
    found = session.scalars(service.calibrations_of(session, rubric.id)).all()
    versions = {v.id: v.version for v in rubric.versions}
    versions_list = _versions(rubric)
    return page("rubric_calibration/list.html", status, user=user, rubric=rubric,
                calibrations=found, versions=versions, version_choices=versions_list,
                models=MODELS, model_names=MODEL_NAMES, status_names=STATUS_NAMES,
                errors=errors or {}, form=form or {
                    "version": str(versions_list[0].version) if versions_list else "",
                    "model": "gpcm"},
                minimum=service.MIN_STUDENTS)


@bp.get("/rubrics/<int:rubric_id>/calibrations")
@staff_only
def calibrations(user: User, rubric_id: int) -> Response:
    """The rubric's calibrations, newest first, and the form to run one."""
    rubric = get_session().get(Rubric, rubric_id)
    if rubric is None:
        return not_found(user)
    return _list_page(user, rubric)


@bp.post("/rubrics/<int:rubric_id>/calibrations")
@staff_only
def run(user: User, rubric_id: int) -> Response:
    """Run a calibration of the chosen version; to its review page when done."""
    session = get_session()
    rubric = session.get(Rubric, rubric_id)
    if rubric is None:
        return not_found(user)
    form = {"version": (request.form.get("version") or "").strip(),
            "model": (request.form.get("model") or "").strip()}
    errors: dict[str, str] = {}
    numbers = {str(v.version): v for v in rubric.versions}
    if form["version"] not in numbers:
        errors["version"] = _("Choose one of the rubric's versions.")
    if form["model"] not in MODELS:
        errors["model"] = _("Choose a model.")
    if not errors:
        try:
            calibration = service.run_rubric_calibration(
                session, numbers[form["version"]].id, user=user, model=form["model"])
        except Invalid as error:
            session.rollback()
            errors["version"] = _refusal_text(error)
        else:
            session.commit()
            flash(_("Calibration %(id)d is ready for review.", id=calibration.id))
            return redirect(url_for(".review", rubric_id=rubric_id,
                                    calibration_id=calibration.id), 303)
    return _list_page(user, rubric, 422, errors, form)


def _refusal_text(error: Invalid) -> str:
    """Why a calibration cannot run, in the reader's language where the reason is known."""
    if isinstance(error, service.TooFewStudents):
        return _("Only %(count)d students have both answers to the bank's items and ratings "
                 "under this version; a calibration needs at least %(minimum)d, or its "
                 "thresholds would be less precise than the test they are weighed with.",
                 count=error.count, minimum=error.minimum)
    if isinstance(error, service.NoAnswers):
        return _("None of the %(n)d rated students has answers to the bank's operational items "
                 "in a finished test, so the rubric cannot be put on the bank's scale.",
                 n=error.rated)
    if isinstance(error, service.NoRatings):
        return _("This version has no submitted ratings to calibrate from.")
    return _("The calibration cannot be run: %(reason)s", reason=str(error))


def _of_rubric(rubric_id: int, calibration_id: int) -> RubricCalibration | None:
    session = get_session()
    return session.scalars(
        select(RubricCalibration)
        .join(RubricVersion, RubricVersion.id == RubricCalibration.rubric_version_id)
        .where(RubricCalibration.id == calibration_id,
               RubricVersion.rubric_id == rubric_id)).first()


def _review_data(view: dict[str, Any]) -> dict[str, Any]:
    """Curves of each criterion for an average rater, and 95% intervals of the severities."""
    curves = []
    for criterion in view["criteria"]:
        drawn = charts.item_curves({"model": criterion["model"], "a": criterion["a"],
                                    "thresholds": criterion["thresholds"]}, criterion["code"])
        levels = criterion.get("levels") or []
        labels = [f"{lv['score']} · {lv['label']}" for lv in levels] or [
            str(k) for k in range(drawn["categories"])]
        curves.append({"criterion": criterion, "curves": drawn, "labels": labels})
    raters = []
    for rater in view["raters"]:
        se = rater.get("se")
        interval = None if se is None else (rater["severity"] - Z95 * se,
                                            rater["severity"] + Z95 * se)
        raters.append({**rater, "interval": interval})
    return {"curves": curves, "raters": raters}


@bp.get("/rubrics/<int:rubric_id>/calibrations/<int:calibration_id>")
@staff_only
def review(user: User, rubric_id: int, calibration_id: int) -> Response:
    """One calibration to review: parameters, curves, severities, provenance, publication."""
    calibration = _of_rubric(rubric_id, calibration_id)
    if calibration is None:
        return not_found(user)
    session = get_session()
    view = service.calibration_view(session, calibration)
    return page("rubric_calibration/review.html", user=user,
                rubric=session.get(Rubric, rubric_id), calibration=view,
                model_names=MODEL_NAMES, status_names=STATUS_NAMES, **_review_data(view))


@bp.post("/rubrics/<int:rubric_id>/calibrations/<int:calibration_id>/publish")
@staff_only
def publish(user: User, rubric_id: int, calibration_id: int) -> Response:
    """Publish the calibration (the version's published one is retired)."""
    if _of_rubric(rubric_id, calibration_id) is None:
        return not_found(user)
    session = get_session()
    try:
        service.publish_rubric_calibration(session, calibration_id, user=user)
    except (Conflict, NotFound) as error:
        session.rollback()
        flash(_("Not published: %(reason)s", reason=str(error)))
    else:
        session.commit()
        flash(_("Calibration %(id)d is published: rubric scores under its version now count "
                "as evidence on the bank's scale.", id=calibration_id))
    return redirect(url_for(".review", rubric_id=rubric_id, calibration_id=calibration_id), 303)
