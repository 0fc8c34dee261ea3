"""Tables of evidence about a learner: test attempts and their item responses.

Every column here is personal data (``info={"personal": True}`` marks the ones that identify or
describe a person), which is what export and erasure will be driven by.
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
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from item_bank.models import AdaptiveTest, Item
from storage import Base, enum_type, utcnow
from storage.accounts import SchoolClass, User


class AttemptStatus(enum.StrEnum):
    """Where an attempt stands."""

    IN_PROGRESS = "in_progress"
    FINISHED = "finished"
    ABANDONED = "abandoned"


class Attempt(Base):
    """One sitting of a test by one student.

    No engine state lives in a process: ``state`` is the engine session as plain JSON
    (:meth:`cat_engine.CATSession.to_json` without the configuration), ``snapshot_id`` the bank it
    runs on, so any worker can serve any request and a restart loses nothing acknowledged.
    ``current_item_id`` is the item presented and not yet answered.
    """

    __tablename__ = "attempts"
    __table_args__ = (
        # One attempt in progress per student and test: two starts at once resume one attempt.
        Index("uq_attempts_one_in_progress", "user_id", "test_id", unique=True,
              postgresql_where=text("status = 'in_progress'"),
              sqlite_where=text("status = 'in_progress'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("tests.id"), index=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id"), index=True, info={"personal": True}
    )
    status: Mapped[AttemptStatus] = mapped_column(
        enum_type(AttemptStatus, "attempt_status"),
        default=AttemptStatus.IN_PROGRESS,
    )
    seed: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    theta: Mapped[float | None] = mapped_column(Float, info={"personal": True})
    se: Mapped[float | None] = mapped_column(Float, info={"personal": True})
    stop_reason: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, info={"personal": True})
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("bank_snapshots.id"), index=True)
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON, info={"personal": True})
    current_item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"))
    presented_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The time limit granted at the start (with any extended-time factor), and how many
    #: extensions the student has taken since (see :mod:`evidence.timing`).
    time_granted_seconds: Mapped[int | None] = mapped_column(Integer)
    time_extensions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    test: Mapped[AdaptiveTest] = relationship()
    user: Mapped[User] = relationship()
    responses: Mapped[list[Response]] = relationship(
        back_populates="attempt", cascade="all, delete-orphan", order_by="Response.position"
    )


class Response(Base):
    """A student's answer to one item in an attempt; ``scored`` is false for pretest items.

    ``choice`` is the option chosen (for items with a key) and ``response`` the scored category
    the engine saw (1 correct, 0 wrong; the category itself for polytomous items).
    ``idempotency_key`` and ``reply`` let a repeated request get the same answer without recording
    anything twice.
    """

    __tablename__ = "responses"
    __table_args__ = (
        UniqueConstraint("attempt_id", "position"),
        UniqueConstraint("attempt_id", "item_id"),
        UniqueConstraint("attempt_id", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    response: Mapped[int] = mapped_column(Integer, info={"personal": True})
    choice: Mapped[int | None] = mapped_column(Integer, info={"personal": True})
    scored: Mapped[bool] = mapped_column(default=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    reply: Mapped[dict[str, Any] | None] = mapped_column(JSON, info={"personal": True})
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    response_time_ms: Mapped[int | None] = mapped_column(Integer, info={"personal": True})
    hints_used: Mapped[int] = mapped_column(Integer, default=0)

    attempt: Mapped[Attempt] = relationship(back_populates="responses")
    item: Mapped[Item] = relationship()


class Assignment(Base):
    """A test assigned to a class, with an optional window and time limit (in minutes)."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("tests.id", ondelete="CASCADE"), index=True)
    opens_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closes_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    time_limit_minutes: Mapped[int | None] = mapped_column(Integer)
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    school_class: Mapped[SchoolClass] = relationship()
    test: Mapped[AdaptiveTest] = relationship()
