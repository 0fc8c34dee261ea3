"""Differential item functioning by test language: do an item's versions in different languages
measure the same thing?

The groups are the languages the attempts were delivered in; the reference group is the
language the items are written in (their source language, the most common one when they
differ), every other language a focal group. Students are matched on the ability their
finished attempt estimated (the bank's theta scale), since adaptive tests give each student
only a few of the items: Mantel-Haenszel for right/wrong items and the standardized mean
difference for rated ones, by :func:`calibration.dif.dif_report`, with the ETS categories.

Like online calibration (:mod:`api.services.calibration_runs`), this pools responses across
schools for research, so only attempts of students whose research consent is given count.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from calibration.data import from_long
from calibration.dif import dif_report
from calibration.errors import CalibrationError
from evidence.models import Attempt, AttemptStatus, Response
from item_bank.models import SOURCE_LANGUAGE, AdaptiveTest, Item
from storage import utcnow
from storage.errors import Invalid, NotFound
from storage.rights import Purpose, consenting_query

#: Fewest students a language needs to be a focal group.
MIN_GROUP = 20
#: Ability strata for the matching.
N_STRATA = 8


def language_dif(session: Session, test_id: int, *, min_group: int = MIN_GROUP,
                 n_strata: int = N_STRATA) -> dict[str, Any]:
    """DIF of a test's items between the languages its finished attempts were delivered in.

    Parameters
    ----------
    test_id : int
        The test whose finished attempts (of consenting students) are analysed.
    min_group : int
        Fewest students a language needs to be compared with the reference.
    n_strata : int
        Ability strata (equal-count bins of theta) of the matching.

    Returns
    -------
    dict
        ``reference`` (language), ``groups`` (``{language: students}``), ``reports`` (one
        :func:`~calibration.dif.dif_report` per focal language, or ``{"focal", "error"}``),
        ``flagged`` (``{item code: [focal languages with category B or C]}``), ``skipped``
        (languages with fewer than ``min_group`` students), ``computed_at`` (ISO time).

    Raises
    ------
    NotFound
        No such test.
    Invalid
        No finished attempt to analyse, or a single language among them.
    """
    test = session.get(AdaptiveTest, test_id)
    if test is None:
        raise NotFound(f"no test {test_id}", "test_id")
    rows = session.execute(
        select(Attempt.id, Attempt.language, Attempt.theta, Item.code, Item.language,
               Response.response)
        .join(Response, Response.attempt_id == Attempt.id)
        .join(Item, Item.id == Response.item_id)
        .where(Attempt.test_id == test_id, Attempt.status == AttemptStatus.FINISHED,
               Attempt.theta.is_not(None),
               Attempt.user_id.in_(consenting_query(Purpose.RESEARCH)))
        .order_by(Attempt.id, Response.position)
    ).all()
    if not rows:
        raise Invalid(f"test {test.name!r} has no finished attempts of students who gave the "
                      "research consent", "test_id")
    sources = Counter(source or SOURCE_LANGUAGE for *_, source, _r in rows)
    reference = sources.most_common(1)[0][0]
    data = from_long([f"attempt-{r[0]}" for r in rows], [r[3] for r in rows],
                     [int(r[5]) for r in rows], groups=[r[1] or reference for r in rows])
    theta_of = {f"attempt-{r[0]}": float(r[2]) for r in rows}
    ability = np.array([theta_of[p] for p in data.person_ids])
    labels, counts = np.unique(data.group, return_counts=True)
    groups = {str(g): int(n) for g, n in zip(labels, counts, strict=True)}
    if len(groups) < 2 or reference not in groups:
        raise Invalid(f"the finished attempts at test {test.name!r} were all in "
                      f"{', '.join(groups)}: DIF by language needs attempts in at least two "
                      "languages, one of them the items' own", "test_id")
    reports, skipped = [], []
    for focal in sorted(groups, key=lambda g: (-groups[g], g)):
        if focal == reference:
            continue
        if groups[focal] < min_group:
            skipped.append(focal)
            continue
        try:
            reports.append(dif_report(data, reference, focal, matching="theta",
                                      ability=ability, n_strata=n_strata))
        except CalibrationError as error:
            reports.append({"reference": reference, "focal": focal, "error": str(error)})
    flagged: dict[str, list[str]] = {}
    for report in reports:
        for code in report.get("flagged", ()):
            flagged.setdefault(code, []).append(report["focal"])
    return {"test_id": test_id, "reference": reference, "groups": groups, "reports": reports,
            "flagged": dict(sorted(flagged.items())), "skipped": skipped,
            "min_group": min_group, "computed_at": utcnow().isoformat()}
