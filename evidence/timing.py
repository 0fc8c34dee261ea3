"""Time limits of attempts: how much time is left, and extending it (WCAG 2.2.1, Timing Adjustable).

An attempt's ``deadline`` is set when it starts: the assignment's ``time_limit_minutes``, times the
student's extended-time factor when they have one (:func:`evidence.attempts.start_attempt`).
A student may extend it with one simple action, up to :data:`MAX_EXTENSIONS` times; each extension
adds :data:`EXTENSION_SHARE` of the time granted at the start (so +50% of a 20-minute limit is
+10 minutes). The extension moves the attempt's ``deadline``, which is what
:func:`~evidence.attempts.submit_response` enforces, and counts in ``time_extensions``; the time
granted at the start is kept in ``time_granted_seconds``, so changing the assignment's limit during
the attempt changes neither. (Attempts started before those columns existed work both out from
the deadline and the assignment as it is now.)

Extending is refused once the time is up: an answer after the deadline is not recorded and ends
the attempt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.models import Assignment, Attempt, AttemptStatus
from storage import as_utc, utcnow
from storage.accounts import Accommodation, TimeAccommodation, User
from storage.errors import Conflict, NotFound

#: Share of the time granted at the start that one extension adds.
EXTENSION_SHARE = 0.5
#: How many times a student may extend (WCAG 2.2.1 asks for at least ten).
MAX_EXTENSIONS = 10


class TimeLimitConflict(Conflict):
    """Extending is refused; ``reason`` says why: ``finished``, ``no_limit``, ``time_up`` or
    ``no_extensions_left``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, field="deadline")
        self.reason = reason


@dataclass(frozen=True)
class TimeLeft:
    """Where an attempt's time limit stands.

    Attributes
    ----------
    deadline
        When answers stop being recorded (UTC).
    seconds_left
        Whole seconds until ``deadline`` (0 once it has passed).
    step_seconds
        Seconds one extension adds.
    extensions_used, extensions_left
        Extensions taken so far, and how many more are allowed.
    """

    deadline: datetime
    seconds_left: int
    step_seconds: int
    extensions_used: int
    extensions_left: int


def granted_time(session: Session, attempt: Attempt) -> timedelta | None:
    """The time the attempt was given when it started, before any extension.

    The assignment's limit, times the student's extended-time factor; ``None`` for an attempt
    without a deadline. When the assignment is gone, the time from start to the current deadline
    stands in (as though no extension had been taken).
    """
    if attempt.deadline is None:
        return None
    if attempt.time_granted_seconds is not None:
        return timedelta(seconds=attempt.time_granted_seconds)
    assignment = session.get(Assignment, attempt.assignment_id) if attempt.assignment_id else None
    if assignment is None or not assignment.time_limit_minutes:
        return as_utc(attempt.deadline) - as_utc(attempt.started_at)
    minutes = float(assignment.time_limit_minutes)
    accommodation = session.get(Accommodation, attempt.user_id)
    if accommodation is not None and accommodation.time == TimeAccommodation.EXTENDED:
        minutes *= accommodation.time_factor
    return timedelta(minutes=minutes)


def time_left(session: Session, attempt: Attempt, now: datetime | None = None) -> TimeLeft | None:
    """The attempt's time limit as it stands at ``now``; ``None`` when it has no deadline."""
    granted = granted_time(session, attempt)
    if granted is None:
        return None
    now = now or utcnow()
    deadline = as_utc(attempt.deadline)
    step = granted * EXTENSION_SHARE
    used = 0
    if attempt.time_granted_seconds is not None:
        used = min(MAX_EXTENSIONS, attempt.time_extensions or 0)
    elif step.total_seconds() > 0:
        moved = (deadline - as_utc(attempt.started_at)) - granted
        used = min(MAX_EXTENSIONS, max(0, round(moved / step)))
    return TimeLeft(
        deadline=deadline,
        seconds_left=max(0, math.floor((deadline - now).total_seconds())),
        step_seconds=int(step.total_seconds()),
        extensions_used=used,
        extensions_left=MAX_EXTENSIONS - used if step.total_seconds() > 0 else 0,
    )


def extend_time(session: Session, user: User, attempt_id: int,
                now: datetime | None = None, seen: int | None = None) -> TimeLeft:
    """Give the student more time: move the deadline of their attempt by one extension step.

    ``seen`` is the number of extensions the student's page showed as used: when it is behind
    the attempt's count, this request is a resend of one already carried out (a double click, a
    retry after a lost reply) and nothing changes. The caller commits.

    Returns
    -------
    TimeLeft
        The time limit after the extension.

    Raises
    ------
    NotFound
        No such attempt, or not the caller's.
    TimeLimitConflict
        The attempt is over, has no time limit, its time is already up, or every extension has
        been used (a :class:`~storage.errors.Conflict`, with the ``reason``).
    """
    now = now or utcnow()
    attempt = session.scalar(select(Attempt).where(Attempt.id == attempt_id).with_for_update())
    if attempt is None or attempt.user_id != user.id:
        raise NotFound(f"no attempt {attempt_id} of yours")
    if attempt.status != AttemptStatus.IN_PROGRESS:
        raise TimeLimitConflict(f"attempt {attempt.id} is {attempt.status.value}; its time "
                                "cannot change", "finished")
    before = time_left(session, attempt, now)
    if before is None:
        raise TimeLimitConflict(f"attempt {attempt.id} has no time limit", "no_limit")
    if now > before.deadline:
        raise TimeLimitConflict("the time is up; it can no longer be extended", "time_up")
    if seen is not None and seen < before.extensions_used:
        return before  # already extended for this page
    if before.extensions_left <= 0:
        raise TimeLimitConflict(f"all {MAX_EXTENSIONS} extensions have been used",
                                "no_extensions_left")
    attempt.deadline = before.deadline + timedelta(seconds=before.step_seconds)
    attempt.time_extensions = before.extensions_used + 1
    session.flush()
    return time_left(session, attempt, now)
