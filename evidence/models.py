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
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
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
    #: Every item sent to the attempt's page as its fallback module (:func:`evidence.attempts.
    #: fallback_module`): an answer given offline is taken only for one of these.
    fallback_items: Mapped[list[int] | None] = mapped_column(JSON)
    #: The language the attempt is delivered in, chosen at the start and never changed (items
    #: without a version in it show their source text). NULL: attempts from before languages.
    language: Mapped[str | None] = mapped_column(String(35))

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
    #: Answered while the connection was down (an item of the fallback module, or the item shown
    #: when it dropped), and sent when it came back.
    offline: Mapped[bool] = mapped_column(default=False, server_default=false())

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


class Rubric(Base):
    """A scoring guide for oral defenses (and other performances), kept in versions.

    The rubric itself holds only its name; what it says lives in its :class:`RubricVersion`\\ s,
    which never change once stored: editing a rubric adds a version, and every score keeps the
    version (through its criterion) it was given under. ``archived_at`` takes it off the lists for
    new defenses.
    """

    __tablename__ = "rubrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    versions: Mapped[list[RubricVersion]] = relationship(
        back_populates="rubric", order_by="RubricVersion.version"
    )


class RubricVersion(Base):
    """One version of a rubric: its description and criteria, immutable once stored."""

    __tablename__ = "rubric_versions"
    __table_args__ = (UniqueConstraint("rubric_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rubric_id: Mapped[int] = mapped_column(ForeignKey("rubrics.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    #: What changed from the version before, in the author's words.
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    rubric: Mapped[Rubric] = relationship(back_populates="versions")
    criteria: Mapped[list[RubricCriterion]] = relationship(
        back_populates="rubric_version", order_by="RubricCriterion.position"
    )


class RubricCriterion(Base):
    """A criterion of one rubric version, linked to one skill of the bank.

    ``code`` names the criterion within its rubric and stays the same across versions (it is how
    imports, exports and the rater analysis name it). ``levels`` are the ordered levels, lowest
    first: ``[{"score": int, "label": str, "descriptor": str}, ...]`` with consecutive integer
    scores (a rubric scored 1-4 has scores 1, 2, 3, 4; a criterion's category for measurement is
    its score minus the lowest).
    """

    __tablename__ = "rubric_criteria"
    __table_args__ = (
        UniqueConstraint("rubric_version_id", "code"),
        UniqueConstraint("rubric_version_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rubric_version_id: Mapped[int] = mapped_column(
        ForeignKey("rubric_versions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    skill: Mapped[str] = mapped_column(String(80), index=True)
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSON)

    rubric_version: Mapped[RubricVersion] = relationship(back_populates="criteria")


class Defense(Base):
    """An oral defense: a student explains and defends their work, scored against a rubric.

    Scheduled by the class's teacher (the lead teacher of the defense, ``created_by``) for a
    student of the class, optionally about a task, under the rubric version current at the time.
    ``recording_url`` links a recording if there is one. ``cancelled_at`` ends it without losing
    any score.
    """

    __tablename__ = "defenses"

    id: Mapped[int] = mapped_column(primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), index=True)
    student_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, info={"personal": True}
    )
    rubric_version_id: Mapped[int] = mapped_column(
        ForeignKey("rubric_versions.id"), index=True
    )
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(200), default="")
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recording_url: Mapped[str | None] = mapped_column(String(2048), info={"personal": True})
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    school_class: Mapped[SchoolClass] = relationship()
    student: Mapped[User] = relationship(foreign_keys=[student_id])
    rubric_version: Mapped[RubricVersion] = relationship()
    task: Mapped[Task | None] = relationship()
    raters: Mapped[list[DefenseRater]] = relationship(
        back_populates="defense", cascade="all, delete-orphan", order_by="DefenseRater.assigned_at"
    )


class DefenseRater(Base):
    """A teacher assigned to score a defense: ``role`` is ``rater`` (blind, independent) or
    ``adjudicator`` (settles criteria on which the raters differ by more than one level).
    ``submitted_at`` is when the rater submitted their whole score sheet."""

    __tablename__ = "defense_raters"

    defense_id: Mapped[int] = mapped_column(
        ForeignKey("defenses.id", ondelete="CASCADE"), primary_key=True
    )
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(20), default="rater")
    assigned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    defense: Mapped[Defense] = relationship(back_populates="raters")
    rater: Mapped[User] = relationship(foreign_keys=[rater_id])


class RubricScore(Base):
    """One rater's score of one criterion in one defense, immutable (the database refuses UPDATE).

    ``kind`` is ``rating`` (a rater's independent score) or ``adjudication`` (the score that
    settles a criterion on which the raters differ by more than one level; ``reason`` required).
    A correction is a new row whose ``corrects_id`` names the score it replaces (same defense,
    criterion and rater; ``reason`` required); a score is corrected at most once, so the current
    score of a rater on a criterion is the one no other row corrects.
    """

    __tablename__ = "rubric_scores"
    __table_args__ = (
        # One first score per rater and criterion in a defense; later ones must be corrections.
        Index("uq_rubric_scores_first", "defense_id", "criterion_id", "rater_id", "kind",
              unique=True, postgresql_where=text("corrects_id IS NULL"),
              sqlite_where=text("corrects_id IS NULL")),
        Index("uq_rubric_scores_corrects_id", "corrects_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    defense_id: Mapped[int] = mapped_column(
        ForeignKey("defenses.id", ondelete="CASCADE"), index=True
    )
    criterion_id: Mapped[int] = mapped_column(ForeignKey("rubric_criteria.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="rating")
    score: Mapped[int] = mapped_column(Integer, info={"personal": True})
    note: Mapped[str] = mapped_column(Text, default="", info={"personal": True})
    reason: Mapped[str] = mapped_column(Text, default="")
    corrects_id: Mapped[int | None] = mapped_column(
        ForeignKey("rubric_scores.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    criterion: Mapped[RubricCriterion] = relationship()


class RubricCalibrationStatus(enum.StrEnum):
    """Where a rubric calibration stands: computed (awaiting review), published, or retired."""

    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


class RubricCalibration(Base):
    """A rubric version's criteria put on the bank's theta scale, with rater severities.

    The result of a fixed-parameter calibration: the bank's operational parameters held fixed,
    the criteria's parameters (and the raters' severities, a shift of the thresholds) estimated
    from students with both test answers and rubric scores. ``criteria`` maps a criterion id (as
    text) to ``{"model", "a", "thresholds", "se"}``; ``raters`` maps a rater's user id (as text) to
    ``{"severity", "se", "n"}``; ``provenance`` says what it was computed from (students,
    scores, bank snapshot, settings, log-likelihood, convergence). An assessor reviews and
    publishes it; at most one is published per rubric version, and publishing another retires it.
    """

    __tablename__ = "rubric_calibrations"
    __table_args__ = (
        Index("uq_rubric_calibrations_one_published", "rubric_version_id", unique=True,
              postgresql_where=text("status = 'published'"),
              sqlite_where=text("status = 'published'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rubric_version_id: Mapped[int] = mapped_column(
        ForeignKey("rubric_versions.id", ondelete="CASCADE"), index=True
    )
    model: Mapped[str] = mapped_column(String(20))
    status: Mapped[RubricCalibrationStatus] = mapped_column(
        enum_type(RubricCalibrationStatus, "rubric_calibration_status"),
        default=RubricCalibrationStatus.DRAFT,
    )
    criteria: Mapped[dict[str, Any]] = mapped_column(JSON)
    raters: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    n_students: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RosterImport(Base):
    """A OneRoster upload between its dry run and its application.

    The dry run keeps the files (``content``: a zip, personal data) so that *Apply* imports
    exactly what was checked; a random token, of which only the SHA-256 is stored, names it to
    the administrator who uploaded it. Applying clears ``content``; a dry run that is not
    applied within a day expires, and its content is deleted by the next upload. ``summary``
    holds the dry run's and then the application's counts (no names).
    """

    __tablename__ = "roster_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Who uploaded it (an id, not a foreign key: the record outlives the account).
    created_by: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    filename: Mapped[str] = mapped_column(String(255), default="")
    content: Mapped[bytes | None] = mapped_column(LargeBinary, info={"personal": True})
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
# -- the 1EdTech CAT Service (api.cat_service, evidence.cat_service) -----------------------------


class CatClient(Base):
    """A delivery platform (TAO, ...) that delegates item selection to this engine through the
    1EdTech CAT Service REST binding, authenticating with OAuth 2 client credentials.

    ``key`` is the public ``client_id``; only a hash of the secret is kept. ``revoked_at`` ends
    the credential (its tokens stop working at once); its sections and sessions stay until the
    platform ends them.
    """

    __tablename__ = "cat_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(256))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CatClientToken(Base):
    """An access token issued to a CAT client (only its SHA-256 is kept)."""

    __tablename__ = "cat_client_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("cat_clients.id", ondelete="CASCADE"),
                                           index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CatSection(Base):
    """A CAT Service section: one of this engine's tests pinned to a bank snapshot.

    ``identifier`` is the ``sectionIdentifier`` the platform uses (a random UUID). The three
    documents the platform sent (``qtiMetadata``, ``qtiUsagedata``, ``sectionConfiguration``,
    each base64 text) are kept as sent, to be read back with ``GET /sections/{id}``.
    """

    __tablename__ = "cat_sections"

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(36), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("cat_clients.id", ondelete="CASCADE"),
                                           index=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("tests.id", ondelete="CASCADE"), index=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("bank_snapshots.id", ondelete="CASCADE"))
    section_configuration: Mapped[str] = mapped_column(Text)
    qti_metadata: Mapped[str | None] = mapped_column(Text)
    qti_usagedata: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CatSession(Base):
    """One candidate's adaptive session in a CAT Service section.

    ``state`` is the engine session (:meth:`cat_engine.CATSession.to_json` without its
    configuration, which the section's snapshot holds). ``candidate`` is the platform's
    identifier of the candidate (the QTI result context's ``sourcedId``) if it sent one, and
    nothing else about the person: the candidate is pseudonymous here. ``version`` grows with
    every change, so that two requests racing on one session cannot both apply.
    """

    __tablename__ = "cat_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(36), unique=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("cat_sections.id", ondelete="CASCADE"),
                                            index=True)
    candidate: Mapped[str | None] = mapped_column(String(255), info={"personal": True})
    seed: Mapped[int] = mapped_column(Integer)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CatResult(Base):
    """One item result a platform submitted to a CAT session, as the engine counted it.

    ``response`` is the engine's response (the score category); ``choice`` the option chosen
    when the platform sent the candidate's response (``None`` when it sent only a score).
    Unique per session and item: a result sent again is counted once.
    """

    __tablename__ = "cat_results"
    __table_args__ = (UniqueConstraint("session_id", "item_code"),
                      UniqueConstraint("session_id", "position"))

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("cat_sessions.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    item_code: Mapped[str] = mapped_column(String(120))
    response: Mapped[int] = mapped_column(Integer, info={"personal": True})
    choice: Mapped[int | None] = mapped_column(Integer, info={"personal": True})
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
class ForwardScope(enum.StrEnum):
    """Which statements a school forwards: the engine's own, those tools sent, or both."""

    OWN = "own"
    RECEIVED = "received"
    BOTH = "both"


class ForwardStatus(enum.StrEnum):
    """Where a forward stands: waiting (``pending``), at the LRS (``sent``), given up after its
    tries (``dead``: the dead-letter list) or dropped by an administrator (``discarded``)."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"
    DISCARDED = "discarded"


class XapiLrs(Base):
    """A school's external learning record store, to which its students' statements go.

    ``secret_encrypted`` is the basic-auth secret encrypted with the deployment's key
    (:mod:`evidence.xapi_forwarding`); it is never shown back. ``sending_until`` is the lease a
    sender holds while it posts (so two senders never post the same rows at once).
    """

    __tablename__ = "xapi_lrs"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"),
                                           unique=True)
    endpoint: Mapped[str] = mapped_column(String(2048))
    xapi_version: Mapped[str] = mapped_column(String(10), default="1.0.3")
    key: Mapped[str] = mapped_column(String(255))
    secret_encrypted: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    scope: Mapped[ForwardScope] = mapped_column(enum_type(ForwardScope, "xapi_forward_scope"),
                                                default=ForwardScope.BOTH)
    max_tries: Mapped[int] = mapped_column(Integer, default=8)
    sending_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class XapiForward(Base):
    """One statement on its way to one LRS (the outbox).

    Rows are written by a database trigger in the transaction that stores the statement
    (migration 0019), so a stored statement of a student of a school with an enabled LRS always
    has one. ``tries`` counts failed posts; ``next_try_at`` is when the next may be made
    (exponential backoff); ``last_error`` says why the last one failed.
    """

    __tablename__ = "xapi_forwards"
    __table_args__ = (
        UniqueConstraint("lrs_id", "statement_seq"),
        Index("ix_xapi_forwards_lrs_id_status_statement_seq", "lrs_id", "status",
              "statement_seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lrs_id: Mapped[int] = mapped_column(ForeignKey("xapi_lrs.id", ondelete="CASCADE"))
    statement_seq: Mapped[int] = mapped_column(
        ForeignKey("statements.seq", ondelete="CASCADE"), index=True)
    status: Mapped[ForwardStatus] = mapped_column(
        enum_type(ForwardStatus, "xapi_forward_status"), default=ForwardStatus.PENDING)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_try_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
