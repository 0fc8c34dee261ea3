"""The roster page: an administrator uploads a OneRoster 1.2 roster, reads the dry run's report
and presses *Apply* (``/admin/rosters``).

It calls :mod:`evidence.roster` as the API does, with the same rules: a school's administrator
imports their own school only; *Apply* imports what the dry run checked, planned again, all or
nothing. The report's problem texts come from the service (English, like the API's).
"""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import gettext as _

from api.db import get_session
from api.staff import for_roles, install_error_pages, page
from evidence import roster as service
from evidence.oneroster import PackageError
from storage.accounts import Role, User
from storage.errors import NotFound

bp = Blueprint("roster_pages", __name__)
install_error_pages(bp)


def _admins() -> tuple[str, str]:
    return _("For administrators"), _("Rosters are imported by administrators.")


def outcome_labels() -> dict[str, str]:
    """Each count's heading."""
    return {"created": _("To create"), "updated": _("To update"),
            "unchanged": _("Left alone"), "deactivated": _("To deactivate"),
            "left_out": _("Left out"), "added": _("To add"), "removed": _("To remove")}


def kind_labels() -> dict[str, str]:
    """Each kind of record a roster holds."""
    return {"schools": _("Schools"), "users": _("Students and teachers"),
            "classes": _("Classes"), "enrolments": _("Enrolments")}


def _render(user: User, status: int = 200, report: dict | None = None,
            token: str | None = None, error: str | None = None,
            applied: bool = False) -> Response:
    session = get_session()
    return page("rosters/import.html", status, user=user, report=report, token=token,
                error=error, applied=applied, recent=service.recent_imports(session, user),
                outcomes=outcome_labels(), kinds=kind_labels())


@bp.get("/admin/rosters")
@for_roles(Role.ADMIN, refusal=_admins)
def rosters(user: User) -> Response:
    """The upload form and the latest imports."""
    return _render(user)


@bp.post("/admin/rosters")
@for_roles(Role.ADMIN, refusal=_admins)
def check(user: User) -> Response:
    """Dry-run the uploaded roster and show its report (with *Apply* when it has no error)."""
    session = get_session()
    uploads = [(p.filename or "", p.read()) for p in request.files.getlist("file")]
    uploads = [(name, data) for name, data in uploads if name or data]
    if not uploads:
        return _render(user, 422, error=_("Choose the roster: a OneRoster zip or its CSV "
                                          "files."))
    try:
        outcome = service.dry_run(session, user, uploads,
                                  ", ".join(n for n, _d in uploads)[:255])
    except PackageError as problem:
        session.rollback()
        return _render(user, 422, error=_("This is not a OneRoster roster: %(why)s",
                                          why=str(problem)))
    session.commit()
    return _render(user, 200 if outcome.report["can_apply"] else 422, outcome.report,
                   outcome.token)


@bp.post("/admin/rosters/apply")
@for_roles(Role.ADMIN, refusal=_admins)
def apply(user: User) -> Response:
    """Import the roster the dry run checked."""
    session = get_session()
    try:
        outcome, _plan = service.apply_token(session, user, request.form.get("token", ""))
    except NotFound:
        session.rollback()
        return _render(user, 404, error=_("This check can no longer be applied (it was "
                                          "applied, or it is more than a day old): upload the "
                                          "roster again."))
    if not outcome.applied:
        session.rollback()
        return _render(user, 422, outcome.report)
    session.commit()
    counts = outcome.report["counts"]
    flash(_("The roster is imported: %(users)d accounts created, %(updated)d updated, "
            "%(classes)d classes created, %(added)d enrolments added, %(removed)d removed.",
            users=counts["users"]["created"], updated=counts["users"]["updated"],
            classes=counts["classes"]["created"], added=counts["enrolments"]["added"],
            removed=counts["enrolments"]["removed"]))
    return redirect(url_for("roster_pages.rosters"), 303)
