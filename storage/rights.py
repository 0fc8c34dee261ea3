"""Learners' rights as records: the privacy note, consents, group variables, the audit log,
erasures, and the counters of the sign-in rate limit.

Everything here is bottom-layer data plus the two functions every package above needs:
:func:`audit` (record an entry; it is written, hash-chained, when the session commits) and
:func:`has_consent` / :func:`consenting` (may this student's data be used for a purpose).

The audit log is append-only and tamper-evident. Each entry carries the hash of the entry
before it and its own hash over its content and that previous hash, and ids are contiguous, so
a changed, removed or inserted row breaks the chain at a place :func:`verify_chain` names.
Writers are serialised by one row (``audit_head``) that every commit with entries updates
first: a row lock until commit on PostgreSQL, the write lock on SQLite.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
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
    event,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from storage.base import Base, as_utc, enum_type, utcnow


class Purpose(enum.StrEnum):
    """What a consent is for.

    ``research``: use of a student's responses beyond the school's own teaching (pooled
    calibration, exports for research). ``demographics``: group variables (for the fairness
    checks) may be stored and shown.
    """

    RESEARCH = "research"
    DEMOGRAPHICS = "demographics"


# -- the privacy note ----------------------------------------------------------------------------


class PrivacyNote(Base):
    """One published version of the privacy note: what is collected, why, who sees it, how long.

    Versions are kept; the current note is the highest version. ``retention`` maps a kind of
    record (see ``rights.retention.KINDS``) to the days it is kept; the purge job enforces what
    the current note states. ``keep_anonymous_responses``: whether an erasure keeps a student's
    responses, cut loose from the person, for item statistics.
    """

    __tablename__ = "privacy_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    title: Mapped[str] = mapped_column(String(200))
    #: The note itself, in Markdown (rendered safely, like task prompts).
    body: Mapped[str] = mapped_column(Text)
    retention: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    keep_anonymous_responses: Mapped[bool] = mapped_column(Boolean, default=True)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The administrator who published it (an id, not a foreign key: the note outlives them).
    published_by: Mapped[int | None] = mapped_column(Integer)


# -- consents and group variables ----------------------------------------------------------------


class Consent(Base):
    """One consent given or withdrawn, for one student and purpose. Append-only (UPDATE refused).

    The current state of a purpose is its newest row (by ``at``, then ``id``); no row means not
    given. ``actor_id`` is who recorded it (an administrator, or the student themself).
    """

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_student_purpose", "student_id", "purpose", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), info={"personal": True})
    purpose: Mapped[Purpose] = mapped_column(enum_type(Purpose, "consent_purpose"))
    granted: Mapped[bool] = mapped_column(Boolean)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: How it was given (a signed form, the student in the app): free text, personal data.
    note: Mapped[str] = mapped_column(Text, default="", info={"personal": True})


def _current_consents(student_ids, purpose: Purpose):
    ranked = (select(Consent.student_id, Consent.granted)
              .where(Consent.student_id.in_(student_ids), Consent.purpose == purpose)
              .order_by(Consent.student_id, Consent.at.desc(), Consent.id.desc()))
    return ranked


def consenting(session: Session, student_ids: Iterable[int], purpose: Purpose) -> set[int]:
    """The ids among ``student_ids`` whose current consent for ``purpose`` is given."""
    ids = list(dict.fromkeys(student_ids))
    if not ids:
        return set()
    seen: dict[int, bool] = {}
    for start in range(0, len(ids), 5000):
        for student_id, granted in session.execute(
                _current_consents(ids[start:start + 5000], Purpose(purpose))):
            seen.setdefault(student_id, granted)
    return {student_id for student_id, granted in seen.items() if granted}


def consenting_query(purpose: Purpose):
    """A SELECT of the ids of students whose current consent for ``purpose`` is given (for
    ``column.in_(...)`` inside a larger query)."""
    later = aliased(Consent)
    newer = (select(later.id).where(
        later.student_id == Consent.student_id, later.purpose == Consent.purpose,
        (later.at > Consent.at) | ((later.at == Consent.at) & (later.id > Consent.id))))
    return (select(Consent.student_id)
            .where(Consent.purpose == Purpose(purpose), Consent.granted.is_(True),
                   ~newer.exists()))


def has_consent(session: Session, student_id: int, purpose: Purpose) -> bool:
    """Whether ``student_id``'s current consent for ``purpose`` is given."""
    return student_id in consenting(session, [student_id], purpose)


class StudentGroup(Base):
    """A student's value of one group variable (``gender``, ``home_language``...), used by the
    fairness checks. Stored only while the student's ``demographics`` consent is given: a
    withdrawal deletes the student's rows."""

    __tablename__ = "student_groups"

    student_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, info={"personal": True})
    variable: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(80), info={"personal": True})
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


# -- the audit log -------------------------------------------------------------------------------


class AuditAction(enum.StrEnum):
    """What an audit entry records. Stored as text: a new action needs no migration."""

    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    REPORT_READ = "report_read"
    PORTFOLIO_READ = "portfolio_read"
    EXPORT_READ = "export_read"
    AUDIT_READ = "audit_read"
    DECISION = "decision"
    OVERRIDE = "override"
    APPEAL = "appeal"
    APPEAL_ANSWER = "appeal_answer"
    CONSENT = "consent"
    GROUPS = "groups"
    ROLE_CHANGE = "role_change"
    ACCESS_CHANGE = "access_change"
    PRIVACY_NOTE = "privacy_note"
    ERASURE_REQUESTED = "erasure_requested"
    ERASURE_CONFIRMED = "erasure_confirmed"
    ERASURE_CANCELLED = "erasure_cancelled"
    ERASURE_DONE = "erasure_done"
    PURGE = "purge"
    #: A school created, or its settings changed (detail: the settings before and after).
    SCHOOL = "school"
    #: A OneRoster roster applied (detail: the counts created, updated, removed...).
    ROSTER_IMPORT = "roster_import"
    #: A CAT service client (a delivery platform's credential) issued or revoked.
    CAT_CLIENT = "cat_client"


class AuditEntry(Base):
    """One entry of the audit log. Append-only: the database refuses UPDATE, DELETE and
    TRUNCATE (migration 0013).

    ``actor_id`` did ``action``; ``subject_id`` is the person whose data it concerns (a student
    whose report was read). Both are plain integers, not foreign keys: the entry outlives the
    people. ``detail`` never holds personal data of the subject (no names, no answers): it must
    survive an erasure without keeping anything of the erased data. ``hash`` is
    :func:`entry_hash` of the entry and ``prev_hash``, the hash of the entry before it (64
    zeros for the first).
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject_id_at", "subject_id", "at"),
                      Index("ix_audit_log_actor_id_at", "actor_id", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    object_type: Mapped[str] = mapped_column(String(40), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The end of the audit chain: one row (``id`` 1) with the last entry's id and hash.

    Every commit that writes entries updates it first, which serialises the writers."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


GENESIS_HASH = "0" * 64


def _moment(at: datetime) -> str:
    # in UTC whatever the connection's time zone (PostgreSQL answers in the session's)
    return as_utc(at).astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(prev_hash: str, *, id: int, at: datetime, actor_id: int | None, action: str,
               subject_id: int | None, object_type: str, object_id: str,
               detail: dict[str, Any]) -> str:
    """SHA-256 over an entry's content (canonical JSON) and the previous entry's hash."""
    content = json.dumps({"id": id, "at": _moment(at), "actor_id": actor_id, "action": action,
                          "subject_id": subject_id, "object_type": object_type,
                          "object_id": object_id, "detail": detail},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{content}".encode()).hexdigest()


def audit(session: Session, action: AuditAction | str, *, actor_id: int | None,
          subject_id: int | None = None, object_type: str = "", object_id: object = "",
          detail: dict[str, Any] | None = None, at: datetime | None = None) -> None:
    """Record an audit entry; it is written, chained, when ``session`` commits.

    Nothing is written if the session rolls back: an entry exists exactly when what it records
    was committed. A view that only reads (a report) must commit for its entry to be kept.

    Parameters
    ----------
    action : AuditAction or str
    actor_id : int or None
        Who did it (None: the system, e.g. the purge job).
    subject_id : int, optional
        The person whose data it concerns.
    object_type, object_id : str
        What was read or changed (``"report"``, ``"decision"``, ``"42"``).
    detail : dict, optional
        JSON-able facts without personal data of the subject (ids, a reason typed by staff, a
        purpose and whether it was granted).
    """
    if not session.in_transaction():
        session.begin()  # so that a rollback before any query drops the entry too
    session.info.setdefault("audit_pending", []).append({
        "at": at or utcnow(), "actor_id": actor_id, "action": str(action),
        "subject_id": subject_id, "object_type": object_type,
        "object_id": "" if object_id is None else str(object_id),
        "detail": json.loads(json.dumps(detail or {}, default=str)),
    })


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction) -> None:
    if not previous_transaction.nested:  # a savepoint's rollback keeps the outer entries
        session.info.pop("audit_pending", None)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending = session.info.pop("audit_pending", None)
    if not pending:
        return
    # Take the chain's lock first (the row lock / SQLite's write lock, held to the commit).
    moved = session.execute(update(AuditHead).where(AuditHead.id == 1)
                            .values(last_id=AuditHead.last_id + len(pending)))
    if moved.rowcount == 0:
        session.add(AuditHead(id=1, last_id=len(pending), last_hash=GENESIS_HASH))
        session.flush()
        last_id, prev = 0, GENESIS_HASH
    else:
        last_id, prev = session.execute(
            select(AuditHead.last_id, AuditHead.last_hash).where(AuditHead.id == 1)).one()
        last_id -= len(pending)
    for offset, entry in enumerate(pending, start=1):
        digest = entry_hash(prev, id=last_id + offset, **entry)
        session.add(AuditEntry(id=last_id + offset, prev_hash=prev, hash=digest, **entry))
        prev = digest
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=prev))
    session.flush()


@dataclass(frozen=True)
class ChainProblem:
    """Where the audit chain breaks: the entry's id (or None for the head) and why."""

    entry_id: int | None
    message: str

    def __str__(self) -> str:
        where = "the chain's head" if self.entry_id is None else f"audit entry {self.entry_id}"
        return f"{where}: {self.message}"


_COLUMNS = (AuditEntry.id, AuditEntry.at, AuditEntry.actor_id, AuditEntry.action,
            AuditEntry.subject_id, AuditEntry.object_type, AuditEntry.object_id,
            AuditEntry.detail, AuditEntry.prev_hash, AuditEntry.hash)


def verify_chain(session: Session, batch: int = 5000) -> tuple[int, list[ChainProblem]]:
    """Check the whole audit chain; returns the number of entries read and every problem found.

    A changed entry fails its own hash; a removed or inserted one breaks the ids or the link to
    the hash before; a removed tail disagrees with ``audit_head``.
    """
    problems: list[ChainProblem] = []
    prev, expected_id, count = GENESIS_HASH, 1, 0
    after = 0
    while True:
        rows = session.execute(select(*_COLUMNS).where(AuditEntry.id > after)
                               .order_by(AuditEntry.id).limit(batch)).all()
        if not rows:
            break
        for row in rows:
            count += 1
            if row.id != expected_id:
                problems.append(ChainProblem(row.id, f"expected entry {expected_id} here: "
                                             f"entries {expected_id}..{row.id - 1} are missing"))
            if row.prev_hash != prev:
                problems.append(ChainProblem(row.id, "its link to the entry before does not "
                                             "match that entry's hash"))
            digest = entry_hash(row.prev_hash, id=row.id, at=row.at, actor_id=row.actor_id,
                                action=row.action, subject_id=row.subject_id,
                                object_type=row.object_type, object_id=row.object_id,
                                detail=row.detail)
            if digest != row.hash:
                problems.append(ChainProblem(row.id, "its content does not match its hash "
                                             "(changed after it was written)"))
            prev, expected_id = row.hash, row.id + 1
        after = rows[-1].id
    head = session.execute(select(AuditHead.last_id, AuditHead.last_hash)
                           .where(AuditHead.id == 1)).first()
    if head is not None and (head.last_id != expected_id - 1 or head.last_hash != prev):
        problems.append(ChainProblem(None, f"it ends at entry {head.last_id} but the log ends "
                                     f"at entry {expected_id - 1}: entries were removed or "
                                     "added around it"))
    return count, problems


# -- erasure -------------------------------------------------------------------------------------


class ErasureStatus(enum.StrEnum):
    """Where an erasure stands."""

    PENDING = "pending"  # waiting for a second administrator, or for its date
    DONE = "done"
    CANCELLED = "cancelled"


class Erasure(Base):
    """A request to erase a student's personal data, and its execution.

    ``student_id`` is a plain integer (the user row becomes a tombstone). Confirmed by a second
    administrator (``confirmed_by``) or by time (``due_at``), as the student's school sets.
    ``reason`` is the administrator's, kept; nothing of the erased data is.
    """

    __tablename__ = "erasures"
    __table_args__ = (Index("ix_erasures_student_id", "student_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[ErasureStatus] = mapped_column(enum_type(ErasureStatus, "erasure_status"),
                                                  default=ErasureStatus.PENDING)
    requested_by: Mapped[int] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: When a delay confirms it: the erasure runs at or after this moment.
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_by: Mapped[int | None] = mapped_column(Integer)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_by: Mapped[int | None] = mapped_column(Integer)
    executed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Counts of what was deleted and what was kept cut loose ({"drafts": 3, ...}).
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# -- rate limits ---------------------------------------------------------------------------------


class RateLimitCounter(Base):
    """A fixed-window counter of the rate limiter's database storage (``limits``' ``incr``):
    a key (``sign-in/account/<name>``), its count and when the window ends (Unix seconds)."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
