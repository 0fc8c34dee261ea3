"""Request hardening shared by every page: CSRF tokens for forms and security headers."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, current_app, make_response, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from werkzeug.exceptions import UnprocessableEntity

CSRF_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token() -> str:
    """The session's CSRF token (created on first use), to put in every form as a hidden field."""
    token = session.get(CSRF_FIELD)
    if token is None:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def _check_csrf() -> None:
    if request.method in _SAFE_METHODS or request.blueprint not in _FORM_BLUEPRINTS:
        return
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD, "")
    # Bytes: compare_digest refuses str with non-ASCII characters (a 500 for a forged token).
    if not expected or not hmac.compare_digest(expected.encode(),
                                               sent.encode("utf-8", "surrogatepass")):
        abort(400, description=_(
            "The form expired or did not come from this site. Please try again."))


_FORM_BLUEPRINTS = {"pages", "student", "assess", "teacher"}


def _reject_nul() -> None:
    """No text field may hold a NUL character (PostgreSQL refuses them; no one types one).

    Checked for every request before any view: query and form fields, names and values (the
    strings of JSON bodies are checked by :mod:`api.limits`). The answer is a 422 naming the
    field, as a page or, under ``/api/``, a problem document.
    """
    for where in (request.args, request.form):
        for name, value in where.items(multi=True):
            if "\x00" in (name or "") or "\x00" in value:
                _nul_in(name or "")


class NulCharacter(UnprocessableEntity):
    """A text field holds a NUL character (422)."""


def _nul_in(name: str) -> None:
    text = _("%(field)s contains a NUL character (\\0), which no text may hold.",
             field=repr(name.replace("\x00", "\\0")))
    raise NulCharacter(description=text)


def _nul_page(error: NulCharacter):
    """The refusal as a message page, or under ``/api/`` as a problem document."""
    from api.pages import current_user

    if request.path.startswith("/xapi/"):
        from api.xapi import error as xapi_error

        return xapi_error(400, error.description)
    if request.path.startswith("/ims/cat/"):
        from api.cat_service import status_info

        return status_info(400, error.description)
    if request.path.startswith("/api/"):
        from api.v1 import problem

        return problem(422, "Unprocessable content", error.description, None)
    return make_response(render_template(
        "student/message.html", layout="base.html", title=_("This cannot be saved"),
        text=error.description, user=current_user()), 422)


def _security_headers(response):
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, whose cookie is ``Secure`` when ``SESSION_COOKIE_SECURE``
    says so or when the request came over HTTPS (so a TLS deployment is covered even if the
    setting was forgotten); ``HttpOnly`` and ``SameSite=Lax`` come from the app's settings.
    The page session (:mod:`api.page_sessions`) lives in this cookie."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def cookie_secure() -> bool:
    """Whether a cookie set on this reply must be ``Secure`` (see :class:`SessionInterface`)."""
    return bool(current_app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def init_app(app: Flask) -> None:
    """Check CSRF tokens on form posts, add security headers, give templates ``csrf_token()``.

    The signed session cookie lives no longer than a page session may
    (``PAGE_SESSION_LIFETIME``, 12 h by default; Flask's own default is 31 days).
    """
    from api.page_sessions import LIFETIME

    app.config["PERMANENT_SESSION_LIFETIME"] = app.config.get("PAGE_SESSION_LIFETIME", LIFETIME)
    app.session_interface = SessionInterface()
    app.before_request(_reject_nul)
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.register_error_handler(NulCharacter, _nul_page)
    app.jinja_env.globals["csrf_token"] = csrf_token
