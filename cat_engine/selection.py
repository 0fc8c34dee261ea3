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
from cat_engine.models import category_probabilities, information, response_log_probability

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
    """Maximum posterior-weighted information (``mpwi``; van der Linden, 1998).

    Scores ``sum_q w(theta_q | responses) I_j(theta_q)``: the item's Fisher information averaged
    over the current posterior. This is what it computes, so it is named MPWI. Van der Linden's
    expected version (MEPWI) averages, over the predicted response ``k``, the information under
    the posterior updated with ``k``; with the item's own (expected or observed) information the
    predictive probabilities sum out (``sum_k P(k) g(theta | k) = P_jk(theta) g(theta)`` summed
    over k), so it gives the same ranking: the earlier name ``mepwi`` is still accepted, as an
    alias, because stored test configurations use it.
    """

    name = "mpwi"

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


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(12)
# Two 12-point Gauss-Legendre panels on [-1, 0] and [0, 1] (the divergence is 0 at the centre).
_KL_U = np.concatenate([(_GL_NODES - 1) / 2, (_GL_NODES + 1) / 2])
_KL_W = np.concatenate([_GL_WEIGHTS, _GL_WEIGHTS]) / 2


class KullbackLeibler(Selector):
    """Global Kullback-Leibler information (Chang and Ying, 1996) (``kl``).

    ``KL_j = integral over |theta - theta_hat| <= delta of KL(P_j(theta_hat) || P_j(theta))``,
    with ``delta = z / sqrt(n)`` (z = 3) after n scored items (n = 1 before the first). The
    integral is taken over the whole window (not cut to the estimator's grid), accurately even on
    the widest, first-item window, where KL matters most. For a few rows (a live session) by
    Gauss-Legendre quadrature, two 12-point panels either side of ``theta_hat``; for many (a
    simulation) from a per-bank table of the antiderivative of each ``log P_jk``, since

        KL_j = sum_k P_jk(theta_hat) [2 delta log P_jk(theta_hat)
                                      - (L_jk(theta_hat + delta) - L_jk(theta_hat - delta))],

    ``L_jk(t) = integral of log P_jk`` (tabulated every 0.02 on [-12, 12] by three-point
    Gauss-Legendre per step, read by cubic Hermite interpolation with ``L' = log P``; windows
    reaching beyond take the quadrature). Both agree with an adaptive quadrature to better than
    1e-6 relative.
    """

    name = "kl"

    def __init__(self, z: float = 3.0) -> None:
        self.z = z

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        bank = ctx.bank
        items = np.arange(len(bank))
        n = ctx.theta.size
        delta = self.z / np.sqrt(np.maximum(ctx.n_scored, 1))
        log_hat = _category_logs(bank, items[None, :], ctx.theta[:, None])  # (N, J, K)
        p_hat = np.exp(log_hat)
        if n <= 8:
            return _masked(_kl_by_quadrature(bank, ctx.theta, delta, p_hat, log_hat),
                           ctx.available)
        # Many rows: the table, except for windows that leave it (estimates far out).
        kl = np.empty((n, items.size))
        outside = np.abs(ctx.theta) + delta > KL_TABLE_LIMIT
        inside = ~outside
        table = _log_probability_integrals(bank)
        span = (table.at(ctx.theta[inside] + delta[inside])
                - table.at(ctx.theta[inside] - delta[inside]))  # (n, J, K)
        kl[inside] = (p_hat[inside] * (2.0 * delta[inside, None, None] * log_hat[inside]
                                       - span)).sum(-1)
        for rows in np.array_split(np.flatnonzero(outside), max(1, outside.sum() // 8)):
            if rows.size:
                kl[rows] = _kl_by_quadrature(bank, ctx.theta[rows], delta[rows], p_hat[rows],
                                             log_hat[rows])
        return _masked(kl, ctx.available)


def _kl_by_quadrature(bank: ItemBank, theta: np.ndarray, delta: np.ndarray, p_hat: np.ndarray,
                      log_hat: np.ndarray) -> np.ndarray:
    """(N, J) Chang-Ying KL index by two 12-point Gauss-Legendre panels (for a few rows)."""
    nodes = theta[:, None] + delta[:, None] * _KL_U[None, :]  # (N, G)
    items = np.arange(len(bank))
    log_p = _category_logs(bank, items[None, None, :], nodes[:, :, None])  # (N, G, J, K)
    divergence = (p_hat[:, None] * (log_hat[:, None] - log_p)).sum(-1)
    return np.einsum("g,ngj->nj", _KL_W, divergence) * delta[:, None]


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
    "mpwi": PosteriorWeightedInformation,
    "mepwi": PosteriorWeightedInformation,  # the earlier name, kept for stored configurations
    "mepv": ExpectedPosteriorVariance,
    "kl": KullbackLeibler,
    "astrat": AStratified,
    "random": RandomSelection,
}


def make_selector(spec: dict) -> Selector:
    """Build a selector from ``{"method": "mfi" | "kl" | "mpwi" | "mepv" | "astrat" | "random"}``
    (``astrat`` takes ``strata``, ``kl`` takes ``z``; ``mepwi`` is an alias of ``mpwi``)."""
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


KL_TABLE_LIMIT = 12.0
KL_TABLE_STEP = 0.02


@dataclass(frozen=True)
class _LogIntegrals:
    """``L_jk(t) = integral from -12 to t of log P_jk``, tabulated with its derivative."""

    grid: np.ndarray  # (M,)
    integral: np.ndarray  # (M, J, K)
    log_p: np.ndarray  # (M, J, K)

    def at(self, t: np.ndarray) -> np.ndarray:
        """(N, J, K) ``L_jk`` at each of ``t`` (N,) within the table: cubic Hermite."""
        grid, h = self.grid, KL_TABLE_STEP
        inside = np.clip(t, grid[0], grid[-1])
        i = np.clip(((inside - grid[0]) / h).astype(np.intp), 0, grid.size - 2)
        s = ((inside - grid[i]) / h)[:, None, None]
        s2, s3 = s * s, s * s * s
        return ((2 * s3 - 3 * s2 + 1) * self.integral[i] + (s3 - 2 * s2 + s) * h * self.log_p[i]
                + (3 * s2 - 2 * s3) * self.integral[i + 1] + (s3 - s2) * h * self.log_p[i + 1])


def _log_probability_integrals(bank: ItemBank) -> _LogIntegrals:
    cache = _GRID_CACHE.setdefault(bank, {})
    if "kl" not in cache:
        grid = np.arange(-KL_TABLE_LIMIT, KL_TABLE_LIMIT + KL_TABLE_STEP / 2, KL_TABLE_STEP)
        x, w = np.polynomial.legendre.leggauss(3)
        nodes = (grid[:-1, None] + grid[1:, None]) / 2 + KL_TABLE_STEP / 2 * x[None, :]
        log_p, pieces = [], []
        for start in range(0, len(bank), 256):  # bounded memory for large banks
            items = np.arange(start, min(start + 256, len(bank)))
            log_p.append(_category_logs(bank, items[None, :], grid[:, None]))
            inner = _category_logs(bank, items[None, None, :], nodes[:, :, None])
            pieces.append(KL_TABLE_STEP / 2 * np.einsum("g,mgjk->mjk", w, inner))
        log_p = np.concatenate(log_p, axis=1)
        pieces = np.concatenate(pieces, axis=1)
        integral = np.concatenate([np.zeros((1, *pieces.shape[1:])), np.cumsum(pieces, 0)])
        for array in (grid, integral, log_p):
            array.setflags(write=False)
        cache["kl"] = _LogIntegrals(grid=grid, integral=integral, log_p=log_p)
    return cache["kl"]


_LOG_TINY = float(np.log(1e-300))


def _category_logs(bank: ItemBank, items: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``log P_jk(theta)`` for every category k of the bank (trailing axis), each from
    :func:`response_log_probability` (accurate in the tails, where ``1 - P`` would round);
    log 1e-300 for categories an item lacks."""
    items, theta = np.broadcast_arrays(np.asarray(items, dtype=np.intp), theta)
    k_max = int(bank.n_categories.max())
    out = np.stack([response_log_probability(bank, items, theta, k) for k in range(k_max)], -1)
    lacks = np.arange(k_max) >= bank.n_categories[items][..., None]
    return np.where(lacks, _LOG_TINY, out)


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
