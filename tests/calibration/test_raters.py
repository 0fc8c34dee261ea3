"""The many-facet Rasch model: recovery, interval coverage, independent computations, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import optimize

from calibration import calibrate
from calibration.data import from_long
from calibration.errors import CalibrationError
from calibration.raters import (
    DisconnectedDesignError,
    Ratings,
    RatingsError,
    fit_mfrm,
    rater_groups,
    ratings_from_records,
    read_ratings,
    simulate_ratings,
)

TAU = np.array([-1.2, 0.1, 1.1])


def _truth(rng: np.random.Generator, n_raters: int = 12, n_criteria: int = 6):
    severity = np.linspace(-0.8, 0.8, n_raters)
    severity -= severity.mean()
    difficulty = rng.normal(0.0, 0.5, n_criteria)
    return severity, difficulty


def _records(ratings: Ratings) -> list[dict]:
    return [
        {"student_id": ratings.student_ids[s], "criterion": ratings.criterion_ids[i],
         "rater": ratings.rater_ids[r], "score": int(k)}
        for s, i, r, k in zip(ratings.student, ratings.criterion, ratings.rater,
                              ratings.raw_score, strict=True)
    ]


# -- recovery and coverage ----------------------------------------------------------------------


def test_recovery_300_students_6_criteria_12_raters_two_a_student():
    """300 students, 6 criteria of 4 levels, 12 raters, 2 raters a student (random pairs).

    Measured (seed 14): severity RMSE 0.096 (mean SE 0.098), threshold RMSE 0.043,
    difficulty RMSE 0.109, sigma 0.944 (true 1).
    """
    rng = np.random.default_rng(14)
    severity, difficulty = _truth(rng)
    data = simulate_ratings(rng.normal(0, 1, 300), difficulty, severity, TAU, seed=rng)
    assert len(rater_groups(data)) == 1
    result = fit_mfrm(data, "rating-scale")
    assert result.converged
    estimated_tau = np.array([t["tau"] for t in result.thresholds])
    estimated_difficulty = np.array([c["difficulty"] for c in result.criteria])
    rmse = {
        "severity": math.sqrt(np.mean((result.severity - severity) ** 2)),
        "thresholds": math.sqrt(np.mean((estimated_tau - TAU) ** 2)),
        "difficulty": math.sqrt(np.mean((estimated_difficulty - difficulty) ** 2)),
    }
    report = (f"RMSE {rmse}, mean severity SE {result.severity_se.mean():.3f}, "
              f"sigma {result.sigma:.3f}")
    print(report)
    assert rmse["severity"] < 0.12, report
    assert rmse["thresholds"] < 0.12, report
    assert rmse["difficulty"] < 0.15, report
    assert 0.85 < result.sigma < 1.15, report
    # identification as stated: raters centred
    assert abs(result.severity.sum()) < 1e-9
    assert abs(estimated_tau.sum()) < 1e-9
    assert "sum of severities = 0" in result.identification
    # the SE is about what 330 ratings a rater give (information ~ n * var of a rating)
    assert 0.06 < result.severity_se.mean() < 0.13, report
    # the ordering of the raters is recovered
    assert np.corrcoef(result.severity, severity)[0, 1] > 0.97, report


def test_rater_95_percent_intervals_cover_at_the_nominal_rate():
    """40 replications x 12 raters = 480 intervals; 3-sigma binomial band around 0.95.

    Measured (seed 2026): 465 of 480 covered (0.969); over 100 other replications (1200
    intervals) 0.946, with the mean SE 0.0969 against an empirical sd of 0.0968.
    """
    rng = np.random.default_rng(2026)
    severity, difficulty = _truth(rng)
    covered = total = 0
    for _ in range(40):
        data = simulate_ratings(rng.normal(0, 1, 300), difficulty, severity, TAU, seed=rng)
        result = fit_mfrm(data, "rating-scale", quadrature=21)
        inside = np.abs(result.severity - severity) <= 1.959964 * result.severity_se
        covered += int(inside.sum())
        total += inside.size
    rate = covered / total
    band = 3 * math.sqrt(0.95 * 0.05 / total)
    print(f"coverage {covered}/{total} = {rate:.3f}")
    assert abs(rate - 0.95) <= band, f"coverage {covered}/{total} = {rate:.3f}"


def test_fair_average_and_student_measures():
    rng = np.random.default_rng(3)
    severity, difficulty = _truth(rng, n_raters=6, n_criteria=4)
    theta = rng.normal(0, 1, 400)
    data = simulate_ratings(theta, difficulty, severity, TAU, seed=rng)
    shifted = Ratings(data.student_ids, data.criterion_ids, data.rater_ids, data.student,
                      data.criterion, data.rater, data.score, data.n_categories,
                      np.full(4, 1, dtype=np.int64))
    result = fit_mfrm(shifted, "rating-scale")
    measure = np.array([s["measure"] for s in result.students])
    fair = np.array([s["fair_average"] for s in result.students])
    assert np.corrcoef(measure, theta)[0, 1] > 0.85
    # fair averages are in rubric units (levels 1..4) and increase with the measure
    assert fair.min() > 1 and fair.max() < 4
    order = np.argsort(measure)
    rises = np.diff(measure[order]) > 1e-9  # students with the same ratings share a measure
    assert np.all(np.diff(fair[order])[rises] > 0) and rises.sum() > 100
    # hand computation for one student: average rater (s = 0), mean over the criteria
    delta = np.array([c["difficulty"] for c in result.criteria])
    tau = np.array([t["tau"] for t in result.thresholds])
    m = measure[0]
    expected = []
    for d in delta:
        logits = [0.0]
        for t in tau:
            logits.append(logits[-1] + m - d - t)
        p = np.exp(logits) / np.exp(logits).sum()
        expected.append(1 + (p * np.arange(4)).sum())
    assert fair[0] == pytest.approx(np.mean(expected), abs=1e-10)
    assert all(s["n"] == 8 for s in result.students)
    assert all(s["se"] > 0 for s in result.students)


def test_fit_flags_an_erratic_rater_and_a_central_tendency_rater():
    rng = np.random.default_rng(8)
    severity, difficulty = _truth(rng, n_raters=8)
    data = simulate_ratings(rng.normal(0, 1, 600), difficulty, severity, TAU, seed=rng)
    score = data.score.copy()
    erratic = data.rater == 0
    score[erratic] = rng.integers(0, 4, erratic.sum())
    middle = data.rater == 1
    score[middle] = np.where(score[middle] <= 1, 1, 2)
    changed = Ratings(data.student_ids, data.criterion_ids, data.rater_ids, data.student,
                      data.criterion, data.rater, score, data.n_categories, data.min_score)
    result = fit_mfrm(changed, "rating-scale")
    rows = {r["rater"]: r for r in result.raters}
    others = [rows[r] for r in data.rater_ids[2:]]
    assert rows["R01"]["infit"] > 1.3 and rows["R01"]["outfit_z"] > 3
    assert rows["R02"]["infit"] < 0.8 and rows["R02"]["infit_z"] < -3
    assert all(0.8 < r["infit"] < 1.25 for r in others), others
    assert all(r["n"] == (data.rater == k).sum() for k, r in enumerate(result.raters))


# -- against independent computations -----------------------------------------------------------


def test_partial_credit_with_one_rater_equals_the_pcm_of_calibration_em():
    """Severities fixed at 0 (a single rater): the partial-credit MFRM is the PCM calibrate fits."""
    rng = np.random.default_rng(5)
    steps = np.array([[-1.0, 0.0, 1.0], [-1.0, 0.2, 0.8], [-0.5, 0.2, 0.3], [-0.3, -0.1, 0.4]])
    data = simulate_ratings(rng.normal(0, 1.2, 500), np.array([-0.5, 0.0, 0.4, 0.8]),
                            np.zeros(1), steps, raters_per_student=1, seed=rng)
    assert data.n_raters == 1  # built directly: the CSV reader refuses a single rater
    ours = fit_mfrm(data, "partial-credit", quadrature=49)
    theirs = calibrate(
        from_long([data.student_ids[s] for s in data.student],
                  [data.criterion_ids[i] for i in data.criterion], data.score),
        "pcm", quadrature=49, tolerance=1e-7)
    assert ours.raters[0]["severity"] == 0.0
    # both: students N(0, sigma^2); PCM thresholds b_ik = delta_i + tau_ik
    b = np.array([[c["difficulty"] + t["tau"] for t in ours.thresholds
                   if t["criterion"] == c["criterion"]] for c in ours.criteria])
    assert theirs.bank.item_ids == data.criterion_ids
    np.testing.assert_allclose(b, theirs.bank.thresholds[:, :3], atol=1e-3)
    assert ours.log_likelihood == pytest.approx(theirs.log_likelihood, abs=1e-3)
    assert ours.sigma == pytest.approx(theirs.latent_sd, abs=1e-3)


def _direct_marginal_ml(ratings: Ratings, nodes: int = 61):
    """The rating-scale MFRM marginal likelihood, written out per student, maximised by scipy."""
    z, w = hermegauss(nodes)
    w = w / w.sum()
    n_i, n_r, m = ratings.n_criteria, ratings.n_raters, int(ratings.n_categories[0]) - 1
    by_student = [np.flatnonzero(ratings.student == n) for n in range(ratings.n_students)]

    def unpack(x):
        delta = x[:n_i]
        s = np.append(x[n_i:n_i + n_r - 1], -x[n_i:n_i + n_r - 1].sum())
        tau = np.append(x[n_i + n_r - 1:n_i + n_r - 1 + m - 1],
                        -x[n_i + n_r - 1:n_i + n_r - 1 + m - 1].sum())
        return delta, s, tau, math.exp(x[-1])

    def loglik(x):
        delta, s, tau, sigma = unpack(x)
        total = 0.0
        for rows in by_student:
            likelihood = np.ones_like(z)
            for o in rows:
                i, r, k = ratings.criterion[o], ratings.rater[o], ratings.score[o]
                numerators = [np.zeros_like(z)]
                for v in range(m):
                    numerators.append(numerators[-1] + sigma * z - delta[i] - s[r] - tau[v])
                numerators = np.exp(np.array(numerators))
                likelihood = likelihood * numerators[k] / numerators.sum(axis=0)
            total += math.log((w * likelihood).sum())
        return total

    x0 = np.zeros(n_i + n_r - 1 + m - 1 + 1)
    best = optimize.minimize(lambda x: -loglik(x), x0, method="BFGS",
                             options={"gtol": 1e-7})
    return unpack(best.x), -best.fun


def test_rating_scale_equals_a_direct_scipy_maximisation_of_the_marginal_likelihood():
    rng = np.random.default_rng(11)
    data = simulate_ratings(rng.normal(0, 1.0, 60), np.array([-0.4, 0.1, 0.5]),
                            np.array([-0.5, 0.0, 0.2, 0.3]), TAU, seed=rng)
    (delta, s, tau, sigma), loglik = _direct_marginal_ml(data)
    ours = fit_mfrm(data, "rating-scale", quadrature=61)
    assert ours.log_likelihood == pytest.approx(loglik, abs=1e-3)
    np.testing.assert_allclose([c["difficulty"] for c in ours.criteria], delta, atol=2e-3)
    np.testing.assert_allclose(ours.severity, s, atol=2e-3)
    np.testing.assert_allclose([t["tau"] for t in ours.thresholds], tau, atol=2e-3)
    assert ours.sigma == pytest.approx(sigma, abs=2e-3)
    assert ours.n_parameters == 3 + 3 + 2 + 1


def test_standard_errors_are_the_inverse_observed_information():
    """Against a finite-difference Hessian of the same likelihood built from scratch."""
    rng = np.random.default_rng(12)
    data = simulate_ratings(rng.normal(0, 1.0, 60), np.array([-0.4, 0.1, 0.5]),
                            np.array([-0.5, 0.0, 0.2, 0.3]), TAU, seed=rng)
    ours = fit_mfrm(data, "rating-scale", quadrature=61)
    from calibration.raters import _design, _objective

    design = _design(data, "rating-scale")
    z = np.linspace(-6, 6, 61)
    log_w = -0.5 * z**2 - np.log(np.exp(-0.5 * z**2).sum())
    full = np.concatenate([[c["difficulty"] for c in ours.criteria], ours.severity,
                           [t["tau"] for t in ours.thresholds], [math.log(ours.sigma)]])
    free = np.linalg.lstsq(design.expand, full, rcond=None)[0]
    h = 1e-3
    n = free.size
    hessian = np.zeros((n, n))

    def f(x):
        return _objective(design, design.expand @ x, z, log_w, gradient=False)[0]

    for a in range(n):
        for b in range(n):
            ea, eb = np.eye(n)[a] * h, np.eye(n)[b] * h
            hessian[a, b] = (f(free + ea + eb) - f(free + ea - eb) - f(free - ea + eb)
                             + f(free - ea - eb)) / (4 * h * h)
    covariance = design.expand @ np.linalg.inv(-hessian) @ design.expand.T
    se = np.sqrt(np.diag(covariance))
    np.testing.assert_allclose(ours.severity_se, se[3:7], rtol=1e-3)
    np.testing.assert_allclose([c["se"] for c in ours.criteria], se[:3], rtol=1e-3)
    assert "Louis" in ours.settings["se_method"]


@pytest.mark.parametrize("model", ["rating-scale", "partial-credit"])
def test_louis_information_equals_differences_of_the_gradient(model):
    """The two routes to the observed information, at a point away from the optimum too."""
    from calibration.raters import (
        _design,
        _information,
        _information_by_differences,
        _objective,
    )

    rng = np.random.default_rng(13)
    data = simulate_ratings(rng.normal(0, 1, 200), np.array([-0.4, 0.1, 0.5]),
                            np.array([-0.5, 0.0, 0.2, 0.3]), TAU, seed=rng)
    design = _design(data, model)
    z = np.linspace(-6, 6, 31)
    log_w = -0.5 * z**2 - np.log(np.exp(-0.5 * z**2).sum())
    free = rng.normal(0, 0.3, design.expand.shape[1])
    _, gradient, posterior = _objective(design, design.expand @ free, z, log_w)
    louis = _information(design, design.expand @ free, z, posterior)
    differences = _information_by_differences(design, free, z, log_w,
                                              design.expand.T @ gradient)
    np.testing.assert_allclose(louis, differences, rtol=1e-4, atol=1e-3 * np.abs(louis).max())


# -- bad input -----------------------------------------------------------------------------------


def _write(tmp_path, text: str):
    path = tmp_path / "ratings.csv"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = ("student_id,criterion,rater,score\n"
        "s1,clarity,R1,1\ns1,clarity,R2,2\ns2,clarity,R1,3\ns2,clarity,R2,3\n")


def test_read_ratings_numbers_rows_and_subtracts_the_lowest_level(tmp_path):
    ratings = read_ratings(_write(tmp_path, GOOD))
    assert ratings.rater_ids == ("R1", "R2")
    assert ratings.score.tolist() == [0, 1, 2, 2]
    assert ratings.min_score.tolist() == [1]
    assert ratings.n_categories.tolist() == [3]
    assert ratings.raw_score.tolist() == [1, 2, 3, 3]
    assert ratings.rows.tolist() == [2, 3, 4, 5]
    zero = read_ratings(_write(tmp_path, GOOD), min_score=0)
    assert zero.score.tolist() == [1, 2, 3, 3] and zero.n_categories.tolist() == [4]


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("student_id,criterion,rater,score\n", "no ratings"),
    ("student_id,rater,grade\ns1,R1,2\n", "missing columns criterion, score"),
    ("student_id,criterion,rater,score\ns1,c,R1,1\ns1,c,R2,two\n", "row 3, score: 'two' is not an "
     "integer"),
    ("student_id,criterion,rater,score\ns1,c,R1,1\ns1,c,R2,2.5\n", "row 3, score: '2.5'"),
    ("student_id,criterion,rater,score\ns1,c,R1,1\ns1,c,R2,\n", "row 3, score: nothing is not"),
    ("student_id,criterion,rater,score\ns1,c,R1,1\ns1,c,,2\n", "row 3, rater: empty"),
    ("student_id,criterion,rater,score\ns1,c,R1,1\ns1,c\n", "row 3, rater: missing"),
    ("student_id,criterion,rater,score\ns1,c,R1,1\ns2,c,R1,2\n", "one rater only ('R1')"),
    ("student_id,criterion,rater,score\ns1,c,R1,2\ns1,c,R2,2\ns2,c,R1,2\n",
     "criteria with a single observed level cannot be measured: 'c' (only 2)"),
    ("student_id,criterion,rater,score\ns1,c,R1,1\ns1,c,R2,2\ns2,c,R1,1\ns1,c,R1,3\n",
     "row 5: a second score by rater 'R1' for student 's1' on criterion 'c' (first in row 2)"),
])
def test_bad_files_are_refused_naming_row_and_field(tmp_path, text, message):
    with pytest.raises(RatingsError) as caught:
        read_ratings(_write(tmp_path, text))
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "ratings.csv"))
    assert isinstance(caught.value, CalibrationError)


def test_min_score_above_a_score_is_refused_naming_the_row():
    records = [{"student_id": "a", "criterion": "c", "rater": r, "score": k}
               for r, k in (("R1", 1), ("R2", 2))]
    with pytest.raises(RatingsError, match=r"row 1, score: 1 is below the lowest level 2 of "
                                           r"criterion 'c'"):
        ratings_from_records(records, min_score=2)
    with pytest.raises(RatingsError, match="min_score: 'x' is not an integer"):
        ratings_from_records(records, min_score="x")


def test_a_disconnected_design_is_refused_naming_the_groups():
    rng = np.random.default_rng(4)
    severity, difficulty = _truth(rng, n_raters=4, n_criteria=3)
    first = simulate_ratings(rng.normal(0, 1, 40), difficulty, severity[:2], TAU, seed=rng)
    second = simulate_ratings(rng.normal(0, 1, 40), difficulty, severity[2:], TAU, seed=rng)
    records = _records(first) + [
        {**r, "student_id": "B" + r["student_id"],
         "rater": {"R01": "R11", "R02": "R12"}[r["rater"]]} for r in _records(second)]
    data = ratings_from_records(records)
    assert rater_groups(data) == [("R01", "R02"), ("R11", "R12")]
    with pytest.raises(DisconnectedDesignError) as caught:
        fit_mfrm(data)
    assert str(caught.value) == (
        "raters form 2 groups that share no student: {R01, R02} and {R11, R12}; severities of "
        "different groups cannot be compared")
    assert caught.value.groups == (("R01", "R02"), ("R11", "R12"))
    # one shared student joins them
    bridge = [{"student_id": "S01", "criterion": "C1", "rater": "R11", "score": 1}]
    assert len(rater_groups(ratings_from_records(records + bridge))) == 1


def test_model_settings_and_levels_are_checked():
    records = [{"student_id": s, "criterion": c, "rater": r, "score": k}
               for s, c, r, k in (("a", "x", "R1", 0), ("a", "x", "R2", 2), ("b", "x", "R1", 1),
                                  ("a", "y", "R1", 0), ("a", "y", "R2", 1), ("b", "y", "R2", 1))]
    data = ratings_from_records(records)
    with pytest.raises(RatingsError, match="unknown model 'facets'"):
        fit_mfrm(data, "facets")
    with pytest.raises(RatingsError, match=r"same number of levels on every criterion \(levels: "
                                           r"'x' 3, 'y' 2\); use partial-credit"):
        fit_mfrm(data, "rating-scale")
    gap = ratings_from_records([*records[:1], {**records[1], "score": 3}, *records[2:]])
    with pytest.raises(RatingsError, match="never used: 'x' level 2"):
        fit_mfrm(gap, "partial-credit")
    with pytest.raises(RatingsError, match="quadrature must be an integer from 5"):
        fit_mfrm(data, "partial-credit", quadrature=2)


def test_an_unused_level_under_the_rating_scale_is_named_in_the_rubrics_scores():
    """A rubric scored 1-4 whose "1" nobody gave: the refusal says "score 1", the number the
    teacher sees on the rubric, not the 0-based category the model counts."""
    records = [{"student_id": s, "criterion": c, "rater": r, "score": k}
               for s, c, r, k in (("a", "x", "R1", 2), ("a", "x", "R2", 4), ("b", "x", "R1", 3),
                                  ("a", "y", "R1", 2), ("a", "y", "R2", 3), ("b", "y", "R2", 4))]
    data = ratings_from_records(records, min_score=1)
    with pytest.raises(RatingsError, match="levels never used on any criterion: score 1; every"):
        fit_mfrm(data, "rating-scale")


def test_a_rater_with_only_extreme_ratings_is_refused_naming_them():
    rng = np.random.default_rng(9)
    severity, difficulty = _truth(rng, n_raters=4, n_criteria=3)
    data = simulate_ratings(rng.normal(0, 1, 100), difficulty, severity, TAU, seed=rng)
    score = np.where(data.rater == 2, 3, data.score)
    score = np.where(data.rater == 3, 0, score)
    extreme = Ratings(data.student_ids, data.criterion_ids, data.rater_ids, data.student,
                      data.criterion, data.rater, score, data.n_categories, data.min_score)
    with pytest.raises(RatingsError, match=r"raters who gave only the lowest or only the highest "
                                           r"level have no finite severity: 'R03' \(highest\), "
                                           r"'R04' \(lowest\)"):
        fit_mfrm(extreme)


def test_to_dict_has_the_issue_keys_and_is_json_ready():
    import json

    rng = np.random.default_rng(6)
    severity, difficulty = _truth(rng, n_raters=4, n_criteria=3)
    data = simulate_ratings(rng.normal(0, 1, 80), difficulty, severity, TAU, seed=rng)
    out = fit_mfrm(data, "partial-credit").to_dict()
    json.dumps(out, allow_nan=False)
    assert {"raters", "criteria", "thresholds", "students", "log_likelihood", "sigma",
            "n_parameters", "converged", "iterations", "identification"} <= set(out)
    assert set(out["raters"][0]) == {"rater", "severity", "se", "infit", "outfit", "infit_z",
                                     "outfit_z", "n"}
    assert set(out["criteria"][0]) == {"criterion", "difficulty", "se", "infit", "outfit",
                                       "infit_z", "outfit_z", "n"}
    assert set(out["thresholds"][0]) == {"criterion", "step", "tau", "se"}
    assert len(out["thresholds"]) == 3 * 3
    assert set(out["students"][0]) == {"student_id", "measure", "se", "fair_average", "n"}
    assert not fit_mfrm(data, max_iterations=2).converged
    progress: list[tuple[int, float]] = []
    fit_mfrm(data, progress=lambda i, ll: progress.append((i, ll)))
    assert progress and progress[0][0] == 1 and all(ll < 0 for _, ll in progress)
