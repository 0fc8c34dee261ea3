"""Simulation of whole populations of test takers, every simulee advanced at once.

:func:`simulate` runs the same engine steps as a live session (:mod:`cat_engine.engine`) on N
simulees together: each step is a few array operations over (simulees x items), not a loop over
simulees. Exposure controls that react to exposure so far (item eligibility, restricted
progressive) run the population in cohorts and update their statistics between cohorts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cat_engine.bank import ItemBank
from cat_engine.config import CATConfig
from cat_engine.engine import check_stop, choose_items, new_state, record_responses
from cat_engine.errors import ConfigError
from cat_engine.exposure import ExposureStats, ItemEligibility, Progressive, SympsonHetter
from cat_engine.limits import MAX_COHORTS, MAX_SIMULEES, at_most
from cat_engine.models import simulate_responses

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SympsonHetterCalibration:
    """Exposure parameters found by iterated simulation, and whether the target was met."""

    k: np.ndarray  # (S, J)
    theta_cuts: np.ndarray  # (S - 1,)
    r_max: float
    iterations: int
    max_exposure: tuple[float, ...]  # maximum exposure rate after each iteration
    feasible: bool
    message: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "r_max": self.r_max,
            "iterations": self.iterations,
            "max_exposure_by_iteration": list(self.max_exposure),
            "feasible": self.feasible,
            "message": self.message,
            "seconds": self.seconds,
            "theta_cuts": self.theta_cuts.tolist(),
        }


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation measured. Rates are fractions of simulees; theta on the bank's scale."""

    item_ids: tuple[str, ...]
    true_theta: np.ndarray
    theta: np.ndarray
    se: np.ndarray
    length: np.ndarray
    stop_reason: np.ndarray
    exposure: np.ndarray  # (J,) exposure rate of each item
    pretest_administered: int
    items: np.ndarray  # (N, max_items) bank positions of each simulee's scored items, -1 padded
    seconds: float
    settings: dict[str, Any]
    calibration: SympsonHetterCalibration | None = None
    conditional: list[dict[str, float]] = field(default_factory=list)
    cohorts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    """(N,) the cohort each simulee was tested in (0-based; exposure statistics were updated
    between cohorts)."""

    @property
    def cohort_max_exposure(self) -> np.ndarray:
        """Maximum exposure rate within each cohort, in order (shape (number of cohorts,))."""
        if self.cohorts.size == 0:
            return np.array([self.max_exposure])
        return np.array([self._exposure_of(self.cohorts == c).max()
                         for c in range(int(self.cohorts.max()) + 1)])

    @property
    def steady_exposure(self) -> np.ndarray:
        """(J,) exposure rates in the last half of the cohorts: the steady state of controls
        that adapt between cohorts (item eligibility, restricted progressive); the overall
        rates include the first cohorts, before the control has settled."""
        if self.cohorts.size == 0 or self.cohorts.max() == 0:
            return self.exposure
        last = int(self.cohorts.max()) + 1
        return self._exposure_of(self.cohorts >= last // 2)

    @property
    def steady_max_exposure(self) -> float:
        """Maximum exposure rate in the last half of the cohorts (see :attr:`steady_exposure`)."""
        return float(self.steady_exposure.max())

    def _exposure_of(self, rows: np.ndarray) -> np.ndarray:
        items = self.items[rows]
        counts = np.bincount(items[items >= 0], minlength=len(self.item_ids))
        return counts / max(int(rows.sum()), 1)

    @property
    def bias(self) -> float:
        return float(np.mean(self.theta - self.true_theta))

    @property
    def rmse(self) -> float:
        return float(np.sqrt(np.mean((self.theta - self.true_theta) ** 2)))

    @property
    def mean_length(self) -> float:
        return float(self.length.mean())

    @property
    def max_length(self) -> int:
        return int(self.length.max())

    @property
    def administered(self) -> int:
        """Scored items given in total."""
        return int(self.length.sum())

    @property
    def max_exposure(self) -> float:
        return float(self.exposure.max())

    @property
    def unused_fraction(self) -> float:
        return float(np.mean(self.exposure == 0))

    @property
    def overlap_rate(self) -> float:
        """Expected share of one test's items that another random test also has.

        Pairs of simulees share ``sum_j C(n_j, 2) / C(N, 2)`` items on average (``n_j`` the
        times item j was given); divided by the mean test length (Chen, Ankenmann and Spray, 2003).
        """
        n = self.true_theta.size
        if n < 2 or self.mean_length == 0:
            return 0.0
        counts = self.exposure * n
        shared = float((counts * (counts - 1)).sum() / (n * (n - 1)))
        return shared / self.mean_length

    @property
    def chi_square_exposure(self) -> float:
        """Chang and Ying's (1999) index: ``sum_j (r_j - L/J)^2 / (L/J)``, L the mean length."""
        expected = self.mean_length / self.exposure.size
        return float(((self.exposure - expected) ** 2).sum() / expected) if expected else 0.0

    def conditional_exposure(self, theta_cuts) -> np.ndarray:
        """(S, J) exposure rate of each item among simulees in each stratum of true theta
        (``theta_cuts``: S - 1 increasing cut points)."""
        cuts = np.asarray(theta_cuts, dtype=float)
        stratum = np.searchsorted(cuts, self.true_theta)
        given = self.items >= 0
        counts = np.zeros((cuts.size + 1, len(self.item_ids)))
        np.add.at(counts, (np.broadcast_to(stratum[:, None], self.items.shape)[given],
                           self.items[given]), 1.0)
        sizes = np.bincount(stratum, minlength=cuts.size + 1)
        return counts / np.maximum(sizes, 1)[:, None]

    @property
    def calibration_seconds(self) -> float:
        return self.calibration.seconds if self.calibration else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Summary figures as plain JSON (no per-simulee arrays)."""
        reasons, counts = np.unique(self.stop_reason.astype(str), return_counts=True)
        return {
            "examinees": int(self.true_theta.size),
            "items_in_bank": len(self.item_ids),
            "rmse": self.rmse,
            "bias": self.bias,
            "mean_length": self.mean_length,
            "max_length": self.max_length,
            "administered": self.administered,
            "pretest_administered": self.pretest_administered,
            "max_exposure": self.max_exposure,
            "cohorts": int(self.cohorts.max()) + 1 if self.cohorts.size else 1,
            "max_exposure_steady": self.steady_max_exposure,
            "unused_fraction": self.unused_fraction,
            "overlap_rate": self.overlap_rate,
            "chi_square_exposure": self.chi_square_exposure,
            "mean_se": float(self.se.mean()),
            "stop_reasons": dict(zip(reasons.tolist(), counts.tolist(), strict=True)),
            "conditional": self.conditional,
            "exposure_rates": dict(zip(self.item_ids, self.exposure.tolist(), strict=True)),
            "seconds": self.seconds,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "settings": self.settings,
        }


def simulate(
    bank: ItemBank,
    thetas,
    config: CATConfig | Mapping[str, Any],
    seed: int = 0,
    cohorts: int | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate adaptive tests for every true theta in ``thetas``, all simulees at once.

    Parameters
    ----------
    bank : ItemBank
        Item parameters, used both to generate responses and to run the test.
    thetas : array_like, shape (N,)
        True abilities of the simulees.
    config : CATConfig or dict
        The engine configuration. Sympson-Hetter without ``k`` is first calibrated to its
        ``r_max`` by :func:`calibrate_sympson_hetter` on these simulees (with another seed).
    seed : int
        Seeds responses and every random choice.
    cohorts : int, optional
        Run the simulees in at least this many consecutive groups, updating exposure
        statistics in between. Controls that react to exposure so far get enough by default
        to settle (:func:`settling_cohorts`); :attr:`SimulationResult.steady_max_exposure`
        reports the last half of the cohorts beside the overall figure.
    progress : callable, optional
        Called as ``progress(done, total)`` with the number of finished simulees.
    """
    thetas = np.asarray(thetas, dtype=float)
    if thetas.ndim != 1 or thetas.size == 0:
        raise ConfigError("thetas must be a non-empty one-dimensional array")
    if not np.isfinite(thetas).all():
        raise ConfigError("thetas must be finite numbers")
    at_most(thetas.size, MAX_SIMULEES, "the number of simulees (examinees)")
    if cohorts is not None:
        at_most(int(cohorts), MAX_COHORTS, "cohorts")
    settings = dict(config.settings) if isinstance(config, CATConfig) else dict(config)
    config = config if isinstance(config, CATConfig) else CATConfig.from_dict(settings, bank)
    calibration = None
    if isinstance(config.exposure, SympsonHetter) and "k" not in (settings.get("exposure") or {}):
        calibration = calibrate_sympson_hetter(
            bank, thetas, settings, r_max=config.exposure.r_max, seed=seed + 1,
            theta_cuts=config.exposure.theta_cuts,
        )
        settings = {**settings, "exposure": {
            **settings["exposure"], "k": calibration.k.tolist(),
            "theta_cuts": calibration.theta_cuts.tolist(),
        }}
        config = CATConfig.from_dict(settings, bank)
    reacts = isinstance(config.exposure, ItemEligibility) or (
        isinstance(config.exposure, Progressive) and config.exposure.r_max is not None
    )
    cohorts = max(cohorts or 1, settling_cohorts(thetas.size) if reacts else 1)
    cohorts = min(cohorts, thetas.size)
    started = time.perf_counter()
    run = _run(bank, thetas, config, seed, cohorts, progress)
    seconds = time.perf_counter() - started
    result = SimulationResult(
        item_ids=bank.item_ids,
        true_theta=thetas,
        theta=run["theta"],
        se=run["se"],
        length=run["length"],
        stop_reason=run["reason"],
        exposure=run["counts"] / thetas.size,
        pretest_administered=run["pretest"],
        items=run["items"],
        seconds=seconds,
        settings=settings,
        calibration=calibration,
        conditional=_conditional(thetas, run["theta"], run["length"]),
        cohorts=run["cohort"],
    )
    return result


def settling_cohorts(n: int) -> int:
    """How many cohorts a control that adapts between cohorts gets by default for ``n``
    simulees: cohorts of 10 up to 2,000 simulees, then 200 cohorts.

    Item eligibility updates its probabilities after each cohort. For 2,000 simulees and a
    target of 0.2, 10 cohorts left the maximum exposure of the last half at 0.30 and 200 at 0.24
    (``python -m bench.eligibility``, ``bench/RESULTS.md``).
    """
    return max(1, min(n, max(10, min(200, n // 10))))


def _run(bank, thetas, config: CATConfig, seed: int, cohorts: int, progress, selected=None):
    """Advance every simulee to the end of its test; returns per-simulee arrays and counts."""
    n = thetas.size
    rng = np.random.default_rng(seed)
    out = {
        "theta": np.empty(n), "se": np.empty(n), "length": np.zeros(n, dtype=np.intp),
        "reason": np.empty(n, dtype=object), "counts": np.zeros(len(bank)), "pretest": 0,
        "items": np.full((n, config.stopping.max_items), -1, dtype=np.intp),
        "cohort": np.zeros(n, dtype=np.intp),
    }
    stats = ExposureStats.empty(len(bank))
    pretest = [bank.index_of(i) for i in config.pretest.items if i in bank._index]
    positions = np.array(config.pretest.positions, dtype=np.intp)
    done = 0
    for number, group in enumerate(np.array_split(np.arange(n), cohorts)):
        if group.size == 0:
            continue
        out["cohort"][group] = number
        state = new_state(config, bank, group.size, rng)
        state.excluded[:, pretest] = True
        config.exposure.start(state.withheld, rng, stats)
        active = np.arange(group.size)
        while active.size:
            if positions.size and pretest:
                active = _give_pretest(state, active, positions, pretest, rng, out)
            items = choose_items(config, state, active, rng, stats)
            if selected is not None and isinstance(config.exposure, SympsonHetter):
                selected(group[active], config.exposure.last_selected)
            responses = simulate_responses(bank, items, thetas[group[active]], rng)
            record_responses(config, state, active, items, responses)
            stop, reason = check_stop(config, state, active)
            out["reason"][group[active[stop]]] = reason[stop]
            active = active[~stop]
        out["theta"][group] = state.theta
        out["se"][group] = state.se
        out["length"][group] = state.n_scored
        width = min(state.items.shape[1], out["items"].shape[1])
        out["items"][group, :width] = state.items[:, :width]
        taken = state.items >= 0
        given = np.zeros((group.size, len(bank)), dtype=bool)
        given[np.broadcast_to(np.arange(group.size)[:, None], taken.shape)[taken],
              state.items[taken]] = True
        out["counts"] += given.sum(axis=0)
        stats.record(given, state.withheld, state.released)
        done += group.size
        if progress is not None:
            progress(done, n)
    return out


def _give_pretest(state, active, positions, pretest, rng, out) -> np.ndarray:
    """Rows whose next position is a pretest slot get an unseen pretest item, as a live session
    does; a row with none left takes a scored item there. Returns ``active`` unchanged."""
    pending = active
    while pending.size:
        due = pending[np.isin(state.n_given[pending] + 1, positions)]
        left = ~state.seen[np.ix_(due, pretest)]
        has = left.any(axis=1)
        rows, left = due[has], left[has]
        if rows.size == 0:
            break
        pick = np.where(left, rng.random(left.shape), -1.0).argmax(axis=1)
        state.seen[rows, np.asarray(pretest)[pick]] = True
        state.n_given[rows] += 1
        out["pretest"] += int(rows.size)
        pending = rows  # consecutive pretest slots
    return active


def _conditional(true_theta, theta, length) -> list[dict[str, float]]:
    """Bias, RMSE and mean length within each decile of true theta."""
    edges = np.quantile(true_theta, np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(edges, true_theta, side="right") - 1, 0, 9)
    rows = []
    for d in range(10):
        mask = which == d
        if not mask.any():
            continue
        error = theta[mask] - true_theta[mask]
        rows.append({
            "decile": d + 1,
            "theta_low": float(edges[d]),
            "theta_high": float(edges[d + 1]),
            "n": int(mask.sum()),
            "bias": float(error.mean()),
            "rmse": float(np.sqrt(np.mean(error**2))),
            "mean_length": float(length[mask].mean()),
        })
    return rows


def calibrate_sympson_hetter(
    bank: ItemBank,
    thetas,
    settings: Mapping[str, Any],
    r_max: float = 0.2,
    seed: int = 0,
    theta_cuts=(),
    iterations: int = 40,
    margin: float | None = None,
    patience: int = 8,
) -> SympsonHetterCalibration:
    """Find Sympson-Hetter exposure parameters ``k`` by iterated simulation.

    Each iteration simulates the population with the current ``k`` and sets
    ``k_j = min(1, r / P(S_j))``, with ``P(S_j)`` the share of simulees for whom item j was
    selected (went through the lottery), until every exposure rate is at most ``r``. Every
    iteration uses the same random numbers, so the changes in ``k`` are not chasing noise.
    With ``theta_cuts`` the parameters are conditional on strata of true theta (Stocking and
    Lewis, 1998); live sessions look them up by the current estimate.

    ``r`` is ``r_max - margin``: an exposure rate measured on N test takers has a sampling error
    of about ``sqrt(r (1 - r) / N)``, so parameters tuned to exactly ``r_max`` on one sample let
    the largest rates of another sample exceed it. The default margin is 1.645 such errors for
    the smallest theta stratum.

    When the bank cannot support the target (tests average L items from J, so the average
    exposure is L/J and the maximum cannot fall below it), ``feasible`` is false and ``message``
    gives the figures.
    """
    started = time.perf_counter()
    thetas = np.asarray(thetas, dtype=float)
    cuts = np.asarray(theta_cuts, dtype=float)
    strata = np.searchsorted(cuts, thetas)
    n_strata = cuts.size + 1
    per_stratum = np.bincount(strata, minlength=n_strata).astype(float)
    if margin is None:
        smallest = max(per_stratum.min(), 1.0)
        margin = 1.645 * float(np.sqrt(r_max * (1 - r_max) / smallest))
    target = max(r_max - margin, r_max / 2)
    k = np.ones((n_strata, len(bank)))
    best: tuple[float, np.ndarray, int] = (np.inf, k, 0)  # lowest maximum exposure seen
    history: list[float] = []
    base = {key: value for key, value in settings.items() if key != "exposure"}
    feasible, message, iteration = True, "", 0
    for iteration in range(1, iterations + 1):
        config = CATConfig.from_dict(
            {**base, "exposure": {"method": "sympson-hetter", "r_max": r_max, "k": k.tolist(),
                                  "theta_cuts": cuts.tolist()}},
            bank,
        )
        counts = np.zeros((n_strata, len(bank)))

        def selected(rows, mask, counts=counts):
            if n_strata == 1:
                counts[0] += mask.sum(axis=0)
                return
            for stratum in range(n_strata):
                counts[stratum] += mask[strata[rows] == stratum].sum(axis=0)

        run = _run(bank, thetas, config, seed, 1, None, selected)
        given = np.zeros((n_strata, len(bank)))
        taken = run["items"] >= 0
        np.add.at(given, (np.broadcast_to(strata[:, None], taken.shape)[taken],
                          run["items"][taken]), 1.0)
        exposure = given / np.maximum(per_stratum, 1.0)[:, None]  # per stratum of true theta
        history.append(float(exposure.max()))
        mean_length = float(run["length"].mean())
        floor = mean_length / len(bank)
        if floor > r_max:
            feasible = False
            message = (
                f"target maximum exposure {r_max:g} cannot be met: tests average "
                f"{mean_length:.1f} items from a bank of {len(bank)}, so items are given to "
                f"{floor:.3f} of test takers on average; use a larger bank, shorter tests, or "
                f"a target of at least {floor:.2f}"
            )
            break
        if history[-1] < best[0]:
            best = (history[-1], k, iteration)
        if history[-1] <= target or iteration - best[2] >= patience:
            break
        rate = counts / np.maximum(per_stratum, 1.0)[:, None]
        k = np.where(rate > target, target / np.maximum(rate, 1e-12), 1.0)
    k = best[1]
    achieved = min(history)
    if feasible and achieved > r_max + margin:
        feasible = False
        message = (
            f"after {iteration} iterations the maximum exposure is {achieved:.3f}, above the "
            f"target {r_max:g} by more than sampling error ({margin:.3f}); the bank may be too "
            "small or too uneven for it"
        )
    elif feasible and achieved > r_max:
        message = (
            f"maximum exposure {achieved:.3f} after {iteration} iterations: the target {r_max:g} "
            f"within sampling error ({margin:.3f} for {int(per_stratum.min())} test takers)"
        )
    elif feasible:
        message = (
            f"maximum exposure {achieved:.3f} <= {r_max:g} after {iteration} iterations "
            f"(calibrated to {target:.3f}, a margin of {margin:.3f} for sampling error)"
        )
    return SympsonHetterCalibration(
        k=k, theta_cuts=cuts, r_max=r_max, iterations=iteration, max_exposure=tuple(history),
        feasible=feasible, message=message, seconds=time.perf_counter() - started,
    )
