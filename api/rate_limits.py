"""The app's rate limiter (Flask-Limiter): failed sign-ins, and the xAPI credentials' requests.

One :class:`flask_limiter.Limiter` per app, its counts in ``RATELIMIT_STORAGE_URI``
(``CAT_ENGINE_RATELIMIT_STORAGE``): ``database://`` by default, the app's own database
(:mod:`api.rate_limit_storage`), so every worker process and app server of a deployment shares
them; ``redis://host:port/db`` when a Redis is at hand; ``memory://`` only for one process.

Sign-in (the page ``POST /sign-in`` and ``POST /api/v1/auth/token`` alike, counted together):
failed attempts are counted per account (the username as typed, NFKC-normalised) and per
address (``request.remote_addr``; behind a proxy set ``CAT_ENGINE_PROXIES`` so that this is the
client's). Once an account has had ``SIGN_IN_RATE_LIMIT`` failures (10 per 10 minutes), or an
address ``SIGN_IN_ADDRESS_RATE_LIMIT`` (100 per 10 minutes: a classroom shares one address),
every attempt for it is refused until the window ends, the right password too: 429 with
``Retry-After`` (seconds), a problem document from the API, the sign-in page with a message.
Successful sign-ins are not counted (Flask-Limiter's ``deduct_when``). The refusal is the same
for usernames that exist and those that do not. The keys stored are keyed hashes (HMAC with
the app's ``SECRET_KEY``) of the username and of the address, never the username or address.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
import unicodedata

from flask import Flask, Response, current_app, g, render_template, request
from flask_babel import ngettext
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address

from api import rate_limit_storage
from api.db import engine_of

DEFAULT_STORAGE = f"{rate_limit_storage.SCHEME}://"
DEFAULT_SIGN_IN_LIMIT = "10 per 10 minutes"
DEFAULT_SIGN_IN_ADDRESS_LIMIT = "100 per 10 minutes"
#: The views that take a password (by endpoint; their POST signs in).
SIGN_IN_ENDPOINTS = ("pages.sign_in", "auth.Tokens")
EXTENSION = "cat_engine_limiter"


def failed_sign_in() -> None:
    """Count this request as a failed sign-in (the views call it when the password is wrong,
    the account unknown, deactivated or erased)."""
    g.sign_in_failed = True


def _counts_as_failure(_response: Response) -> bool:
    return bool(g.get("sign_in_failed"))


def _keyed(kind: str, text: str) -> str:
    secret = str(current_app.secret_key or "").encode()
    digest = hmac.new(secret, text.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return f"sign-in/{kind}/{digest.hexdigest()[:32]}"


def _sent_username() -> str:
    if request.path.startswith("/api/"):
        body = request.get_json(silent=True)
        value = body.get("username") if isinstance(body, dict) else None
    else:
        value = request.form.get("username")
    return unicodedata.normalize("NFKC", value.strip()) if isinstance(value, str) else ""


def account_key() -> str:
    """The rate-limit key of the account a sign-in names (a keyed hash of the username)."""
    return _keyed("account", _sent_username())


def address_key() -> str:
    """The rate-limit key of the address a sign-in comes from (a keyed hash)."""
    return _keyed("address", get_remote_address())


def retry_after(limit: RequestLimit) -> int:
    """Whole seconds until ``limit``'s window ends (at least 1)."""
    return max(1, math.ceil(limit.window.reset_time - time.time()))


def _sign_in_refused(limit: RequestLimit) -> Response:
    """429 with ``Retry-After``: a problem document under ``/api/``, else the sign-in page."""
    seconds = retry_after(limit)
    headers = {"Retry-After": str(seconds)}
    if request.path.startswith("/api/"):
        from api.v1 import problem

        return problem(429, "Too Many Requests",
                       "too many failed sign-ins for this account or from this address; no "
                       f"sign-in is taken for it for {seconds} s (Retry-After)", None, headers)
    from api.pages import safe_next

    minutes = math.ceil(seconds / 60)
    message = ngettext("Too many failed sign-ins. Please wait %(num)d minute and try again.",
                       "Too many failed sign-ins. Please wait %(num)d minutes and try again.",
                       minutes)
    reply = Response(render_template(
        "index.html", user=None, username=request.form.get("username", "").strip()[:80],
        errors={"form": message}, next=safe_next(request.form.get("next"))), 429)
    reply.headers.update(headers)
    return reply


def _setting(name: str, default: str):
    def value() -> str:
        return current_app.config.get(name) or default

    return value


def init_app(app: Flask) -> Limiter:
    """Create the app's limiter over its storage and limit the sign-in views.

    Call after the blueprints are registered (the sign-in views are wrapped in place).
    ``RATELIMIT_STORAGE_URI`` ``database://`` (the default) uses the app's engine.
    """
    uri = app.config.get("RATELIMIT_STORAGE_URI") or DEFAULT_STORAGE
    app.config["RATELIMIT_STORAGE_URI"] = uri
    if uri.split("://", 1)[0] == rate_limit_storage.SCHEME:
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {
            **app.config.get("RATELIMIT_STORAGE_OPTIONS", {}), "engine": engine_of(app)}
    # No X-RateLimit-* or Retry-After on replies that were let through (two more storage
    # reads each); the refusals carry their own Retry-After.
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    # A storage that cannot be reached (Redis down) must not take sign-in down with it: the
    # error is logged and the request goes on uncounted. With database:// nothing is lost, as
    # sign-in cannot work without the database anyway.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter = Limiter(get_remote_address, app=app, default_limits_exempt_when=lambda: True)
    app.extensions[EXTENSION] = limiter
    by_account = limiter.shared_limit(
        _setting("SIGN_IN_RATE_LIMIT", DEFAULT_SIGN_IN_LIMIT), scope="sign-in-account",
        key_func=account_key, deduct_when=_counts_as_failure, on_breach=_sign_in_refused,
        methods=["POST"])
    by_address = limiter.shared_limit(
        _setting("SIGN_IN_ADDRESS_RATE_LIMIT", DEFAULT_SIGN_IN_ADDRESS_LIMIT),
        scope="sign-in-address", key_func=address_key, deduct_when=_counts_as_failure,
        on_breach=_sign_in_refused, methods=["POST"])
    for endpoint in SIGN_IN_ENDPOINTS:
        app.view_functions[endpoint] = by_account(by_address(app.view_functions[endpoint]))
    return limiter
