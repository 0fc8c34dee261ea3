"""A learning platform for the LTI tests: real RSA keys, real signed id_tokens (PyJWT), and its
JWKS, OAuth2 token and AGS score endpoints served by a real HTTP server on a thread."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"


def rsa_key() -> tuple[str, dict[str, Any]]:
    """A new RSA private key (PEM) and its public JWK."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    return pem, public


@dataclass
class Platform:
    """The platform: its issuer, the client id it gave the tool, its deployment, its server."""

    issuer: str = "https://lms.example.test"
    client_id: str = "cat-engine-tool"
    deployment_id: str = "deployment-1"
    kid: str = "platform-key-1"
    down: bool = False
    tool_jwks: dict[str, Any] | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    refused_scores: int = 0

    def __post_init__(self) -> None:
        self.private_pem, jwk = rsa_key()
        self.jwk = jwk | {"kid": self.kid, "alg": "RS256", "use": "sig"}
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    # -- what the tool is told at registration ---------------------------------------------

    def registration(self, **overrides: Any) -> dict[str, Any]:
        return {"name": "Test LMS", "issuer": self.issuer, "client_id": self.client_id,
                "auth_login_url": f"{self.base}/auth", "auth_token_url": f"{self.base}/token",
                "key_set_url": f"{self.base}/jwks", "deployment_ids": [self.deployment_id]
                } | overrides

    @property
    def lineitem(self) -> str:
        return f"{self.base}/lineitems/7"

    # -- id_tokens -------------------------------------------------------------------------

    def claims(self, nonce: str, *, sub: str = "lms-user-1", roles: list[str] | None = None,
               message_type: str = "LtiResourceLinkRequest", **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        body = {
            "iss": self.issuer, "aud": self.client_id, "sub": sub, "nonce": nonce,
            "iat": now, "exp": now + 300, "name": "Ada L.",
            CLAIM + "deployment_id": self.deployment_id,
            CLAIM + "message_type": message_type, CLAIM + "version": "1.3.0",
            CLAIM + "roles": roles or [LEARNER],
            CLAIM + "target_link_uri": "http://localhost/lti/launch",
            CLAIM + "context": {"id": "course-42", "title": "Algebra 1", "label": "ALG1"},
        }
        if message_type == "LtiResourceLinkRequest":
            body[CLAIM + "resource_link"] = {"id": "link-1", "title": "Maths quiz"}
            body["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"] = {
                "scope": [SCORE_SCOPE], "lineitem": self.lineitem,
                "lineitems": f"{self.base}/lineitems"}
        else:
            body["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"] = {
                "deep_link_return_url": f"{self.base}/deep-link-return",
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "data": "opaque-123"}
        return body | extra

    def sign(self, body: dict[str, Any], key: str | None = None, kid: str | None = None,
             algorithm: str = "RS256") -> str:
        return jwt.encode(body, key or self.private_pem, algorithm=algorithm,
                          headers={"kid": kid or self.kid})

    # -- the HTTP server -------------------------------------------------------------------

    def _app(self, environ, start_response):
        request = Request(environ)
        if request.path == "/jwks":
            response = Response(json.dumps({"keys": [self.jwk]}),
                                content_type="application/json")
        elif request.path == "/token" and request.method == "POST":
            response = self._token(request)
        elif request.path == "/lineitems/7/scores" and request.method == "POST":
            response = self._score(request)
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    def _token(self, request: Request) -> Response:
        if self.down:
            return Response("down for maintenance", status=503)
        assertion = request.form.get("client_assertion", "")
        header = jwt.get_unverified_header(assertion)
        key = next(k for k in (self.tool_jwks or {}).get("keys", [])
                   if k["kid"] == header["kid"])
        claims = jwt.decode(assertion, RSAAlgorithm.from_jwk(json.dumps(key)),
                            algorithms=["RS256"], audience=f"{self.base}/token")
        self.token_requests.append({"claims": claims, "scope": request.form.get("scope")})
        return Response(json.dumps({"access_token": f"token-{uuid.uuid4().hex}",
                                    "token_type": "Bearer", "expires_in": 3600}),
                        content_type="application/json")

    def _score(self, request: Request) -> Response:
        if self.down:
            self.refused_scores += 1
            return Response("down for maintenance", status=503)
        if not request.headers.get("Authorization", "").startswith("Bearer token-"):
            return Response("no token", status=401)
        assert request.content_type == "application/vnd.ims.lis.v1.score+json"
        self.scores.append(json.loads(request.get_data(as_text=True)))
        return Response(status=204)
