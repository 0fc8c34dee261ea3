"""Tables of evidence about a learner: test attempts and their item responses, tasks and drafts
(with their files and comments), xAPI clients and the statements of the step log.

Every column here is personal data (``info={"personal": True}`` marks the ones that identify or
describe a person), which is what export and erasure will be driven by.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from item_bank.models import AdaptiveTest, Item
from storage import Base, enum_type, utcnow
from storage.accounts import SchoolClass, User


def new_registration() -> str:
    """Return a fresh xAPI registration: a random (version 4) UUID in its canonical form."""
    return str(uuid.uuid4())


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
        Index("uq_attempts_registration", "registration", unique=True),
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
    #: The attempt as an xAPI registration (``context.registration`` of its statements).
    registration: Mapped[str] = mapped_column(String(36), default=new_registration)

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


class Task(Base):
    """A performance task a teacher sets for a class: what to do, and which skills it shows.

    ``instructions`` is Markdown (rendered safely). ``skills`` lists skill names of the bank.
    ``activity_id`` is the task as an xAPI activity (an IRI fixed at creation), so that statements
    from learning tools can be filed under the task. ``archived_at`` takes a task off students'
    lists without losing its drafts.
    """

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text, default="")
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    activity_id: Mapped[str | None] = mapped_column(String(2048), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    school_class: Mapped[SchoolClass] = relationship()


class StoredFile(Base):
    """A file's content, stored once outside the database under its SHA-256 (content-addressed).

    ``media_type`` is what the content was judged to be (by its bytes, never its name).
    """

    __tablename__ = "stored_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Draft(Base):
    """One version of a student's work on a task, immutable once stored (the database refuses
    UPDATE). ``version`` counts from 1 per task and student; ``final`` marks the submission the
    student declared final when sending it."""

    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("task_id", "student_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, info={"personal": True}
    )
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text, default="", info={"personal": True})
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    task: Mapped[Task] = relationship()
    files: Mapped[list[DraftFile]] = relationship(
        back_populates="draft", cascade="all, delete-orphan", order_by="DraftFile.position"
    )
    comments: Mapped[list[DraftComment]] = relationship(
        back_populates="draft", cascade="all, delete-orphan", order_by="DraftComment.created_at"
    )


class DraftFile(Base):
    """A file attached to a draft: the stored content and the name the student gave it."""

    __tablename__ = "draft_files"
    __table_args__ = (UniqueConstraint("draft_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("stored_files.sha256"), index=True)
    filename: Mapped[str] = mapped_column(String(255), info={"personal": True})
    position: Mapped[int] = mapped_column(Integer)

    draft: Mapped[Draft] = relationship(back_populates="files")
    stored: Mapped[StoredFile] = relationship()


class DraftComment(Base):
    """A teacher's comment on one version of a draft, which the student sees."""

    __tablename__ = "draft_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text, info={"personal": True})
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    draft: Mapped[Draft] = relationship(back_populates="comments")


class XapiClient(Base):
    """Credentials of a learning tool that sends statements about the students of one class.

    ``key`` is public (the HTTP Basic user name); only a hash of the secret is kept.
    ``revoked_at`` ends the credential without losing which statements it sent.
    """

    __tablename__ = "xapi_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(256))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    school_class: Mapped[SchoolClass] = relationship()


class Statement(Base):
    """One xAPI statement of the step log, stored append-only (the database refuses UPDATE).

    ``seq`` orders statements as stored (paging follows it); ``id`` is the statement's UUID.
    ``body`` is the statement as stored, with the ``stored``, ``authority`` and ``version`` the
    server set; ``content_hash`` is the SHA-256 of its canonical form without those, so that a
    repeated id with other content is told apart (409). The other columns are the body's parts
    the filters need: the student it is about (``actor_id``; every agent is a student of the
    site), ``verb_id``, ``object_id``, ``registration``, ``timestamp``. A voiding statement names
    its target in ``voids``; a statement is voided when another names it there (nothing is ever
    updated). ``client_id`` is the credential that sent it; NULL for the engine's own events
    (which also name their ``attempt_id``).
    """

    __tablename__ = "statements"
    __table_args__ = (
        Index("ix_statements_actor_id_stored_at", "actor_id", "stored_at"),
        Index("ix_statements_registration_seq", "registration", "seq"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                index=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), info={"personal": True}
    )
    verb_id: Mapped[str] = mapped_column(String(2048), index=True)
    object_id: Mapped[str | None] = mapped_column(String(2048), index=True)
    registration: Mapped[str | None] = mapped_column(String(36))
    voids: Mapped[str | None] = mapped_column(String(36), index=True)
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("xapi_clients.id", ondelete="SET NULL"), index=True
    )
    attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("attempts.id", ondelete="CASCADE"), index=True
    )
    content_hash: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSON, info={"personal": True})


class StatementActivity(Base):
    """An activity a statement concerns: its object (``relation`` "object") or one of its
    context activities ("parent", "grouping", "category", "other"), for the ``activity`` filter
    with ``related_activities`` and for filing a tool's statements under a task."""

    __tablename__ = "statement_activities"

    statement_seq: Mapped[int] = mapped_column(
        ForeignKey("statements.seq", ondelete="CASCADE"), primary_key=True
    )
    activity_id: Mapped[str] = mapped_column(String(2048), primary_key=True, index=True)
    relation: Mapped[str] = mapped_column(String(16), primary_key=True)
