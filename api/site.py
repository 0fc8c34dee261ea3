"""The site's public address, for identifiers that leave the school (xAPI agents and activities).

``PUBLIC_URL`` (env ``CAT_ENGINE_PUBLIC_URL``) names it behind a proxy or in a cluster, where
every server must give the same answer; without it, the address the request came to.
"""

from __future__ import annotations

from flask import current_app, request


def public_url() -> str:
    """Return the site's base URL without a trailing slash, e.g. ``https://quiz.school.example``.

    Returns
    -------
    str
        ``PUBLIC_URL`` if configured, else the root URL of the current request.
    """
    configured = current_app.config.get("PUBLIC_URL")
    return (configured or request.url_root).rstrip("/")
