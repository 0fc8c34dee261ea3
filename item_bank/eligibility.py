"""Item eligibility's record for live tests: read it as :class:`ExposureStats`, add finished
attempts to it.

The item-eligibility method (:class:`cat_engine.exposure.ItemEligibility`) computes each item's
probability of eligibility from counts over the tests so far: tests, feasible tests, and per item
how often it was given and how often it was eligible. A live service keeps them per test in
:class:`~item_bank.models.EligibilityTotal` and :class:`~item_bank.models.EligibilityCount`,
adds each attempt when it finishes (upserts that add, safe under concurrency) and reads them when
an attempt starts.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cat_engine.exposure import ExposureStats
from item_bank.models import EligibilityCount, EligibilityTotal

_INSERTS = {"postgresql": pg_insert, "sqlite": sqlite_insert}


def eligibility_stats(session: Session, test_id: int, item_ids: np.ndarray) -> ExposureStats:
    """The test's eligibility record as statistics over the bank items ``item_ids`` (in order).

    Items with no row yet were given in no finished attempt and never withheld.
    """
    item_ids = np.asarray(item_ids, dtype=np.int64)
    totals = session.execute(select(EligibilityTotal.tests, EligibilityTotal.feasible)
                             .where(EligibilityTotal.test_id == test_id)).first()
    tests, feasible = (int(totals[0]), int(totals[1])) if totals else (0, 0)
    administered = np.zeros(item_ids.size)
    ineligible = np.zeros(item_ids.size)
    rows = session.execute(select(EligibilityCount.item_id, EligibilityCount.administered,
                                  EligibilityCount.ineligible)
                           .where(EligibilityCount.test_id == test_id)).all()
    if rows and item_ids.size:
        ids, given, withheld = np.array(rows, dtype=np.int64).T
        order = np.argsort(item_ids)
        at = np.searchsorted(item_ids, ids, sorter=order).clip(0, order.size - 1)
        known = item_ids[order[at]] == ids
        administered[order[at[known]]] = given[known]
        ineligible[order[at[known]]] = withheld[known]
    return ExposureStats(counts=administered, tests=tests, eligible=tests - ineligible,
                         feasible=feasible)


def record_eligibility(session: Session, test_id: int, given: Iterable[int],
                       withheld: Iterable[int], released: bool) -> None:
    """Add one finished attempt to the test's eligibility record.

    Parameters
    ----------
    given : item ids the attempt gave (scored items)
    withheld : item ids it withheld as ineligible and never released
    released : whether it had to release its ineligible items (then it counts as infeasible
        and every item as eligible)
    """
    connection = session.connection()
    insert = _INSERTS[connection.dialect.name]
    totals = EligibilityTotal.__table__
    statement = insert(totals).values(test_id=test_id, tests=1, feasible=int(not released))
    connection.execute(statement.on_conflict_do_update(
        index_elements=[totals.c.test_id],
        set_={"tests": totals.c.tests + 1,
              "feasible": totals.c.feasible + statement.excluded.feasible}))
    given = {int(i) for i in given}
    withheld = set() if released else {int(i) for i in withheld}
    # Sorted: concurrent attempts lock the rows in the same order (no deadlock).
    rows = [{"test_id": test_id, "item_id": item, "administered": int(item in given),
             "ineligible": int(item in withheld)} for item in sorted(given | withheld)]
    if not rows:
        return
    counts = EligibilityCount.__table__
    statement = insert(counts).values(rows)
    connection.execute(statement.on_conflict_do_update(
        index_elements=[counts.c.test_id, counts.c.item_id],
        set_={"administered": counts.c.administered + statement.excluded.administered,
              "ineligible": counts.c.ineligible + statement.excluded.ineligible}))
