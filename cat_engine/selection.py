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
from scipy.special import expit

from cat_engine.bank import ItemBank
from cat_engine.errors import ConfigError, setting
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
_KL_CHUNK = 2_000_000  # (rows x nodes x items x categories) values evaluated at once


class KullbackLeibler(Selector):
    """Global Kullback-Leibler information (Chang and Ying, 1996) (``kl``).

    ``KL_j = integral over |theta - theta_hat| <= delta of KL(P_j(theta_hat) || P_j(theta))``,
    with ``delta = z / sqrt(n)`` (z = 3) after n scored items (n = 1 before the first). The
    integral is taken over the whole window (not cut to the estimator's grid) by Gauss-Legendre
    quadrature, two 12-point panels either side of ``theta_hat``: the divergence is smooth, so
    this matches an adaptive quadrature to about 1e-8 relative even on the widest, first-item
    window, where KL matters most.
    """

    name = "kl"

    def __init__(self, z: float = 3.0) -> None:
        self.z = z

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        bank = ctx.bank
        items = np.arange(len(bank))
        n = ctx.theta.size
        delta = self.z / np.sqrt(np.maximum(ctx.n_scored, 1))
        nodes = ctx.theta[:, None] + delta[:, None] * _KL_U[None, :]  # (N, G)
        p_hat = category_probabilities(bank, items[None, :], ctx.theta[:, None])  # (N, J, K)
        log_hat = np.log(np.maximum(p_hat, 1e-300))
        kl = np.empty((n, items.size))
        per_row = _KL_U.size * p_hat.shape[1] * p_hat.shape[2]
        step = max(1, _KL_CHUNK // max(per_row, 1))
        for start in range(0, n, step):
            rows = slice(start, start + step)
            if bank.all_dichotomous:  # two categories: skip the general path's stacking
                log_p, log_q = _dichotomous_logs(bank, nodes[rows, :, None])
                divergence = (p_hat[rows, None, :, 1] * (log_hat[rows, None, :, 1] - log_p)
                              + p_hat[rows, None, :, 0] * (log_hat[rows, None, :, 0] - log_q))
            else:
                p = category_probabilities(bank, items[None, None, :], nodes[rows, :, None])
                divergence = (p_hat[rows, None] * (log_hat[rows, None]
                                                   - np.log(np.maximum(p, 1e-300)))).sum(-1)
            kl[rows] = np.einsum("g,ngj->nj", _KL_W, divergence) * delta[rows, None]
        return _masked(kl, ctx.available)


def _dichotomous_logs(bank: ItemBank, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log P(1) and log P(0) of every item at ``theta`` (shape (..., 1)), each from one
    logistic term (no difference of probabilities near 1)."""
    z = bank.D * bank.a * (theta - bank.b)
    spread = bank.d - bank.c
    p = bank.c + spread * expit(z)
    q = (1.0 - bank.d) + spread * expit(-z)
    return np.log(np.maximum(p, 1e-300)), np.log(np.maximum(q, 1e-300))


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
        self.strata = strata

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
