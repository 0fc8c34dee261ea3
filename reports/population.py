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
from reports.mastery import SkillSpread, skill_spread
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


def _bayesian(config: dict[str, Any] | None) -> bool:
    method = ((config or {}).get("estimator") or {}).get("method", "eap")
    return str(method).lower() in BAYESIAN


def compute_spreads(session: Session, *, min_students: int = 30,
                    default_tau: float = 0.5) -> Spreads:
    """The spreads from every finished attempt's stored result (see :func:`skill_spread`).

    Pooled figures put the attempts of every test together (an attempt counts once per skill
    it has an estimate for). Only a student's latest finished attempt of a test counts, so that
    a student who took a test five times does not weigh five times.
    """
    bayesian = {t.id: _bayesian(t.config) for t in session.scalars(select(AdaptiveTest))}
    latest: dict[tuple[int, int], dict[str, Any]] = {}
    for test_id, user_id, result in session.execute(
            select(Attempt.test_id, Attempt.user_id, Attempt.result)
            .where(Attempt.status == AttemptStatus.FINISHED, Attempt.result.is_not(None))
            .order_by(Attempt.id)):
        latest[(test_id, user_id)] = result
    columns: dict[tuple[int, str], list[tuple[float, float, float, float]]] = defaultdict(list)
    for (test_id, _), result in latest.items():
        theta, se = result.get("theta"), result.get("se")
        if theta is None or se is None:
            continue
        for skill, entry in (result.get("skills") or {}).items():
            if entry.get("theta") is not None and entry.get("se") is not None:
                columns[(test_id, skill)].append((entry["theta"], entry["se"], theta, se))
    per_test = {}
    pooled_rows: dict[str, list[np.ndarray]] = defaultdict(list)
    pooled_bayesian: dict[str, list[bool]] = defaultdict(list)
    for (test_id, skill), rows in columns.items():
        values = np.array(rows, dtype=float)
        flag = bayesian.get(test_id, True)
        per_test[(test_id, skill)] = skill_spread(*values.T, bayesian=flag,
                                                  min_students=min_students,
                                                  default_tau=default_tau)
        pooled_rows[skill].append(values)
        pooled_bayesian[skill].append(flag)
    pooled = {}
    for skill, parts in pooled_rows.items():
        values = np.vstack(parts)
        # Tests with different estimators pooled: the majority's reading of the se.
        flag = sum(pooled_bayesian[skill]) * 2 >= len(pooled_bayesian[skill])
        pooled[skill] = skill_spread(*values.T, bayesian=flag, min_students=min_students,
                                     default_tau=default_tau)
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
