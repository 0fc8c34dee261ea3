"""The xAPI 1.0.3 endpoints under ``/xapi/``: the statements resource and ``about``.

Learning tools authenticate with HTTP Basic ``key:secret`` of a credential issued through
``POST /api/v1/xapi/clients``; a credential reads and writes statements about the students of its
class only. Every request but ``GET /xapi/about`` must send ``X-Experience-API-Version``
(1.0.0 to 1.0.3); every reply carries ``X-Experience-API-Version: 1.0.3``. Errors are JSON
``{"error": <status phrase>, "message": ..., "errors": [{"field", "message"}]}`` and name the
field path. Bodies over :data:`MAX_BODY` bytes are refused (413) before they are read, and each
credential is rate-limited (429 with ``Retry-After``; ``XAPI_RATE_LIMIT``, counted in the
app's rate-limit storage: the database by default, see :mod:`api.rate_limits`).
The rules live in :mod:`evidence.statements`.
"""

from __future__ import annotations

import http
import json as jsonlib

from flask import Blueprint, Flask, Response, current_app, g, json, request
from flask_limiter import Limiter, RequestLimit
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from api.db import get_session
from api.site import public_url
from evidence import statements as service
from evidence.xapi_clients import Unauthenticated, authenticate_client
from storage import utcnow
from storage.errors import ServiceError

bp = Blueprint("xapi", __name__, url_prefix="/xapi")

PREFIX = "/xapi/"
MAX_BODY = 1024 * 1024
DEFAULT_RATE_LIMIT = "50 per second;1200 per minute"
VERSION_HEADER = "X-Experience-API-Version"


def error(status: int, message: str, errors: list[dict[str, str]] | None = None,
          headers: dict[str, str] | None = None) -> Response:
    """A JSON error reply naming what is wrong."""
    body = {"error": http.HTTPStatus(status).phrase, "message": message}
    if errors:
        body["errors"] = errors
    reply = Response(json.dumps(body), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        reply.headers[name] = value
    return reply


def _credential_key() -> str:
    """What the rate limit counts by: the credential's key (the address when none is sent)."""
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username:
        return f"key:{auth.username[:64]}"
    return f"addr:{request.remote_addr}"


def _refuse_large_body() -> Response | None:
    """413 for a body over :data:`MAX_BODY`, before any hook reads it."""
    if not request.path.startswith(PREFIX):
        return None
    if request.content_length is not None and request.content_length > MAX_BODY:
        return error(413, f"the request body is {request.content_length:,} bytes; at most "
                          f"{MAX_BODY:,} (1 MB) are taken")
    request.max_content_length = MAX_BODY
    return None


@bp.before_request
def _authenticate() -> Response | None:
    if request.endpoint in ("xapi.about", "xapi.elsewhere"):
        return None
    try:
        service.check_version(request.headers.get(VERSION_HEADER))
    except service.BadStatement as problem:
        return error(400, str(problem), problem.errors)
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username:
        return error(401, "send HTTP Basic authentication with the key and secret of an xAPI "
                          "credential (POST /api/v1/xapi/clients issues one)",
                     headers={"WWW-Authenticate": 'Basic realm="xAPI"'})
    try:
        g.xapi_client = authenticate_client(get_session(), auth.username, auth.password or "")
    except Unauthenticated as problem:
        return error(401, str(problem), headers={"WWW-Authenticate": 'Basic realm="xAPI"'})
    return None


@bp.after_request
def _version_header(response: Response) -> Response:
    response.headers[VERSION_HEADER] = service.XAPI_VERSION
    return response


def _writer() -> service.Writer:
    client = g.xapi_client
    return service.Writer(client_id=client.id, class_id=client.class_id,
                          authority=service.client_authority(public_url(), client.key,
                                                             client.name))


def _body() -> object:
    if request.mimetype != "application/json":
        raise service.BadStatement(
            "send statements as application/json (attachments in multipart/mixed are not "
            "taken; give attachments a fileUrl)", "Content-Type")
    try:
        return jsonlib.loads(request.get_data(cache=True), parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as problem:
        raise service.BadStatement(f"the body is not valid JSON: {problem}", "body") from None


def _not_json(name: str) -> None:
    """NaN and Infinity: Python's parser takes them, JSON (and PostgreSQL) does not."""
    raise ValueError(f"{name} is not a JSON value")


@bp.get("/about")
def about() -> Response:
    """The xAPI versions this LRS speaks (the specification requires this resource)."""
    return Response(json.dumps({"version": [service.XAPI_VERSION]}), mimetype="application/json")


@bp.post("/statements")
def post_statements() -> Response:
    """Store one statement or a list; replies with their ids, in order."""
    if request.args:
        raise service.BadStatement("POST /xapi/statements takes no query parameters "
                                   f"(got {', '.join(sorted(request.args))})",
                                   sorted(request.args)[0])
    document = _body()
    documents = document if isinstance(document, list) else [document]
    session = get_session()
    ids = service.store_statements(session, documents, base_url=public_url(),
                                   writer=_writer(), now=utcnow(),
                                   batch=isinstance(document, list))
    session.commit()
    return Response(json.dumps(ids), mimetype="application/json")


@bp.put("/statements")
def put_statement() -> Response:
    """Store one statement under ``?statementId=``: 204 (also when stored already, same
    content), 409 when that id holds other content."""
    statement_id = request.args.get("statementId")
    if not statement_id:
        raise service.BadStatement("PUT needs the statementId query parameter", "statementId")
    extra = sorted(set(request.args) - {"statementId"})
    if extra:
        raise service.BadStatement(f"unknown query parameter(s): {', '.join(extra)}", extra[0])
    try:
        statement_id = service.canonical_uuid(statement_id)
    except ValueError:
        raise service.BadStatement("statementId must be a UUID", "statementId") from None
    document = _body()
    if not isinstance(document, dict):
        raise service.BadStatement("PUT takes one statement (a JSON object)", "statement")
    session = get_session()
    service.store_statements(session, [document], base_url=public_url(), writer=_writer(),
                             now=utcnow(), statement_id=statement_id)
    session.commit()
    return Response(status=204)


@bp.get("/statements")
def get_statements() -> Response:
    """One statement (``statementId``, ``voidedStatementId``) or a page of them by filters."""
    params = {name: request.args.get(name) for name in request.args}
    result = service.query_statements(get_session(), params, base_url=public_url(),
                                      class_id=g.xapi_client.class_id,
                                      path=f"{request.script_root}/xapi/statements")
    reply = Response(json.dumps(result), mimetype="application/json")
    reply.headers["X-Experience-API-Consistent-Through"] = utcnow().isoformat()
    return reply


@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
def elsewhere(rest: str) -> Response:
    """The document resources (state, profiles) and anything else: not served here."""
    return error(404, f"/xapi/{rest[:100]} is not a resource of this LRS: it serves "
                      "/xapi/statements and /xapi/about (no state or profile documents)")


@bp.errorhandler(ServiceError)
def _service_error(problem: ServiceError) -> Response:
    get_session().rollback()
    errors = getattr(problem, "errors", None)
    if errors is None and problem.field:
        errors = [{"field": problem.field, "message": str(problem)}]
    status = 400 if problem.status == 422 else problem.status
    return error(status, str(problem), errors)


@bp.errorhandler(IntegrityError)
def _lost_race(_problem: IntegrityError) -> Response:
    get_session().rollback()
    return error(409, "another request stored a statement with one of these ids at the same "
                      "moment; nothing of this request was stored: send it again")


@bp.errorhandler(HTTPException)
def _http_error(problem: HTTPException) -> Response:
    if problem.code == 413:
        return error(413, f"the request body is larger than {MAX_BODY:,} bytes (1 MB)")
    if problem.code == 429:
        return problem.get_response()
    return error(problem.code or 400, problem.description or problem.name)


def _breached(limit: RequestLimit) -> Response:
    reset = max(1, int(limit.reset_at - utcnow().timestamp()) + 1)
    return error(429, f"too many requests from this credential: at most {limit.limit}; retry "
                      f"in {reset} s", headers={"Retry-After": str(reset)})


def _rate_limit() -> str:
    return current_app.config.get("XAPI_RATE_LIMIT") or DEFAULT_RATE_LIMIT


def init_app(app: Flask, limiter: Limiter) -> None:
    """Register the blueprint, its body limit (ahead of every other hook) and its rate limit
    (counted by ``limiter``, the app's: see :mod:`api.rate_limits`)."""
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_large_body)
    limiter.limit(_rate_limit, key_func=_credential_key, on_breach=_breached)(bp)
    app.register_blueprint(bp)
