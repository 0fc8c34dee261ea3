"""The JSON API, version 1: a flask-smorest blueprint per resource under ``/api/v1``.

Errors are RFC 9457 problem details (``application/problem+json``) with a ``title``, a
``detail`` naming what is wrong, the ``status`` and, for invalid input, ``errors``: one entry per
field (``{"field": "json.item_id", "message": ...}``). The OpenAPI 3 document is served at
``/api/v1/openapi.json``.
"""

from __future__ import annotations

import http
from typing import Any

import marshmallow as ma
from flask import Flask, Response, json, request
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from item_bank.services import BankError
from item_bank.services import Conflict as BankConflict
from storage import unavailability
from storage.errors import ServiceError

PREFIX = "/api/v1"
CAT_PREFIX = "/ims/cat/v1p0"
PROBLEM_TYPE = "application/problem+json"


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem details object (documentation only)."""

    type = ma.fields.String(metadata={"description": "A URI naming the kind of problem"})
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String(metadata={"description": "What is wrong, naming the field or id"})
    instance = ma.fields.String()
    errors = ma.fields.List(ma.fields.Dict(), metadata={"description": "One entry per field"})
    # Extension members (RFC 9457 section 3.2) of a file that cannot be read or imported:
    # where its first problem is.
    line = ma.fields.Integer(metadata={"description": "A file's line of the first problem"})
    location = ma.fields.String(metadata={
        "description": "The CSV column or XML element (element/@attribute) of the first problem"})
    item_id = ma.fields.String(metadata={"description": "The item of the first problem"})
    source = ma.fields.String(metadata={
        "description": "The file inside a package that holds the first problem"})


def problem(status: int, title: str, detail: str, errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    """Build a problem+json response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status,
                            "detail": detail, "instance": request.path}
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten(messages: Any, prefix: str = "") -> list[dict[str, Any]]:
    """Turn marshmallow's nested messages into ``[{"field": "json.a.b", "message": ...}]``."""
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [{"field": prefix, "message": m} for m in messages]
    if isinstance(messages, list):
        return [e for m in messages for e in _flatten(m, prefix)]
    return [{"field": prefix, "message": str(messages)}]


class ProblemApi(Api):
    """flask-smorest's Api with RFC 9457 errors on API paths (pages keep their HTML errors)."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        """The error responses of the OpenAPI document, as problem+json (what is sent)."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            content_type = PROBLEM_TYPE if status >= 400 else self.DEFAULT_RESPONSE_CONTENT_TYPE
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def handle_http_exception(self, error: HTTPException):
        if request.path.startswith(CAT_PREFIX + "/"):  # the CAT service's imsx_StatusInfo
            from api.cat_service import http_error

            return http_error(error)
        if not request.path.startswith(PREFIX):
            return error
        if error.response is not None:  # a reply made for it already (a 429 with Retry-After)
            return error.response
        data = getattr(error, "data", None) or {}
        headers = dict(data.get("headers") or {})
        errors = None
        if "messages" in data or "errors" in data:
            errors = _flatten(data.get("errors") or data.get("messages"))
        if errors:
            names = sorted({e["field"] for e in errors})
            detail = f"invalid field(s): {', '.join(names)}"
        else:
            detail = data.get("message") or error.description or error.name
        if error.code == 413:
            limit = self._app.config.get("MAX_CONTENT_LENGTH")
            detail = f"the request body is larger than the limit of {limit} bytes"
        if error.code == 405:
            headers.update(dict(error.get_response().headers.items()))
            headers.pop("Content-Type", None)
            headers.pop("Content-Length", None)
        return problem(error.code or 500, error.name, detail, errors, headers)


def _service_error(error: Exception):
    if isinstance(error, ServiceError):
        status, title = error.status, error.title
    elif isinstance(error, BankConflict):
        status, title = 409, "Conflict"
    else:
        status, title = 422, "Unprocessable content"
    field = getattr(error, "field", None)
    errors = [{"field": field, "message": str(error)}] if field else None
    return problem(status, title, str(error), errors)


# What each kind of unavailability (storage.unavailability) tells the client, and when to retry.
_UNAVAILABLE = {
    "reset": ("the database connection was reset; retry the request", "1"),
    "busy": ("the database is busy with another change; retry the request in a moment", "1"),
    "unreachable": ("the database is not reachable just now; nothing of this request was "
                    "saved: retry in a few seconds", "5"),
}


def _database_unavailable(error: SQLAlchemyError):
    """The database cannot serve the request just now: 503 with ``Retry-After``.

    A pooled connection found dead (a restart) costs one 503: the pool drops every connection
    older than this one, so the retry gets a fresh connection. An outage (connections refused),
    a SQLite file locked by a long writer beyond the busy timeout, or a pool with no free
    connection are 503s too, for as long as they last. Nothing of the request was committed.
    Pages get a short plain-text 503 where their blueprint has no page for it; any other
    database error stays a 500.
    """
    kind = unavailability(error)
    if kind is None:
        raise error
    detail, retry = _UNAVAILABLE[kind]
    if request.path.startswith(PREFIX):
        return problem(503, "Service Unavailable", detail, None, {"Retry-After": retry})
    if request.path.startswith(CAT_PREFIX + "/"):
        from api.cat_service import status_info

        return status_info(503, detail, None, {"Retry-After": retry})
    return detail, 503, {"Retry-After": retry, "Content-Type": "text/plain; charset=utf-8"}


def _lost_race(error: IntegrityError):
    """A unique value taken by a request that committed first: 409, nothing of this one kept.

    Services check uniqueness (a code, a name) before writing and say which field clashes; this
    covers the race between two requests that both passed that check.
    """
    if not request.path.startswith(PREFIX):
        raise error
    return problem(409, "Conflict", "another request saved a conflicting change at the same "
                   "moment (a value that must be unique is now taken); nothing of this request "
                   "was saved: fetch the current state and retry", None)


def init_app(app: Flask) -> Api:
    """Register the API's blueprints, its error handlers and its OpenAPI document."""
    from api.v1 import (
        attempts,
        audit,
        auth,
        calibration,
        cat_clients,
        classes,
        dashboard,
        defenses,
        erasures,
        exports,
        indicators,
        items,
        lti,
        portfolio,
        privacy,
        rater_analysis,
        report_pdfs,
        reports,
        resources,
        rosters,
        rubric_calibrations,
        rubrics,
        schools,
        tasks,
        tests,
        users,
        xapi_clients,
        xapi_out,
    )

    app.config.setdefault("API_TITLE", "cat-engine")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = ProblemApi(app, spec_kwargs={"info": {"description": (
        "Adaptive tests over HTTP: sign in with POST /api/v1/auth/token, then send "
        "`Authorization: Bearer <access_token>`. Errors are RFC 9457 problem details."
    )}})
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer"}
    )
    for module in (auth, users, classes, dashboard, items, tests, attempts, calibration, tasks,
                   indicators, portfolio, xapi_clients, rubrics, defenses, rater_analysis,
                   rubric_calibrations, reports, report_pdfs, resources, exports, erasures, audit,
                   privacy, schools, rosters, cat_clients, xapi_out, lti):
        api.register_blueprint(module.blp, url_prefix=PREFIX)
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(BankError, _service_error)
    app.register_error_handler(DBAPIError, _database_unavailable)
    app.register_error_handler(PoolTimeout, _database_unavailable)
    app.register_error_handler(IntegrityError, _lost_race)
    return api
