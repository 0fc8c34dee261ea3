"""Request hardening shared by every page: CSRF tokens for forms and security headers."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, request, session
from flask_babel import gettext as _

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
    if not expected or not hmac.compare_digest(expected, sent):
        abort(400, description=_(
            "The form expired or did not come from this site. Please try again."))


_FORM_BLUEPRINTS = {"pages", "student", "assess", "teacher"}


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


def init_app(app: Flask) -> None:
    """Check CSRF tokens on form posts, add security headers, give templates ``csrf_token()``."""
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
