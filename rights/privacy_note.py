"""The privacy note: what is collected, why, who sees it and for how long, in versions.

A district administrator publishes a new version; every version is kept and readable by anyone,
signed in or not. The current note (the highest version) also sets the retention periods the
purge enforces (:mod:`rights.retention`) and whether an erasure keeps anonymous responses
(:mod:`rights.erasure`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rights.retention import KEPT, KINDS
from storage import as_utc
from storage.accounts import Role, User
from storage.errors import Forbidden, Invalid, NotFound
from storage.rights import AuditAction, PrivacyNote, audit

MAX_TITLE = 200
MAX_BODY = 50_000
#: The longest retention period a note may set (100 years, in days).
MAX_DAYS = 36_500


def current_note(session: Session) -> PrivacyNote | None:
    """The note in force (the highest version), or None before the first is published."""
    return session.scalar(select(PrivacyNote).order_by(PrivacyNote.version.desc()).limit(1))


def note_version(session: Session, version: int) -> PrivacyNote:
    """One version of the note.

    Raises
    ------
    NotFound
        No such version.
    """
    note = session.scalar(select(PrivacyNote).where(PrivacyNote.version == version))
    if note is None:
        raise NotFound(f"there is no version {version} of the privacy note", field="version")
    return note


def versions(session: Session) -> list[PrivacyNote]:
    """Every version, newest first."""
    return list(session.scalars(select(PrivacyNote).order_by(PrivacyNote.version.desc())))


def _retention(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("retention must be an object of kind: days", field="retention")
    days: dict[str, int] = {}
    for kind, amount in value.items():
        if kind not in KINDS:
            kept = f" ({kind} is never purged: {KEPT[kind]})" if kind in KEPT else ""
            raise Invalid(f"unknown kind of record {kind!r} in retention{kept}; one of: "
                          + ", ".join(sorted(KINDS)), field="retention")
        if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_DAYS:
            raise Invalid(f"retention of {kind} must be a whole number of days from 1 to "
                          f"{MAX_DAYS}, not {amount!r}", field="retention")
        days[kind] = amount
    return days


def publish(session: Session, admin: User, *, title: str, body: str,
            retention: dict[str, int] | None = None,
            keep_anonymous_responses: bool = True) -> PrivacyNote:
    """Publish a new version of the note (it is in force at once) and record it.

    Raises
    ------
    Forbidden
        ``admin`` is not a district administrator (the note is the deployment's, not a
        school's).
    Invalid
        An empty or too long title or body, or a retention period that is not a whole number of
        days for a known kind of record.
    """
    if admin.role != Role.ADMIN or admin.school_id is not None:
        raise Forbidden("the privacy note is published by a district administrator (an "
                        "administrator of no school)")
    title, body = (title or "").strip(), (body or "").strip()
    if not title or len(title) > MAX_TITLE:
        raise Invalid(f"a title of 1 to {MAX_TITLE} characters is needed", field="title")
    if not body or len(body) > MAX_BODY:
        raise Invalid(f"the note's text must be 1 to {MAX_BODY:,} characters", field="body")
    days = _retention(retention)
    # serialise publishers: the version is the highest plus one (unique in the table)
    version = (session.scalar(select(func.max(PrivacyNote.version))) or 0) + 1
    note = PrivacyNote(version=version, title=title, body=body, retention=days,
                       keep_anonymous_responses=bool(keep_anonymous_responses),
                       published_by=admin.id)
    session.add(note)
    session.flush()
    audit(session, AuditAction.PRIVACY_NOTE, actor_id=admin.id, object_type="privacy_note",
          object_id=version, detail={"retention": days,
                                     "keep_anonymous_responses": note.keep_anonymous_responses})
    return note


def note_record(note: PrivacyNote) -> dict[str, Any]:
    """A version as JSON-ready data."""
    return {"version": note.version, "title": note.title, "body": note.body,
            "retention": note.retention or {},
            "keep_anonymous_responses": note.keep_anonymous_responses,
            "published_at": as_utc(note.published_at)}
