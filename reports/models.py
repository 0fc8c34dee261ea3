"""Tables of the mastery reports: teachers' decisions, students' appeals and their answers,
learning resources linked to skills, and background jobs that render report PDFs.

Decisions, appeals and answers are append-only (the database refuses UPDATE, as for rubric
scores): a teacher who changes their mind records a new decision, and the report's history shows
every record with who and when. DELETE stays possible, for erasure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage import Base, utcnow

#: What a decision (a teacher's, or the model's suggestion) may say about a skill.
DECISIONS: tuple[str, ...] = ("mastered", "not_mastered", "needs_evidence")
#: How a teacher may answer an appeal.
OUTCOMES: tuple[str, ...] = ("upheld", "revised")
#: The states of a report job.
JOB_STATES: tuple[str, ...] = ("queued", "running", "done", "failed")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class MasteryDecision(Base):
    """A teacher's decision on one skill of one student, with the model's view beside it.

    ``suggested_decision``, ``mastery_probability``, ``theta`` and ``se`` are what the report
    said when the teacher decided (the model's suggestion is kept, never recomputed away);
    ``reason`` is required. The current decision of a skill is the newest row for it.
    """

    __tablename__ = "mastery_decisions"
    __table_args__ = (
        CheckConstraint(_one_of("decision", DECISIONS), name="decision_value"),
        Index("ix_mastery_decisions_student_skill", "student_id", "skill"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    skill: Mapped[str] = mapped_column(String(80))
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, info={"personal": True})
    suggested_decision: Mapped[str | None] = mapped_column(String(20))
    mastery_probability: Mapped[float | None] = mapped_column(Float, info={"personal": True})
    theta: Mapped[float | None] = mapped_column(Float, info={"personal": True})
    se: Mapped[float | None] = mapped_column(Float, info={"personal": True})
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Appeal(Base):
    """A student's appeal of the decision on one of their skills, with their message.

    ``decision_id`` names the teacher's decision appealed; ``None`` when the student appeals the
    model's suggestion (no teacher has decided yet), whose value ``appealed_decision`` keeps.
    An appeal is open until an :class:`AppealAnswer` names it; one open appeal per decision.
    """

    __tablename__ = "appeals"
    __table_args__ = (Index("ix_appeals_student_skill", "student_id", "skill"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    skill: Mapped[str] = mapped_column(String(80))
    decision_id: Mapped[int | None] = mapped_column(
        ForeignKey("mastery_decisions.id", ondelete="CASCADE"), index=True
    )
    appealed_decision: Mapped[str | None] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, info={"personal": True})
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AppealAnswer(Base):
    """A teacher's answer to an appeal: ``upheld`` or ``revised``, with a reason.

    A revision records the new decision as a :class:`MasteryDecision` too, named by
    ``decision_id``. One answer per appeal.
    """

    __tablename__ = "appeal_answers"
    __table_args__ = (CheckConstraint(_one_of("outcome", OUTCOMES), name="outcome_value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appeal_id: Mapped[int] = mapped_column(
        ForeignKey("appeals.id", ondelete="CASCADE"), unique=True
    )
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, info={"personal": True})
    decision_id: Mapped[int | None] = mapped_column(
        ForeignKey("mastery_decisions.id", ondelete="CASCADE")
    )
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LearningResource(Base):
    """A learning resource linked to a skill and a range of levels (theta, logits).

    ``level_min`` / ``level_max`` bound the levels it suits (``None``: open on that side).
    Assessors and teachers add them; archived ones are no longer suggested.
    """

    __tablename__ = "learning_resources"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2048))
    skill: Mapped[str] = mapped_column(String(80), index=True)
    level_min: Mapped[float | None] = mapped_column(Float)
    level_max: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReportJob(Base):
    """A PDF rendered in the background (a class pack), with its progress and result.

    ``status`` goes queued -> running -> done (``pdf`` holds the file) or failed (``error``
    says why); ``progress`` of ``total`` students are rendered.
    """

    __tablename__ = "report_jobs"
    __table_args__ = (CheckConstraint(_one_of("status", JOB_STATES), name="status_value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="class_pack")
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    status: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary, info={"personal": True})
    error: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
