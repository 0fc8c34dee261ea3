"""Next steps per skill not mastered yet: practice items at the student's level, and resources.

:func:`next_steps` reads a report of :func:`reports.report.student_report` (only its
``student_id``, ``viewer_role`` and, per skill, ``skill``, ``theta`` and ``decision``) and returns,
for each skill whose decision is not ``mastered``, a list of suggestions::

    {"kind": "practice", "title", "url", "why": {"code": "practice_level", ...}, "why_text",
     "expected_success", "item_id", "source_id"}       # item_id / source_id: staff only
    {"kind": "resource", "title", "url", "why": {"code": "resource_level", ...}, "why_text",
     "resource_id", "description", "level_min", "level_max"}

Practice first (closest to the target success first), then resources (closest range first).

Practice items. Operational, calibrated, dichotomous items of the skill (the only items a test
delivers and scores on the bank's scale, so that practice feeds the report's evidence), with the
expected success ``P(correct | theta of the skill)`` closest to :data:`TARGET_SUCCESS` (computed
for every candidate at once with :func:`cat_engine.models.p_correct`), leaving out every item
the student saw in the last :data:`RECENT_DAYS` days (any response, or an item on screen in an
attempt in progress). A suggestion never carries an item's stem, options or key; for students it
carries no item code either. Its ``url`` (:data:`PRACTICE_PATH`) starts a practice attempt of
the skill that gives exactly the suggested items through the ordinary test pages
(:mod:`evidence.practice`), which show no key and no right or wrong per answer.

Resources. Active learning resources of the skill whose level range holds the skill's theta;
bounded ranges first, ordered by how far theta is from the range's middle; then ranges open on
one side, by how far theta is from their bound; then resources for any level.

``why`` is data for the renderers to word (English and Spanish); ``why_text`` is the English.
Codes: ``practice_level`` ``{"expected_success", "target", "recent_days"}`` and
``resource_level`` ``{"theta", "level_min", "level_max"}`` (a bound is ``None`` when open).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import quote

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cat_engine.bank import FAMILY_DICHOTOMOUS, ItemBank
from cat_engine.models import p_correct
from evidence.models import Attempt, AttemptStatus, Response
from evidence.practice import PRACTICE_ITEMS
from item_bank.models import Item, ItemParameterSet, ItemStatus
from reports.resources import resources_by_skill
from storage import as_utc, utcnow

#: The expected success practice aims at: hard enough to learn from, easy enough to go on.
TARGET_SUCCESS = 0.70
#: Items the student saw this many days back or less are not suggested again.
RECENT_DAYS = 30
#: At most this many practice items and this many resources per skill.
MAX_PRACTICE = PRACTICE_ITEMS
MAX_RESOURCES = 3
#: Where a practice suggestion leads: a page that starts the practice attempt of the skill.
PRACTICE_PATH = "/practice/{skill}"
#: IRT models whose items have one right answer (their P(correct) is the expected success).
DICHOTOMOUS = ("rasch", "1pl", "2pl", "3pl", "4pl")
#: Fields of a practice suggestion that only staff see (which item it is).
STAFF_ONLY = ("item_id", "source_id")


def practice_url(skill: str) -> str:
    """The address of the page that starts practice in ``skill``."""
    return PRACTICE_PATH.format(skill=quote(skill, safe=""))


def seen_recently(session: Session, student_id: int, now: datetime,
                  days: int = RECENT_DAYS) -> set[int]:
    """Ids of the items ``student_id`` answered, or has on screen, since ``now - days``."""
    since = now - timedelta(days=days)
    answered = select(Response.item_id).join(Attempt, Attempt.id == Response.attempt_id).where(
        Attempt.user_id == student_id, Response.answered_at > since)
    on_screen = select(Attempt.current_item_id).where(
        Attempt.user_id == student_id, Attempt.status == AttemptStatus.IN_PROGRESS,
        Attempt.current_item_id.is_not(None))
    return set(session.scalars(answered)) | set(session.scalars(on_screen))


class PracticeItem(NamedTuple):
    """A practice item: its database id, its code and the expected success at the theta."""

    item_id: int
    code: str
    expected_success: float


def _dichotomous_bank(rows: list[Any]) -> ItemBank:
    """An engine bank of stored dichotomous items, built from columns (they were validated
    when stored): no per-item objects, so a large bank costs a few array copies."""
    n = len(rows)

    def column(name: str, default: float) -> np.ndarray:
        values = np.array([getattr(r, name) for r in rows], dtype=float)  # None -> nan
        return np.where(np.isnan(values), default, values)

    b = column("b", 0.0)
    return ItemBank(item_ids=tuple(r.code for r in rows), models=np.array([r.model for r in rows]),
                    family=np.full(n, FAMILY_DICHOTOMOUS, dtype=np.int8), a=column("a", 1.0),
                    b=b, c=column("c", 0.0), d=column("d", 1.0), thresholds=b[:, None].copy(),
                    n_categories=np.full(n, 2), content=((),) * n)


def practice_items(session: Session, student_id: int, thetas: dict[str, float], *,
                   now: datetime | None = None, limit: int = MAX_PRACTICE
                   ) -> dict[str, list[PracticeItem]]:
    """Per skill, the practice items and their expected success, closest to the target first.

    One query for the candidates' parameters (columns, no ORM objects), one bank of them all,
    one vectorised ``P(correct | theta of the item's skill)``.

    Parameters
    ----------
    thetas : dict
        Skill -> the student's theta in it (logits, the bank's scale).

    Returns
    -------
    dict
        Skill -> up to ``limit`` practice items; ties by item code.
    """
    now = as_utc(now) if now is not None else utcnow()
    out: dict[str, list[PracticeItem]] = {s: [] for s in thetas}
    if not thetas:
        return out
    seen = seen_recently(session, student_id, now)
    rows = [r for r in session.execute(
        select(Item.id, Item.code, Item.skill, ItemParameterSet.model, ItemParameterSet.a,
               ItemParameterSet.b, ItemParameterSet.c, ItemParameterSet.d)
        .join(ItemParameterSet, (ItemParameterSet.item_id == Item.id) & ItemParameterSet.is_active)
        .where(Item.status == ItemStatus.OPERATIONAL, Item.skill.in_(list(thetas)),
               Item.key.is_not(None), ItemParameterSet.model.in_(DICHOTOMOUS))
        .order_by(Item.code)) if r.id not in seen]
    if not rows:
        return out
    bank = _dichotomous_bank(rows)
    theta = np.array([thetas[r.skill] for r in rows], dtype=float)
    success = p_correct(bank, np.arange(len(rows)), theta)
    distance = np.abs(success - TARGET_SUCCESS)
    skill_of = np.array([r.skill for r in rows])
    for skill in thetas:
        mine = np.flatnonzero(skill_of == skill)
        order = mine[np.argsort(distance[mine], kind="stable")][:limit]  # stable: code order
        out[skill] = [PracticeItem(rows[j].id, rows[j].code, float(success[j])) for j in order]
    return out


def _practice(skill: str, picks: Iterable[PracticeItem], staff: bool) -> list[dict[str, Any]]:
    out = []
    for k, (item_id, code, success) in enumerate(picks, start=1):
        entry = {
            "kind": "practice", "title": f"Practice question {k} in {skill}",
            "url": practice_url(skill), "position": k,
            "expected_success": round(success, 4),
            "why": {"code": "practice_level", "expected_success": round(success, 4),
                    "target": TARGET_SUCCESS, "recent_days": RECENT_DAYS},
            "why_text": (f"expected success {success:.0%} at your level; not seen in the last "
                         f"{RECENT_DAYS} days"),
        }
        if staff:
            entry |= {"item_id": item_id, "source_id": code}
        out.append(entry)
    return out


def _fits(theta: float, low: float | None, high: float | None) -> bool:
    return (low is None or low <= theta) and (high is None or theta <= high)


def _closeness(theta: float, low: float | None, high: float | None) -> tuple[int, float]:
    """Sort key: bounded ranges by distance to their middle, then half-open, then open."""
    if low is not None and high is not None:
        return 0, abs(theta - (low + high) / 2)
    if low is not None or high is not None:
        return 1, abs(theta - (low if low is not None else high))
    return 2, 0.0


def _range_text(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "made for any level"
    if low is None:
        return f"made for levels up to {high:g}"
    if high is None:
        return f"made for levels from {low:g}"
    return f"made for levels {low:g} to {high:g}"


def _resources(session: Session, thetas: dict[str, float]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for skill, resources in resources_by_skill(session, list(thetas)).items():
        theta = thetas[skill]
        fitting = sorted((r for r in resources if _fits(theta, r.level_min, r.level_max)),
                         key=lambda r: (*_closeness(theta, r.level_min, r.level_max), r.title,
                                        r.id))
        out[skill] = [{
            "kind": "resource", "title": r.title, "url": r.url, "resource_id": r.id,
            "description": r.description or "", "level_min": r.level_min,
            "level_max": r.level_max,
            "why": {"code": "resource_level", "theta": round(theta, 4),
                    "level_min": r.level_min, "level_max": r.level_max},
            "why_text": f"{_range_text(r.level_min, r.level_max)}; your level is {theta:.2f}",
        } for r in fitting[:MAX_RESOURCES]]
    return out


def next_steps(session: Session, report: dict[str, Any], *, now: datetime | None = None
               ) -> dict[str, list[dict[str, Any]]]:
    """Suggestions per skill of ``report`` not mastered: practice items, then resources.

    Parameters
    ----------
    report : dict
        A report of :func:`reports.report.student_report` (or one of its shape).
    now : datetime, optional
        As of when "seen in the last 30 days" counts (default: now).

    Returns
    -------
    dict
        Skill -> suggestions (see the module's doc); skills decided ``mastered``, and those
        without a theta, are left out.
    """
    thetas = {s["skill"]: float(s["theta"]) for s in report.get("skills") or []
              if s.get("decision") != "mastered" and s.get("theta") is not None}
    if not thetas:
        return {}
    staff = report.get("viewer_role") != "student"
    picks = practice_items(session, int(report["student_id"]), thetas, now=now)
    resources = _resources(session, thetas)
    return {skill: [*_practice(skill, picks[skill], staff), *resources.get(skill, [])]
            for skill in sorted(thetas)}
