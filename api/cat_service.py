"""The 1EdTech Computer Adaptive Testing (CAT) Service, REST/JSON binding 1.0, under
``/ims/cat/v1p0``: a delivery platform (TAO, ...) delegates item selection to this engine.

The binding's resources: ``POST /sections`` (a section from one of this engine's tests),
``GET`` and ``DELETE /sections/{sectionIdentifier}``, ``GET /sections/{sectionIdentifier}/items``,
``POST /sections/{sectionIdentifier}/sessions`` (a candidate's session and its first items),
``POST .../sessions/{sessionIdentifier}/results`` (results in, next items out) and ``DELETE``
of a session. Platforms authenticate with OAuth 2 client credentials: ``POST
/ims/cat/v1p0/token`` exchanges the ``client_id`` and ``client_secret`` of a CAT service client
(issued by a district administrator through ``POST /api/v1/cat/clients``) for a bearer token.

Errors are the binding's ``imsx_StatusInfo`` JSON (``imsx_codeMajor`` ``failure``, a code minor
such as ``invaliddata`` or ``unknownobject``, and an ``imsx_description`` naming the field or
item). The OpenAPI document of this service alone is ``/ims/cat/v1p0/openapi.json``. The rules
live in :mod:`evidence.cat_service`.
"""

from __future__ import annotations

import http
from datetime import timedelta
from typing import Any

import marshmallow as ma
from flask import Flask, Response, current_app, g, json, request
from flask.views import MethodView
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException

from api.db import get_session
from evidence import cat_service as service
from storage.errors import ServiceError

PREFIX = "/ims/cat/v1p0"
JSON = "application/json"

blp = Blueprint("cat_service", __name__, description=(
    "The 1EdTech CAT Service REST binding: sections, sessions, results and next items"))

#: The binding's code minor for each status this service answers with.
CODE_MINOR = {400: "invaliddata", 401: "unauthorisedrequest", 403: "forbidden",
              404: "unknownobject", 405: "invaliddata", 409: "invaliddata",
              413: "invaliddata", 415: "invaliddata", 422: "invaliddata", 429: "server_busy",
              500: "internal_server_error", 503: "server_busy"}


# -- errors --------------------------------------------------------------------------------------


class CodeMinorFieldSchema(ma.Schema):
    imsx_codeMinorFieldName = ma.fields.String(required=True, metadata={
        "description": "The field whose value is wrong (a JSON path), or TargetEndSystem"})
    imsx_codeMinorFieldValue = ma.fields.String(required=True)


class CodeMinorSchema(ma.Schema):
    imsx_codeMinorField = ma.fields.List(ma.fields.Nested(CodeMinorFieldSchema), required=True)


class StatusInfoSchema(ma.Schema):
    """The binding's ``imsx_StatusInfo``: what went wrong."""

    imsx_codeMajor = ma.fields.String(required=True, metadata={"enum": ["failure"]})
    imsx_severity = ma.fields.String(required=True, metadata={"enum": ["error"]})
    imsx_description = ma.fields.String(metadata={
        "description": "What is wrong, naming the field or item"})
    imsx_CodeMinor = ma.fields.Nested(CodeMinorSchema)


def status_info(status: int, description: str, field: str | None = None,
                headers: dict[str, str] | None = None) -> Response:
    """An ``imsx_StatusInfo`` error reply."""
    minor = CODE_MINOR.get(status, "invaliddata" if status < 500 else "internal_server_error")
    body = {"imsx_codeMajor": "failure", "imsx_severity": "error",
            "imsx_description": description,
            "imsx_CodeMinor": {"imsx_codeMinorField": [{
                "imsx_codeMinorFieldName": field or "TargetEndSystem",
                "imsx_codeMinorFieldValue": minor}]}}
    reply = Response(json.dumps(body), status=status, mimetype=JSON)
    for name, value in (headers or {}).items():
        reply.headers[name] = value
    return reply


def _flatten(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(messages, dict):
        return [e for key, value in messages.items()
                for e in _flatten(value, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(messages, list):
        return [e for m in messages for e in _flatten(m, prefix)]
    return [(prefix, str(messages))]


def http_error(error: HTTPException) -> Response:
    """Any HTTP error under :data:`PREFIX` (unknown path, wrong method, invalid body...)."""
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages:  # the body does not fit the schema: 400, naming each field
        fields = [(f.removeprefix("json.").removeprefix("form."), m)
                  for f, m in _flatten(messages)]
        detail = "; ".join(f"{f}: {m}" for f, m in fields)
        return status_info(400, f"invalid request: {detail}", fields[0][0])
    status = error.code or 500
    headers = dict(data.get("headers") or {})
    if status == 405:
        headers["Allow"] = error.get_response().headers.get("Allow", "")
    description = error.description or error.name
    if status == 404 and error.description and "requested URL was not found" in description:
        description = (f"{request.path[:200]} is not a resource of the CAT service (see "
                       f"{PREFIX}/openapi.json)")
    if status == 413:
        description = (f"the request body is larger than the limit of "
                       f"{current_app.config.get('MAX_CONTENT_LENGTH')} bytes")
    return status_info(status, description, None, headers)


@blp.errorhandler(ServiceError)
def _service_error(error: ServiceError) -> Response:
    get_session().rollback()
    return status_info(error.status, str(error), error.field)


# -- authentication ------------------------------------------------------------------------------


def _unauthorized(message: str) -> Response:
    return status_info(401, message, None, {"WWW-Authenticate": 'Bearer realm="cat"'})


@blp.before_request
def _authenticate() -> Response | None:
    if request.endpoint == "cat_service.Token":
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized(f"send 'Authorization: Bearer <access_token>'; get a token from "
                             f"POST {PREFIX}/token with the client credentials of a CAT "
                             "service client")
    try:
        g.cat_client = service.client_of_token(get_session(), token.strip())
    except service.Unauthenticated as problem:
        return _unauthorized(str(problem))
    return None


# -- schemas -------------------------------------------------------------------------------------


class TokenRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    grant_type = ma.fields.String(required=True, metadata={"enum": ["client_credentials"]})
    scope = ma.fields.String(metadata={"description": f"Ignored: tokens carry {service.SCOPE}"})
    client_id = ma.fields.String(metadata={"description": "When not sent with HTTP Basic"})
    client_secret = ma.fields.String(metadata={"description": "When not sent with HTTP Basic"})


class TokenSchema(ma.Schema):
    access_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True)
    expires_in = ma.fields.Integer(required=True)
    scope = ma.fields.String(required=True)


class OAuthErrorSchema(ma.Schema):
    """An OAuth 2 error (RFC 6749, section 5.2)."""

    error = ma.fields.String(required=True)
    error_description = ma.fields.String()


_BASE64 = {"description": "Base64 (RFC 4648) text"}


class SectionSchema(ma.Schema):
    """A section: which test it delivers, and the QTI documents the platform sent with it."""

    class Meta:
        unknown = ma.EXCLUDE

    qtiMetadata = ma.fields.String(allow_none=True, metadata=_BASE64)
    qtiUsagedata = ma.fields.String(allow_none=True, metadata={
        "description": "Base64 of QTI usage data; kept as sent (the bank's parameters are used)"})
    sectionConfiguration = ma.fields.String(required=True, metadata={
        "description": 'Base64 of a JSON object naming the test: {"testId": 3} or '
                       '{"testName": "Maths"}'})


class SectionCreatedSchema(ma.Schema):
    sectionIdentifier = ma.fields.String(required=True)


class SectionItemsSchema(ma.Schema):
    itemIdentifiers = ma.fields.List(ma.fields.String(), required=True, metadata={
        "description": "Every item a session of the section may present (the items' codes, "
                       "as in the bank's QTI export)"})


class PriorDataSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    key = ma.fields.String(required=True)
    value = ma.fields.Raw(allow_none=True)


class SessionRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    personalNeedsAndPreferences = ma.fields.String(allow_none=True, metadata=_BASE64)
    demographics = ma.fields.String(allow_none=True, metadata=_BASE64)
    priorData = ma.fields.List(ma.fields.Nested(PriorDataSchema), allow_none=True, metadata={
        "description": "The pair keyed sourcedId is kept as the candidate's identifier; other "
                       "pairs are not used"})


class ResultsRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    assessmentResult = ma.fields.Dict(required=True, metadata={
        "description": "QTI results (JSON): itemResult [{identifier, responseVariable "
                       "[{identifier: RESPONSE, candidateResponse: {value: [choice]}}], "
                       "outcomeVariable [{identifier: SCORE, value: [score]}]}], and "
                       "context.sourcedId"})
    sessionState = ma.fields.String(allow_none=True)


class NextItemsSchema(ma.Schema):
    itemIdentifiers = ma.fields.List(ma.fields.String(), required=True)
    stageLength = ma.fields.Integer(required=True)


class ResultsReplySchema(ma.Schema):
    nextItems = ma.fields.Nested(NextItemsSchema, required=True)
    assessmentResult = ma.fields.Dict(metadata={
        "description": "testResult outcome variables THETA, SE (bank logit scale), "
                       "ITEMS_COUNTED and, once finished, STOP_REASON"})
    sessionState = ma.fields.String(metadata={
        "description": "JSON text: status (in_progress, finished), itemsCounted, stopReason"})


class SessionCreatedSchema(ResultsReplySchema):
    sessionIdentifier = ma.fields.String(required=True)


def _errors(*statuses: int):
    """Document ``statuses`` as ``imsx_StatusInfo`` replies."""

    def decorate(view):
        for status in statuses:
            view = blp.alt_response(status, schema=StatusInfoSchema, content_type=JSON,
                                    description=http.HTTPStatus(status).phrase)(view)
        return view

    return decorate


# -- views ---------------------------------------------------------------------------------------


def _client():
    return g.cat_client


def _oauth_error(status: int, code: str, description: str,
                 headers: dict[str, str] | None = None) -> Response:
    reply = Response(json.dumps({"error": code, "error_description": description}),
                     status=status, mimetype=JSON)
    reply.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        reply.headers[name] = value
    return reply


@blp.route("/token")
class Token(MethodView):
    @blp.arguments(TokenRequestSchema(), location="form", error_status_code=400)
    @blp.response(200, TokenSchema)
    @blp.alt_response(401, schema=OAuthErrorSchema, content_type=JSON,
                      description="invalid_client: unknown, wrong or revoked credentials")
    @blp.doc(security=[{"basicAuth": []}, {}])
    def post(self, form):
        """OAuth 2 client credentials grant: the client's id and secret (HTTP Basic, or
        client_id and client_secret in the form) for a bearer token."""
        if form["grant_type"] != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type",
                                "this token endpoint grants client_credentials only")
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            key, secret = auth.username or "", auth.password or ""
        else:
            key, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not key:
            return _oauth_error(401, "invalid_client", "send the client_id and client_secret "
                                "with HTTP Basic authentication",
                                {"WWW-Authenticate": 'Basic realm="cat"'})
        session = get_session()
        lifetime = current_app.config.get("CAT_TOKEN_LIFETIME", service.TOKEN_LIFETIME)
        if not isinstance(lifetime, timedelta):
            lifetime = timedelta(seconds=float(lifetime))
        try:
            token, expires_in = service.issue_token(session, key, secret, lifetime=lifetime)
        except service.Unauthenticated as problem:
            return _oauth_error(401, "invalid_client", str(problem),
                                {"WWW-Authenticate": 'Basic realm="cat"'})
        session.commit()
        return {"access_token": token, "token_type": "bearer", "expires_in": expires_in,
                "scope": service.SCOPE}, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"}


@blp.route("/sections")
class Sections(MethodView):
    @blp.arguments(SectionSchema(), error_status_code=400)
    @blp.response(201, SectionCreatedSchema)
    @_errors(401, 422)
    def post(self, data):
        """Create a section: one of this engine's tests, pinned to the bank it delivers now."""
        session = get_session()
        section = service.create_section(
            session, _client(), section_configuration=data["sectionConfiguration"],
            qti_metadata=data.get("qtiMetadata"), qti_usagedata=data.get("qtiUsagedata"))
        session.commit()
        return {"sectionIdentifier": section.identifier}


@blp.route("/sections/<string:sectionIdentifier>")
class SectionById(MethodView):
    @blp.response(200, SectionSchema)
    @_errors(401, 404)
    def get(self, sectionIdentifier):
        """The section as it was created."""
        section = service.section_of(get_session(), _client(), sectionIdentifier)
        out = {"sectionConfiguration": section.section_configuration}
        if section.qti_metadata is not None:
            out["qtiMetadata"] = section.qti_metadata
        if section.qti_usagedata is not None:
            out["qtiUsagedata"] = section.qti_usagedata
        return out

    @blp.response(204)
    @_errors(401, 404)
    def delete(self, sectionIdentifier):
        """End a section: it, its sessions and their results are deleted."""
        session = get_session()
        service.end_section(session, service.section_of(session, _client(), sectionIdentifier))
        session.commit()


@blp.route("/sections/<string:sectionIdentifier>/items")
class SectionItems(MethodView):
    @blp.response(200, SectionItemsSchema)
    @_errors(401, 404)
    def get(self, sectionIdentifier):
        """The identifiers of every item the section's sessions may present."""
        session = get_session()
        section = service.section_of(session, _client(), sectionIdentifier)
        return {"itemIdentifiers": service.section_items(session, section)}


@blp.route("/sections/<string:sectionIdentifier>/sessions")
class Sessions(MethodView):
    @blp.arguments(SessionRequestSchema(), error_status_code=400)
    @blp.response(201, SessionCreatedSchema)
    @_errors(401, 404)
    def post(self, data, sectionIdentifier):
        """Create a candidate's session: its identifier and the first items to present."""
        session = get_session()
        section = service.section_of(session, _client(), sectionIdentifier)
        _cat_session, reply = service.create_session(session, section,
                                                     prior_data=data.get("priorData"))
        session.commit()
        return reply


@blp.route("/sections/<string:sectionIdentifier>/sessions/<string:sessionIdentifier>")
class SessionById(MethodView):
    @blp.response(204)
    @_errors(401, 404)
    def delete(self, sectionIdentifier, sessionIdentifier):
        """End a session: it and its results are deleted; later calls about it get 404."""
        session = get_session()
        section = service.section_of(session, _client(), sectionIdentifier)
        service.end_session(session, service.session_of(session, section, sessionIdentifier))
        session.commit()


@blp.route("/sections/<string:sectionIdentifier>/sessions/<string:sessionIdentifier>/results")
class Results(MethodView):
    @blp.arguments(ResultsRequestSchema(), error_status_code=400)
    @blp.response(200, ResultsReplySchema)
    @_errors(401, 404, 409, 422)
    def post(self, data, sectionIdentifier, sessionIdentifier):
        """Submit the results of the items presented; get the next items (none once a stopping
        rule fired). A result sent again is counted once."""
        session = get_session()
        section = service.section_of(session, _client(), sectionIdentifier)
        cat_session = service.session_of(session, section, sessionIdentifier)
        reply = service.submit_results(session, section, cat_session, data["assessmentResult"])
        session.commit()
        reply.pop("sessionIdentifier")
        return reply


# -- the service's own OpenAPI document ----------------------------------------------------------


class CatApi(Api):
    """A second flask-smorest API for the CAT service's own OpenAPI document: errors documented
    as ``imsx_StatusInfo`` JSON. The app's HTTP errors stay with :class:`api.v1.ProblemApi`,
    which hands those under :data:`PREFIX` to :func:`http_error`."""

    def _register_error_handlers(self) -> None:
        """None: the app's handler (api.v1) already routes this service's errors here."""

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = StatusInfoSchema
            prepare_response(response, self.spec, JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": StatusInfoSchema}
        prepare_response(response, self.spec, JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def init_app(app: Flask) -> Api:
    """Register the service and its OpenAPI document (``/ims/cat/v1p0/openapi.json``)."""
    for name, value in (("API_TITLE", "cat-engine: 1EdTech CAT Service"),
                        ("API_VERSION", "v1p0"), ("OPENAPI_VERSION", "3.0.3"),
                        ("OPENAPI_URL_PREFIX", PREFIX), ("OPENAPI_JSON_PATH", "openapi.json")):
        app.config.setdefault(f"CAT_{name}", value)
    api = CatApi(app, config_prefix="CAT", spec_kwargs={"info": {"description": (
        "The 1EdTech Computer Adaptive Testing (CAT) Service REST binding 1.0. Get a token "
        f"with POST {PREFIX}/token (OAuth 2 client credentials), then send "
        "`Authorization: Bearer <access_token>`. Errors are imsx_StatusInfo JSON.")},
        "security": [{"oauth2": [service.SCOPE]}]})
    api.spec.components.security_scheme("oauth2", {
        "type": "oauth2", "flows": {"clientCredentials": {
            "tokenUrl": f"{PREFIX}/token", "scopes": {service.SCOPE: "The CAT service"}}}})
    api.spec.components.security_scheme("basicAuth", {"type": "http", "scheme": "basic"})
    api.register_blueprint(blp, url_prefix=PREFIX)
    return api
