"""The Flask application factory.

``create_app()`` reads its configuration from the environment (``DATABASE_URL``, ``SECRET_KEY``);
tests pass a mapping instead: ``create_app({"TESTING": True, "DATABASE_URL": ...})``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from markupsafe import Markup
from werkzeug.routing import IntegerConverter

import delivery_ui
from api import (
    assess_pages,
    cat_service,
    dashboard_pages,
    db,
    defense_pages,
    i18n,
    limits,
    lti,
    pages,
    portfolio_pages,
    practice_pages,
    privacy_pages,
    rate_limits,
    rater_pages,
    report_pages,
    report_pdf_pages,
    resource_pages,
    rights_pages,
    roster_pages,
    rubric_calibration_pages,
    rubric_pages,
    security,
    student_pages,
    task_pages,  # noqa: F401  (its views register on the student and teacher blueprints)
    teacher_pages,
    transport,
    v1,
    xapi,
    xapi_out,  # noqa: F401  (its session listeners wake the xAPI-out sender)
    xapi_out_pages,
)
from item_bank.markup import render_html
from reports.report import report_settings
from storage.accounts import DEFAULT_HASH_METHOD, needs_rehash

INSTANCE_DIR = Path("instance")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web application.

    Parameters
    ----------
    test_config
        Settings that replace those read from the environment (``DATABASE_URL``, ``SECRET_KEY``,
        ``TESTING``, ``SESSION_COOKIE_SECURE``...).

    Returns
    -------
    Flask
        The application, with its database engine created but no connection opened yet.
    """
    instance_path = Path(os.environ.get("CAT_ENGINE_INSTANCE", INSTANCE_DIR)).resolve()
    app = Flask(
        "api",
        template_folder=str(delivery_ui.TEMPLATES),
        static_folder=str(delivery_ui.STATIC),
        instance_path=str(instance_path),
    )
    app.config.from_mapping(
        DATABASE_URL=os.environ.get("DATABASE_URL") or None,
        SECRET_KEY=os.environ.get("SECRET_KEY") or None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Cookies marked Secure: "1"/"0" when set; unset, on when the site's public address is
        # https:// (see https_deployment). Cookies of requests that came over HTTPS are marked
        # Secure whatever this says (api.security).
        SESSION_COOKIE_SECURE=_flag(os.environ.get("SESSION_COOKIE_SECURE")),
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        # The site's address as others must see it (the xAPI agent's homePage, task activity
        # ids); None: the address of the request (see api.site.public_url).
        PUBLIC_URL=os.environ.get("CAT_ENGINE_PUBLIC_URL") or None,
        # Where uploaded files live, content-addressed by SHA-256, outside the database.
        FILES_DIR=os.environ.get("CAT_ENGINE_FILES") or str(instance_path / "files"),
        # Limits on those files: per file, and per student across all their drafts (bytes).
        FILES_MAX_BYTES=_bytes_setting("CAT_ENGINE_FILE_MAX_BYTES", 10 * 1024 * 1024),
        FILES_QUOTA_BYTES=_bytes_setting("CAT_ENGINE_FILE_QUOTA_BYTES", 100 * 1024 * 1024),
        # Requests per credential on /xapi/ ("50 per second;1200 per minute" by default), and
        # where the rate limiter's counts live: database:// (the app's database, shared by
        # every process), redis://host:port/db, or memory:// (one process only).
        XAPI_RATE_LIMIT=os.environ.get("CAT_ENGINE_XAPI_RATE_LIMIT") or None,
        RATELIMIT_STORAGE_URI=os.environ.get("CAT_ENGINE_RATELIMIT_STORAGE") or "database://",
        # The password hash of new and re-hashed passwords (werkzeug's notation): a stored hash
        # of another method or other parameters is replaced at its owner's next sign-in.
        PASSWORD_HASH_METHOD=os.environ.get("CAT_ENGINE_PASSWORD_HASH") or DEFAULT_HASH_METHOD,
        # Failed sign-ins per account and per address before a 429 (see api.rate_limits).
        SIGN_IN_RATE_LIMIT=os.environ.get("CAT_ENGINE_SIGN_IN_RATE_LIMIT") or None,
        SIGN_IN_ADDRESS_RATE_LIMIT=(os.environ.get("CAT_ENGINE_SIGN_IN_ADDRESS_RATE_LIMIT")
                                    or None),
        # The mastery model's stated settings (REPORT_*): checked here, so that a bad value
        # stops the app at start, naming the variable, rather than failing every report.
        REPORT_SETTINGS=report_settings(),
        # xAPI out: the key material of the LRS secrets at rest (else SECRET_KEY), and the
        # sender's first retry delay and post timeout in seconds (see api.xapi_out).
        XAPI_OUT_KEY=os.environ.get("XAPI_OUT_KEY") or None,
        XAPI_OUT_BACKOFF=None,
        XAPI_OUT_TIMEOUT=None,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    if app.config["SESSION_COOKIE_SECURE"] is None:
        app.config["SESSION_COOKIE_SECURE"] = https_deployment(app.config)
    _check_hash_method(app.config["PASSWORD_HASH_METHOD"])
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret_key(instance_path)

    # Ids in URLs are database integers: a larger number is no id at all (404), not an overflow.
    app.url_map.converters["int"] = BoundedIntConverter
    db.init_app(app)
    limits.init_app(app)  # first: bodies that would break any later hook
    security.init_app(app)
    transport.init_app(app)
    i18n.init_app(app)
    app.jinja_env.filters["item_html"] = item_html
    app.register_blueprint(pages.bp)
    app.register_blueprint(student_pages.bp)
    app.register_blueprint(assess_pages.bp)
    app.register_blueprint(teacher_pages.bp)
    app.register_blueprint(portfolio_pages.bp)
    app.register_blueprint(rater_pages.bp)
    app.register_blueprint(rubric_calibration_pages.bp)
    app.register_blueprint(rubric_pages.bp)
    app.register_blueprint(defense_pages.bp)
    app.register_blueprint(report_pdf_pages.bp)
    app.register_blueprint(report_pages.bp)
    app.register_blueprint(dashboard_pages.bp)
    app.register_blueprint(resource_pages.bp)
    app.register_blueprint(practice_pages.bp)
    app.register_blueprint(rights_pages.bp)
    app.register_blueprint(privacy_pages.bp)
    app.register_blueprint(roster_pages.bp)
    app.register_blueprint(xapi_out_pages.bp)
    v1.init_app(app)
    cat_service.init_app(app)
    xapi.init_app(app, rate_limits.init_app(app))
    lti.init_app(app)
    return app


def _bytes_setting(name: str, default: int) -> int:
    """A size in bytes from the environment variable ``name`` (a whole number), or ``default``.

    Raises
    ------
    ValueError
        The variable is set but is not a whole number of at least 1, naming it.
    """
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdecimal() or int(raw) < 1:
        raise ValueError(f"{name} must be a whole number of bytes (at least 1), not {raw!r}")
    return int(raw)


def _flag(raw: str | None) -> bool | None:
    """A yes/no environment setting: ``None`` when unset or empty.

    Raises
    ------
    ValueError
        Anything but 1/0, true/false, yes/no, on/off.
    """
    text = (raw or "").strip().lower()
    if not text:
        return None
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"SESSION_COOKIE_SECURE must be 1 or 0 (true/false), not {raw!r}")


def https_deployment(config: Mapping[str, Any]) -> bool:
    """Whether the site is served over HTTPS by its settings: a public address
    (``PUBLIC_URL``) or a ``PREFERRED_URL_SCHEME`` of ``https``."""
    public = str(config.get("PUBLIC_URL") or "").strip().lower()
    return public.startswith("https://") or config.get("PREFERRED_URL_SCHEME") == "https"


def _check_hash_method(method: str) -> None:
    """Stop the app at start, naming the variable, when the password hash method is unknown."""
    try:
        needs_rehash("", method)
    except (ValueError, TypeError) as problem:
        raise ValueError(f"CAT_ENGINE_PASSWORD_HASH (PASSWORD_HASH_METHOD) is not a password "
                         f"hash method werkzeug knows: {method!r} ({problem})") from None


def item_html(text: str | None) -> Markup:
    """Jinja filter: an item's text (stem) rendered from its safe Markdown subset to HTML."""
    return Markup(render_html(text))


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` limited to what an INTEGER column holds (0 .. 2**31 - 1)."""

    def __init__(self, map, *args, **kwargs) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def _instance_secret_key(instance_path: Path) -> str:
    """A random key kept in ``instance/secret_key``, so sessions survive restarts and all workers
    of one server agree on it. Set ``SECRET_KEY`` in production instead."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.encode())
    finally:
        os.close(fd)
    return key
