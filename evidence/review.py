"""A teacher's review of one attempt, and where each attempt of a class stands: no HTTP.

What a teacher may open: an attempt at a test assigned to one of their classes, by a student
enrolled in that class (administrators: any class). Anything else is *not found*, so that a
teacher cannot learn that another teacher's student or attempt exists.

The estimate after each answer is not recomputed here: the engine session is rebuilt from the
attempt's stored state (:meth:`cat_engine.CATSession.from_json`), exactly as the answer
endpoint does, and its :meth:`~cat_engine.CATSession.result` gives the estimate the engine made
when each response arrived.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cat_engine import CATSession
from evidence.attempts import Z95
from evidence.classes import visible_class
from evidence.models import Assignment, Attempt, AttemptStatus, Response
from item_bank.models import Item, ItemVersion
from item_bank.services import delivery_bank
from item_bank.translations import localized
from storage import as_utc, utcnow
from storage.accounts import SchoolClass, User, class_members
from storage.errors import NotFound

#: What a teacher sees as an attempt's state (``attempts.status`` plus the expired case).
IN_PROGRESS, TIME_UP, FINISHED, ABANDONED = "in_progress", "time_up", "finished", "abandoned"


def attempt_state(attempt: Attempt, now: datetime | None = None) -> str:
    """Where an attempt stands for its teacher: ``in_progress``, ``time_up``, ``finished`` or
    ``abandoned``.

    An attempt in progress whose ``deadline`` has passed is ``time_up``: the student can no
    longer answer (:func:`evidence.attempts.submit_response` ends it at the next request,
    and :func:`evidence.timing.extend_time` refuses more time), although the row still says
    ``in_progress`` until that request comes.
    """
    if attempt.status == AttemptStatus.IN_PROGRESS:
        if attempt.deadline is not None and (now or utcnow()) > as_utc(attempt.deadline):
            return TIME_UP
        return IN_PROGRESS
    return attempt.status.value


def items_given(attempt: Attempt) -> tuple[int, int]:
    """How many items the student answered, and how many of them were scored (not pretest)."""
    result = attempt.result or {}
    if result.get("n_given") is not None and result.get("n_scored") is not None:
        return int(result["n_given"]), int(result["n_scored"])
    state = attempt.state or {}
    estimates = state.get("estimates") or ()
    return len(state.get("history") or ()), sum(1 for e in estimates if e is not None)


def class_attempt(session: Session, viewer: User, class_id: int, attempt_id: int
                  ) -> tuple[SchoolClass, Attempt]:
    """The class and the attempt, if ``viewer`` may review the attempt as that class's teacher.

    Raises
    ------
    NotFound
        The class is not the viewer's (administrators: no such class); no such attempt; its
        student is not enrolled in the class; or it was not made under one of the class's
        assignments.
    """
    klass = visible_class(session, viewer, class_id)
    attempt = session.get(Attempt, attempt_id)
    missing = NotFound(f"no attempt {attempt_id} in class {class_id}")
    if attempt is None:
        raise missing
    enrolled = session.scalar(select(func.count()).select_from(class_members).where(
        class_members.c.class_id == klass.id, class_members.c.user_id == attempt.user_id))
    # Made under one of this class's assignments (as the API's attempt visibility has it).
    assigned = attempt.assignment_id is not None and session.scalar(
        select(func.count(Assignment.id)).where(Assignment.class_id == klass.id,
                                                Assignment.id == attempt.assignment_id))
    if not enrolled or not assigned:
        raise missing
    return klass, attempt


def _rationales(session: Session, entries: list[dict[str, Any]]) -> dict[int, str]:
    """Each item's rationale as it was in the version the attempt delivered, by item id."""
    wanted = {(e["id"], e.get("version")) for e in entries}
    rows = session.execute(select(ItemVersion.item_id, ItemVersion.version, ItemVersion.rationale)
                           .where(ItemVersion.item_id.in_({e["id"] for e in entries})))
    found = {item_id: text for item_id, version, text in rows if (item_id, version) in wanted}
    missing = [e["id"] for e in entries if e["id"] not in found]
    if missing:  # no version row (items made before versions were kept): the item's own
        found |= dict(session.execute(select(Item.id, Item.rationale)
                                      .where(Item.id.in_(missing))).all())
    return found


def attempt_review(session: Session, attempt: Attempt, now: datetime | None = None
                   ) -> dict[str, Any]:
    """Everything a teacher's review of ``attempt`` shows, as data.

    Returns
    -------
    dict
        ``state`` (see :func:`attempt_state`), ``stop_reason`` (the engine's code or ``None``),
        ``n_given`` (items answered), ``n_scored`` (of which scored, i.e. not pretest),
        ``theta``/``se`` (latest estimate, logits), ``cut_score`` (overall, if any)
        and ``items``: one entry per answered item, in order, with ``position``, ``code``,
        ``stem``, ``options``, ``key`` (option index; ``None`` for rating items), ``choice``
        (the option chosen), ``score``, ``correct`` (``None`` for rating items), ``scored``
        (false for pretest items), ``rationale``, ``seconds`` (time on the item: from its
        presentation, i.e. the previous answer or the start, to the answer; the client's own
        measure when it sent one), and ``theta``, ``se``, ``low``, ``high`` (the estimate
        after this answer and its 95% interval; ``None`` for pretest items, which do not move
        the estimate).
    """
    delivery = delivery_bank(session, attempt.snapshot_id, attempt.language)
    state = attempt.state or {"history": [], "estimates": []}
    engine = CATSession.from_json(
        delivery.bank, {**state, "pending": None, "config": delivery.config.settings},
        config=delivery.config)
    result = engine.result()
    answered = result.items
    responses = session.scalars(select(Response).where(Response.attempt_id == attempt.id)
                                .order_by(Response.position)).all()
    entries = [delivery.items[delivery.codes[r.item_id]] for r in responses]
    rationales = _rationales(session, entries)
    previous = as_utc(attempt.started_at)
    items = []
    # Answers given offline that arrived after a stopping rule fired are stored (unscored) after
    # the engine's history: shown, with no estimate of their own.
    for n, (stored, entry) in enumerate(zip(responses, entries, strict=True)):
        engine_item = answered[n] if n < len(answered) else None
        answered_at = as_utc(stored.answered_at)
        if stored.response_time_ms is not None:
            seconds = stored.response_time_ms / 1000
        else:
            seconds = max(0.0, (answered_at - previous).total_seconds())
        previous = answered_at
        theta, se = (engine_item.theta, engine_item.se) if engine_item else (None, None)
        key = entry.get("key")
        text = localized(entry, attempt.language)  # what the student saw
        items.append({
            "position": stored.position, "item_id": stored.item_id, "code": entry["code"],
            "skill": entry.get("skill"), "stem": text["stem"], "language": text["language"],
            "options": text["options"], "key": key,
            "choice": stored.choice, "score": stored.response,
            "correct": None if key is None else stored.response > 0,
            "scored": stored.scored, "rationale": rationales.get(stored.item_id, ""),
            "offline": stored.offline,
            "after_stop": engine_item is None,
            "seconds": seconds, "answered_at": answered_at,
            "theta": theta, "se": se,
            "low": None if theta is None else theta - Z95 * se,
            "high": None if theta is None else theta + Z95 * se,
        })
    return {
        "state": attempt_state(attempt, now), "stop_reason": attempt.stop_reason,
        "n_given": len(items), "n_scored": sum(1 for i in items if i["scored"]),
        "theta": result.theta, "se": result.se,
        "cut_score": delivery.cut_scores.get("overall"),
        "items": items,
    }


