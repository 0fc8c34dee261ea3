"""Sign-in for the API (bearer tokens) and the role checks every other blueprint uses."""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import marshmallow as ma
from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from api.db import get_session
from api.rate_limits import failed_sign_in
from api.v1 import PROBLEM_TYPE, ProblemSchema
from rights.audit_log import record_failed_sign_in, record_sign_in
from storage import as_utc, bind_key, utcnow
from storage.accounts import ApiToken, Role, User, authenticate
from storage.errors import Forbidden, ServiceError

blp = Blueprint("auth", __name__, description="Sign in and out of the API")

TOKEN_LIFETIME = timedelta(hours=12)
TOKEN_CACHE_SECONDS = 10.0
SECURITY = [{"bearerAuth": []}]


class Unauthorized(ServiceError):
    """No valid bearer token (401)."""

    status = 401
    title = "Unauthorized"


def token_hash(token: str) -> str:
    """The stored form of a token (SHA-256; the tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session, user: User) -> tuple[str, int]:
    """Create a token for ``user``; returns it (shown once) and its lifetime in seconds."""
    lifetime = current_app.config.get("API_TOKEN_LIFETIME", TOKEN_LIFETIME)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(ApiToken(user_id=user.id, token_hash=token_hash(token), created_at=now,
                         expires_at=now + lifetime))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id,
                                           ApiToken.expires_at < now))
    return token, int(lifetime.total_seconds())


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class _TokenCache:
    """Recently checked tokens, so a request needs no database round trip to know its user.

    An entry keeps the user's column values and the token's expiry for ``ttl`` seconds; each
    request gets its own instance, attached to its session without a query. Signing out and any
    change to a user made in this process drop entries at once; other worker processes see a
    revocation or deactivation within ``ttl`` seconds (see docs/decisions.md).
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: dict[tuple[str, str], tuple[float, dict, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], ttl: float) -> tuple[dict, object] | None:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > ttl:
            return None
        return entry[1], entry[2]

    def put(self, key: tuple[str, str], values: dict, expires_at) -> None:
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), values, expires_at)

    def forget(self, token_digest: str | None = None) -> None:
        """Drop one token (by digest), or every entry."""
        with self._lock:
            if token_digest is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[1] == token_digest]:
                    del self._entries[key]


TOKENS = _TokenCache()
_USER_COLUMNS = tuple(c.key for c in User.__mapper__.column_attrs)


@event.listens_for(Session, "after_flush")
def _forget_changed_users(session: Session, _context) -> None:
    """A user changed here (role, password, deactivation): no cached token may outlive it.

    Dropped at the flush and again at the commit: a request of this process that cached the
    user between the two (it still read the old row) must not keep it.
    """
    if any(isinstance(o, User) for o in (*session.dirty, *session.deleted)):
        TOKENS.forget()
        session.info["users_changed"] = True


@event.listens_for(Session, "after_commit")
def _forget_committed_users(session: Session) -> None:
    if session.info.pop("users_changed", False):
        TOKENS.forget()


def _attached_user(session: Session, values: dict) -> User:
    """A persistent ``User`` in ``session`` built from cached column values, without a query."""
    loaded = session.identity_map.get(identity_key(User, values["id"]))
    if loaded is not None:
        return loaded
    user = User(**values)
    make_transient_to_detached(user)  # as if loaded: nothing to write back
    session.add(user)
    return user


def current_user() -> User:
    """The user whose bearer token came with the request.

    Raises
    ------
    Unauthorized
        No token, an unknown or expired one, or a deactivated account.
    """
    if "api_user" in g:
        return g.api_user
    token = _bearer()
    if token is None:
        raise Unauthorized("send 'Authorization: Bearer <access_token>'; get a token from "
                           "POST /api/v1/auth/token")
    session = get_session()
    digest = token_hash(token)
    ttl = float(current_app.config.get("API_TOKEN_CACHE_SECONDS", TOKEN_CACHE_SECONDS))
    key = (bind_key(session), digest)
    cached = TOKENS.get(key, ttl) if ttl > 0 else None
    if cached is not None:
        values, expires_at = cached
        user = None
    else:
        row = session.execute(
            select(User, ApiToken.expires_at).join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == digest)
        ).first()
        if row is None:
            raise Unauthorized("the access token is not valid; sign in again")
        user, expires_at = row
        values = {name: getattr(user, name) for name in _USER_COLUMNS}
        if ttl > 0 and user.is_active:
            TOKENS.put(key, values, expires_at)
    if as_utc(expires_at) <= utcnow():
        raise Unauthorized("the access token has expired; sign in again")
    if not values["is_active"]:
        raise Unauthorized("this account is deactivated")
    g.api_user = user if user is not None else _attached_user(session, values)
    return g.api_user


def requires(*roles: Role) -> Callable:
    """Decorate a view: a valid token is required, and one of ``roles`` when given.

    The OpenAPI document gets the bearer security requirement and the 401/403 responses.
    """

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if roles and user.role not in roles:
                allowed = ", ".join(r.value for r in roles)
                raise Forbidden(f"this needs the role {allowed}; you are {user.role.value}")
            return view(*args, **kwargs)

        doc = getattr(wrapper, "_apidoc", {})
        doc = {**doc, "manual_doc": {**doc.get("manual_doc", {}), "security": SECURITY}}
        wrapper._apidoc = doc
        return blp_responses(wrapper, roles)

    return decorate


def blp_responses(view: Callable, roles: tuple[Role, ...]) -> Callable:
    """Document 401 (and 403 when roles are restricted) on ``view``."""
    responses = view._apidoc.setdefault("manual_doc", {}).setdefault("responses", {})
    responses.setdefault("401", {"description": "No valid bearer token",
                                 "content": {"application/problem+json": {}}})
    if roles:
        responses.setdefault("403", {"description": "Role not allowed",
                                     "content": {"application/problem+json": {}}})
    return view


# -- schemas -------------------------------------------------------------------------------------


class CredentialsSchema(ma.Schema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(1, 80))
    password = ma.fields.String(required=True, validate=ma.validate.Length(1, 1024),
                                load_only=True)


class TokenSchema(ma.Schema):
    access_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True)
    expires_in = ma.fields.Integer(required=True)


class UserSchema(ma.Schema):
    id = ma.fields.Integer()
    username = ma.fields.String()
    display_name = ma.fields.String()
    role = ma.fields.Enum(Role, by_value=True)
    pseudonym = ma.fields.String(metadata={
        "description": "A stable random id that stands for the person in data that leaves the "
                       "school (the xAPI agent's account name)"})


# -- views ---------------------------------------------------------------------------------------


@blp.route("/auth/token")
class Tokens(MethodView):
    @blp.arguments(CredentialsSchema())
    @blp.response(200, TokenSchema)
    @blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_TYPE, description=(
        "Wrong username or password (the same answer for an unknown, deactivated or erased "
        "account)"))
    @blp.alt_response(429, schema=ProblemSchema, content_type=PROBLEM_TYPE, description=(
        "Too many failed sign-ins for this account or from this address: none is taken, the "
        "right password neither, until the window ends"), headers={"Retry-After": {
            "description": "Seconds to wait", "schema": {"type": "integer"}}})
    def post(self, credentials):
        """Sign in: exchange a username and password for an access token."""
        session = get_session()
        user = authenticate(session, credentials["username"], credentials["password"],
                            hash_method=current_app.config["PASSWORD_HASH_METHOD"])
        if user is None:
            failed_sign_in()
            record_failed_sign_in(session, credentials["username"], "api")
            raise Unauthorized("that username and password do not match an account")
        record_sign_in(session, user, "api")
        token, lifetime = issue_token(session, user)
        session.commit()
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}

    @requires()
    @blp.response(204)
    def delete(self):
        """Sign out: revoke the token sent with this request."""
        session = get_session()
        digest = token_hash(_bearer())
        session.execute(delete(ApiToken).where(ApiToken.token_hash == digest))
        session.commit()
        TOKENS.forget(digest)


@blp.route("/me")
class Me(MethodView):
    @requires()
    @blp.response(200, UserSchema)
    def get(self):
        """Who the token belongs to."""
        return current_user()
