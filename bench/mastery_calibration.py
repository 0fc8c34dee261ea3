"""Are the reported probabilities of mastery calibrated? A simulation with known abilities.

    python -m bench.mastery_calibration [--students 5000] [--seed 15] [--cut 0.3] [--json OUT]

A population of ``--students`` students with six skills: ``theta_s = theta_g + delta_s``,
``theta_g ~ N(0, 1)``, ``delta_s ~ N(0, tau_s^2)`` with the known spreads :data:`TAU`. A bank of
100 items a skill (2PL, a ~ U(0.8, 2.0), b ~ N(0, 1.2^2); a fifth of them 3PL with c = 0.2).
Each student answers :data:`ITEMS_PER_SKILL` items of every skill chosen as a CAT would (the
skills in turn, each time the most informative unused item at the running EAP of all answers).
Skills 0-2 also have one rubric criterion (GPCM, 4 levels, thresholds -1.4, -0.1, 1.3) scored
by two raters of severity -0.3 and +0.3. Answers and scores are drawn from the model at the
student's true skill ability.

Every student's report figures come from :func:`reports.mastery.student_posterior` (one call per
student, the product's function, on pieces computed for all students at once), with the
population prior N(0, 1) and one cut ``--cut`` for every skill. Conditions:

``true tau``        the known spreads :data:`TAU`, all evidence fresh (decay 1);
``estimated tau``   the spreads the product would use: :func:`reports.mastery.skill_spread` of the
                    population's per-skill EAP (that skill's items, N(0, 1) prior, as a test's
                    stored result has them) against the overall EAP (all items);
``true tau, aged``  the known spreads, every answer and score 0-120 days old (half-life 180 days):
                    the evidence is tempered though the students did not change, so the
                    probabilities should be conservative (too close to 0.5), not overconfident.

For each condition the reported P(theta_s > cut) of every (student, skill) is binned into ten
bins of width 0.1; each bin shows the mean reported probability, the share truly above the cut,
n and a Wilson 95% interval of that share; then the Brier score and the expected calibration
error (ECE: the n-weighted mean |mean probability - share| over the bins).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
TAU = np.array([0.3, 0.4, 0.5, 0.5, 0.6, 0.7])
ITEMS_PER_SKILL = 4
ITEMS_PER_SKILL_IN_BANK = 100
RUBRIC_SKILLS = (0, 1, 2)
RUBRIC_THRESHOLDS = (-1.4, -0.1, 1.3)
SEVERITIES = (-0.3, 0.3)
CHUNK = 500


def _bank(rng: np.random.Generator):
    from cat_engine.bank import ItemBank

    records = []
    for s in range(len(TAU)):
        for j in range(ITEMS_PER_SKILL_IN_BANK):
            record = {"item_id": f"s{s}-{j}", "model": "2pl", "a": float(rng.uniform(0.8, 2.0)),
                      "b": float(rng.normal(0.0, 1.2))}
            if j % 5 == 0:
                record |= {"model": "3pl", "c": 0.2}
            records.append(record)
    return ItemBank.from_records(records)


def _rubric_bank():
    from cat_engine.bank import ItemBank

    return ItemBank.from_records([
        {"item_id": f"rater{r}", "model": "gpcm", "a": 1.0,
         "thresholds": [t + severity for t in RUBRIC_THRESHOLDS]}
        for r, severity in enumerate(SEVERITIES)])


def _adaptive(bank, theta: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Every student answers ITEMS_PER_SKILL items of each skill, as a CAT gives them: the
    skills in turn, each time the unused item of that skill with the most information at the
    student's running EAP (all answers so far, N(0, 1) prior). Selection depends on the answers
    only (never on the truth), so the design is ignorable, as a real CAT's is. Vectorised over
    students; a loop over the 24 positions. Returns items and answers, shape (N, S, k)."""
    from cat_engine.models import information, response_log_probability, simulate_responses
    from reports.mastery import GRID

    n_students, n_skills = theta.shape
    rows = np.arange(n_students)
    log_post = np.tile(-0.5 * GRID**2, (n_students, 1))
    used = np.zeros((n_students, len(bank)), dtype=bool)
    items = np.empty((n_students, n_skills, ITEMS_PER_SKILL), dtype=np.intp)
    answers = np.empty_like(items)
    for position in range(n_skills * ITEMS_PER_SKILL):
        skill, k = position % n_skills, position // n_skills
        w = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        estimate = (w @ GRID) / w.sum(axis=1)
        pool = np.arange(skill * ITEMS_PER_SKILL_IN_BANK, (skill + 1) * ITEMS_PER_SKILL_IN_BANK)
        info = information(bank, pool[None, :], estimate[:, None])          # (N, pool)
        info = np.where(used[:, pool], -np.inf, info)
        chosen = pool[np.argmax(info, axis=1)]
        answer = simulate_responses(bank, chosen, theta[:, skill], rng)
        used[rows, chosen] = True
        items[:, skill, k], answers[:, skill, k] = chosen, answer
        log_post += response_log_probability(bank, chosen[:, None], GRID[None, :],
                                             answer[:, None])
    return items, answers


def simulate(n_students: int, seed: int) -> dict[str, Any]:
    """The population, its answers and rubric scores, and the truth."""
    from cat_engine.models import simulate_responses

    rng = np.random.default_rng(seed)
    bank = _bank(rng)
    n_skills = len(TAU)
    general = rng.normal(0.0, 1.0, n_students)
    theta = general[:, None] + rng.normal(0.0, 1.0, (n_students, n_skills)) * TAU  # (N, S)
    items, answers = _adaptive(bank, theta, rng)
    rubric = _rubric_bank()
    raters = np.broadcast_to(np.arange(len(SEVERITIES)), (n_students, len(RUBRIC_SKILLS),
                                                            len(SEVERITIES)))
    scores = simulate_responses(rubric, raters, theta[:, RUBRIC_SKILLS, None], rng)
    ages_items = rng.uniform(0.0, 120.0, answers.shape)
    ages_scores = rng.uniform(0.0, 120.0, scores.shape)
    return {"bank": bank, "rubric": rubric, "theta": theta, "general": general, "items": items,
            "answers": answers, "raters": np.ascontiguousarray(raters), "scores": scores,
            "ages_items": ages_items, "ages_scores": ages_scores}


def product_tau(world: dict[str, Any]) -> np.ndarray:
    """The spreads as the product estimates them (see the module's doc)."""
    from cat_engine.models import response_log_probability
    from reports.mastery import GRID, skill_spread

    log_prior = -0.5 * GRID**2
    loglik = response_log_probability(world["bank"], world["items"][..., None], GRID,
                                      world["answers"][..., None]).sum(axis=2)  # (N, S, Q)

    def eap(log_post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = np.exp(log_post - log_post.max(axis=-1, keepdims=True))
        w /= w.sum(axis=-1, keepdims=True)
        mean = w @ GRID
        return mean, np.sqrt(np.maximum(w @ GRID**2 - mean**2, 0.0))

    skill_theta, skill_se = eap(loglik + log_prior)
    overall_theta, overall_se = eap(loglik.sum(axis=1) + log_prior)
    return np.array([skill_spread(skill_theta[:, s], skill_se[:, s], overall_theta, overall_se,
                                  bayesian=True).tau for s in range(len(TAU))])


def report_probabilities(world: dict[str, Any], tau: np.ndarray, cut: float,
                         half_life: float | None) -> tuple[np.ndarray, float]:
    """P(theta_s > cut) of every (student, skill) from student_posterior; and the seconds spent
    in the per-student calls."""
    from cat_engine.models import information, response_log_probability
    from reports.mastery import GRID, Pieces, decay_weights, student_posterior

    n_students, n_skills = world["theta"].shape
    names = [f"skill{s}" for s in range(n_skills)]
    taus = dict(zip(names, tau.tolist(), strict=True))
    cuts = dict.fromkeys(names, cut)
    out = np.empty((n_students, n_skills))
    in_calls = 0.0
    for start in range(0, n_students, CHUNK):
        rows = slice(start, min(start + CHUNK, n_students))
        items, answers = world["items"][rows], world["answers"][rows]
        item_ll = response_log_probability(world["bank"], items[..., None], GRID,
                                           answers[..., None])          # (n, S, k, Q)
        item_info = information(world["bank"], items[..., None], GRID)
        item_decay = decay_weights(world["ages_items"][rows], half_life)
        raters, scores = world["raters"][rows], world["scores"][rows]
        score_ll = response_log_probability(world["rubric"], raters[..., None], GRID,
                                            scores[..., None])          # (n, R, 2, Q)
        score_info = information(world["rubric"], raters[..., None], GRID)
        score_decay = decay_weights(world["ages_scores"][rows], half_life)
        started = time.perf_counter()
        for i in range(item_ll.shape[0]):
            evidence = {}
            for s, name in enumerate(names):
                ll, info, decay = item_ll[i, s], item_info[i, s], item_decay[i, s]
                if s in RUBRIC_SKILLS:
                    r = RUBRIC_SKILLS.index(s)
                    ll = np.vstack([ll, score_ll[i, r]])
                    info = np.vstack([info, score_info[i, r]])
                    decay = np.concatenate([decay, score_decay[i, r]])
                evidence[name] = Pieces(ll, info, decay)
            posterior = student_posterior(evidence, taus, cuts)
            out[start + i] = [posterior.skills[name].mastery_probability for name in names]
        in_calls += time.perf_counter() - started
    return out, in_calls


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's 95% interval of a share k / n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(centre - half), float(centre + half))


def calibration_table(probability: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Ten bins of the reported probability; Brier score and ECE."""
    p, y = probability.ravel(), truth.ravel().astype(float)
    bins = np.minimum((p * 10).astype(int), 9)
    rows = []
    ece = 0.0
    for k in range(10):
        mask = bins == k
        n = int(mask.sum())
        if n == 0:
            rows.append({"bin": f"{k / 10:.1f}-{(k + 1) / 10:.1f}", "n": 0})
            continue
        mean_p, share = float(p[mask].mean()), float(y[mask].mean())
        lo, hi = wilson(int(y[mask].sum()), n)
        ece += n / p.size * abs(mean_p - share)
        rows.append({"bin": f"{k / 10:.1f}-{(k + 1) / 10:.1f}", "mean_probability": mean_p,
                     "share_above": share, "n": n, "share_low": lo, "share_high": hi})
    return {"bins": rows, "brier": float(np.mean((p - y) ** 2)), "ece": float(ece),
            "n": int(p.size), "share_above": float(y.mean())}


def _print(name: str, table: dict[str, Any], extra: str) -> None:
    print(f"\n{name} ({extra}): Brier {table['brier']:.4f}, ECE {table['ece']:.4f}, "
          f"{table['n']} skill probabilities, {100 * table['share_above']:.1f}% truly above")
    print(f"{'bin':9s} {'mean P':>7s} {'share':>7s} {'n':>6s}  95% interval of the share")
    for row in table["bins"]:
        if row["n"] == 0:
            print(f"{row['bin']:9s} {'':>7s} {'':>7s} {0:6d}")
            continue
        print(f"{row['bin']:9s} {row['mean_probability']:7.3f} {row['share_above']:7.3f} "
              f"{row['n']:6d}  [{row['share_low']:.3f}, {row['share_high']:.3f}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--cut", type=float, default=0.3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    world = simulate(args.students, args.seed)
    truth = world["theta"] > args.cut
    estimated = product_tau(world)
    print(f"{args.students} students x {len(TAU)} skills, {ITEMS_PER_SKILL} items a skill"
          f" (+2 rubric scores on skills {', '.join(map(str, RUBRIC_SKILLS))}), cut {args.cut}")
    print("tau true:      " + " ".join(f"{t:.2f}" for t in TAU))
    print("tau estimated: " + " ".join(f"{t:.2f}" for t in estimated))
    results: dict[str, Any] = {"students": args.students, "seed": args.seed, "cut": args.cut,
                               "tau_true": TAU.tolist(), "tau_estimated": estimated.tolist(),
                               "conditions": {}}
    for name, tau, half_life in (("true tau", TAU, None), ("estimated tau", estimated, None),
                                 ("true tau, aged", TAU, 180.0)):
        probability, seconds = report_probabilities(world, tau, args.cut, half_life)
        table = calibration_table(probability, truth)
        table["seconds_in_student_posterior"] = round(seconds, 2)
        results["conditions"][name] = table
        _print(name, table, f"{seconds:.1f} s in {args.students} student_posterior calls, "
               f"{1000 * seconds / args.students:.2f} ms each")
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\ntotal {results['seconds']} s")
    OUT.mkdir(exist_ok=True)
    (args.json or OUT / "mastery_calibration.json").write_text(json.dumps(results, indent=2)
                                                                + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
