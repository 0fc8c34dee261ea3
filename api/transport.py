"""Headers about caching and transport security, and the reverse-proxy setting.

- Every reply under ``/api/v1`` carries ``Cache-Control: no-store`` (they hold personal data:
  attempts, results, accounts, tokens), except the public OpenAPI document.
- ``Strict-Transport-Security`` is sent on replies to requests that came over HTTPS, and on every
  reply when ``SESSION_COOKIE_SECURE`` is on (the deployment is served over HTTPS).
- Behind a reverse proxy that terminates TLS, ``CAT_ENGINE_PROXIES=N`` (N proxies in front; an
  app setting of the same name in tests) makes the app trust their ``X-Forwarded-For``,
  ``-Proto``, ``-Host`` and ``-Port`` headers, so that it knows a request was secure. Never set
  it without a proxy: clients could then claim any address and scheme.
- Text replies (pages, JSON, styles, scripts) of more than :data:`COMPRESS_MIN_BYTES` are sent
  gzip-compressed to clients that accept it (``Vary: Accept-Encoding``): a test over a 2G
  connection moves a third of the bytes. ``CAT_ENGINE_COMPRESS=0`` turns it off (for a reverse
  proxy that compresses itself).
"""

from __future__ import annotations

import gzip
import os

from flask import Flask, Response, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

API_PREFIX = "/api/v1"
PUBLIC_API_PATHS = frozenset({f"{API_PREFIX}/openapi.json"})
HSTS = "max-age=31536000; includeSubDomains"


def _headers(response: Response) -> Response:
    path = request.path
    if (path == API_PREFIX or path.startswith(API_PREFIX + "/")) and path not in PUBLIC_API_PATHS:
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure or current_app.config.get("SESSION_COOKIE_SECURE"):
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


COMPRESS_MIN_BYTES = 600
COMPRESSIBLE = frozenset({
    "text/html", "text/css", "text/javascript", "application/javascript", "application/json",
    "application/problem+json", "application/xml", "image/svg+xml", "text/csv", "text/plain",
})


def _compress(response: Response) -> Response:
    """gzip a text reply when the client accepts it (see the module's docstring)."""
    if (not current_app.config.get("COMPRESS", True) or response.status_code != 200
            or (response.is_streamed and not response.direct_passthrough)
            or response.mimetype not in COMPRESSIBLE
            or "Content-Encoding" in response.headers
            or "gzip" not in request.headers.get("Accept-Encoding", "")):
        return response
    response.vary.add("Accept-Encoding")
    if response.direct_passthrough:  # a static file: small, read once
        response.direct_passthrough = False
    body = response.get_data()
    if len(body) < COMPRESS_MIN_BYTES:
        return response
    response.set_data(gzip.compress(body, compresslevel=6, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:  # the same resource in another encoding: equal only weakly
        response.set_etag(etag, weak=True)
    return response


def init_app(app: Flask) -> None:
    """Add the headers to every reply, compress text replies; trust ``CAT_ENGINE_PROXIES``
    reverse proxies."""
    app.config.setdefault("COMPRESS", os.environ.get("CAT_ENGINE_COMPRESS", "1") != "0")
    proxies = app.config.get("CAT_ENGINE_PROXIES")
    if proxies is None:
        proxies = os.environ.get("CAT_ENGINE_PROXIES", "").strip() or 0
    try:
        proxies = int(proxies)
    except ValueError:
        raise ValueError(f"CAT_ENGINE_PROXIES must be a whole number of proxies, got "
                         f"{proxies!r}") from None
    if proxies < 0:
        raise ValueError(f"CAT_ENGINE_PROXIES must be 0 or more, got {proxies}")
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies,
                                x_port=proxies)
    app.after_request(_headers)
    app.after_request(_compress)
