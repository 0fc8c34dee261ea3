"""Item selection: each selector scores every available item for every test taker.

A selector returns an (N, J) array of scores, higher is better, ``-inf`` where an item may not be
given; exposure control (:mod:`cat_engine.exposure`) then picks from the scores. Scores come from
tables computed once per bank on a fine theta grid (:func:`bank_tables`), so one step for N test
takers is a few array operations.
"""

from __future__ import annotations

import math
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from cat_engine.bank import ItemBank
from cat_engine.errors import ConfigError, setting
from cat_engine.limits import MAX_STRATA, at_most
from cat_engine.models import category_probabilities, information

TABLE_LO, TABLE_HI, TABLE_STEP = -6.0, 6.0, 0.01


@dataclass(frozen=True)
class BankTables:
    """Per-bank tables on a fine theta grid, computed once and shared by every session."""

    theta: np.ndarray  # (G,)
    information: np.ndarray  # (G, J)

    def information_at(self, theta: np.ndarray) -> np.ndarray:
        """Item information at each theta (N,), by linear interpolation: (N, J)."""
        x = (np.clip(theta, TABLE_LO, TABLE_HI) - TABLE_LO) / TABLE_STEP
        low = np.minimum(x.astype(np.intp), self.theta.size - 2)
        w = (x - low)[:, None]
        return self.information[low] * (1.0 - w) + self.information[low + 1] * w


_TABLES: weakref.WeakKeyDictionary[ItemBank, BankTables] = weakref.WeakKeyDictionary()


def bank_tables(bank: ItemBank) -> BankTables:
    """The bank's tables, computed on first use and cached for the bank's lifetime."""
    tables = _TABLES.get(bank)
    if tables is None:
        grid = np.arange(TABLE_LO, TABLE_HI + TABLE_STEP / 2, TABLE_STEP)
        info = information(bank, np.arange(len(bank))[None, :], grid[:, None])
        info.setflags(write=False)
        tables = _TABLES[bank] = BankTables(theta=grid, information=info)
    return tables


@dataclass
class SelectionContext:
    """What a selector may look at, for the N test takers being served now."""

    bank: ItemBank
    available: np.ndarray  # (N, J) bool
    theta: np.ndarray  # (N,)
    se: np.ndarray  # (N,)
    log_posterior: np.ndarray  # (N, Q)
    grid_points: np.ndarray  # (Q,)
    n_scored: np.ndarray  # (N,)
    n_given: np.ndarray  # (N,)
    max_items: int
    rng: np.random.Generator

    def information(self) -> np.ndarray:
        """Information of every item at each test taker's theta, (N, J)."""
        if self.theta.size <= 8:  # a live session: direct evaluation beats the table
            return information(self.bank, np.arange(len(self.bank))[None, :], self.theta[:, None])
        return bank_tables(self.bank).information_at(self.theta)

    def posterior(self) -> np.ndarray:
        """Normalised posterior weights on the grid, (N, Q)."""
        w = np.exp(self.log_posterior - self.log_posterior.max(axis=1, keepdims=True))
        return w / w.sum(axis=1, keepdims=True)


def _masked(scores: np.ndarray, available: np.ndarray) -> np.ndarray:
    return np.where(available, scores, -np.inf)


class Selector(ABC):
    """Scores items; one abstract method."""

    name: str = ""

    @abstractmethod
    def scores(self, ctx: SelectionContext) -> np.ndarray:
        """(N, J) scores, higher is better, ``-inf`` where not available."""


class MaximumInformation(Selector):
    """Maximum Fisher information at the current theta (``mfi``)."""

    name = "mfi"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        info = ctx.information()  # a fresh array: mask it in place
        info[~ctx.available] = -np.inf
        return info


class PosteriorWeightedInformation(Selector):
    """Maximum (expected) posterior-weighted information (``mepwi``; van der Linden, 1998).

    Scores ``sum_q w(theta_q | responses) I_j(theta_q)``. Taking the expectation over the next
    response of the posterior-weighted information of the same item gives the same number, because
    ``sum_k P_jk(theta) = 1``; so the expected and the plain posterior-weighted criteria coincide.
    """

    name = "mepwi"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        grid_info = _grid_information(ctx.bank, ctx.grid_points)
        return _masked(ctx.posterior() @ grid_info, ctx.available)


class ExpectedPosteriorVariance(Selector):
    """Minimum expected posterior variance after the next response (``mepv``)."""

    name = "mepv"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        probs = _grid_probabilities(ctx.bank, ctx.grid_points)  # (Q, J, K)
        q, j, k = probs.shape
        post = ctx.posterior()
        flat = probs.reshape(q, j * k)
        m0 = (post @ flat).reshape(-1, j, k)
        m1 = ((post * ctx.grid_points) @ flat).reshape(-1, j, k)
        m2 = ((post * ctx.grid_points**2) @ flat).reshape(-1, j, k)
        safe = np.where(m0 > 1e-300, m0, 1.0)
        variance = np.where(m0 > 1e-300, m2 - m1 * m1 / safe, 0.0).sum(-1)
        return _masked(-variance, ctx.available)


class KullbackLeibler(Selector):
    """Global Kullback-Leibler information (Chang and Ying, 1996) (``kl``).

    ``KL_j = integral over |theta - theta_hat| <= delta of KL(P_j(theta_hat) || P_j(theta))``,
    with ``delta = z / sqrt(n)`` (z = 3) after n scored items, on the estimator's grid.
    """

    name = "kl"

    def __init__(self, z: float = 3.0) -> None:
        self.z = z

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        probs = _grid_probabilities(ctx.bank, ctx.grid_points)  # (Q, J, K)
        log_probs = _grid_log_probabilities(ctx.bank, ctx.grid_points)
        q, j, k = probs.shape
        delta = self.z / np.sqrt(np.maximum(ctx.n_scored, 1))
        window = (np.abs(ctx.grid_points[None, :] - ctx.theta[:, None]) <= delta[:, None])
        window = window.astype(float)
        width = window.sum(1)
        window[width == 0, np.argmin(np.abs(ctx.grid_points[None, :] - ctx.theta[:, None]), 1)[
            width == 0]] = 1.0
        p_hat = category_probabilities(ctx.bank, np.arange(j)[None, :], ctx.theta[:, None])
        log_hat = np.log(np.maximum(p_hat, 1e-300))
        cross = (window @ log_probs.reshape(q, j * k)).reshape(-1, j, k)
        kl = (p_hat * (log_hat * window.sum(1)[:, None, None] - cross)).sum(-1)
        spacing = float(ctx.grid_points[1] - ctx.grid_points[0]) if q > 1 else 1.0
        return _masked(kl * spacing, ctx.available)  # a Riemann sum of the integral


class AStratified(Selector):
    """a-stratified selection with b-blocking (Chang, Qian and Ying, 2001) (``astrat``).

    The bank is sorted by ``b`` into blocks of ``strata`` items; within a block the items are
    ranked by ``a`` and the rank is the stratum, so each stratum spans the whole ``b`` range and
    strata rise in ``a``. The test moves through the strata in equal stages of ``max_items``;
    within a stratum the item whose difficulty is closest to theta is chosen. Polytomous items use
    the mean of their thresholds as ``b``. When a stratum runs out, any available item may follow.
    """

    name = "astrat"

    def __init__(self, strata: int = 4) -> None:
        if strata < 1:
            raise ConfigError(f"selection.strata must be at least 1, got {strata}")
        self.strata = at_most(strata, MAX_STRATA, "selection.strata")

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        stratum, location = _strata(ctx.bank, self.strata)
        stage_length = max(1, math.ceil(ctx.max_items / self.strata))
        stage = np.minimum(ctx.n_scored // stage_length, self.strata - 1)
        closeness = -np.abs(location[None, :] - ctx.theta[:, None])
        in_stage = (stratum[None, :] == stage[:, None]) & ctx.available
        empty = ~in_stage.any(axis=1)
        in_stage[empty] = ctx.available[empty]
        return _masked(closeness, in_stage)


class RandomSelection(Selector):
    """Any available item, uniformly at random (``random``)."""

    name = "random"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        return _masked(ctx.rng.random(ctx.available.shape), ctx.available)


SELECTORS = {
    "mfi": MaximumInformation,
    "mepwi": PosteriorWeightedInformation,
    "mpwi": PosteriorWeightedInformation,
    "mepv": ExpectedPosteriorVariance,
    "kl": KullbackLeibler,
    "astrat": AStratified,
    "random": RandomSelection,
}


def make_selector(spec: dict) -> Selector:
    """Build a selector from ``{"method": "mfi" | "kl" | "mepwi" | "mepv" | "astrat" | "random"}``
    (``astrat`` takes ``strata``, ``kl`` takes ``z``)."""
    method = str(spec.get("method", "mfi")).lower()
    if method not in SELECTORS:
        raise ConfigError(
            f"selection.method: {method!r} is not one of {', '.join(sorted(SELECTORS))}"
        )
    if method == "astrat":
        return AStratified(strata=setting(spec, "strata", 4, "selection", int))
    if method == "kl":
        return KullbackLeibler(z=setting(spec, "z", 3.0, "selection"))
    return SELECTORS[method]()


# -- per-bank cached tables on the estimator's grid ---------------------------------------------

_GRID_CACHE: weakref.WeakKeyDictionary[ItemBank, dict] = weakref.WeakKeyDictionary()


def _grid_cached(bank: ItemBank, key: str, points: np.ndarray, compute) -> np.ndarray:
    cache = _GRID_CACHE.setdefault(bank, {})
    full_key = (key, points.size, float(points[0]), float(points[-1]))
    if full_key not in cache:
        value = compute()
        value.setflags(write=False)
        cache[full_key] = value
    return cache[full_key]


def _grid_information(bank: ItemBank, points: np.ndarray) -> np.ndarray:
    return _grid_cached(
        bank, "info", points,
        lambda: information(bank, np.arange(len(bank))[None, :], points[:, None]),
    )


def _grid_probabilities(bank: ItemBank, points: np.ndarray) -> np.ndarray:
    return _grid_cached(
        bank, "probs", points,
        lambda: category_probabilities(bank, np.arange(len(bank))[None, :], points[:, None]),
    )


def _grid_log_probabilities(bank: ItemBank, points: np.ndarray) -> np.ndarray:
    return _grid_cached(
        bank, "logprobs", points,
        lambda: np.log(np.maximum(_grid_probabilities(bank, points), 1e-300)),
    )


def _strata(bank: ItemBank, strata: int) -> tuple[np.ndarray, np.ndarray]:
    cache = _GRID_CACHE.setdefault(bank, {})
    key = ("strata", strata)
    if key not in cache:
        location = np.where(np.isnan(bank.b), np.nanmean(bank.thresholds, axis=1), bank.b)
        by_b = np.argsort(location, kind="stable")
        stratum = np.empty(len(bank), dtype=np.intp)
        for start in range(0, len(bank), strata):  # blocks: a loop over J / strata, once per bank
            block = by_b[start:start + strata]
            ranks = np.argsort(np.argsort(bank.a[block], kind="stable"), kind="stable")
            stratum[block] = ranks * strata // max(len(block), 1) if len(block) < strata else ranks
        cache[key] = (stratum, location)
    return cache[key]
