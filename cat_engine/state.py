"""The state of N test takers at once, as arrays: what each has seen, answered, and is estimated at.

A live session is N = 1; the simulator runs thousands. Selection, exposure control, content
constraints and stopping rules all read a :class:`CATState` and return arrays over its N rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cat_engine.bank import ItemBank


@dataclass
class CATState:
    """Mutable working arrays for N test takers (one row each).

    Attributes
    ----------
    bank : ItemBank
    seen : ndarray of bool, shape (N, J)
        Items already presented (scored or pretest).
    excluded : ndarray of bool, shape (N, J)
        Items withdrawn for this test taker (e.g. rejected by Sympson-Hetter, enemies of a seen
        item) besides those seen.
    withheld : ndarray of bool, shape (N, J)
        Items withheld from the start (ineligible under item eligibility) while any other item
        is left; :meth:`release_withheld` gives them back when none is.
    released : ndarray of bool, shape (N,)
        Whether a test had to release its withheld items.
    items, responses : ndarray of int, shape (N, L)
        Scored items (bank positions) and responses in order, padded with -1.
    n_scored : ndarray of int, shape (N,)
    n_given : ndarray of int, shape (N,)
        Items presented, pretest items included.
    log_posterior : ndarray, shape (N, Q)
        Log prior plus log-likelihood on the estimator's grid.
    theta, se, theta_previous : ndarray, shape (N,)
        Current and previous ability estimates and the standard error.
    """

    bank: ItemBank
    seen: np.ndarray
    excluded: np.ndarray
    items: np.ndarray
    responses: np.ndarray
    n_scored: np.ndarray
    n_given: np.ndarray
    log_posterior: np.ndarray
    theta: np.ndarray
    se: np.ndarray
    theta_previous: np.ndarray
    withheld: np.ndarray
    released: np.ndarray

    @classmethod
    def start(
        cls, bank: ItemBank, n: int, max_items: int, log_posterior: np.ndarray,
        theta: np.ndarray, se: np.ndarray,
    ) -> CATState:
        """Fresh state for ``n`` test takers who have seen nothing."""
        j = len(bank)
        return cls(
            bank=bank,
            seen=np.zeros((n, j), dtype=bool),
            excluded=np.zeros((n, j), dtype=bool),
            items=np.full((n, max_items), -1, dtype=np.intp),
            responses=np.full((n, max_items), -1, dtype=np.intp),
            n_scored=np.zeros(n, dtype=np.intp),
            n_given=np.zeros(n, dtype=np.intp),
            log_posterior=log_posterior,
            theta=np.asarray(theta, dtype=float).copy(),
            se=np.asarray(se, dtype=float).copy(),
            theta_previous=np.full(n, np.nan),
            withheld=np.zeros((n, j), dtype=bool),
            released=np.zeros(n, dtype=bool),
        )

    @property
    def n(self) -> int:
        """Number of test takers."""
        return self.seen.shape[0]

    def available(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(N, J) bool (or one row per ``rows``): items that may still be presented.

        Withheld items count as available for a row with no other item left (they would be
        released at its next choice).
        """
        rows = slice(None) if rows is None else rows
        open_ = ~(self.seen[rows] | self.excluded[rows])
        unwithheld = open_ & ~self.withheld[rows]
        return np.where(unwithheld.any(axis=1, keepdims=True), unwithheld, open_)

    def release_withheld(self, rows: np.ndarray) -> None:
        """Release the withheld items of those ``rows`` that have no other item left."""
        open_ = ~(self.seen[rows] | self.excluded[rows])
        stuck = ~(open_ & ~self.withheld[rows]).any(axis=1) & (open_ & self.withheld[rows]).any(
            axis=1)
        if stuck.any():
            release = np.asarray(rows)[stuck]
            self.withheld[release] = False
            self.released[release] = True

    def record_scored(self, rows: np.ndarray, items: np.ndarray, responses: np.ndarray) -> None:
        """Append one scored response for each of ``rows``."""
        position = self.n_scored[rows]
        if position.size and position.max() >= self.items.shape[1]:
            grow = self.items.shape[1]
            self.items = np.pad(self.items, ((0, 0), (0, grow)), constant_values=-1)
            self.responses = np.pad(self.responses, ((0, 0), (0, grow)), constant_values=-1)
        self.items[rows, position] = items
        self.responses[rows, position] = responses
        self.seen[rows, items] = True
        self.n_scored[rows] += 1
        self.n_given[rows] += 1
