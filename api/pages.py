"""Pages served to people: the landing page with its sign-in form, sign-in and sign-out, and the
language selector every page carries."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from api import page_sessions, rate_limits
from api.db import get_session
from api.i18n import LANGUAGES, remember_language
from rights.audit_log import record_failed_sign_in, record_sign_in
from storage.accounts import Role, User, authenticate

bp = Blueprint("pages", __name__)


def current_user() -> User | None:
    """The signed-in user, or ``None`` (see :func:`api.page_sessions.current_user`)."""
    return page_sessions.current_user()


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (``/...``), else ``None``.

    Only same-site relative paths are followed after sign-in or a language change: no scheme, no
    host, no ``//host`` or ``/\\host`` (which browsers treat as another site), no control
    characters.
    """
    if not target or len(target) > 2000 or not target.startswith("/"):
        return None
    if target.startswith(("//", "/\\")) or "\\" in target:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


@bp.get("/")
def index():
    """Landing page: the sign-in form, or a welcome for a signed-in user."""
    return render_template("index.html", user=current_user(), username="", errors={},
                           next=safe_next(request.args.get("next")))


@bp.post("/sign-in")
def sign_in():
    """Check the credentials; on success start a fresh session, else re-render with the errors.

    A safe ``next`` path (see :func:`safe_next`) is where a signed-in user goes; without one,
    students go to their tests and everyone else to the landing page.
    """
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    target = safe_next(request.form.get("next"))
    errors: dict[str, str] = {}
    if not username:
        errors["username"] = _("Enter your username.")
    if not password:
        errors["password"] = _("Enter your password.")
    user = None
    if not errors:
        try:
            user = authenticate(get_session(), username, password,
                                hash_method=current_app.config["PASSWORD_HASH_METHOD"])
        except SQLAlchemyError:
            errors["form"] = _(
                "Sign-in is unavailable: the database is not ready. "
                "Please tell your administrator."
            )
        else:
            if user is None:
                rate_limits.failed_sign_in()
                record_failed_sign_in(get_session(), username, "page")
                errors["form"] = _("That username and password do not match an account.")
    if errors:
        return render_template("index.html", user=None, username=username, errors=errors,
                               next=target), 400
    record_sign_in(get_session(), user, "page")  # committed with the new session
    page_sessions.start(get_session(), user)
    flash(_("Signed in as %(name)s.", name=user.display_name or user.username))
    if target is None and user.role == Role.STUDENT:
        target = url_for("student.my_tests")
    return redirect(target or url_for("pages.index"))


@bp.post("/sign-out")
def sign_out():
    """End the session: its server-side record goes, so no copy of the cookie works again."""
    page_sessions.end(get_session())
    flash(_("You are signed out."))
    return redirect(url_for("pages.index"))


@bp.post("/language")
def set_language():
    """Remember the language chosen with the selector and go back to the page it was chosen on."""
    language = request.form.get("lang", "")
    target = safe_next(request.form.get("next")) or url_for("pages.index")
    if language not in LANGUAGES:
        flash(_("Choose one of the languages offered."))
        return redirect(target)
    with force_locale(language):
        flash(_("The pages are now in English."))
    return remember_language(redirect(target), language)


@bp.get("/healthz")
def healthz():
    """Liveness and database reachability, for load balancers."""
    try:
        get_session().execute(select(1))
    except SQLAlchemyError:
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}
