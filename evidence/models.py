"""Tables of evidence about a learner: test attempts and their item responses.

Every column here is personal data (``info={"personal": True}`` marks the ones that identify or
describe a person), which is what export and erasure will be driven by.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from item_bank.models import AdaptiveTest, Item
from storage import Base, enum_type, utcnow
from storage.accounts import User


class AttemptStatus(enum.StrEnum):
    """Where an attempt stands."""

    IN_PROGRESS = "in_progress"
    FINISHED = "finished"
    ABANDONED = "abandoned"


class Attempt(Base):
    """One sitting of a test by one student.

    The engine's state is not stored: it is rebuilt from the test's configuration, ``seed`` and the
    ordered responses, which is what lets any worker serve any request.
    """

    __tablename__ = "attempts"

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

    test: Mapped[AdaptiveTest] = relationship()
    user: Mapped[User] = relationship()
    responses: Mapped[list[Response]] = relationship(
        back_populates="attempt", cascade="all, delete-orphan", order_by="Response.position"
    )


class Response(Base):
    """A student's answer to one item in an attempt; ``scored`` is false for pretest items."""

    __tablename__ = "responses"
    __table_args__ = (
        UniqueConstraint("attempt_id", "position"),
        UniqueConstraint("attempt_id", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    response: Mapped[int] = mapped_column(Integer, info={"personal": True})
    scored: Mapped[bool] = mapped_column(default=True)
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    response_time_ms: Mapped[int | None] = mapped_column(Integer, info={"personal": True})
    hints_used: Mapped[int] = mapped_column(Integer, default=0)

    attempt: Mapped[Attempt] = relationship(back_populates="responses")
    item: Mapped[Item] = relationship()
