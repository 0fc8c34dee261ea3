"""Rater measurement side by side: our many-facet Rasch fit, PyPI ``mirt``'s, and a joint-ML floor.

    python -m bench.raters [--students 2000] [--raters 20] [--repeats 3] [--seed 14] [--json OUT]

One data set (fixed seed): ``--students`` students ~ N(0, 1), 6 criteria with 4 levels
(difficulties ~ N(0, 0.5^2)), ``--raters`` raters with severities evenly spaced on [-1, 1]
(centred), two raters a student drawn at random, rating-scale steps (-1.2, 0, 1.2); ratings drawn
from the rating-scale MFRM by :func:`calibration.raters.simulate_ratings`.

Engines (each run ``--repeats`` times in this process; the fastest run is shown):

``ours``        :func:`calibration.raters.fit_mfrm` (marginal ML, students N(0, sigma^2), 31 nodes,
                L-BFGS on the exact gradient, observed-information SEs, posterior fit statistics);
                rating scale and partial credit.
``mirt``        PyPI ``mirt`` (MIT)'s own many-facet Rasch model,
                ``mirt.estimation.mfrm_mml.fit_mfrm(PolytomousMFRM(6, 4, [Facet("rater", R)]),
                ...)``: marginal ML with students N(0, sigma^2) and the rater facet anchored at
                mean 0, the same model and identification as ours. Run with its default grid
                (41 nodes, refined while too coarse) and with 31 nodes (``mirt q31``, ours). The
                time includes building the persons x ratings arrays it takes from the long data.
``jml``         A plain joint maximum-likelihood fit written here (:func:`fit_jml`): alternating
                Newton steps over students, criteria, raters and the rating-scale steps until the
                largest change is below 1e-5; students with an extreme total are left out (their
                measure is infinite). A floor for speed; its estimates carry the known JML bias
                (severities stretched when each student has few ratings).

Columns: ``seconds`` (wall time, fastest run), ``cpu s`` (the smallest process CPU time of the
runs, all threads: steadier than wall time on a shared machine), ``x ours`` (that time / ours,
same model),
``sev rmse`` (severities against the truth; all engines centre the raters), ``tau rmse``
(rating-scale steps against the truth), ``mean se`` (mean rater SE), ``log-lik`` (marginal for
ours and mirt, joint for jml), ``iter``, ``conv``. Target (issue 14): ours at most 2 s on 2,000
students x 6 criteria x 20 raters.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from importlib import metadata
from typing import Any

import numpy as np

from calibration.raters import Ratings, fit_mfrm, simulate_ratings

TARGET_SECONDS = 2.0
STEPS = np.array([-1.2, 0.0, 1.2])
N_CRITERIA = 6


def make_data(n_students: int, n_raters: int, seed: int) -> tuple[Ratings, dict[str, Any]]:
    """The ratings and the generating parameters."""
    rng = np.random.default_rng(seed)
    severity = np.linspace(-1.0, 1.0, n_raters)
    severity -= severity.mean()
    difficulty = rng.normal(0.0, 0.5, N_CRITERIA)
    theta = rng.normal(0.0, 1.0, n_students)
    ratings = simulate_ratings(theta, difficulty, severity, STEPS, raters_per_student=2, seed=rng)
    return ratings, {"severity": severity, "difficulty": difficulty, "tau": STEPS,
                     "theta": theta}


def _rmse(estimate, truth) -> float:
    return float(np.sqrt(np.mean((np.asarray(estimate, dtype=float) - truth) ** 2)))


def run_ours(ratings: Ratings, truth: dict, model: str) -> dict[str, Any]:
    started = time.perf_counter()
    result = fit_mfrm(ratings, model)
    seconds = time.perf_counter() - started
    tau = np.array([t["tau"] for t in result.thresholds])
    if model == "partial-credit":
        tau = tau.reshape(ratings.n_criteria, -1)
    return {"seconds": seconds, "severity_rmse": _rmse(result.severity, truth["severity"]),
            "tau_rmse": _rmse(tau, truth["tau"]), "mean_se": float(result.severity_se.mean()),
            "log_likelihood": result.log_likelihood, "iterations": result.iterations,
            "converged": result.converged, "sigma": result.sigma,
            "severity": result.severity.tolist()}


def wide_arrays(ratings: Ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Students x slots arrays (score, criterion, rater), -1 where a student has fewer ratings."""
    order = np.argsort(ratings.student, kind="stable")
    student = ratings.student[order]
    per_student = np.bincount(student, minlength=ratings.n_students)
    first = np.concatenate([[0], np.cumsum(per_student)[:-1]])
    slot = np.arange(student.size) - first[student]
    shape = (ratings.n_students, int(per_student.max()))
    out = []
    for values in (ratings.score, ratings.criterion, ratings.rater):
        wide = np.full(shape, -1, dtype=np.int64)
        wide[student, slot] = values[order]
        out.append(wide)
    return out[0], out[1], out[2]


def run_mirt(ratings: Ratings, truth: dict, model: str, n_quadpts: int | None) -> dict[str, Any]:
    from mirt.estimation.mfrm_mml import fit_mfrm as mirt_fit_mfrm
    from mirt.models.mfrm import Facet, PolytomousMFRM

    started = time.perf_counter()
    score, criterion, rater = wide_arrays(ratings)
    structure = "rating_scale" if model == "rating-scale" else "partial_credit"
    mfrm = PolytomousMFRM(ratings.n_criteria, int(ratings.n_categories.max()),
                          [Facet("rater", ratings.n_raters)], category_structure=structure)
    result = mirt_fit_mfrm(mfrm, score, {"rater": np.where(rater < 0, 0, rater)},
                           item_indices=np.where(criterion < 0, 0, criterion),
                           n_quadpts=n_quadpts)
    seconds = time.perf_counter() - started
    severity = np.asarray(result.facet_parameters["rater"], dtype=float)
    return {"seconds": seconds, "severity_rmse": _rmse(severity, truth["severity"]),
            "tau_rmse": _rmse(result.thresholds, truth["tau"]),
            "mean_se": float(np.mean(result.facet_se["rater"])),
            "log_likelihood": float(result.log_likelihood),
            "iterations": int(result.n_iterations), "converged": bool(result.converged),
            "sigma": float(result.sigma), "n_quadpts": int(result.n_quadpts),
            "severity": severity.tolist()}


def fit_jml(ratings: Ratings, max_sweeps: int = 500, tolerance: float = 1e-5) -> dict[str, Any]:
    """Joint ML of the rating-scale MFRM by alternating Newton steps (a speed floor).

    Students with the lowest or highest possible total are left out (infinite measures). After
    every sweep the raters and steps are centred and the students' mean set to 0 (each shift
    moved into the criterion difficulties, which leaves the model unchanged).
    """
    n_s, n_i, n_r = ratings.n_students, ratings.n_criteria, ratings.n_raters
    m = int(ratings.n_categories.max()) - 1
    top = np.bincount(ratings.student, (ratings.n_categories - 1)[ratings.criterion], n_s)
    total = np.bincount(ratings.student, ratings.score, n_s)
    keep_student = (total > 0) & (total < top)
    keep = keep_student[ratings.student]
    student, criterion, rater = (ratings.student[keep], ratings.criterion[keep],
                                 ratings.rater[keep])
    x = ratings.score[keep].astype(float)
    k = np.arange(m + 1, dtype=float)
    theta, delta, severity, tau = np.zeros(n_s), np.zeros(n_i), np.zeros(n_r), np.zeros(m)

    def moments():  # categories first: reductions over contiguous rows
        cumulative = np.concatenate([[0.0], np.cumsum(tau)])
        eta = np.outer(k, theta[student] - delta[criterion] - severity[rater]) - cumulative[
            :, None]
        eta -= eta.max(axis=0)
        p = np.exp(eta)
        p /= p.sum(axis=0)
        expected = k @ p
        return p, expected, k**2 @ p - expected**2

    converged, sweeps = False, 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007 - sweeps is reported
        before = np.concatenate([theta, delta, severity, tau])
        _, e, v = moments()
        step = np.bincount(student, x - e, n_s) / np.maximum(np.bincount(student, v, n_s), 1e-9)
        theta = np.where(keep_student, theta + np.clip(step, -1, 1), 0.0)
        _, e, v = moments()
        delta = delta - np.clip(np.bincount(criterion, x - e, n_i) / np.bincount(criterion, v,
                                                                                 n_i), -1, 1)
        _, e, v = moments()
        severity = severity - np.clip(np.bincount(rater, x - e, n_r) / np.bincount(rater, v, n_r),
                                      -1, 1)
        p, _, _ = moments()
        at_least = np.cumsum(p[::-1], axis=0)[::-1][1:]                    # P(X >= v), v=1..m
        observed = (x[None, :] >= k[1:, None]).astype(float)
        gradient = -(observed - at_least).sum(axis=1)
        order = np.arange(m)
        high = np.maximum(order[:, None], order[None, :])
        hessian = _step_hessian(at_least, high)
        tau = tau - np.linalg.solve(hessian, gradient)
        shift = tau.mean()
        tau, delta = tau - shift, delta + shift
        shift = severity.mean()
        severity, delta = severity - shift, delta + shift
        shift = theta[keep_student].mean()
        theta, delta = np.where(keep_student, theta - shift, 0.0), delta - shift
        change = np.abs(np.concatenate([theta, delta, severity, tau]) - before).max()
        if change < tolerance:
            converged = True
            break
    p, e, v = moments()
    log_likelihood = float(np.log(p[x.astype(int), np.arange(x.size)]).sum())
    return {"severity": severity, "tau": tau, "delta": delta, "iterations": sweeps,
            "converged": converged, "log_likelihood": log_likelihood,
            "se": 1.0 / np.sqrt(np.bincount(rater, v, n_r)),
            "excluded_students": int((~keep_student).sum())}


def _step_hessian(at_least: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The steps' Hessian: minus the sum over ratings of Cov(1[X >= a], 1[X >= b]), a, b = 1..m.

    ``at_least`` is m x ratings, P(X >= v) for v = 1..m.

    Cov(1[X >= a], 1[X >= b]) = P(X >= max(a, b)) - P(X >= a) P(X >= b).
    """
    joint = at_least.sum(axis=1)[high]
    return -(joint - at_least @ at_least.T)


def run_jml(ratings: Ratings, truth: dict) -> dict[str, Any]:
    started = time.perf_counter()
    fit = fit_jml(ratings)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "severity_rmse": _rmse(fit["severity"], truth["severity"]),
            "tau_rmse": _rmse(fit["tau"], truth["tau"]), "mean_se": float(fit["se"].mean()),
            "log_likelihood": fit["log_likelihood"], "iterations": fit["iterations"],
            "converged": fit["converged"], "excluded_students": fit["excluded_students"],
            "severity": fit["severity"].tolist()}


def _timed(run) -> dict[str, Any]:
    cpu = time.process_time()
    result = run()
    result["cpu_seconds"] = time.process_time() - cpu
    return result


def _best(run, repeats: int) -> dict[str, Any]:
    results = [_timed(run) for _ in range(repeats)]
    best = min(results, key=lambda r: r["seconds"])
    best["all_seconds"] = [r["seconds"] for r in results]
    best["all_cpu_seconds"] = [r["cpu_seconds"] for r in results]
    best["min_cpu_seconds"] = min(best["all_cpu_seconds"])
    return best


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--raters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--skip-mirt", action="store_true")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)
    ratings, truth = make_data(args.students, args.raters, args.seed)
    environment = {"python": platform.python_version(), "numpy": _version("numpy"),
                   "scipy": _version("scipy"), "mirt": _version("mirt"),
                   "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    print(f"Rater benchmark: {ratings.n} ratings, {ratings.n_students} students x "
          f"{ratings.n_criteria} criteria x {ratings.n_raters} raters (2 a student); "
          f"{environment}")
    runs: list[tuple[str, str, Any]] = [
        ("ours", "rating-scale", lambda: run_ours(ratings, truth, "rating-scale")),
        ("ours", "partial-credit", lambda: run_ours(ratings, truth, "partial-credit")),
        ("jml", "rating-scale", lambda: run_jml(ratings, truth)),
    ]
    if not args.skip_mirt:
        if environment["mirt"] is None:
            print("mirt is not installed (pip install -e '.[bench]'): skipped")
        else:
            runs += [
                ("mirt", "rating-scale", lambda: run_mirt(ratings, truth, "rating-scale", None)),
                ("mirt q31", "rating-scale",
                 lambda: run_mirt(ratings, truth, "rating-scale", 31)),
                ("mirt", "partial-credit",
                 lambda: run_mirt(ratings, truth, "partial-credit", None)),
            ]
    results = []
    for engine, model, run in runs:
        try:
            result = _best(run, args.repeats)
        except Exception as error:  # a peer failing is a result, not a crash of the benchmark
            result = {"error": f"{type(error).__name__}: {error}"}
        results.append({"engine": engine, "model": model, **result})
    ours = {r["model"]: r["seconds"] for r in results if r["engine"] == "ours"}
    header = (f"{'engine':10s} {'model':15s} {'seconds':>8s} {'cpu s':>6s} {'x ours':>7s} "
              f"{'sev rmse':>9s} "
              f"{'tau rmse':>9s} {'mean se':>8s} {'log-lik':>12s} {'iter':>5s} conv")
    print(header)
    print("-" * len(header))
    for r in results:
        if "error" in r:
            print(f"{r['engine']:10s} {r['model']:15s} {r['error']}")
            continue
        ratio = r["seconds"] / ours[r["model"]] if r["model"] in ours else math.nan
        r["x_ours"] = ratio
        print(f"{r['engine']:10s} {r['model']:15s} {r['seconds']:8.3f} "
              f"{r['min_cpu_seconds']:6.2f} {ratio:7.2f} "
              f"{r['severity_rmse']:9.4f} {r['tau_rmse']:9.4f} {r['mean_se']:8.4f} "
              f"{r['log_likelihood']:12.2f} {r['iterations']:5d} {r['converged']}")
    mirt_rs = next((r for r in results if r["engine"] == "mirt" and r["model"] == "rating-scale"
                    and "error" not in r), None)
    ours_rs = next(r for r in results if r["engine"] == "ours" and r["model"] == "rating-scale")
    if mirt_rs is not None:
        difference = np.abs(np.array(mirt_rs["severity"]) - np.array(ours_rs["severity"])).max()
        print(f"ours vs mirt (rating scale): largest severity difference {difference:.2e}, "
              "log-likelihood difference "
              f"{ours_rs['log_likelihood'] - mirt_rs['log_likelihood']:+.2e}")
    status = 0
    slowest = max(ours.values())
    verdict = "met" if slowest <= TARGET_SECONDS else "MISSED"
    print(f"target: ours at most {TARGET_SECONDS:.0f} s -> {verdict} (slowest model "
          f"{slowest:.2f} s)")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump({"settings": vars(args), "environment": environment, "results": results},
                      handle, indent=2, default=float)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
