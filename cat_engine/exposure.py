"""Exposure control: choosing the item to give from the selector's scores.

Every method picks one item per test taker from an (N, J) score matrix (``-inf`` where not
available). Methods that react to how often items have been given read :class:`ExposureStats`:
running counts, which the simulator updates between cohorts of simulees and a live service keeps
in its database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cat_engine.errors import ConfigError, setting
from cat_engine.limits import MAX_RANDOMESQUE_N, MAX_THETA_CUTS, at_most


@dataclass
class ExposureStats:
    """How often each item was given, over ``tests`` tests.

    Attributes
    ----------
    counts : ndarray, shape (J,)
        Tests in which each item was given (scored items only).
    tests : int
        Tests counted.
    eligible : ndarray, shape (J,), optional
        Item eligibility's record: tests in which each item was eligible, or in which the
        ineligible items had to be released (the test was infeasible without them). ``None``
        when no such record is kept (then every item counts as eligible in every test).
    feasible : int, optional
        Tests that never had to release ineligible items (``None``: all of them).
    """

    counts: np.ndarray  # (J,)
    tests: int = 0
    eligible: np.ndarray | None = None
    feasible: int | None = None

    @classmethod
    def empty(cls, n_items: int) -> ExposureStats:
        """Statistics before any test, with an (empty) eligibility record."""
        return cls(counts=np.zeros(n_items), tests=0, eligible=np.zeros(n_items), feasible=0)

    def rates(self) -> np.ndarray:
        """Exposure rate of each item so far (0 before any test)."""
        return self.counts / self.tests if self.tests else np.zeros_like(self.counts)

    def record(self, given: np.ndarray, withheld: np.ndarray, released: np.ndarray) -> None:
        """Add finished tests to the counts (in place).

        Parameters
        ----------
        given : ndarray of bool, shape (N, J)
            Scored items each of N tests gave.
        withheld : ndarray of bool, shape (N, J)
            Items each test withheld as ineligible and never released.
        released : ndarray of bool, shape (N,)
            Tests that had to release their ineligible items (infeasible without them).
        """
        given = np.asarray(given, dtype=bool)
        self.counts = self.counts + given.sum(axis=0)
        eligible = ~np.asarray(withheld, dtype=bool) | np.asarray(released, dtype=bool)[:, None]
        previous = self.eligible if self.eligible is not None else np.full(
            self.counts.shape, float(self.tests))
        self.eligible = previous + eligible.sum(axis=0)
        feasible = self.feasible if self.feasible is not None else self.tests
        self.feasible = feasible + int((~np.asarray(released, dtype=bool)).sum())
        self.tests += given.shape[0]


@dataclass
class ExposureContext:
    """What an exposure control may look at when choosing for N test takers."""

    rng: np.random.Generator
    n_given: np.ndarray  # (N,)
    max_items: int
    theta: np.ndarray  # (N,)
    excluded: np.ndarray  # (N, J) bool, may be updated in place (e.g. Sympson-Hetter rejections)
    stats: ExposureStats


def _argmax_finite(scores: np.ndarray) -> np.ndarray:
    return np.argmax(scores, axis=1)


class ExposureControl:
    """Base class: the best-scoring item, no hooks. Override ``choose`` (and ``start`` for
    controls that act once per test)."""

    name = "none"
    #: Whether the control looks at :class:`ExposureStats` (live delivery must then load them).
    uses_stats = False

    def choose(self, scores: np.ndarray, ctx: ExposureContext) -> np.ndarray:
        """Item position for each of N rows (every row has at least one finite score)."""
        return _argmax_finite(scores)

    def start(self, withheld: np.ndarray, rng: np.random.Generator, stats: ExposureStats) -> None:
        """Called once when tests start, with their rows of ``withheld`` to mark in place.

        Withheld items are not given while any other item is left; when none is, the engine
        releases them for that test (and the test counts as infeasible in the statistics).
        """

    def settings(self) -> dict:
        """The control's settings as plain JSON."""
        return {"method": self.name}


class NoExposureControl(ExposureControl):
    """Always the best-scoring item."""


class Randomesque(ExposureControl):
    """Uniformly one of the ``n`` best-scoring items (Kingsbury and Zara, 1989)."""

    name = "randomesque"

    def __init__(self, n: int = 5) -> None:
        if n < 1:
            raise ConfigError(f"exposure.n must be at least 1, got {n}")
        self.n = at_most(n, MAX_RANDOMESQUE_N, "exposure.n")

    def choose(self, scores: np.ndarray, ctx: ExposureContext) -> np.ndarray:
        n = min(self.n, scores.shape[1])
        if n == 1:
            return _argmax_finite(scores)
        top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        finite = np.isfinite(np.take_along_axis(scores, top, axis=1))
        pick = np.where(finite, ctx.rng.random(top.shape), -1.0).argmax(axis=1)
        return top[np.arange(top.shape[0]), pick]

    def settings(self) -> dict:
        return {"method": self.name, "n": self.n}


class Progressive(ExposureControl):
    """Progressive method (Revuelta and Ponsoda, 1998), optionally restricted.

    The score of item j becomes ``(1 - s) R_j + s I_j`` with ``R_j ~ U(0, max I)`` and ``s`` the
    share of the test already given, so early items are nearly random and late ones nearly
    optimal. With ``r_max``, items whose exposure rate so far reached it are withheld while any
    other item is available (the restricted variant).
    """

    name = "progressive"

    def __init__(self, r_max: float | None = None) -> None:
        if r_max is not None and not 0 < r_max <= 1:
            raise ConfigError(f"exposure.r_max must be in (0, 1], got {r_max}")
        self.r_max = r_max
        self.uses_stats = r_max is not None

    def choose(self, scores: np.ndarray, ctx: ExposureContext) -> np.ndarray:
        finite = np.isfinite(scores)
        if self.r_max is not None and ctx.stats.tests:
            over = ctx.stats.rates() >= self.r_max
            allowed = finite & ~over[None, :]
            finite = np.where(allowed.any(axis=1, keepdims=True), allowed, finite)
        base = np.where(finite, scores, 0.0)
        top = base.max(axis=1, keepdims=True)
        s = np.clip(ctx.n_given / max(ctx.max_items, 1), 0.0, 1.0)[:, None]
        mixed = (1.0 - s) * ctx.rng.random(scores.shape) * top + s * base
        return np.where(finite, mixed, -np.inf).argmax(axis=1)

    def settings(self) -> dict:
        return {"method": self.name, "r_max": self.r_max}


class ItemEligibility(ExposureControl):
    """Item-eligibility method (van der Linden and Veldkamp, 2004, 2007).

    Before a test, each item j is made eligible with probability ``p_j``; ineligible items are
    withheld for the whole test while any eligible item is left, and released when none is
    (the test is then *infeasible*). The probabilities follow from counts over the tests so far
    (:class:`ExposureStats`): ``n`` tests, ``f`` of them feasible, item j given in ``alpha_j``
    and eligible (or in an infeasible test) in ``rho_j``. For the next test

        p_j = min(1, 1 - n / f + r_max * (rho_j / alpha_j) * (n / f)),

    and ``p_j = 1`` while ``alpha_j = 0``. This is van der Linden and Veldkamp (2007, p. 407),
    with ``rho_j / n`` estimating P(E_j or infeasible) and ``alpha_j / n`` estimating P(A_j);
    when every test is feasible it reduces to their 2004 rule
    ``P_{l+1}(E_j) = min(1, r_max P_l(E_j) / P_l(A_j))``: the new probability is the old one
    times ``r_max`` over the exposure rate, so the rule is multiplicative and needs the record
    of eligibility, not only the exposure rates. Its fixed point is an exposure rate of
    ``r_max`` for every item that would otherwise exceed it. (Without fading: every test
    counts equally.)

    References
    ----------
    van der Linden, W. J., & Veldkamp, B. P. (2004). Constraining item exposure in computerized
    adaptive testing with shadow tests. Journal of Educational and Behavioral Statistics,
    29(3), 273-291.
    van der Linden, W. J., & Veldkamp, B. P. (2007). Conditional item-exposure control in
    adaptive testing using item-ineligibility probabilities. Journal of Educational and
    Behavioral Statistics, 32(4), 398-418.
    """

    name = "eligibility"
    uses_stats = True

    def __init__(self, r_max: float = 0.2) -> None:
        if not 0 < r_max <= 1:
            raise ConfigError(f"exposure.r_max must be in (0, 1], got {r_max}")
        self.r_max = r_max

    def probabilities(self, stats: ExposureStats) -> np.ndarray:
        """Each item's probability of being eligible for the next test, shape (J,).

        Without an eligibility record (``stats.eligible is None``) every item counts as
        eligible in every test so far, which gives ``min(1, r_max / rate_j)``.
        """
        alpha = np.asarray(stats.counts, dtype=float)
        n = float(stats.tests)
        if n <= 0:
            return np.ones(alpha.shape)
        rho = np.full(alpha.shape, n) if stats.eligible is None else np.asarray(
            stats.eligible, dtype=float)
        f = n if stats.feasible is None else float(stats.feasible)
        ratio = n / f if f > 0 else 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            p = 1.0 - ratio + self.r_max * rho / alpha * ratio
        return np.where(alpha > 0, np.clip(p, 0.0, 1.0), 1.0)

    def start(self, withheld: np.ndarray, rng: np.random.Generator, stats: ExposureStats) -> None:
        if not stats.tests:
            return
        probability = self.probabilities(stats)
        withheld |= rng.random(withheld.shape) >= probability[None, :]

    def choose(self, scores: np.ndarray, ctx: ExposureContext) -> np.ndarray:
        return _argmax_finite(scores)

    def settings(self) -> dict:
        return {"method": self.name, "r_max": self.r_max}


@dataclass
class SympsonHetter(ExposureControl):
    """Sympson-Hetter exposure control (Sympson and Hetter, 1985), optionally conditional.

    The best item j is given with probability ``k_j``; otherwise it is withdrawn for this test
    taker and the next best is tried. Vectorised: one uniform draw per item, the best item whose
    draw is below its ``k`` is given, and every better item that failed its draw is withdrawn.
    ``k`` has shape (J,) or, conditional on theta strata (Stocking and Lewis, 1998), (S, J) with
    ``theta_cuts`` (S - 1 increasing cut points) choosing the row by the current estimate.
    Calibrate ``k`` by simulation with :func:`cat_engine.simulation.calibrate_sympson_hetter`.
    """

    k: np.ndarray
    r_max: float = 0.2
    theta_cuts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    name: str = "sympson-hetter"

    def _k_for(self, theta: np.ndarray) -> np.ndarray:
        k = np.atleast_2d(self.k)
        if k.shape[0] == 1:
            return np.broadcast_to(k[0], (theta.size, k.shape[1]))
        return k[np.searchsorted(self.theta_cuts, theta)]

    def choose(self, scores: np.ndarray, ctx: ExposureContext) -> np.ndarray:
        k = self._k_for(ctx.theta)
        passes = ctx.rng.random(scores.shape) < k
        finite = np.isfinite(scores)
        candidate = np.where(passes & finite, scores, -np.inf)
        chosen = candidate.argmax(axis=1)
        none_passed = ~np.isfinite(candidate.max(axis=1))
        worst_first = np.where(finite, scores, np.inf).argmin(axis=1)
        chosen = np.where(none_passed, worst_first, chosen)  # all failed: give the last one tried
        best = scores[np.arange(scores.shape[0]), chosen]
        rejected = finite & ~passes & (scores > best[:, None])
        ctx.excluded |= rejected
        selected = rejected
        selected[np.arange(scores.shape[0]), chosen] = True
        self.last_selected = selected  # items that went through the lottery (for calibration)
        return chosen

    def settings(self) -> dict:
        return {
            "method": self.name,
            "r_max": self.r_max,
            "k": np.atleast_2d(self.k).tolist(),
            "theta_cuts": self.theta_cuts.tolist(),
        }


def make_exposure(spec: dict, n_items: int) -> ExposureControl:
    """Build an exposure control from its JSON settings.

    ``{"method": "none"}``, ``{"method": "randomesque", "n": 5}``,
    ``{"method": "progressive", "r_max": 0.25}`` (``r_max`` optional: restricted),
    ``{"method": "eligibility", "r_max": 0.2}``, ``{"method": "sympson-hetter", "r_max": 0.2,
    "k": [...], "theta_cuts": [...]}`` (without ``k``, every ``k`` starts at 1 and the simulator
    calibrates them).
    """
    method = str(spec.get("method", "none")).lower()
    if method == "none":
        return NoExposureControl()
    if method == "randomesque":
        return Randomesque(n=setting(spec, "n", 5, "exposure", int))
    if method in ("progressive", "progressive-restricted"):
        return Progressive(r_max=setting(spec, "r_max", None, "exposure"))
    if method == "eligibility":
        return ItemEligibility(r_max=setting(spec, "r_max", 0.2, "exposure"))
    if method == "sympson-hetter":
        r_max = setting(spec, "r_max", 0.2, "exposure")
        if not 0 < r_max <= 1:
            raise ConfigError(f"exposure.r_max must be in (0, 1], got {r_max}")
        try:
            cuts = np.asarray(spec.get("theta_cuts", []), dtype=float)
            k = np.asarray(spec["k"], dtype=float) if "k" in spec else np.ones(
                (cuts.size + 1, n_items))
        except (TypeError, ValueError):
            raise ConfigError("exposure.k and exposure.theta_cuts must be numbers") from None
        at_most(cuts.size, MAX_THETA_CUTS, "exposure.theta_cuts (the number of cuts)")
        k = np.atleast_2d(k)
        if k.shape != (cuts.size + 1, n_items):
            raise ConfigError(
                f"exposure.k must have shape ({cuts.size + 1}, {n_items}) for "
                f"{cuts.size + 1} theta strata and {n_items} items, got {k.shape}"
            )
        if ((k < 0) | (k > 1)).any():
            raise ConfigError("exposure.k values must be probabilities in [0, 1]")
        return SympsonHetter(k=k, r_max=r_max, theta_cuts=cuts)
    raise ConfigError(
        f"exposure.method: {method!r} is not one of none, randomesque, progressive, "
        "eligibility, sympson-hetter"
    )
