"""Process indicators of an attempt and of a student: flags for a teacher to look at, never scores.

Each indicator carries its definition (:data:`DEFINITIONS`, the help text of the pages and the
API). Computed on request from responses and statements; nothing is stored.

- **Time on task**: the sum of the response times of an attempt's answers, and its wall time
  (start to finish, or to the last answer while in progress).
- **Rapid guesses and response-time effort (RTE)**: per-item thresholds by NT10
  (:mod:`calibration.response_time`) from every timed response to the item in the database (one
  SQL aggregate per request over the items concerned); a response faster than its item's
  threshold is a rapid guess; RTE is the share of timed responses that are not. RTE below
  :data:`RTE_FLAG` (0.90, Wise & Kong's cue) raises the flag ``low_effort``.
- **Hints**: ``responses.hints_used`` of the attempt, plus statements of the step log whose verb
  is one of :data:`HINT_VERBS` (in the attempt's registration for an attempt).
- **Retries**: per registration, each activity answered (verb ``answered``) more than once counts
  its answers beyond the first. Voided statements count for neither.
- **Person fit**: Snijders' lz* (:mod:`calibration.person_fit`) of the attempt's scored answers to
  dichotomous items, at the estimate of the estimator the test uses (MLE, WLE or MAP; for an
  EAP test, the MAP under the test's normal prior, or the MLE when the prior is flat), computed
  only from :data:`MIN_PERSON_FIT_ITEMS` such answers; below :data:`LZ_FLAG` raises
  ``person_misfit``.

Students see time on task, hints and retries of their own work; RTE, rapid-guess flags and lz*
are staff-only (see :func:`for_viewer`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from calibration.person_fit import person_fit
from calibration.response_time import NT10, ThresholdRule, nt_thresholds
from cat_engine.bank import FAMILY_DICHOTOMOUS
from cat_engine.config import CATConfig
from cat_engine.estimation import MAP, MLE, WLE
from evidence.attempts import visible_attempt
from evidence.models import Attempt, Response, Statement
from evidence.scope import StudentScope
from evidence.statements import NOT_VOIDED, VERB_ANSWERED, VERB_ASKED
from item_bank.services import delivery_bank
from storage import as_utc
from storage.accounts import Role, User

#: Verbs read as a request for help. ADL's vocabulary has no "hint" verb; "asked" ("an inquiry
#: by an actor with the expectation of a response") is the nearest, and tools may use it.
HINT_VERBS: tuple[str, ...] = (VERB_ASKED,)

#: Fewer scored dichotomous answers than this and no lz* is given (see docs/decisions.md).
MIN_PERSON_FIT_ITEMS = 10
LZ_FLAG = -1.645
RTE_FLAG = 0.90

DEFINITIONS: dict[str, str] = {
    "time_on_task": (
        "Time on task: the sum of the times taken to answer each question (from the moment the "
        "question was shown to the answer), beside the wall time from the start of the attempt "
        "to its end."),
    "response_time_effort": (
        "Response-time effort: the share of answers that are not rapid guesses. An answer is a "
        "rapid guess when it came faster than the question's threshold: 10% of the average time "
        "everyone took on that question, at most 10 seconds and at least 1 second (1 second "
        "for a question with fewer than 20 timed answers). Below 90% it is flagged: the answers "
        "may not show what the student can do."),
    "rapid_guess": (
        "Rapid guess: an answer given faster than the question's threshold (10% of the average "
        "time on that question, between 1 and 10 seconds)."),
    "hints": (
        "Hints: how many hints the student asked for while answering, and requests for help "
        "recorded in the step log."),
    "retries": (
        "Retries: answers to an activity beyond the first, in the same session of a learning "
        "tool."),
    "person_fit": (
        "Person fit (lz*, Snijders 2001): how well the pattern of right and wrong answers fits "
        "the student's level. Below -1.645 it is flagged: the student missed easy questions and "
        "answered hard ones, which guessing, copying or a misunderstood question can cause. "
        f"Given only from {MIN_PERSON_FIT_ITEMS} scored right-or-wrong answers."),
}

#: Indicator fields only staff see.
STAFF_ONLY = ("response_time_effort", "person_fit")


# -- thresholds ----------------------------------------------------------------------------------


def item_thresholds(session: Session, item_ids: Iterable[int],
                    rule: ThresholdRule = NT10) -> dict[int, float]:
    """NT10 threshold (seconds) of each item from every timed response to it in the database.

    One aggregate query (mean and count of ``responses.response_time_ms`` per item, served by the
    index on ``responses.item_id``). Not cached: every answer moves the means a little, and the
    query costs less than a cache that would have to notice that.
    """
    ids = sorted(set(item_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Response.item_id, func.avg(Response.response_time_ms),
               func.count(Response.response_time_ms))
        .where(Response.item_id.in_(ids)).group_by(Response.item_id)).all()
    stats = {item_id: (mean, n) for item_id, mean, n in rows}
    mean = np.array([np.nan if stats.get(i, (None, 0))[0] is None else float(stats[i][0]) / 1000
                     for i in ids])
    count = np.array([int(stats.get(i, (None, 0))[1]) for i in ids])
    return dict(zip(ids, nt_thresholds(mean, count, rule).tolist(), strict=True))


# -- the log -------------------------------------------------------------------------------------


def log_counts(session: Session, scope: StudentScope,
               registrations: Sequence[str] | None = None) -> dict[str | None, dict[str, int]]:
    """Hint requests and retries in the step log, by registration (None: outside any).

    Two aggregate queries over the student's statements in ``scope`` (only ``registrations``
    when given).
    """
    where = [scope.statements(), NOT_VOIDED]
    if registrations is not None:
        if not registrations:
            return {}
        where.append(Statement.registration.in_(list(registrations)))
    out: dict[str | None, dict[str, int]] = defaultdict(lambda: {"hints": 0, "retries": 0})
    for registration, n in session.execute(
            select(Statement.registration, func.count()).where(
                *where, Statement.verb_id.in_(HINT_VERBS)).group_by(Statement.registration)):
        out[registration]["hints"] += int(n)
    answered = (select(Statement.registration, Statement.object_id,
                       func.count().label("n"))
                .where(*where, Statement.verb_id == VERB_ANSWERED,
                       Statement.registration.is_not(None))
                .group_by(Statement.registration, Statement.object_id)
                .having(func.count() > 1).subquery())
    for registration, extra in session.execute(
            select(answered.c.registration, func.sum(answered.c.n - 1))
            .group_by(answered.c.registration)):
        out[registration]["retries"] += int(extra or 0)
    return dict(out)


# -- person fit ----------------------------------------------------------------------------------


def fit_estimator(config: CATConfig) -> tuple[str, dict[str, Any]]:
    """The estimator lz* is computed at for a test, and its settings.

    MLE, WLE and MAP tests use their own; EAP is not the root of an estimating equation, so an
    EAP test uses the MAP under its normal prior (the EAP's close neighbour), or the MLE within
    its grid when its prior is flat.
    """
    estimator = config.estimator
    if isinstance(estimator, MLE):
        return "mle", {"bounds": estimator.bounds}
    if isinstance(estimator, WLE):
        return "wle", {"bounds": estimator.bounds}
    if isinstance(estimator, MAP):
        return "map", {"prior": (estimator.mean, estimator.sd)}
    prior = (config.settings.get("estimator") or {}).get("prior") or {}
    if prior.get("type") == "uniform":
        points = config.grid.points
        return "mle", {"bounds": (float(points[0]), float(points[-1]))}
    return "map", {"prior": (float(prior.get("mean", 0.0)), float(prior.get("sd", 1.0)))}


def _person_fit(session: Session, attempts: list[Attempt],
                responses: dict[int, list[Any]]) -> dict[int, dict[str, Any]]:
    """lz* of each attempt, vectorised over the attempts of one bank snapshot."""
    out: dict[int, dict[str, Any]] = {}
    by_snapshot: dict[int | None, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_snapshot[attempt.snapshot_id].append(attempt)
    for snapshot_id, group in by_snapshot.items():
        if snapshot_id is None:
            for attempt in group:
                out[attempt.id] = _no_fit(0, None)
            continue
        delivery = delivery_bank(session, snapshot_id)
        bank = delivery.bank
        method, settings = fit_estimator(delivery.config)
        x = np.full((len(group), len(bank)), np.nan)
        for row, attempt in enumerate(group):
            for r in responses.get(attempt.id, ()):
                code = delivery.codes.get(r.item_id)
                if not r.scored or code is None or code in delivery.pretest:
                    continue
                position = bank.index_of(code)
                if bank.family[position] == FAMILY_DICHOTOMOUS and r.response in (0, 1):
                    x[row, position] = r.response
        n_items = (~np.isnan(x)).sum(axis=1)
        enough = np.flatnonzero(n_items >= MIN_PERSON_FIT_ITEMS)
        fit = person_fit(bank, x[enough], estimator=method, **settings) if enough.size else None
        for row, attempt in enumerate(group):
            out[attempt.id] = _no_fit(int(n_items[row]), method)
        for k, row in enumerate(enough):
            value = float(fit.lz_star[k])
            entry = out[group[row].id]
            if np.isfinite(value):
                entry |= {"lz_star": round(value, 3), "flag": value < LZ_FLAG,
                          "theta": round(float(fit.theta[k]), 3), "reason": None}
            else:
                entry["reason"] = ("the estimate is at the edge of the scale (every answer "
                                   "right or every answer wrong, or only lucky guesses right), "
                                   "where lz* is not defined")
    return out


def _no_fit(n_items: int, method: str | None) -> dict[str, Any]:
    return {"lz_star": None, "flag": False, "n_items": n_items, "estimator": method,
            "theta": None, "minimum_items": MIN_PERSON_FIT_ITEMS, "threshold": LZ_FLAG,
            "reason": f"fewer than {MIN_PERSON_FIT_ITEMS} scored right-or-wrong answers",
            "definition": DEFINITIONS["person_fit"]}


# -- attempts ------------------------------------------------------------------------------------


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((as_utc(end) - as_utc(start)).total_seconds(), 3)


def attempts_indicators(session: Session, attempts: list[Attempt], scope: StudentScope,
                        *, with_responses: bool = True, with_log: bool = True
                        ) -> list[dict[str, Any]]:
    """The indicators of several attempts of one student, in their order (all fields; see
    :func:`for_viewer` for what a student sees).

    A fixed number of queries whatever the number of attempts: their responses, the items'
    thresholds, the log counts, and one bank per snapshot (cached in the process).
    ``with_log=False`` skips the step log (hints and retries from statements then count 0),
    for callers that read only the rapid guesses and person fit.
    """
    if not attempts:
        return []
    ids = [a.id for a in attempts]
    responses: dict[int, list[Any]] = defaultdict(list)
    for row in session.execute(
            select(Response.attempt_id, Response.position, Response.item_id, Response.response,
                   Response.scored, Response.response_time_ms, Response.hints_used,
                   Response.answered_at)
            .where(Response.attempt_id.in_(ids)).order_by(Response.attempt_id, Response.position)):
        responses[row.attempt_id].append(row)
    thresholds = item_thresholds(session, {r.item_id for rs in responses.values() for r in rs})
    log = log_counts(session, scope, [a.registration for a in attempts]) if with_log else {}
    fits = _person_fit(session, attempts, responses)
    out = []
    for attempt in attempts:
        rows = responses.get(attempt.id, [])
        timed = [r for r in rows if r.response_time_ms is not None]
        rapid = [r for r in timed if r.response_time_ms / 1000 < thresholds[r.item_id]]
        rte = 1.0 - len(rapid) / len(timed) if timed else None
        end = attempt.finished_at or (rows[-1].answered_at if rows else None)
        counts = log.get(attempt.registration, {"hints": 0, "retries": 0})
        fit = fits[attempt.id]
        indicators = {
            "time_on_task": {
                "seconds": round(sum(r.response_time_ms for r in timed) / 1000, 3)
                if timed else None,
                "wall_seconds": _seconds(attempt.started_at, end),
                "timed_responses": len(timed), "responses": len(rows),
                "definition": DEFINITIONS["time_on_task"]},
            "response_time_effort": {
                "value": None if rte is None else round(rte, 4),
                "flag": rte is not None and rte < RTE_FLAG, "threshold": RTE_FLAG,
                "rapid_guesses": len(rapid), "timed_responses": len(timed),
                "rule": NT10.describe(), "definition": DEFINITIONS["response_time_effort"]},
            "hints": {"responses": sum(r.hints_used or 0 for r in rows),
                      "log": counts["hints"], "definition": DEFINITIONS["hints"]},
            "retries": {"count": counts["retries"], "definition": DEFINITIONS["retries"]},
            "person_fit": fit,
        }
        entry: dict[str, Any] = {
            "attempt_id": attempt.id, "test_id": attempt.test_id, "user_id": attempt.user_id,
            "status": attempt.status.value, "started_at": attempt.started_at,
            "finished_at": attempt.finished_at, "registration": attempt.registration,
            "indicators": indicators,
            "flags": [name for name, raised in (
                ("low_effort", indicators["response_time_effort"]["flag"]),
                ("person_misfit", fit["flag"])) if raised],
        }
        if with_responses:
            entry["responses"] = [{
                "position": r.position, "item_id": r.item_id, "scored": r.scored,
                "response_time_ms": r.response_time_ms,
                "threshold_ms": round(thresholds[r.item_id] * 1000),
                "rapid_guess": r.response_time_ms is not None
                and r.response_time_ms / 1000 < thresholds[r.item_id],
                "hints_used": r.hints_used or 0} for r in rows]
        out.append(entry)
    return out


def attempt_indicators(session: Session, viewer: User, attempt_id: int) -> dict[str, Any]:
    """The indicators of one attempt as ``viewer`` may see them.

    Raises
    ------
    NotFound
        No such attempt, or not one the viewer may see (:func:`evidence.attempts.visible_attempt`).
    """
    attempt = visible_attempt(session, viewer, attempt_id)
    scope = StudentScope(attempt.user, viewer, None)
    return for_viewer(attempts_indicators(session, [attempt], scope)[0], viewer)


def student_indicators(session: Session, scope: StudentScope) -> dict[str, Any]:
    """A student's indicators over the attempts in ``scope`` (newest first), with totals, as the
    scope's viewer may see them."""
    attempts = list(session.scalars(select(Attempt).where(scope.attempts())
                                    .order_by(Attempt.id.desc())))
    per_attempt = attempts_indicators(session, attempts, scope, with_responses=False)
    log = log_counts(session, scope)
    timed = sum(a["indicators"]["response_time_effort"]["timed_responses"] for a in per_attempt)
    rapid = sum(a["indicators"]["response_time_effort"]["rapid_guesses"] for a in per_attempt)
    rte = None if not timed else 1.0 - rapid / timed
    seconds = [a["indicators"]["time_on_task"]["seconds"] for a in per_attempt]
    wall = [a["indicators"]["time_on_task"]["wall_seconds"] for a in per_attempt]
    totals = {
        "attempts": len(per_attempt),
        "time_on_task": {
            "seconds": None if timed == 0 else round(sum(s for s in seconds if s), 3),
            "wall_seconds": None if not any(w is not None for w in wall)
            else round(sum(w for w in wall if w), 3),
            "timed_responses": timed, "definition": DEFINITIONS["time_on_task"]},
        "response_time_effort": {"value": None if rte is None else round(rte, 4),
                                 "flag": rte is not None and rte < RTE_FLAG,
                                 "threshold": RTE_FLAG, "rapid_guesses": rapid,
                                 "timed_responses": timed,
                                 "definition": DEFINITIONS["response_time_effort"]},
        "hints": {"responses": sum(a["indicators"]["hints"]["responses"] for a in per_attempt),
                  "log": sum(c["hints"] for c in log.values()),
                  "definition": DEFINITIONS["hints"]},
        "retries": {"count": sum(c["retries"] for c in log.values()),
                    "definition": DEFINITIONS["retries"]},
        "person_fit": {"flagged_attempts": sum(a["indicators"]["person_fit"]["flag"]
                                               for a in per_attempt),
                       "threshold": LZ_FLAG, "definition": DEFINITIONS["person_fit"]},
    }
    data = {"user_id": scope.student.id, "totals": totals, "attempts": per_attempt}
    if not scope.staff:
        data["totals"] = {k: v for k, v in totals.items() if k not in STAFF_ONLY}
        data["attempts"] = [for_viewer(a, scope.viewer) for a in per_attempt]
    return data


def for_viewer(entry: dict[str, Any], viewer: User) -> dict[str, Any]:
    """An attempt's indicators without the staff-only fields when ``viewer`` is a student.

    RTE, rapid-guess flags and lz* are inferences about effort and about the pattern of right and
    wrong answers, for a teacher to weigh in context; shown to a student they read as a verdict
    (and per-answer misfit would hint at which answers were wrong). Time, hints and retries are
    plain facts of the student's own work.
    """
    if viewer.role != Role.STUDENT:
        return entry
    out = {k: v for k, v in entry.items() if k not in ("flags", "responses")}
    out["indicators"] = {k: v for k, v in entry["indicators"].items() if k not in STAFF_ONLY}
    if "responses" in entry:
        out["responses"] = [{k: v for k, v in r.items()
                             if k not in ("rapid_guess", "threshold_ms")}
                            for r in entry["responses"]]
    return out
