"""LTI 1.3 records: the platforms that launch this tool, the tool's own keys, the launch state
the OIDC flow keeps, used nonces, and the links from a platform's users, contexts and resource
links to ours, with the outbox of scores sent back through Assignment and Grade Services.

Ids of platforms are foreign keys; a platform's school and the ids of our users, classes and
tests are foreign keys too where rows must go with them (a user's links go with the user).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, enum_type, utcnow


class LtiPlatform(Base):
    """A learning platform registered to launch this tool (one issuer and client id).

    ``deployment_ids`` lists the deployments accepted (a launch for another is refused);
    ``school_id`` is the school its users and classes are created in (NULL: none).
    """

    __tablename__ = "lti_platforms"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    auth_login_url: Mapped[str] = mapped_column(String(2048))
    auth_token_url: Mapped[str] = mapped_column(String(2048))
    key_set_url: Mapped[str] = mapped_column(String(2048))
    #: The ``aud`` of the tool's token requests, when the platform wants other than its token URL.
    auth_audience: Mapped[str | None] = mapped_column(String(2048))
    deployment_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    school_id: Mapped[int | None] = mapped_column(
        ForeignKey("schools.id", ondelete="SET NULL"), index=True)
    created_by: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LtiToolKey(Base):
    """The tool's RSA key pair: the private key signs deep-linking responses and token
    requests; the public key is published at ``/lti/jwks.json`` under ``kid``."""

    __tablename__ = "lti_tool_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(100), unique=True)
    private_key_pem: Mapped[str] = mapped_column(Text)
    public_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LtiLaunchData(Base):
    """What the OIDC flow keeps between requests (pylti1p3's launch data storage): the nonce
    issued at login, a launch's claims for the pages after it. Rows expire."""

    __tablename__ = "lti_launch_data"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class LtiNonce(Base):
    """A nonce of an accepted launch: the same nonce from the same platform is refused again,
    in any process. Kept until the token it came with has expired."""

    __tablename__ = "lti_nonces"
    __table_args__ = (UniqueConstraint("platform_id", "nonce"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class LtiUserLink(Base):
    """A platform's user (``sub``) as one of our users."""

    __tablename__ = "lti_user_links"
    __table_args__ = (UniqueConstraint("platform_id", "sub"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    sub: Mapped[str] = mapped_column(String(255), info={"personal": True})
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True,
                                         info={"personal": True})
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LtiContext(Base):
    """A platform's context (a course) as one of our classes."""

    __tablename__ = "lti_contexts"
    __table_args__ = (UniqueConstraint("platform_id", "context_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    context_id: Mapped[str] = mapped_column(String(255))
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"),
                                          index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LtiResourceLink(Base):
    """A platform's resource link: which of our tests it launches (and in which context)."""

    __tablename__ = "lti_resource_links"
    __table_args__ = (UniqueConstraint("platform_id", "resource_link_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    resource_link_id: Mapped[str] = mapped_column(String(255))
    test_id: Mapped[int] = mapped_column(ForeignKey("tests.id", ondelete="CASCADE"), index=True)
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GradeStatus(enum.StrEnum):
    """Where a score for the platform stands.

    ``waiting``: the attempt is not finished. ``pending``: due to be sent (again, after a
    failure, at ``next_try_at``). ``sending``: a worker has claimed it. ``sent``: the platform
    took it. ``failed``: given up after the last try (``last_error`` says why).
    """

    WAITING = "waiting"
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class LtiGrade(Base):
    """The score of one LTI-launched attempt, to be sent to the launch's line item: the outbox.

    One row per attempt (unique), made when the launch starts the attempt, so a score is never
    queued twice; ``score`` is what was (or will be) sent, ``tries`` and ``last_error`` what
    happened so far.
    """

    __tablename__ = "lti_grades"
    __table_args__ = (Index("ix_lti_grades_status_next_try_at", "status", "next_try_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"),
                                            unique=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"),
                                             index=True)
    #: The platform's id of the student (the score's ``userId``).
    sub: Mapped[str] = mapped_column(String(255), info={"personal": True})
    #: The launch's AGS claim (``lineitem``, ``scope``...).
    endpoint: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[GradeStatus] = mapped_column(enum_type(GradeStatus, "lti_grade_status"),
                                                default=GradeStatus.WAITING)
    score: Mapped[dict[str, Any] | None] = mapped_column(JSON, info={"personal": True})
    tries: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    platform: Mapped[LtiPlatform] = relationship()
