"""Run the peer CAT simulators (catsim, PyPI ``mirt``) on the same bank and simulees.

Each ``run_*`` function takes the same inputs -- 3PL item parameters ``a, b, c`` (logistic, D = 1),
the true abilities, a seed, the stopping rule (SE and maximum length) and an exposure option -- and
returns a dict of metrics computed here, by one function, from the peer's own final estimates and
item paths, so that the figures are comparable with each other and with our engine:

``seconds``        wall time of the peer's simulation call (setup and calibration excluded)
``administered``   items given, summed over simulees
``ms_per_item``    ``1000 * seconds / administered``: the comparable speed figure
``cpu_ms_per_item`` the same from the process's CPU time: steadier when the machine is shared
``rmse``, ``bias`` of the final estimates against the true abilities
``mean_length``    mean test length
``max_exposure``   max over items of the fraction of simulees who saw the item

The peers are called, never copied: both are optional benchmark dependencies (the ``bench`` extra),
imported lazily so that this module imports without them.

Exposure options, as strings: ``none``, ``randomesque:N`` (both peers), ``sympson-hetter:R``
(mirt only; catsim has none) and ``ceiling:R`` (catsim only: ``MaxInfoSelector(r_max=R)``, which
skips items whose running exposure rate has reached ``R`` -- a hard cap, not Sympson-Hetter).
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

__all__ = [
    "PeerUnsupportedError",
    "parse_exposure",
    "peer_versions",
    "run_catsim",
    "run_mirt",
    "summarize",
]


class PeerUnsupportedError(ValueError):
    """The peer has no equivalent of the requested option."""


@dataclass(frozen=True)
class Exposure:
    """A parsed exposure option: ``method`` in none | randomesque | sympson-hetter | ceiling."""

    method: str
    value: float | None = None

    @property
    def label(self) -> str:
        if self.value is None:
            return self.method
        value = int(self.value) if self.method == "randomesque" else self.value
        return f"{self.method}:{value:g}"


def parse_exposure(option: str | Exposure | None) -> Exposure:
    """``"none"``, ``"randomesque:5"``, ``"sympson-hetter:0.2"`` or ``"ceiling:0.2"``."""
    if isinstance(option, Exposure):
        return option
    if option is None or option.strip().lower() in ("", "none"):
        return Exposure("none")
    method, _, value = option.strip().lower().partition(":")
    if method == "randomesque":
        n = int(value or 5)
        if n < 1:
            raise ValueError("randomesque needs n >= 1")
        return Exposure("randomesque", float(n))
    if method in ("sympson-hetter", "sh", "ceiling"):
        rate = float(value or 0.2)
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"{method} rate must be in (0, 1]")
        return Exposure("sympson-hetter" if method == "sh" else method, rate)
    raise ValueError(f"unknown exposure option {option!r}")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def peer_versions() -> dict[str, str | None]:
    """Installed versions of the peers (None where a peer is not installed)."""
    return {"catsim": _version("catsim"), "mirt": _version("mirt")}


def summarize(
    estimates: np.ndarray,
    thetas: np.ndarray,
    paths: list[np.ndarray] | list[list[int]],
    n_items: int,
    seconds: float,
    cpu_seconds: float | None = None,
) -> dict[str, Any]:
    """The comparable metrics of one run, computed the same way for every engine."""
    estimates = np.asarray(estimates, dtype=float)
    thetas = np.asarray(thetas, dtype=float)
    lengths = np.array([len(p) for p in paths], dtype=int)
    administered = int(lengths.sum())
    counts = np.zeros(n_items, dtype=int)
    for p in paths:
        counts[np.asarray(p, dtype=int)] += 1
    error = estimates - thetas
    return {
        "examinees": len(thetas),
        "seconds": float(seconds),
        "administered": administered,
        "ms_per_item": 1000.0 * seconds / administered if administered else float("nan"),
        "cpu_seconds": cpu_seconds,
        "cpu_ms_per_item": (
            1000.0 * cpu_seconds / administered if administered and cpu_seconds else None
        ),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "bias": float(np.mean(error)),
        "mean_length": float(lengths.mean()),
        "max_exposure": float(counts.max() / len(thetas)),
        "items_never_used": int((counts == 0).sum()),
        "nonfinite_estimates": int((~np.isfinite(estimates)).sum()),
    }


def _validate(a, b, c, thetas) -> tuple[np.ndarray, ...]:
    a, b, c = (np.asarray(x, dtype=float).ravel() for x in (a, b, c))
    if not (a.shape == b.shape == c.shape):
        raise ValueError("a, b and c must have the same length")
    thetas = np.asarray(thetas, dtype=float).ravel()
    return a, b, c, thetas


# --------------------------------------------------------------------------------------------
# catsim
# --------------------------------------------------------------------------------------------


def run_catsim(
    a,
    b,
    c,
    thetas,
    *,
    seed: int = 1,
    se_stop: float = 0.3,
    max_items: int = 40,
    exposure: str | Exposure | None = "none",
    estimator_method: str = "bounded",
) -> dict[str, Any]:
    """catsim's ``Simulator`` with maximum information, its ML estimator, SE / length stopping.

    catsim (0.21) ships one estimator, ``NumericalSearchEstimator``: maximum likelihood by a
    bounded scalar search on [-6, 6] (``scipy.optimize.minimize_scalar``, method ``bounded``), with
    Dodd's heuristic while the responses are all correct or all wrong. It has no EAP. The test
    starts at theta 0 (``FixedPointInitializer(0.0)``); ``MinErrorStopper`` stops when the SE
    at the current estimate is below ``se_stop`` or at ``max_items``. Simulees run one after
    another, as catsim does; the time is ``Simulator.simulate`` alone.
    """
    from catsim.estimation import NumericalSearchEstimator
    from catsim.initialization import FixedPointInitializer
    from catsim.item_bank import ItemBank
    from catsim.selection import MaxInfoSelector, RandomesqueSelector
    from catsim.simulation import Simulator
    from catsim.stopping import MinErrorStopper

    a, b, c, thetas = _validate(a, b, c, thetas)
    exp = parse_exposure(exposure)
    if exp.method == "none":
        selector = MaxInfoSelector()
    elif exp.method == "randomesque":
        selector = RandomesqueSelector(bin_size=int(exp.value))
    elif exp.method == "ceiling":
        selector = MaxInfoSelector(r_max=exp.value)
    else:
        raise PeerUnsupportedError(
            "catsim has no Sympson-Hetter; its nearest option is 'ceiling:R' "
            "(MaxInfoSelector r_max, a hard cap on the running exposure rate)"
        )

    items = np.column_stack([a, b, c, np.ones_like(a)])
    # catsim's bank validation prints its (empty) error string; keep the table clean.
    with contextlib.redirect_stdout(io.StringIO()):
        bank = ItemBank(items)
        sim = Simulator(bank, thetas, seed=seed)
    estimator = NumericalSearchEstimator(method=estimator_method)
    stopper = MinErrorStopper(se_stop, max_items=max_items)

    start, cpu = time.perf_counter(), time.process_time()
    sim.simulate(FixedPointInitializer(0.0), selector, estimator, stopper)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu

    out = {
        "engine": "catsim",
        "version": _version("catsim"),
        "variant": exp.label,
        "path": "per-examinee Python loop (catsim.simulation.Simulator)",
        "selector": str(selector) + (f" (r_max={exp.value:g})" if exp.method == "ceiling" else ""),
        "estimator": f"{estimator} = ML, Dodd's heuristic for constant patterns, no EAP",
        "calibration_seconds": None,
        "seed": seed,
    }
    out.update(
        summarize(
            np.asarray(sim.latest_estimations),
            thetas,
            sim.administered_items,
            len(a),
            seconds,
            cpu,
        )
    )
    out["peer_reported"] = {
        "rmse": float(sim.rmse),
        "bias": float(sim.bias),
        "duration": sim.duration,
    }
    return out


# --------------------------------------------------------------------------------------------
# mirt (PyPI)
# --------------------------------------------------------------------------------------------


def _mirt_model(a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """A mirt 3PL model holding known parameters (mirt's logistic has no 1.7 constant: D = 1).

    mirt offers no public constructor for a pre-calibrated bank short of fitting data or
    rebuilding a serialized ``FitResult``; ``CATEngine`` only checks ``model.is_fitted``. We set
    the parameters with the public ``set_parameters`` and mark the model fitted, as mirt's own
    loaders do after setting parameters.
    """
    from mirt.models.dichotomous import ThreeParameterLogistic

    model = ThreeParameterLogistic(len(a))
    model.set_parameters(discrimination=a, difficulty=b, guessing=c)
    model._is_fitted = True
    return model


def _mirt_path(engine) -> str:
    """Which of mirt's three batch paths ``run_batch_simulation`` will take (diagnostic only)."""
    try:
        if engine._can_use_rust_simulation():
            return "rust batch (mirt_rs)"
        from mirt.cat._lockstep import supports_lockstep

        if supports_lockstep(engine):
            return "lock-step vectorised numpy (mirt.cat._lockstep)"
    except Exception:  # private helpers: never let a diagnostic break a run
        return "unknown"
    return "per-examinee Python loop (CATEngine.run_simulation)"


def _mirt_run(engine, thetas: np.ndarray) -> tuple[list, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    results = engine.run_batch_simulation(thetas)
    return results, time.perf_counter() - start, time.process_time() - cpu


def _mirt_sh_params(control, n_items: int) -> np.ndarray:
    params = control.exposure_parameters
    return np.array([params.get(j, 1.0) for j in range(n_items)], dtype=float)


def run_mirt(
    a,
    b,
    c,
    thetas,
    *,
    seed: int = 1,
    se_stop: float = 0.3,
    max_items: int = 40,
    exposure: str | Exposure | None = "none",
    n_quadpts: int | None = None,
    sh_calibrate_rounds: int = 0,
    sh_calibration_examinees: int = 200,
) -> dict[str, Any]:
    """mirt's ``CATEngine.run_batch_simulation``: MFI, EAP, stop at SE ``se_stop`` or ``max_items``.

    Without exposure control a 3PL engine takes mirt's lock-step path (all simulees advance
    together, numpy; its Rust batch path serves 1PL/2PL only). Any exposure control sends every
    simulee through the per-examinee Python loop.

    ``sympson-hetter:R`` uses ``mirt.cat.SympsonHetter(target_rate=R)``. Its exposure parameters
    start at 1.0 (every item always eligible) and mirt never changes them by itself, so as shipped
    it controls nothing. With ``sh_calibrate_rounds > 0`` we calibrate them with mirt's own
    ``SympsonHetter.calibrate``: each round simulates ``sh_calibration_examinees`` fresh N(0, 1)
    simulees with the current parameters and updates them (k *= R / rate where rate > R, else
    k *= 1.1); the rounds' time is reported as ``calibration_seconds``, apart from ``seconds``.
    """
    from mirt.cat import CATEngine, Randomesque, SympsonHetter

    a, b, c, thetas = _validate(a, b, c, thetas)
    exp = parse_exposure(exposure)
    if exp.method == "ceiling":
        raise PeerUnsupportedError("mirt has no hard exposure ceiling; use sympson-hetter:R")
    model = _mirt_model(a, b, c)
    common: dict[str, Any] = {
        "item_selection": "MFI",
        "scoring_method": "EAP",
        "se_threshold": se_stop,
        "max_items": max_items,
    }
    if n_quadpts is not None:
        common["n_quadpts"] = n_quadpts

    calibration_seconds = None
    calibration: list[dict[str, Any]] = []
    sh_params = None
    if exp.method == "sympson-hetter" and sh_calibrate_rounds > 0:
        cal_rng = np.random.default_rng([seed, 2085])
        calibration_seconds = 0.0
        for r in range(sh_calibrate_rounds):
            control = SympsonHetter(exposure_params=sh_params, target_rate=exp.value, seed=seed + r)
            engine = CATEngine(model, exposure_control=control, seed=seed + 1000 + r, **common)
            cal_thetas = cal_rng.standard_normal(sh_calibration_examinees)
            start = time.perf_counter()
            results = engine.run_batch_simulation(cal_thetas)
            control.calibrate(len(a))
            round_seconds = time.perf_counter() - start
            calibration_seconds += round_seconds
            sh_params = _mirt_sh_params(control, len(a))
            paths = [r_.items_administered for r_ in results]
            m = summarize([r_.theta for r_ in results], cal_thetas, paths, len(a), 0.0)
            calibration.append(
                {
                    "round": r + 1,
                    "seconds": round_seconds,
                    "max_exposure": m["max_exposure"],
                    "rmse": m["rmse"],
                    "mean_length": m["mean_length"],
                    "items_with_k_below_1": int((sh_params < 1).sum()),
                }
            )

    if exp.method == "none":
        control = None
    elif exp.method == "randomesque":
        control = Randomesque(k=int(exp.value), seed=seed)
    else:
        control = SympsonHetter(exposure_params=sh_params, target_rate=exp.value, seed=seed)

    engine = CATEngine(model, exposure_control=control, seed=seed, **common)
    path = _mirt_path(engine)
    results, seconds, cpu = _mirt_run(engine, thetas)

    variant = exp.label
    if exp.method == "sympson-hetter":
        variant += (
            f" (calibrated, {sh_calibrate_rounds} rounds)"
            if sh_params is not None
            else (" (as shipped: k = 1)")
        )
    out = {
        "engine": "mirt",
        "version": _version("mirt"),
        "variant": variant,
        "path": path,
        "selector": "MFI (MaxFisherInformation)"
        + (f" + {type(control).__name__}" if control is not None else ""),
        "estimator": f"EAP, {engine.n_quadpts} Gauss-Hermite nodes, N(0,1) prior",
        "calibration_seconds": calibration_seconds,
        "seed": seed,
    }
    if calibration:
        out["calibration"] = {
            "rounds": calibration,
            "examinees_per_round": sh_calibration_examinees,
            "final_k_min": float(sh_params.min()),
            "items_with_k_below_1": int((sh_params < 1).sum()),
        }
    out.update(
        summarize(
            np.array([r.theta for r in results]),
            thetas,
            [r.items_administered for r in results],
            len(a),
            seconds,
            cpu,
        )
    )
    return out
