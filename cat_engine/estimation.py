"""Ability estimators (EAP, MAP, MLE, WLE), vectorised over examinees.

Every estimator returns ``theta`` and its standard error ``se`` for N examinees at once (the
simulator's N = 1000 simulees, or N = 1 in a live session). theta is on the logistic metric of the
item bank (the scale of the bank's ``b`` parameters and thresholds, with the bank's ``D``).

Response histories are ``(N, L)`` integer arrays of item positions in the bank and the categories
answered, padded with -1 where nothing was administered (the responses there are ignored). The
posterior on a :class:`QuadratureGrid` is kept as an ``(N, Q)`` array of log densities and updated
in place one response at a time (:meth:`QuadratureGrid.update`).

How the point estimators find their maximum (MAP, MLE) or root (WLE) without a Python loop over
examinees or items:

1. The log-likelihood and the score (and for WLE the test information and Warm's ``J``) are
   evaluated on a grid of theta points, once per distinct item in the histories, and summed per
   examinee by one sparse product: the cost is (distinct items x grid points) model evaluations and
   a product with N x L non-zeros, not N x L x grid points model evaluations.
2. Each examinee's candidates are the grid cells where the score changes sign from + to - and the
   grid ends where the objective decreases into the range; the candidate with the largest objective
   wins, so a multimodal (3PL) likelihood gives the global maximum on the grid's resolution.
3. The root in the chosen cell is refined by bracketed Newton (MLE, MAP) or Illinois regula falsi
   (WLE, whose root function has no cheap derivative), all examinees at once, to 1e-10 in theta.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy import sparse

from cat_engine.bank import ItemBank
from cat_engine.errors import CATError, ConfigError, InvalidResponseError
from cat_engine.limits import MAX_GRID_POINTS, at_most
from cat_engine.models import category_derivatives, information, response_log_probability

__all__ = ["EAP", "MAP", "MLE", "WLE", "Estimator", "QuadratureGrid", "make_estimator"]

_TINY = 1e-300
_TOL = 1e-10  # convergence tolerance in theta
_MAX_ITER = 100  # iterations of the bracketed root search (Newton needs about 5, Illinois 10)
_MAX_EXPAND = 64  # doublings when a MAP mode lies beyond the quadrature grid
_SEARCH_STEP = 0.1  # largest spacing of the MLE and WLE search grid over the bounds

_METHODS = ("eap", "map", "mle", "wle")


# -- quadrature grid ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class QuadratureGrid:
    """Theta points and the log prior density at them, for posteriors kept on a grid.

    Parameters
    ----------
    points : ndarray, shape (Q,)
        Theta points on the bank's logistic metric, strictly increasing (copied, read-only).
    log_prior : ndarray, shape (Q,)
        Log prior density at ``points``; an additive constant does not matter. ``-inf`` is allowed
        (zero prior density) but not everywhere.

    Notes
    -----
    A posterior over N examinees is an ``(N, Q)`` array of log densities: start it with
    :meth:`initial_log_posterior` and add each response with :meth:`update`. Estimators that
    integrate over it (EAP) weight point ``q`` by the width of the theta interval it stands for,
    which is the same for every point of an evenly spaced grid.
    """

    points: np.ndarray
    log_prior: np.ndarray

    def __post_init__(self) -> None:
        points = np.array(self.points, dtype=float)
        log_prior = np.array(self.log_prior, dtype=float)
        if points.ndim != 1 or points.size < 2:
            raise ConfigError(
                f"quadrature grid points: need a 1-D array of at least 2 points, "
                f"got shape {points.shape}"
            )
        if not np.isfinite(points).all() or not (np.diff(points) > 0).all():
            raise ConfigError("quadrature grid points: must be finite and strictly increasing")
        if log_prior.shape != points.shape:
            raise ConfigError(
                f"quadrature grid log_prior: shape {log_prior.shape} does not match the "
                f"points' {points.shape}"
            )
        if np.isnan(log_prior).any() or np.isposinf(log_prior).any():
            raise ConfigError("quadrature grid log_prior: must not be NaN or +inf")
        if not np.isfinite(log_prior).any():
            raise ConfigError("quadrature grid log_prior: the prior is zero at every point")
        points.setflags(write=False)
        log_prior.setflags(write=False)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "log_prior", log_prior)

    @classmethod
    def normal(
        cls, mean: float = 0.0, sd: float = 1.0, lo: float = -4.0, hi: float = 4.0, n: int = 61
    ) -> QuadratureGrid:
        """``n`` evenly spaced points from ``lo`` to ``hi`` with a normal(mean, sd) prior."""
        mean = _finite(mean, "mean")
        sd = _positive(sd, "sd")
        points = _linspace(lo, hi, n, ("lo", "hi", "n"))
        z = (points - mean) / sd
        return cls(points, -0.5 * z * z - math.log(sd) - 0.5 * math.log(2.0 * math.pi))

    @classmethod
    def uniform(cls, lo: float = -4.0, hi: float = 4.0, n: int = 61) -> QuadratureGrid:
        """``n`` evenly spaced points from ``lo`` to ``hi`` with a flat prior."""
        points = _linspace(lo, hi, n, ("lo", "hi", "n"))
        return cls(points, np.zeros_like(points))

    @cached_property
    def log_weights(self) -> np.ndarray:
        """Log of the width of theta each point stands for (its Voronoi cell), shape (Q,)."""
        weights = np.log(np.gradient(self.points))
        weights.setflags(write=False)
        return weights

    def initial_log_posterior(self, n_examinees: int) -> np.ndarray:
        """The log prior for ``n_examinees`` examinees: a new writable array of shape (N, Q)."""
        if isinstance(n_examinees, bool) or not isinstance(n_examinees, (int, np.integer)):
            raise CATError(f"n_examinees must be an integer, got {n_examinees!r}")
        if n_examinees < 0:
            raise CATError(f"n_examinees must be >= 0, got {n_examinees}")
        return np.tile(self.log_prior, (int(n_examinees), 1))

    def update(self, bank: ItemBank, log_posterior: np.ndarray, items, responses) -> np.ndarray:
        """Add one response per examinee to ``log_posterior``, in place.

        Parameters
        ----------
        bank : ItemBank
        log_posterior : ndarray of float, shape (N, Q)
            Log posterior on :attr:`points` (theta on the bank's logistic metric); modified.
        items, responses : array_like of int, shape (N,)
            The item each examinee answered (position in the bank) and the category; rows whose
            item is -1 answered nothing and are left as they are.

        Returns
        -------
        ndarray
            ``log_posterior`` itself, with ``log P(response_n | theta_q, item_n)`` added to row n.

        Raises
        ------
        CATError
            Shapes that do not fit, or item positions outside the bank.
        InvalidResponseError
            A response outside its item's categories.
        """
        if (
            not isinstance(log_posterior, np.ndarray)
            or log_posterior.ndim != 2
            or log_posterior.dtype.kind != "f"
        ):
            raise CATError(
                "log_posterior must be a 2-D float numpy array (examinees x grid points)"
            )
        if log_posterior.shape[1] != self.points.size:
            raise CATError(
                f"log_posterior has {log_posterior.shape[1]} columns but the grid has "
                f"{self.points.size} points"
            )
        items = np.asarray(items)
        responses = np.asarray(responses)
        if items.shape != (log_posterior.shape[0],) or responses.shape != items.shape:
            raise CATError(
                f"items and responses must have shape ({log_posterior.shape[0]},), got "
                f"{items.shape} and {responses.shape}"
            )
        history = _History(bank, items[:, None], responses[:, None])
        rows = np.flatnonzero(history.mask[:, 0])
        if rows.size:
            log_posterior[rows] += response_log_probability(
                bank, history.items[rows], self.points[None, :], history.responses[rows]
            )
        return log_posterior


# -- estimators -----------------------------------------------------------------------------------


class Estimator(ABC):
    """An ability estimator: theta and se of N examinees from their response histories.

    ``items``/``responses`` are (N, L) int arrays of item positions in the bank and categories,
    padded with -1 where nothing was administered (responses there are ignored); ``log_posterior``
    is (N, Q) on ``grid.points`` (prior + log-likelihood so far, unnormalised). theta and se are on
    the logistic metric of the bank.
    """

    @abstractmethod
    def estimate(
        self,
        bank: ItemBank,
        items: np.ndarray,
        responses: np.ndarray,
        log_posterior: np.ndarray,
        grid: QuadratureGrid,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Estimate theta and its standard error.

        Parameters
        ----------
        bank : ItemBank
        items, responses : ndarray of int, shape (N, L)
            Item positions (-1 for padding) and the categories answered.
        log_posterior : ndarray, shape (N, Q)
            Unnormalised log posterior on ``grid.points``.
        grid : QuadratureGrid

        Returns
        -------
        theta, se : ndarray, shape (N,)
            On the bank's logistic metric.
        """


@dataclass(frozen=True)
class EAP(Estimator):
    """Expected a posteriori: the mean and standard deviation of the posterior on the grid.

    Uses only ``log_posterior`` and ``grid`` (the prior is the grid's); ``items`` and
    ``responses`` are not read. Every point is weighted by the width of theta it stands for (equal
    weights on an evenly spaced grid).
    """

    def estimate(self, bank, items, responses, log_posterior, grid):
        """Posterior mean (theta) and posterior sd (se), each shape (N,); see :class:`Estimator`."""
        log_posterior = np.asarray(log_posterior, dtype=float)
        if log_posterior.ndim != 2 or log_posterior.shape[1] != grid.points.size:
            raise CATError(
                f"log_posterior must have shape (N, {grid.points.size}), got {log_posterior.shape}"
            )
        if log_posterior.shape[0] == 0:
            return np.zeros(0), np.zeros(0)
        log_w = log_posterior + grid.log_weights
        top = log_w.max(axis=1, keepdims=True)
        if not np.isfinite(top).all():
            raise CATError("log_posterior: a row is -inf everywhere, NaN, or +inf")
        w = np.exp(log_w - top)
        w /= w.sum(axis=1, keepdims=True)
        theta = w @ grid.points
        spread = grid.points[None, :] - theta[:, None]
        se = np.sqrt((w * spread * spread).sum(axis=1))
        return theta, se


@dataclass(frozen=True)
class MAP(Estimator):
    """Maximum a posteriori (the posterior mode) under a normal(mean, sd) prior.

    The prior is this estimator's own, not the grid's: the log-likelihood is recomputed from the
    histories on ``grid.points`` (``log_posterior`` is not read), the best candidate on the grid is
    refined by bracketed Newton on ``score - (theta - mean) / sd**2``, and a mode beyond the ends of
    the grid is followed outside it. ``se = 1 / sqrt(I(theta) + 1 / sd**2)`` with ``I`` the test
    information. An examinee with no responses gets ``theta = mean``, ``se = sd``.
    """

    mean: float = 0.0
    sd: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _finite(self.mean, "MAP mean"))
        object.__setattr__(self, "sd", _positive(self.sd, "MAP sd"))

    def estimate(self, bank, items, responses, log_posterior, grid):
        """Posterior mode and its se, each shape (N,); see :class:`Estimator`."""
        history = _History(bank, items, responses)
        mean, precision = self.mean, 1.0 / (self.sd * self.sd)
        theta = np.full(history.n, mean)
        rows = np.flatnonzero(history.n_valid > 0)
        if rows.size:
            sub = history.take(rows)
            points = grid.points
            loglik, score = sub.grid_sums(points)
            obj = loglik - 0.5 * precision * (points - mean) ** 2
            slope = score - precision * (points - mean)

            def posterior_score(x, r):
                s, ds = sub.score(x, r)
                return s - precision * (x - mean), ds - precision

            theta[rows] = _maximise(
                points, obj, slope, posterior_score, newton=True, expand_step=self.sd
            )
        se = 1.0 / np.sqrt(history.test_information(theta) + precision)
        return theta, se


@dataclass(frozen=True)
class MLE(Estimator):
    """Maximum likelihood within ``bounds``.

    The global maximiser of the log-likelihood on ``[lo, hi]``: the best candidate on a grid of the
    bounds (spacing at most 0.1) refined by bracketed Newton on the score. Patterns with every
    response in its item's highest category give ``hi``, in the lowest ``lo``; an examinee with no
    responses gets ``theta = 0.0`` (clipped into the bounds) and ``se = inf``. Otherwise
    ``se = 1 / sqrt(I(theta))`` (``inf`` where the information is 0). ``log_posterior`` and
    ``grid`` are not read.
    """

    bounds: tuple[float, float] = (-4.0, 4.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bounds", _bounds(self.bounds, "MLE bounds"))

    def estimate(self, bank, items, responses, log_posterior, grid):
        """Maximum-likelihood theta and its se, each shape (N,); see :class:`Estimator`."""
        history = _History(bank, items, responses)
        lo, hi = self.bounds
        theta = np.full(history.n, min(max(0.0, lo), hi))
        empty = history.n_valid == 0
        top, bottom = history.extreme()
        theta[top] = hi
        theta[bottom] = lo
        rows = np.flatnonzero(~(empty | top | bottom))
        if rows.size:
            sub = history.take(rows)
            points = _search_points(lo, hi)
            loglik, score = sub.grid_sums(points)
            theta[rows] = _maximise(points, loglik, score, sub.score, newton=True)
        return theta, _se(history.test_information(theta), empty)


@dataclass(frozen=True)
class WLE(Estimator):
    """Warm's weighted likelihood estimate within ``bounds``.

    The root of ``score(theta) + J(theta) / (2 I(theta))`` with ``I = sum_j sum_k P'_jk**2 / P_jk``
    and ``J = sum_j sum_k P'_jk P''_jk / P_jk`` (valid for the 3PL, GRM and GPCM alike). Finite for
    all-correct and all-wrong Rasch and 2PL patterns; where the equation has no root inside the
    bounds the estimate is the bound it points to. Where it has several (possible for the 3PL), the
    one whose grid cell has the largest ``loglik + 0.5 log I`` is taken (for Rasch, 2PL, PCM and
    GPCM items the WLE is exactly the maximiser of that Jeffreys-penalised likelihood). An
    examinee with no responses gets ``theta = 0.0`` (clipped into the bounds) and ``se = inf``;
    otherwise ``se = 1 / sqrt(I(theta))``. ``log_posterior`` and ``grid`` are not read.
    """

    bounds: tuple[float, float] = (-4.0, 4.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bounds", _bounds(self.bounds, "WLE bounds"))

    def estimate(self, bank, items, responses, log_posterior, grid):
        """Weighted-likelihood theta and its se, each shape (N,); see :class:`Estimator`."""
        history = _History(bank, items, responses)
        lo, hi = self.bounds
        theta = np.full(history.n, min(max(0.0, lo), hi))
        empty = history.n_valid == 0
        rows = np.flatnonzero(~empty)
        if rows.size:
            sub = history.take(rows)
            points = _search_points(lo, hi)
            loglik, score, info, warm_j = sub.grid_sums(points, warm=True)
            obj = loglik + 0.5 * np.log(np.maximum(info, _TINY))
            psi = score + _warm_correction(info, warm_j)
            theta[rows] = _maximise(points, obj, psi, sub.warm, newton=False)
        return theta, _se(history.test_information(theta), empty)


# -- configuration --------------------------------------------------------------------------------


def make_estimator(spec: Mapping[str, Any] | None = None) -> tuple[Estimator, QuadratureGrid]:
    """Build an estimator and its quadrature grid from a configuration mapping.

    Parameters
    ----------
    spec : mapping, optional
        ``{"method": "eap" | "map" | "mle" | "wle", "prior": {"mean": 0, "sd": 1} or
        {"type": "uniform"}, "grid": {"lo": -4, "hi": 4, "points": 61}, "bounds": [-4, 4]}``;
        every key is optional (defaults: EAP, normal(0, 1) prior, 61 points from -4 to 4, bounds
        -4..4). The prior and grid make the returned grid (and MAP's prior); ``bounds`` is used by
        MLE and WLE only.

    Returns
    -------
    estimator : Estimator
    grid : QuadratureGrid
        theta on the bank's logistic metric.

    Raises
    ------
    ConfigError
        An unknown method or setting, or a bad value, naming the setting
        (e.g. ``estimator.method: 'foo' is not one of eap, map, mle, wle``).
    """
    spec = _section(
        {} if spec is None else spec, "estimator", ("method", "prior", "grid", "bounds")
    )
    method = spec.get("method", "eap")
    if not isinstance(method, str) or method.strip().lower() not in _METHODS:
        raise ConfigError(f"estimator.method: {method!r} is not one of {', '.join(_METHODS)}")
    method = method.strip().lower()

    prior = _section(spec.get("prior", {}), "estimator.prior", ("type", "mean", "sd"))
    kind = prior.get("type", "normal")
    if kind not in ("normal", "uniform"):
        raise ConfigError(f"estimator.prior.type: {kind!r} is not one of normal, uniform")
    if kind == "uniform":
        extra = sorted(set(prior) & {"mean", "sd"})
        if extra:
            raise ConfigError(f"estimator.prior.{extra[0]}: a uniform prior has no {extra[0]}")
        if method == "map":
            raise ConfigError(
                "estimator.prior.type: the map method needs a normal prior, got 'uniform' "
                "(use mle for the mode of the likelihood)"
            )
    mean = _finite(prior.get("mean", 0.0), "estimator.prior.mean")
    sd = _positive(prior.get("sd", 1.0), "estimator.prior.sd")

    grid_spec = _section(spec.get("grid", {}), "estimator.grid", ("lo", "hi", "points"))
    lo, hi, n = (grid_spec.get(k, d) for k, d in (("lo", -4.0), ("hi", 4.0), ("points", 61)))
    _linspace(lo, hi, n, ("estimator.grid.lo", "estimator.grid.hi", "estimator.grid.points"))
    grid = (
        QuadratureGrid.uniform(lo, hi, n)
        if kind == "uniform"
        else QuadratureGrid.normal(mean, sd, lo, hi, n)
    )

    bounds = _bounds(spec.get("bounds", (-4.0, 4.0)), "estimator.bounds")
    estimator: Estimator
    if method == "eap":
        estimator = EAP()
    elif method == "map":
        estimator = MAP(mean=mean, sd=sd)
    elif method == "mle":
        estimator = MLE(bounds=bounds)
    else:
        estimator = WLE(bounds=bounds)
    return estimator, grid


# -- response histories ---------------------------------------------------------------------------


class _History:
    """Validated (N, L) histories: item positions clipped to 0 where padded, and the mask."""

    def __init__(self, bank: ItemBank, items, responses) -> None:
        self.bank = bank
        items = np.asarray(items)
        responses = np.asarray(responses)
        if items.ndim != 2 or responses.shape != items.shape:
            raise CATError(
                f"items and responses must be 2-D arrays of the same shape (N, L), got "
                f"{items.shape} and {responses.shape}"
            )
        for name, array in (("items", items), ("responses", responses)):
            if array.size and array.dtype.kind not in "iu":
                raise CATError(f"{name} must be integers, got dtype {array.dtype}")
        items = items.astype(np.intp, copy=False)
        responses = responses.astype(np.intp, copy=False)
        mask = items >= 0
        if items.size and (items.min() < -1 or items.max() >= len(bank)):
            raise CATError(
                f"items must be positions 0..{len(bank) - 1} in the bank, or -1 for none"
            )
        clipped = np.where(mask, items, 0)
        bad = mask & ((responses < 0) | (responses >= bank.n_categories[clipped]))
        if bad.any():
            n, j = np.argwhere(bad)[0]
            item = int(items[n, j])
            raise InvalidResponseError(
                bank.item_ids[item], int(responses[n, j]), int(bank.n_categories[item])
            )
        self.items = clipped
        self.responses = np.where(mask, responses, 0)
        self.mask = mask

    @property
    def n(self) -> int:
        return self.items.shape[0]

    @cached_property
    def n_valid(self) -> np.ndarray:
        return self.mask.sum(axis=1)

    def take(self, rows: np.ndarray) -> _History:
        """The histories of ``rows`` (already validated)."""
        sub = object.__new__(_History)
        sub.bank = self.bank
        sub.items, sub.responses, sub.mask = self.items[rows], self.responses[rows], self.mask[rows]
        return sub

    def extreme(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows (with responses) answered all in the highest / all in the lowest category."""
        some = self.n_valid > 0
        top = self.bank.n_categories[self.items] - 1
        all_top = some & ((self.responses == top) | ~self.mask).all(axis=1)
        all_bottom = some & ((self.responses == 0) | ~self.mask).all(axis=1)
        return all_top, all_bottom

    def test_information(self, theta: np.ndarray) -> np.ndarray:
        """Test information of each row's items at its theta, shape (N,)."""
        if self.items.size == 0:
            return np.zeros(self.n)
        info = information(self.bank, self.items, theta[:, None])
        return np.where(self.mask, info, 0.0).sum(axis=1)

    def _derivatives(self, theta: np.ndarray, rows: np.ndarray):
        items, resp, mask = self.items[rows], self.responses[rows], self.mask[rows]
        p, dp, d2p = category_derivatives(self.bank, items, theta[:, None], order=2)
        return p, dp, d2p, resp[..., None], mask

    def score(self, theta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score (d loglik / d theta) and its derivative for ``rows`` at ``theta``."""
        p, dp, d2p, resp, mask = self._derivatives(theta, rows)
        px = np.take_along_axis(p, resp, axis=-1)[..., 0]
        ok = mask & (px > _TINY)
        safe = np.where(ok, px, 1.0)
        ratio = np.where(ok, np.take_along_axis(dp, resp, axis=-1)[..., 0] / safe, 0.0)
        curvature = np.where(ok, np.take_along_axis(d2p, resp, axis=-1)[..., 0] / safe, 0.0)
        return ratio.sum(axis=1), (curvature - ratio * ratio).sum(axis=1)

    def warm(self, theta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, None]:
        """Warm's root function ``score + J / (2 I)`` for ``rows`` at ``theta`` (no derivative)."""
        p, dp, d2p, resp, mask = self._derivatives(theta, rows)
        pos = p > _TINY
        safe = np.where(pos, p, 1.0)
        ratio = np.where(pos, dp / safe, 0.0)
        score = np.where(mask, np.take_along_axis(ratio, resp, axis=-1)[..., 0], 0.0).sum(axis=1)
        info = np.where(mask, (ratio * dp).sum(axis=-1), 0.0).sum(axis=1)
        warm_j = np.where(mask, (ratio * d2p).sum(axis=-1), 0.0).sum(axis=1)
        return score + _warm_correction(info, warm_j), None

    def grid_sums(self, points: np.ndarray, *, warm: bool = False) -> list[np.ndarray]:
        """Per-row sums over the history on ``points``, each shape (N, G).

        Returns ``[loglik, score]``, and with ``warm`` also ``[information, J]``. Each quantity is
        tabulated once per distinct item and summed per row by a sparse product.
        """
        n_out = 4 if warm else 2
        rows, cols = np.nonzero(self.mask)
        if rows.size == 0:
            return [np.zeros((self.n, points.size)) for _ in range(n_out)]
        used = self.items[rows, cols]
        present = np.zeros(len(self.bank), dtype=bool)
        present[used] = True
        unique = np.flatnonzero(present)
        inverse = (np.cumsum(present) - 1)[used]  # position of each used item in ``unique``
        parts = category_derivatives(
            self.bank, unique[:, None], points[None, :], order=2 if warm else 1
        )
        p, dp = parts[0], parts[1]
        n_unique, n_points, n_cat = p.shape
        pos = p > _TINY
        safe = np.where(pos, p, 1.0)
        ratio = np.where(pos, dp / safe, 0.0)
        tables = [
            np.log(np.maximum(p, _TINY)).transpose(0, 2, 1).reshape(-1, n_points),
            ratio.transpose(0, 2, 1).reshape(-1, n_points),
        ]
        if warm:
            for per_item in ((ratio * dp).sum(axis=-1), (ratio * parts[2]).sum(axis=-1)):
                tables.append(np.repeat(per_item, n_cat, axis=0))
        # one row per examinee, a 1 at (item, category) of each response; rows come sorted
        codes = inverse * n_cat + self.responses[rows, cols]
        indptr = np.concatenate([[0], np.cumsum(self.n_valid)])
        counts = sparse.csr_array(
            (np.ones(rows.size), codes, indptr), shape=(self.n, n_unique * n_cat)
        )
        sums = counts @ np.concatenate(tables, axis=1)
        return [sums[:, k * n_points : (k + 1) * n_points] for k in range(n_out)]


# -- maximisation ---------------------------------------------------------------------------------

_RootFunction = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def _maximise(
    points: np.ndarray,
    obj: np.ndarray,
    slope: np.ndarray,
    fn: _RootFunction,
    *,
    newton: bool,
    expand_step: float | None = None,
) -> np.ndarray:
    """Global maximiser per row from an objective and its slope on a grid, refined between points.

    ``obj`` and ``slope`` are (n, G) on ``points``; ``fn(x, rows)`` gives the slope (and with
    ``newton`` its derivative) at ``x`` for those rows. Candidates are the cells where the slope
    turns from + to - and the grid ends where the objective decreases into the grid; the one with
    the largest objective wins. Without ``expand_step`` the grid ends are bounds; with it, a row
    whose best candidate is an end is followed outside the grid until the slope turns.
    """
    row = np.arange(obj.shape[0])
    down = (slope[:, :-1] > 0) & (slope[:, 1:] <= 0)
    cell_value = np.where(down, np.maximum(obj[:, :-1], obj[:, 1:]), -np.inf)
    cell = cell_value.argmax(axis=1)
    candidates = np.stack(
        [
            cell_value[row, cell],
            np.where(slope[:, 0] <= 0, obj[:, 0], -np.inf),
            np.where(slope[:, -1] >= 0, obj[:, -1], -np.inf),
        ],
        axis=1,
    )
    kind = candidates.argmax(axis=1)  # 0 a cell, 1 the lower end, 2 the upper end
    theta = np.where(kind == 1, points[0], points[-1])
    a, b = points[cell], points[cell + 1]
    fa, fb = slope[row, cell], slope[row, cell + 1]
    refine = kind == 0
    if expand_step is not None:
        outward = ((kind == 1) & (slope[:, 0] < 0)) | ((kind == 2) & (slope[:, -1] > 0))
        rows = np.flatnonzero(outward)
        if rows.size:
            ok, ea, eb, efa, efb, last = _expand(points, slope, kind, rows, fn, expand_step)
            a[rows], b[rows], fa[rows], fb[rows] = ea, eb, efa, efb
            theta[rows[~ok]] = last[~ok]
            refine[rows[ok]] = True
    rows = np.flatnonzero(refine)
    if rows.size:
        theta[rows] = _refine(fn, rows, a[rows], b[rows], fa[rows], fb[rows], newton=newton)
    return theta


def _expand(points, slope, kind, rows, fn, step):
    """Step outside the grid (doubling) until the slope of each row's objective turns."""
    upward = kind[rows] == 2
    a = np.where(upward, points[-1], -np.inf)
    fa = np.where(upward, slope[rows, -1], np.nan)
    b = np.where(upward, np.inf, points[0])
    fb = np.where(upward, np.nan, slope[rows, 0])
    x = np.where(upward, points[-1], points[0])
    direction = np.where(upward, 1.0, -1.0)
    found = np.zeros(rows.size, dtype=bool)
    for k in range(_MAX_EXPAND):
        todo = np.flatnonzero(~found)
        if todo.size == 0:
            break
        x[todo] += direction[todo] * step * 2.0**k
        fx = fn(x[todo], rows[todo])[0]
        turned = np.where(upward[todo], fx <= 0, fx > 0)
        # the point becomes the far end of the bracket if the slope turned, the near end if not
        as_b = upward[todo] == turned
        a[todo] = np.where(as_b, a[todo], x[todo])
        fa[todo] = np.where(as_b, fa[todo], fx)
        b[todo] = np.where(as_b, x[todo], b[todo])
        fb[todo] = np.where(as_b, fx, fb[todo])
        found[todo] = turned
    return found, a, b, fa, fb, x


def _refine(fn, rows, a, b, fa, fb, *, newton: bool) -> np.ndarray:
    """Root in [a, b] of a function with fa > 0 >= fb, every row at once.

    Newton steps that leave the bracket (or meet a non-negative derivative) are replaced by
    bisection; without ``newton``, Illinois regula falsi. Stops a row when the step or the bracket
    is below 1e-10, or the function is exactly 0.
    """
    a, b, fa, fb = (np.array(v, dtype=float) for v in (a, b, fa, fb))
    x = (a * fb - b * fa) / (fb - fa)  # regula falsi from the grid values
    side = np.zeros(rows.size, dtype=np.int8)  # Illinois: +1 if a moved last, -1 if b did
    active = np.arange(rows.size)
    for _ in range(_MAX_ITER):
        if active.size == 0:
            break
        xa = x[active]
        f, df = fn(xa, rows[active])
        positive = f > 0
        a[active] = np.where(positive, xa, a[active])
        fa[active] = np.where(positive, f, fa[active])
        b[active] = np.where(positive, b[active], xa)
        fb[active] = np.where(positive, fb[active], f)
        la, lb, lfa, lfb = a[active], b[active], fa[active], fb[active]
        if newton:
            with np.errstate(divide="ignore", invalid="ignore"):
                step = xa - f / df
            # a step below the tolerance may round onto the bracket's end: accept it, don't bisect
            usable = (df < 0) & (((step > la) & (step < lb)) | (np.abs(step - xa) < _TOL))
            new = np.where(usable, np.clip(step, la, lb), 0.5 * (la + lb))
        else:
            stale_b = positive & (side[active] == 1)  # a moved twice: halve f(b)
            stale_a = ~positive & (side[active] == -1)
            lfb = np.where(stale_b, 0.5 * lfb, lfb)
            lfa = np.where(stale_a, 0.5 * lfa, lfa)
            fa[active], fb[active] = lfa, lfb
            side[active] = np.where(positive, 1, -1)
            new = (la * lfb - lb * lfa) / (lfb - lfa)
        exact = f == 0
        done = exact | (np.abs(new - xa) < _TOL) | (lb - la < _TOL)
        x[active] = np.where(exact, xa, new)
        active = active[~done]
    return x


# -- helpers --------------------------------------------------------------------------------------


def _warm_correction(info: np.ndarray, warm_j: np.ndarray) -> np.ndarray:
    ok = info > _TINY
    return np.where(ok, warm_j / (2.0 * np.where(ok, info, 1.0)), 0.0)


def _se(info: np.ndarray, empty: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        se = 1.0 / np.sqrt(info)
    return np.where(empty, np.inf, se)


def _search_points(lo: float, hi: float) -> np.ndarray:
    n = max(2, math.ceil((hi - lo) / _SEARCH_STEP - 1e-9)) + 1
    return np.linspace(lo, hi, n)


def _section(value: Any, name: str, keys: Sequence[str]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: must be a mapping of settings, got {value!r}")
    for key in value:
        if key not in keys:
            raise ConfigError(f"{name}.{key}: unknown setting (known: {', '.join(keys)})")
    return value


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name}: must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name}: must be a finite number, got {value!r}")
    return float(value)


def _positive(value: Any, name: str) -> float:
    number = _finite(value, name)
    if number <= 0:
        raise ConfigError(f"{name}: must be greater than 0, got {value!r}")
    return number


def _linspace(lo: Any, hi: Any, n: Any, names: tuple[str, str, str]) -> np.ndarray:
    lo, hi = _finite(lo, names[0]), _finite(hi, names[1])
    if not hi > lo:
        raise ConfigError(f"{names[1]}: must be greater than {names[0]} ({lo!r}), got {hi!r}")
    integral = isinstance(n, (int, np.integer)) or (isinstance(n, float) and n.is_integer())
    if isinstance(n, bool) or not integral or n < 2:
        raise ConfigError(f"{names[2]}: must be an integer of at least 2, got {n!r}")
    at_most(int(n), MAX_GRID_POINTS, names[2])
    return np.linspace(lo, hi, int(n))


def _bounds(value: Any, name: str) -> tuple[float, float]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ConfigError(f"{name}: must be a pair [lo, hi], got {value!r}")
    if len(value) != 2:
        raise ConfigError(f"{name}: must be a pair [lo, hi], got {len(value)} values")
    lo, hi = _finite(value[0], f"{name}[0]"), _finite(value[1], f"{name}[1]")
    if not hi > lo:
        raise ConfigError(f"{name}: the upper bound must be greater than the lower, got {value!r}")
    return lo, hi
