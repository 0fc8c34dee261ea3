"""The page of a school's external learning record store (xAPI out): ``/admin/schools/<id>/lrs``.

An administrator of the school (or of the district) sets the LRS (the secret is never shown
back: an empty secret field keeps the stored one), sees how many statements are pending, sent,
dead or discarded, and retries or discards dead letters, each with its last error. It calls
:mod:`evidence.xapi_forwarding` as the API does; forms POST then redirect, errors re-render beside
the field (422).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _

from api import xapi_out
from api.db import get_session
from api.staff import for_roles, install_error_pages, not_found, page
from evidence import xapi_forwarding as service
from storage.accounts import Role, User
from storage.errors import Invalid, NotFound, ServiceError

bp = Blueprint("xapi_out_pages", __name__)
install_error_pages(bp)


def _admins() -> tuple[str, str]:
    return _("For administrators"), _("A school's administrators set its learning record "
                                      "store.")


def scope_labels() -> dict[str, str]:
    """Which statements go, in plain words."""
    return {"both": _("The engine's statements and those learning tools send"),
            "own": _("Only the engine's statements (answers, finished tests)"),
            "received": _("Only the statements learning tools send")}


def _page(user: User, school_id: int, status: int = 200, errors: dict[str, str] | None = None,
          values: dict[str, Any] | None = None) -> Response:
    session = get_session()
    school = service.visible_school(session, user, school_id)
    lrs = service.lrs_of(session, school.id)
    view = service.lrs_view(session, school, lrs)
    dead = service.dead_letters(session, lrs) if lrs is not None else []
    return page("xapi_out/lrs.html", status, user=user, view=view, dead=dead,
                values=values or view, errors=errors or {}, scopes=scope_labels())


@bp.get("/admin/schools/<int:school_id>/lrs")
@for_roles(Role.ADMIN, refusal=_admins)
def lrs_page(user: User, school_id: int) -> Response:
    """The school's LRS settings, its outbox and its dead letters."""
    try:
        return _page(user, school_id)
    except NotFound:
        return not_found(user)


@bp.post("/admin/schools/<int:school_id>/lrs")
@for_roles(Role.ADMIN, refusal=_admins)
def save_lrs(user: User, school_id: int) -> Response:
    """Save the settings from the form."""
    session = get_session()
    form = request.form
    changes: dict[str, Any] = {"endpoint": form.get("endpoint", ""),
                               "xapi_version": form.get("xapi_version", "1.0.3"),
                               "key": form.get("key", ""), "enabled": form.get("enabled") == "1",
                               "scope": form.get("scope", "")}
    if form.get("secret"):
        changes["secret"] = form["secret"]
    try:
        changes["max_tries"] = int(form.get("max_tries", ""))
    except ValueError:
        changes["max_tries"] = None
    try:
        school = service.visible_school(session, user, school_id)
        service.configure_lrs(session, user, school, changes,
                              xapi_out.secret_box(current_app.config))
    except NotFound:
        session.rollback()
        return not_found(user)
    except Invalid as problem:
        session.rollback()
        field = problem.field or "endpoint"
        return _page(user, school_id, 422, {field: _field_message(field)},
                     {**changes, "secret": ""})
    session.commit()
    xapi_out.forget_enabled_cache()
    flash(_("The learning record store is saved."))
    return redirect(url_for("xapi_out_pages.lrs_page", school_id=school_id), 303)


def _field_message(field: str) -> str:
    return {
        "endpoint": _("Give the LRS's xAPI address: http:// or https://, a host, no user or "
                      "password in it (for example https://lrs.example.org/xAPI/)."),
        "key": _("Give the key (the user name of HTTP Basic), without a colon."),
        "secret": _("Give the secret (the password of HTTP Basic)."),
        "xapi_version": _("Choose one of the xAPI versions offered."),
        "scope": _("Choose which statements go."),
        "max_tries": _("Give a whole number of tries from 1 to 50."),
    }.get(field, _("Check this value."))


@bp.post("/admin/schools/<int:school_id>/lrs/dead-letters")
@for_roles(Role.ADMIN, refusal=_admins)
def act_on_dead(user: User, school_id: int) -> Response:
    """Retry or discard the ticked dead letters (all of them with ``all=1``)."""
    session = get_session()
    action = request.form.get("action")
    try:
        ids = None if request.form.get("all") == "1" else [
            int(v) for v in request.form.getlist("id")]
    except ValueError:
        ids = []
    try:
        school = service.visible_school(session, user, school_id)
        lrs = service.lrs_of(session, school.id)
        if lrs is None or action not in ("retry", "discard"):
            raise NotFound("no LRS")
        if ids == []:
            flash(_("Tick the statements to retry or discard."))
            return redirect(url_for("xapi_out_pages.lrs_page", school_id=school_id), 303)
        act = service.retry_dead if action == "retry" else service.discard_dead
        count = act(session, user, lrs, ids)
    except ServiceError:
        session.rollback()
        return not_found(user)
    session.commit()
    if action == "retry":
        if count:
            xapi_out.enqueue_forward(current_app)
        flash(_("%(n)d statement(s) will be sent again.", n=count))
    else:
        flash(_("%(n)d statement(s) discarded.", n=count))
    return redirect(url_for("xapi_out_pages.lrs_page", school_id=school_id), 303)
