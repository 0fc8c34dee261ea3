"""Tests of rubric criteria on the bank's theta scale (calibration.rubric_scale).

What the estimates are checked against, never the module's own helpers:

- truth, in a simulation where the same students take a CAT (cat_engine.simulation) on a bank
  whose scale is not N(0, 1) for them and are scored on a rubric generated on the same theta
  (the issue's "one scale" test), and parameter recovery;
- a direct maximisation of the marginal likelihood with scipy on a tiny data set, written here
  person by person from the textbook GPCM formula, with the anchors fixed.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

from calibration.data import ResponseData
from calibration.errors import CalibrationError
from calibration.rubric_scale import (
    IDENTIFICATION,
    RubricScaleError,
    RubricScaleResult,
    calibrate_rubric,
)
from cat_engine import models
from cat_engine.bank import ItemBank
from cat_engine.simulation import simulate

N_CRITERIA, N_LEVELS, N_RATERS = 4, 4, 6
TRUE_MEAN, TRUE_SD = 0.5, 1.2


def _rmse(estimate, truth) -> float:
    diff = np.asarray(estimate, dtype=float) - np.asarray(truth, dtype=float)
    return float(np.sqrt(np.nanmean(diff**2)))


def _demo_like_bank(rng: np.random.Generator, n_items: int = 200) -> ItemBank:
    """2PL items with some 3-category GPCM items, difficulties spread as in the demo bank."""
    records = []
    for j in range(n_items):
        if j % 10 == 0:
            steps = sorted(rng.normal(0.0, 1.0, 2).tolist())
            records.append({"item_id": f"p{j}", "model": "gpcm",
                            "a": float(rng.lognormal(0.0, 0.2)), "thresholds": steps})
        else:
            records.append({"item_id": f"i{j}", "model": "2pl",
                            "a": float(rng.lognormal(0.2, 0.25)), "b": float(rng.normal(0, 1.2))})
    return ItemBank.from_records(records)


class World:
    """Students who took a 20-item CAT and were scored on a rubric by 2 of 6 raters."""

    def __init__(self, n: int, seed: int, length: int = 20) -> None:
        rng = np.random.default_rng(seed)
        self.bank = bank = _demo_like_bank(rng)
        self.theta = theta = rng.normal(TRUE_MEAN, TRUE_SD, n)
        cat = simulate(bank, theta, {"stopping": {"max_items": length, "min_items": length}},
                       seed=seed)
        person = np.repeat(np.arange(n), cat.items.shape[1])
        item = cat.items.ravel()
        keep = item >= 0
        self.person, self.item = person[keep], item[keep]
        # the CAT's items, answered at the true theta (the CAT's own answers are not returned)
        self.answer = models.simulate_responses(bank, self.item, theta[self.person], rng)
        self.responses = ResponseData(tuple(f"s{p}" for p in range(n)), bank.item_ids,
                                      self.person, self.item, self.answer)
        self.a = rng.lognormal(0.0, 0.2, N_CRITERIA)
        self.thresholds = np.sort(rng.normal(0.3, 1.0, (N_CRITERIA, N_LEVELS - 1)), axis=1)
        severity = rng.normal(0.0, 0.5, N_RATERS)
        self.severity = severity - severity.mean()
        raters = np.array([rng.choice(N_RATERS, 2, replace=False) for _ in range(n)])
        self.student = np.repeat(np.arange(n), 2 * N_CRITERIA)
        self.rater = np.repeat(raters, N_CRITERIA, axis=1).ravel()
        self.criterion = np.tile(np.arange(N_CRITERIA), 2 * n)
        self.score = self.rate(self.a, self.thresholds, self.severity, rng)

    def rate(self, a, thresholds, severity, rng) -> np.ndarray:
        """Ratings drawn from the GPCM with thresholds + severity, on the students' theta."""
        virtual = ItemBank.from_records([
            {"item_id": f"c{i}r{r}", "model": "gpcm", "a": float(a[i]),
             "thresholds": (thresholds[i] + severity[r]).tolist()}
            for i in range(N_CRITERIA) for r in range(N_RATERS)])
        return models.simulate_responses(virtual, self.criterion * N_RATERS + self.rater,
                                         self.theta[self.student], rng)

    def calibrate(self, **kwargs) -> RubricScaleResult:
        return calibrate_rubric(self.bank, self.responses, self.student, self.criterion,
                                self.rater, self.score, N_LEVELS, **kwargs)


@pytest.fixture(scope="module")
def world() -> World:
    return World(1000, seed=14)


@pytest.fixture(scope="module")
def result(world) -> RubricScaleResult:
    return world.calibrate()


def _eap(log_lik: np.ndarray, grid: np.ndarray, mean: float, sd: float):
    """EAP and posterior sd of every row of ``log_lik`` (persons x grid) under N(mean, sd)."""
    log_post = log_lik - 0.5 * ((grid - mean) / sd) ** 2
    post = np.exp(log_post - logsumexp(log_post, axis=1, keepdims=True))
    eap = post @ grid
    return eap, np.sqrt(post @ grid**2 - eap**2)


def _by_person(log_p: np.ndarray, person: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, log_p.shape[1]))
    np.add.at(out, person, log_p)
    return out


def _rubric_log_lik(world: World, a, thresholds, severity, grid) -> np.ndarray:
    """Each student's rubric log-likelihood on ``grid``, from the textbook GPCM formula."""
    steps = thresholds[world.criterion] + severity[world.rater][:, None]  # (N, K-1)
    inc = a[world.criterion][:, None, None] * (grid[None, :, None] - steps[:, None, :])
    z = np.concatenate([np.zeros((*inc.shape[:2], 1)), np.cumsum(inc, -1)], -1)
    log_p = z - logsumexp(z, axis=-1, keepdims=True)
    chosen = np.take_along_axis(log_p, world.score[:, None, None], axis=-1)[..., 0]
    return _by_person(chosen, world.student, world.theta.size)


# ---------------------------------------------------------------------------------------------
# One scale (issue 14): rubric-only theta estimates land on the bank's scale


def test_rubric_only_estimates_are_on_the_banks_scale(world, result):
    grid = np.linspace(-6, 6, 241)
    n = world.theta.size
    cat_ll = _by_person(models.response_log_probability(
        world.bank, world.item[:, None], grid[None, :], world.answer[:, None]), world.person, n)
    # the calibrated rubric, through the virtual items the result publishes
    pairs = world.criterion * N_RATERS + world.rater
    virtual = result.shifted_items(np.repeat(np.arange(N_CRITERIA), N_RATERS),
                                   np.tile(np.arange(N_RATERS), N_CRITERIA))
    rubric_ll = _by_person(models.response_log_probability(
        virtual, pairs[:, None], grid[None, :], world.score[:, None]), world.student, n)
    mean, sd = result.latent_mean, result.latent_sd
    cat_eap, cat_psd = _eap(cat_ll, grid, mean, sd)
    rub_eap, rub_psd = _eap(rubric_ll, grid, mean, sd)

    # the scale: same centre as the CAT's, which the bank (not N(0, 1)) sets
    assert abs(mean - np.mean(world.theta)) < 0.05 and abs(sd - np.std(world.theta)) < 0.05
    assert abs(np.mean(rub_eap) - np.mean(cat_eap)) < 0.1
    assert abs(np.mean(rub_eap) - np.mean(world.theta)) < 0.1
    # correlation as the two reliabilities allow: rel = 1 - mean posterior variance / variance
    rel_cat = 1 - np.mean(cat_psd**2) / sd**2
    rel_rub = 1 - np.mean(rub_psd**2) / sd**2
    expected = math.sqrt(rel_cat * rel_rub)
    observed = float(np.corrcoef(cat_eap, rub_eap)[0, 1])
    assert 0.7 < rel_rub < rel_cat < 0.99
    assert abs(observed - expected) < 0.04, (observed, expected, rel_cat, rel_rub)
    # the reliabilities themselves are what the truth says they are
    assert abs(np.corrcoef(rub_eap, world.theta)[0, 1] ** 2 - rel_rub) < 0.04
    assert abs(np.corrcoef(cat_eap, world.theta)[0, 1] ** 2 - rel_cat) < 0.04


def test_a_rubric_calibrated_on_n01_would_be_off_the_banks_scale(world, result):
    """The test above can fail: the same rubric on a scale set by the rated students as N(0, 1)
    (what a calibration of the ratings alone does) puts their estimates half a logit off."""
    grid = np.linspace(-6, 6, 241)
    naive = _rubric_log_lik(world, world.a * TRUE_SD, (world.thresholds - TRUE_MEAN) / TRUE_SD,
                            world.severity / TRUE_SD, grid)
    naive_eap, _ = _eap(naive, grid, 0.0, 1.0)
    calibrated = _rubric_log_lik(world, result.a, result.thresholds, result.severity, grid)
    eap, _ = _eap(calibrated, grid, result.latent_mean, result.latent_sd)
    assert abs(np.mean(naive_eap) - np.mean(world.theta)) > 0.4
    assert abs(np.mean(eap) - np.mean(world.theta)) < 0.1


# ---------------------------------------------------------------------------------------------
# Recovery


def test_slopes_thresholds_and_severities_are_recovered(world, result):
    assert result.converged
    assert result.identification == IDENTIFICATION
    assert abs(result.severity.sum()) < 1e-9
    assert _rmse(result.a, world.a) < 0.1
    assert _rmse(result.thresholds, world.thresholds) < 0.12
    assert _rmse(result.severity, world.severity) < 0.06
    # standard errors of the right size: errors / se have a root mean square near 1
    z = np.concatenate([(result.a - world.a) / result.se["a"],
                        ((result.thresholds - world.thresholds) / result.se["thresholds"]).ravel(),
                        (result.severity - world.severity) / result.se["severity"]])
    assert 0.5 < math.sqrt(np.mean(z**2)) < 1.6
    assert np.all(np.abs(z) < 3.5)
    assert result.n_students == 1000 and result.n_ratings == 8000
    assert list(result.n_ratings_criterion) == [2000] * N_CRITERIA
    assert result.n_ratings_rater.sum() == 8000


def test_pcm_fixes_slopes_at_one(world):
    fit = world.calibrate(model="pcm", standard_errors=False)
    assert np.all(fit.a == 1.0)
    assert np.all(np.isnan(fit.se["a"]))
    assert fit.criterion_parameters(0)["model"] == "pcm"
    ItemBank.from_records([fit.criterion_parameters(i) for i in range(N_CRITERIA)])


# ---------------------------------------------------------------------------------------------
# The virtual items


def test_shifted_items_add_the_severity_and_an_unseen_rater_is_average(result):
    bank = result.shifted_items([1, 1, 2], [0, None, 5], item_ids=["x", "y", "z"])
    assert bank.item_ids == ("x", "y", "z")
    assert bank.D == result.D
    np.testing.assert_allclose(bank.thresholds[0], result.thresholds[1] + result.severity[0])
    np.testing.assert_allclose(bank.thresholds[1], result.thresholds[1])
    np.testing.assert_allclose(bank.a, result.a[[1, 1, 2]])
    record = result.criterion_parameters(2)
    assert set(record) == {"item_id", "model", "a", "thresholds"}
    assert len(record["thresholds"]) == N_LEVELS - 1
    # the rubric likelihood, by hand: category 2 of criterion 1 scored by rater 0 at theta 0.3
    a, steps = result.a[1], result.thresholds[1] + result.severity[0]
    z = np.concatenate([[0.0], np.cumsum(a * (0.3 - steps))])
    expected = z[2] - logsumexp(z)
    assert models.log_likelihood(bank, [0], [2], [0.3])[0] == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# The EM optimum is the maximum of the marginal likelihood (independent computation)


def _tiny(seed: int = 3):
    rng = np.random.default_rng(seed)
    n = 80
    anchors = ItemBank.from_records(
        [{"item_id": f"q{j}", "model": "2pl", "a": a, "b": b}
         for j, (a, b) in enumerate([(1.2, -1.0), (0.8, 0.0), (1.5, 0.5), (1.0, 1.2),
                                     (1.1, -0.3)])])
    theta = rng.normal(0.4, 1.1, n)
    answers = models.simulate_responses(anchors, np.arange(5)[None, :], theta[:, None], rng)
    person = np.repeat(np.arange(n), 5)
    item = np.tile(np.arange(5), n)
    responses = ResponseData(tuple(f"s{p}" for p in range(n)), anchors.item_ids, person, item,
                             answers.ravel())
    # 2 criteria with 3 categories, 3 raters, 2 raters a student
    raters = np.array([rng.choice(3, 2, replace=False) for _ in range(n)])
    student = np.repeat(np.arange(n), 4)
    rater = np.repeat(raters, 2, axis=1).ravel()
    criterion = np.tile([0, 1], 2 * n)
    truth = {0: (1.0, [-0.5, 0.6]), 1: (1.4, [0.0, 1.0])}
    severity = np.array([0.3, -0.1, -0.2])
    virtual = ItemBank.from_records([
        {"item_id": f"{i}{r}", "model": "gpcm", "a": truth[i][0],
         "thresholds": [t + severity[r] for t in truth[i][1]]} for i in (0, 1) for r in range(3)])
    score = models.simulate_responses(virtual, criterion * 3 + rater, theta[student], rng)
    return anchors, answers, responses, student, criterion, rater, score


def _direct_negative_log_likelihood(x, answers, student, criterion, rater, score, nodes):
    """From the formulas: 2PL anchors (fixed), GPCM criteria, N(mean, sd) on the nodes."""
    log_a = x[0:2]
    steps = x[2:6].reshape(2, 2)
    severity = np.array([x[6], x[7], -x[6] - x[7]])
    mean, sd = x[8], math.exp(x[9])
    a_anchor = np.array([1.2, 0.8, 1.5, 1.0, 1.1])
    b_anchor = np.array([-1.0, 0.0, 0.5, 1.2, -0.3])
    log_w = -0.5 * ((nodes - mean) / sd) ** 2
    log_w -= logsumexp(log_w)
    prob = expit(a_anchor[None, :, None] * (nodes[None, None, :] - b_anchor[None, :, None]))
    ll = np.log(np.where(answers[:, :, None] == 1, prob, 1 - prob)).sum(1) + log_w
    a = np.exp(log_a)[criterion][:, None]
    shifted = steps[criterion] + severity[rater][:, None]  # (ratings, 2)
    z1 = a * (nodes[None, :] - shifted[:, [0]])
    z2 = z1 + a * (nodes[None, :] - shifted[:, [1]])
    z = np.stack([np.zeros_like(z1), z1, z2])  # (3, ratings, nodes)
    chosen = np.choose(score[:, None], z) - logsumexp(z, axis=0)
    np.add.at(ll, student, chosen)
    return -logsumexp(ll, axis=1).sum()


def test_em_optimum_is_the_direct_maximum_of_the_marginal_likelihood():
    anchors, answers, responses, student, criterion, rater, score = _tiny()
    fit = calibrate_rubric(anchors, responses, student, criterion, rater, score, 3,
                           tolerance=1e-7, max_iterations=5000, quadrature=49,
                           min_rater_ratings=10)
    assert fit.converged
    nodes = np.linspace(-6, 6, 49)
    args = (answers, student, criterion, rater, score, nodes)
    start = np.array([0, 0, -0.5, 0.5, -0.5, 0.5, 0, 0, 0, 0], dtype=float)
    direct = minimize(_direct_negative_log_likelihood, start, args=args, method="BFGS",
                      options={"gtol": 1e-7})
    x = direct.x
    assert -direct.fun == pytest.approx(fit.log_likelihood, abs=1e-4)
    np.testing.assert_allclose(fit.a, np.exp(x[0:2]), atol=2e-3)
    np.testing.assert_allclose(fit.thresholds, x[2:6].reshape(2, 2), atol=2e-3)
    np.testing.assert_allclose(fit.severity, [x[6], x[7], -x[6] - x[7]], atol=2e-3)
    assert fit.latent_mean == pytest.approx(x[8], abs=2e-3)
    assert fit.latent_sd == pytest.approx(math.exp(x[9]), abs=2e-3)
    # standard errors: the inverse of the direct function's Hessian (central differences)
    h = 1e-3
    k = x.size
    hess = np.empty((k, k))
    f = lambda y: _direct_negative_log_likelihood(y, *args)  # noqa: E731
    for i in range(k):
        for j in range(i, k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            hess[i, j] = hess[j, i] = (f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j)
                                       + f(x - e_i - e_j)) / (4 * h * h)
    se = np.sqrt(np.diag(np.linalg.inv(hess)))
    np.testing.assert_allclose(fit.se["thresholds"].ravel(), se[2:6], rtol=0.02)
    np.testing.assert_allclose(fit.se["a"], np.exp(x[0:2]) * se[0:2], rtol=0.02)
    np.testing.assert_allclose(fit.se["severity"][:2], se[6:8], rtol=0.02)


# ---------------------------------------------------------------------------------------------
# Refusals


def _args():
    anchors, _, responses, student, criterion, rater, score = _tiny()
    return anchors, responses, student, criterion, rater, score


def test_a_student_index_out_of_range_is_refused():
    anchors, responses, student, criterion, rater, score = _args()
    student = student.copy()
    student[7] = 80
    with pytest.raises(RubricScaleError, match=r"student index out of range \(0 to 79\).*7"):
        calibrate_rubric(anchors, responses, student, criterion, rater, score, 3)


def test_a_category_nobody_used_is_refused_and_named():
    anchors, responses, student, criterion, rater, score = _args()
    score = np.where((criterion == 1) & (score == 2), 1, score)
    with pytest.raises(RubricScaleError, match="no rating used clarity category 2"):
        calibrate_rubric(anchors, responses, student, criterion, rater, score, 3,
                         criterion_names=["content", "clarity"])


def test_a_rater_with_too_few_ratings_is_refused():
    anchors, responses, student, criterion, rater, score = _args()
    rater = rater.copy()
    rater[:] = np.where(rater == 2, 0, rater)
    rater[:4] = 2
    with pytest.raises(RubricScaleError, match=r"fewer than 10 ratings: Ms Lee \(4\)"):
        calibrate_rubric(anchors, responses, student, criterion, rater, score, 3,
                         rater_names=["Mr A", "Ms B", "Ms Lee"])


def test_no_answers_to_anchor_items_is_refused():
    anchors, responses, student, criterion, rater, score = _args()
    empty = ResponseData(responses.person_ids, responses.item_ids, np.zeros(0, np.intp),
                         np.zeros(0, np.intp), np.zeros(0, np.intp))
    with pytest.raises(RubricScaleError, match="no answers to anchor items"):
        calibrate_rubric(anchors, empty, student, criterion, rater, score, 3)
    # answers by students who were not rated do not reach the rated ones' scale either
    others = ResponseData(responses.person_ids, responses.item_ids,
                          np.full(5, 79), np.arange(5), np.ones(5, np.intp))
    with pytest.raises(RubricScaleError, match="no rated student answered an anchor item"):
        calibrate_rubric(anchors, others, student[student < 79], criterion[student < 79],
                         rater[student < 79], score[student < 79], 3)


@pytest.mark.parametrize(("change", "message"), [
    ({"score": 3}, "score 3 of rating 0 is outside criterion 0's categories 0 to 2"),
    ({"model": "2pl"}, "model must be one of gpcm, pcm"),
    ({"quadrature": 2}, "quadrature must be an integer"),
])
def test_bad_scores_and_settings_are_refused(change, message):
    anchors, responses, student, criterion, rater, score = _args()
    if "score" in change:
        score = score.copy()
        score[0] = change.pop("score")
    with pytest.raises(CalibrationError, match=message):
        calibrate_rubric(anchors, responses, student, criterion, rater, score, 3, **change)


def test_progress_is_reported_every_cycle():
    anchors, responses, student, criterion, rater, score = _args()
    seen = []
    fit = calibrate_rubric(anchors, responses, student, criterion, rater, score, 3,
                           progress=lambda i, ll: seen.append((i, ll)), standard_errors=False)
    assert [i for i, _ in seen] == list(range(1, fit.iterations + 1))
    assert all(b[1] >= a[1] - 1e-6 for a, b in itertools.pairwise(seen))
