"""Credentials of learning tools that send xAPI statements about the students of one class.

An administrator or the class's teacher issues one (:func:`create_client`) and sees its secret
once; only the secret's SHA-256 is kept (the secret is 256 random bits, so a salt or a slow hash
adds nothing). :func:`authenticate_client` compares in constant time and refuses revoked
credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from evidence.classes import reaches_classes, visible_class
from evidence.models import XapiClient
from storage import utcnow
from storage.accounts import Role, SchoolClass, User
from storage.errors import Invalid, NotFound

_DUMMY_HASH = hashlib.sha256(b"no such client").hexdigest()


def secret_hash(secret: str) -> str:
    """The stored form of a client's secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create_client(session: Session, viewer: User, *, name: str, class_id: int
                  ) -> tuple[XapiClient, str]:
    """Issue a credential for ``class_id``; returns the client and its secret (shown once).

    Raises
    ------
    NotFound
        No such class the viewer teaches (administrators: no such class).
    Invalid
        An empty name.
    """
    klass = visible_class(session, viewer, class_id)
    name = name.strip()
    if not name:
        raise Invalid("name must not be empty", "name")
    secret = secrets.token_urlsafe(32)
    client = XapiClient(name=name, class_id=klass.id, key=secrets.token_hex(16),
                        secret_hash=secret_hash(secret), created_by=viewer.id,
                        created_at=utcnow())
    session.add(client)
    session.flush()
    return client, secret


def client_query(viewer: User, class_id: int | None = None) -> Select:
    """The credentials ``viewer`` may list: a teacher's classes', or all (administrators; a
    school's administrator, its classes')."""
    query = select(XapiClient).order_by(XapiClient.id)
    if viewer.role == Role.ADMIN:
        query = query.where(reaches_classes(viewer, XapiClient.class_id))
    else:
        query = query.join(SchoolClass, SchoolClass.id == XapiClient.class_id).where(
            SchoolClass.teacher_id == viewer.id)
    if class_id is not None:
        query = query.where(XapiClient.class_id == class_id)
    return query


def visible_client(session: Session, viewer: User, client_id: int) -> XapiClient:
    """One credential the viewer may manage (404 otherwise, as for a class not theirs)."""
    client = session.scalar(client_query(viewer).where(XapiClient.id == client_id))
    if client is None:
        raise NotFound(f"no xAPI client {client_id} of yours")
    return client


def revoke_client(session: Session, client: XapiClient, now: datetime | None = None) -> None:
    """End a credential (repeating it changes nothing); its statements stay."""
    if client.revoked_at is None:
        client.revoked_at = now or utcnow()
        session.flush()


class Unauthenticated(Exception):
    """No valid credential: ``str(error)`` says why (the API answers 401)."""


def authenticate_client(session: Session, key: str, secret: str) -> XapiClient:
    """The active client with these credentials.

    Raises
    ------
    Unauthenticated
        Unknown key, wrong secret (both compared at the same cost), or revoked.
    """
    client = session.scalar(select(XapiClient).where(XapiClient.key == key[:64]))
    expected = client.secret_hash if client is not None else _DUMMY_HASH
    matches = hmac.compare_digest(expected.encode(), secret_hash(secret).encode())
    if client is None or not matches:
        raise Unauthenticated("the xAPI key and secret do not match a credential")
    if client.revoked_at is not None:
        raise Unauthenticated("this xAPI credential was revoked")
    return client
