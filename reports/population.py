"""Population figures the mastery model needs: how far skills spread about the overall ability,
and whether each skill's own score adds information (Haberman's PRMSE), per test and pooled.

Read from the results of finished attempts (each stores its overall theta and se and, per skill,
the estimate from that skill's items alone). Computed once per database and then reused for
:data:`TTL_SECONDS`: the figures move slowly (one more student changes them little), and reading
every result per report would cost more than the report.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.models import Attempt, AttemptStatus
from item_bank.models import AdaptiveTest
from reports.mastery import SkillSpread, pool_spreads, skill_spreads
from storage import bind_key

#: How long population figures are reused before being read again (seconds).
TTL_SECONDS = 600.0
#: Estimators whose estimates are shrunk towards the prior (their error is uncorrelated with
#: the estimate rather than with the truth).
BAYESIAN = ("eap", "map")


@dataclass(frozen=True)
class Spreads:
    """Skill spreads per (test id, skill) and pooled over tests per skill."""

    per_test: dict[tuple[int, str], SkillSpread]
    pooled: dict[str, SkillSpread]


def _estimator(config: dict[str, Any] | None) -> tuple[bool, float]:
    """Whether a test's estimator is Bayesian, and its prior's variance (normal priors; 1 when
    the test does not say)."""
    spec = (config or {}).get("estimator") or {}
    bayesian = str(spec.get("method", "eap")).lower() in BAYESIAN
    prior = spec.get("prior") or {}
    sd = prior.get("sd", 1.0) if isinstance(prior, dict) else 1.0
    try:
        var = float(sd) ** 2
    except (TypeError, ValueError):
        var = 1.0
    return bayesian, var if np.isfinite(var) and var > 0 else 1.0


def compute_spreads(session: Session, *, min_students: int = 30,
                    default_tau: float = 0.5) -> Spreads:
    """The spreads from every finished attempt's stored result (see
    :func:`reports.mastery.skill_spreads`), per test and pooled over tests.

    Only a student's latest finished attempt of a test counts, so that a student who took a
    test five times does not weigh five times.
    """
    estimators = {t.id: _estimator(t.config) for t in session.scalars(select(AdaptiveTest))}
    latest: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    for test_id, user_id, result in session.execute(
            select(Attempt.test_id, Attempt.user_id, Attempt.result)
            .where(Attempt.status == AttemptStatus.FINISHED, Attempt.result.is_not(None))
            .order_by(Attempt.id)):
        if result.get("theta") is not None and result.get("se") is not None:
            latest[test_id][user_id] = result
    per_test: dict[tuple[int, str], SkillSpread] = {}
    by_skill: dict[str, list[SkillSpread]] = defaultdict(list)
    for test_id, results in latest.items():
        rows = list(results.values())
        skills = sorted({s for r in rows for s in (r.get("skills") or {})})
        if not skills:
            continue
        column = {s: k for k, s in enumerate(skills)}
        theta_s = np.full((len(rows), len(skills)), np.nan)
        se_s = np.full_like(theta_s, np.nan)
        for i, result in enumerate(rows):
            for skill, entry in (result.get("skills") or {}).items():
                if entry.get("theta") is not None and entry.get("se") is not None:
                    theta_s[i, column[skill]] = entry["theta"]
                    se_s[i, column[skill]] = entry["se"]
        theta = np.array([r["theta"] for r in rows], dtype=float)
        se = np.array([r["se"] for r in rows], dtype=float)
        bayesian, prior_var = estimators.get(test_id, (True, 1.0))
        for skill, spread in zip(skills, skill_spreads(
                theta_s, se_s, theta, se, bayesian=bayesian, prior_var=prior_var,
                min_students=min_students, default_tau=default_tau), strict=True):
            per_test[(test_id, skill)] = spread
            by_skill[skill].append(spread)
    pooled = {skill: pool_spreads(parts, default_tau) for skill, parts in by_skill.items()}
    return Spreads(per_test=per_test, pooled=pooled)


class _Cache:
    """Spreads per database URL, reused for :data:`TTL_SECONDS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, Spreads]] = {}

    def get(self, session: Session, min_students: int, default_tau: float) -> Spreads:
        key = (bind_key(session), min_students, default_tau)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < TTL_SECONDS:
                return entry[1]
        value = compute_spreads(session, min_students=min_students, default_tau=default_tau)
        with self._lock:
            self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        """Forget every cached figure (tests; after a bulk import of results)."""
        with self._lock:
            self._entries.clear()


CACHE = _Cache()


def spreads(session: Session, settings: Any) -> Spreads:
    """The population spreads for ``settings`` (a :class:`reports.report.ReportSettings`)."""
    return CACHE.get(session, settings.min_students, settings.default_tau)
