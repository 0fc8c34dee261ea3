"""Reading the audit log, and recording the acts the HTTP layer sees: sign-ins and reads.

The log itself (the hash chain, :func:`storage.rights.audit`) lives in ``storage.rights``. Here:
who may read which entries (administrators; a school's administrator only the entries about,
or by, people of their school), the filters, and the reads and sign-ins recorded with a commit
of their own (a read changes nothing else, so nothing else would commit its entry).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, aliased

from evidence.classes import reaches_users
from storage import as_utc
from storage.accounts import Role, User
from storage.errors import Forbidden, Invalid
from storage.rights import AuditAction, AuditEntry, audit

#: The largest page of entries one request returns.
MAX_PER_PAGE = 200


def record_read(session: Session, viewer: User, subject_id: int, action: AuditAction, *,
                object_type: str, object_id: object = "",
                detail: dict[str, Any] | None = None) -> None:
    """Record that ``viewer`` read ``subject_id``'s data (a report, a portfolio) and commit.

    Call it once the read succeeded, so a refused read leaves no entry.
    """
    audit(session, action, actor_id=viewer.id, subject_id=subject_id,
          object_type=object_type, object_id=object_id, detail=detail)
    session.commit()


def record_reads(session: Session, viewer: User, subject_ids: list[int],
                 action: AuditAction, *, object_type: str, object_id: object = "",
                 detail: dict[str, Any] | None = None) -> None:
    """One entry per subject (a class pack read: every student in it), in one commit."""
    for subject_id in subject_ids:
        audit(session, action, actor_id=viewer.id, subject_id=subject_id,
              object_type=object_type, object_id=object_id, detail=detail)
    session.commit()


def record_sign_in(session: Session, user: User, channel: str) -> None:
    """Queue a sign-in entry (``channel``: ``page`` or ``api``); the caller commits."""
    audit(session, AuditAction.SIGN_IN, actor_id=user.id, subject_id=user.id,
          object_type="session", detail={"channel": channel})


def record_failed_sign_in(session: Session, username: str, channel: str) -> None:
    """Record a failed sign-in and commit: against the account when one has this username
    (its owner may want to know), without one otherwise. The typed username is never stored:
    it may be a password typed in the wrong box."""
    normal = unicodedata.normalize("NFKC", username or "")
    user_id = session.scalar(select(User.id).where(User.username.in_({username, normal})))
    audit(session, AuditAction.SIGN_IN_FAILED, actor_id=None, subject_id=user_id,
          object_type="session", detail={"channel": channel})
    session.commit()


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to list: by subject, actor, action and time (all optional)."""

    subject_id: int | None = None
    actor_id: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _reachable(admin: User):
    """A condition: entries about or by people of the admin's school (everything for a
    district administrator)."""
    if admin.school_id is None:
        return None
    return or_(reaches_users(admin, AuditEntry.subject_id),
               reaches_users(admin, AuditEntry.actor_id))


def entries_query(admin: User, where: AuditFilter) -> Select:
    """The entries ``admin`` may read that match ``where``, newest first, with the actor's and
    the subject's names joined at read time (the log stores ids only).

    Raises
    ------
    Forbidden
        ``admin`` is not an administrator.
    Invalid
        An unknown action, or ``since`` after ``until``.
    """
    if admin.role != Role.ADMIN:
        raise Forbidden(f"the audit log is for administrators; you are {admin.role.value}")
    if where.action is not None and where.action not in set(AuditAction):
        known = ", ".join(sorted(AuditAction))
        raise Invalid(f"unknown action {where.action!r}; one of: {known}", field="action")
    if where.since and where.until and as_utc(where.since) > as_utc(where.until):
        raise Invalid("'since' is after 'until'", field="since")
    actor, subject = aliased(User), aliased(User)
    query = (select(AuditEntry, actor.display_name, actor.username, subject.display_name,
                    subject.username)
             .outerjoin(actor, actor.id == AuditEntry.actor_id)
             .outerjoin(subject, subject.id == AuditEntry.subject_id)
             .order_by(AuditEntry.id.desc()))
    reach = _reachable(admin)
    if reach is not None:
        query = query.where(reach)
    if where.subject_id is not None:
        query = query.where(AuditEntry.subject_id == where.subject_id)
    if where.actor_id is not None:
        query = query.where(AuditEntry.actor_id == where.actor_id)
    if where.action is not None:
        query = query.where(AuditEntry.action == where.action)
    if where.since is not None:
        query = query.where(AuditEntry.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEntry.at <= where.until)
    return query


def entry_record(row) -> dict[str, Any]:
    """One row of :func:`entries_query` as JSON-ready data."""
    entry, actor_name, actor_username, subject_name, subject_username = row
    return {"id": entry.id, "at": as_utc(entry.at), "action": entry.action,
            "actor_id": entry.actor_id, "actor": actor_name or actor_username,
            "subject_id": entry.subject_id, "subject": subject_name or subject_username,
            "object_type": entry.object_type, "object_id": entry.object_id,
            "detail": entry.detail, "hash": entry.hash}


def list_entries(session: Session, admin: User, where: AuditFilter, *, page: int = 1,
                 per_page: int = 50) -> dict[str, Any]:
    """A page of entries and whether there are more; reading it about a subject is itself
    recorded (``audit_read``) and committed.

    Raises
    ------
    Invalid
        ``page`` below 1 or ``per_page`` outside 1..:data:`MAX_PER_PAGE`; see also
        :func:`entries_query`.
    """
    if page < 1:
        raise Invalid("page must be at least 1", field="page")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise Invalid(f"per_page must be between 1 and {MAX_PER_PAGE}", field="per_page")
    rows = session.execute(entries_query(admin, where).offset((page - 1) * per_page)
                           .limit(per_page + 1)).all()
    entries = [entry_record(row) for row in rows[:per_page]]
    audit(session, AuditAction.AUDIT_READ, actor_id=admin.id, subject_id=where.subject_id,
          object_type="audit_log",
          detail={"actor": where.actor_id, "action": where.action, "page": page})
    session.commit()
    return {"entries": entries, "page": page, "per_page": per_page,
            "has_more": len(rows) > per_page}
