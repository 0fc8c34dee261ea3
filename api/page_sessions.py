"""Who is signed in to the pages: a server-side session per browser, checked on every request.

The signed cookie carries only a random session id (``sid``); the database keeps its SHA-256 in
``page_sessions``. So a session can be ended for every copy of its cookie at once: signing out
deletes its row, and a new password or deactivation deletes all of the user's rows
(:func:`evidence.classes.update_user`). A session also ends after ``PAGE_SESSION_IDLE``
without a request (2 h by default) and ``PAGE_SESSION_LIFETIME`` after sign-in (12 h, a school
day, like API tokens), whichever comes first.

Cost: the user was already read on every page request; now it is read joined to its session
row, in the same single query. ``last_seen_at`` is written at most once a minute per session.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, g, session
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from api.db import get_session
from storage import as_utc, utcnow
from storage.accounts import PageSession, User

SESSION_KEY = "sid"
IDLE = timedelta(hours=2)
LIFETIME = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _setting(name: str, default: timedelta) -> timedelta:
    value = current_app.config.get(name, default)
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


def start(db: Session, user: User) -> None:
    """Sign ``user`` in on this browser: a fresh Flask session holding a new session id.

    Commits the new row, and the removal of every session that has expired (anyone's: a
    sign-in is rare enough to pay for the sweep, and no other job is needed).
    """
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    db.execute(delete(PageSession).where(
        (PageSession.created_at < now - _setting("PAGE_SESSION_LIFETIME", LIFETIME))
        | (PageSession.last_seen_at < now - _setting("PAGE_SESSION_IDLE", IDLE))))
    db.add(PageSession(token_hash=_digest(sid), user_id=user.id, created_at=now,
                       last_seen_at=now))
    db.commit()
    session.clear()
    session.permanent = True  # the cookie expires with the session, not with the browser
    session[SESSION_KEY] = sid
    g.pop("page_user", None)


def end(db: Session) -> None:
    """Sign this browser out: its session row goes, so no copy of the cookie works again."""
    sid = session.get(SESSION_KEY)
    if isinstance(sid, str):
        db.execute(delete(PageSession).where(PageSession.token_hash == _digest(sid)))
        db.commit()
    session.clear()
    g.pop("page_user", None)


def end_all(db: Session, user_id: int) -> None:
    """End every page session of ``user_id`` (in the caller's transaction)."""
    db.execute(delete(PageSession).where(PageSession.user_id == user_id))


def current_user() -> User | None:
    """The user signed in on this browser, or ``None``.

    ``None`` when the cookie carries no session id, or one whose session was ended, has been
    idle longer than ``PAGE_SESSION_IDLE`` or began more than ``PAGE_SESSION_LIFETIME`` ago, or
    whose account is deactivated. Read once per request.
    """
    if "page_user" in g:
        return g.page_user
    g.page_user = None
    sid = session.get(SESSION_KEY)
    if not isinstance(sid, str) or not sid:
        return None
    db = get_session()
    fresh = not db.in_transaction()
    row = db.execute(select(User, PageSession.id, PageSession.created_at,
                            PageSession.last_seen_at)
                     .join(PageSession, PageSession.user_id == User.id)
                     .where(PageSession.token_hash == _digest(sid))).first()
    if row is None:
        return None
    user, session_id, created_at, last_seen_at = row
    now = utcnow()
    if (not user.is_active
            or now - as_utc(created_at) > _setting("PAGE_SESSION_LIFETIME", LIFETIME)
            or now - as_utc(last_seen_at) > _setting("PAGE_SESSION_IDLE", IDLE)):
        return None
    if fresh and now - as_utc(last_seen_at) > TOUCH_EVERY:
        # Nothing else is in this transaction yet, so committing it commits only this.
        db.execute(update(PageSession).where(PageSession.id == session_id)
                   .values(last_seen_at=now))
        db.commit()
    g.page_user = user
    return user
