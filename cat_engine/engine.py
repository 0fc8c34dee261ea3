"""One CAT step for any number of test takers: choose, record, estimate, decide to stop.

The live session (:mod:`cat_engine.session`, N = 1) and the simulator
(:mod:`cat_engine.simulation`, N in the thousands) both run these functions on a
:class:`~cat_engine.state.CATState`, so what is simulated is exactly what is delivered.
"""

from __future__ import annotations

import numpy as np

from cat_engine.config import CATConfig
from cat_engine.constraints import ContentContext
from cat_engine.exposure import ExposureContext, ExposureStats
from cat_engine.selection import SelectionContext
from cat_engine.state import CATState
from cat_engine.stopping import StopContext


def new_state(config: CATConfig, bank, n: int, rng: np.random.Generator) -> CATState:
    """State for ``n`` test takers before their first item."""
    log_posterior = config.grid.initial_log_posterior(n)
    theta, se = config.prior_estimate
    state = CATState.start(
        bank, n, config.stopping.max_items, log_posterior, np.full(n, theta), np.full(n, se)
    )
    state.theta = config.start.initial_theta(n, rng) if _uses_start_theta(config) else state.theta
    return state


def _uses_start_theta(config: CATConfig) -> bool:
    return config.start.random_range is not None or "theta" in (config.settings.get("start") or {})


def choose_items(
    config: CATConfig,
    state: CATState,
    rows: np.ndarray,
    rng: np.random.Generator,
    stats: ExposureStats,
) -> np.ndarray:
    """Bank positions of the next scored item for each of ``rows`` (which must all continue).

    May withdraw items for these rows (``state.excluded``), as Sympson-Hetter does.
    """
    bank = state.bank
    state.release_withheld(rows)  # nothing eligible left: the ineligible items come back
    available = state.available(rows)
    theta = state.theta[rows]
    n_scored = state.n_scored[rows]
    ctx = SelectionContext(
        bank=bank,
        available=available,
        theta=theta,
        se=state.se[rows],
        log_posterior=state.log_posterior[rows],
        grid_points=config.grid.points,
        n_scored=n_scored,
        n_given=state.n_given[rows],
        max_items=config.stopping.max_items,
        rng=rng,
    )
    scores = config.selector.scores(ctx)
    if config.constraints is not None:
        scored = np.zeros_like(available)
        length = int(n_scored.max(initial=0))
        if length:
            taken = state.items[rows, :length]
            row_index = np.broadcast_to(np.arange(rows.size)[:, None], taken.shape)
            scored[row_index[taken >= 0], taken[taken >= 0]] = True
        content = ContentContext(
            bank=bank,
            seen=scored,  # scored items only: pretest items do not count toward the blueprint
            available=available,
            n_scored=n_scored,
            max_items=config.stopping.max_items,
        )
        scores = config.constraints.restrict(scores, content)
    excluded = state.excluded[rows]
    chosen = config.exposure.choose(
        scores,
        ExposureContext(
            rng=rng,
            n_given=ctx.n_given,
            max_items=config.stopping.max_items,
            theta=theta,
            excluded=excluded,
            stats=stats,
        ),
    )
    state.excluded[rows] = excluded
    if config.start.item is not None:
        first = n_scored == 0
        if first.any():
            start = bank.index_of(config.start.item)
            chosen = np.where(first & available[:, start], start, chosen)
    return chosen


def record_responses(
    config: CATConfig,
    state: CATState,
    rows: np.ndarray,
    items: np.ndarray,
    responses: np.ndarray,
) -> None:
    """Record one scored response for each of ``rows`` and update their estimates.

    The posterior on the grid is updated with the new responses only, not recomputed.
    """
    bank = state.bank
    state.record_scored(rows, items, responses)
    log_posterior = config.grid.update(bank, state.log_posterior[rows], items, responses)
    state.log_posterior[rows] = log_posterior
    length = int(state.n_scored[rows].max())
    theta, se = config.estimator.estimate(
        bank,
        state.items[rows, :length],
        state.responses[rows, :length],
        log_posterior,
        config.grid,
    )
    state.theta_previous[rows] = state.theta[rows]
    state.theta[rows] = theta
    state.se[rows] = se


def check_stop(
    config: CATConfig, state: CATState, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each of ``rows`` stops now, and why (empty string where it goes on)."""
    bank = state.bank
    available = state.available(rows)
    length = max(int(state.n_scored[rows].max(initial=0)), 1)
    theta = state.theta[rows]
    ctx = StopContext(
        bank=bank,
        theta=theta,
        se=state.se[rows],
        theta_previous=state.theta_previous[rows],
        n_scored=state.n_scored[rows],
        items=state.items[rows, :length],
        responses=state.responses[rows, :length],
        available=available,
        information=lambda: SelectionContext(
            bank, available, theta, state.se[rows], state.log_posterior[rows],
            config.grid.points, state.n_scored[rows], state.n_given[rows],
            config.stopping.max_items, np.random.default_rng(0),
        ).information(),
    )
    return config.stopping.evaluate(ctx)
