"""Tests of marginal maximum likelihood calibration by EM (calibration.em).

What the estimates are checked against, never the module's own helpers:

- truth, in simulations drawn with ``cat_engine.models.simulate_responses`` (parameter recovery,
  standard-error coverage, a CAT-like sparse design, fixed-parameter calibration);
- girth 0.8, an independent implementation (2PL, GRM, Rasch, its ``pcm_mml``, which is a
  generalized partial credit model);
- published numbers: the LSAT7 data of R's mirt and the 2PL estimates, log-likelihood, AIC and BIC
  that mirt's documentation prints for them;
- direct maximisation of the marginal likelihood with ``scipy.optimize.minimize`` on Gauss-Hermite
  quadrature, written here from the textbook formulas (LSAT7 2PL, a partial credit model with an
  estimated latent sd);
- the marginal log-likelihood integrated person by person on a fine grid with
  ``cat_engine.models.log_likelihood``.
"""

from __future__ import annotations

import itertools
import json
import math

import girth
import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import minimize
from scipy.special import expit, log_expit, logsumexp
from scipy.stats import norm

from calibration import CalibrationResult, calibrate
from calibration.data import ResponseData, from_long, from_wide
from calibration.errors import CalibrationError
from cat_engine import models
from cat_engine.bank import ItemBank, ItemParameters


def _rmse(estimate, truth) -> float:
    diff = np.asarray(estimate, dtype=float) - np.asarray(truth, dtype=float)
    return float(np.sqrt(np.nanmean(diff**2)))


def _simulate(items: list[ItemParameters], theta: np.ndarray, rng: np.random.Generator):
    """Complete data: every person answers every item."""
    bank = ItemBank.from_items(items)
    responses = models.simulate_responses(bank, np.arange(len(items))[None, :], theta[:, None],
                                          rng)
    return bank, from_wide(responses, item_ids=bank.item_ids), responses


def _two_pl_items(n: int, rng: np.random.Generator, prefix: str = "i") -> list[ItemParameters]:
    a = rng.uniform(0.7, 2.0, n)
    b = rng.normal(0.0, 1.0, n)
    return [ItemParameters(f"{prefix}{j}", "2pl", a=float(a[j]), b=float(b[j])) for j in range(n)]


# ---------------------------------------------------------------------------------------------
# Parameter recovery, and agreement with girth


@pytest.fixture(scope="module")
def two_pl_run():
    rng = np.random.default_rng(20240501)
    items = _two_pl_items(30, rng)
    bank, data, responses = _simulate(items, rng.normal(0, 1, 3000), rng)
    return bank, data, responses, calibrate(data, "2pl")


def test_2pl_recovers_parameters_no_worse_than_girth(two_pl_run):
    bank, data, responses, result = two_pl_run
    assert isinstance(result, CalibrationResult)
    assert result.converged and result.bank.item_ids == data.item_ids
    rmse_a, rmse_b = _rmse(result.bank.a, bank.a), _rmse(result.bank.b, bank.b)
    assert rmse_a < 0.1 and rmse_b < 0.1
    reference = girth.twopl_mml(responses.T.astype(int))
    girth_a = _rmse(reference["Discrimination"], bank.a)
    girth_b = _rmse(reference["Difficulty"], bank.b)
    assert rmse_a <= girth_a + 0.01
    assert rmse_b <= girth_b + 0.01
    # the two implementations estimate the same quantities
    assert np.abs(result.bank.a - reference["Discrimination"]).max() < 0.05
    assert np.abs(result.bank.b - reference["Difficulty"]).max() < 0.05


def test_grm_recovers_thresholds_and_agrees_with_girth():
    rng = np.random.default_rng(7)
    a = rng.uniform(0.8, 2.0, 10)
    thresholds = np.sort(rng.normal(0, 1, (10, 3)), axis=1)
    items = [ItemParameters(f"g{j}", "grm", a=float(a[j]), thresholds=tuple(thresholds[j]))
             for j in range(10)]
    _, data, responses = _simulate(items, rng.normal(0, 1, 2000), rng)
    result = calibrate(data, "grm")
    assert result.converged
    assert _rmse(result.bank.thresholds, thresholds) < 0.15
    assert _rmse(result.bank.a, a) < 0.15
    reference = girth.grm_mml(responses.T.astype(int))
    assert np.abs(result.bank.thresholds - reference["Difficulty"]).max() < 0.05
    assert np.abs(result.bank.a - reference["Discrimination"]).max() < 0.05


def test_rasch_agrees_with_girth_and_estimates_the_latent_sd():
    rng = np.random.default_rng(8)
    b = rng.normal(0, 1, 20)
    items = [ItemParameters(f"r{j}", "rasch", b=float(b[j])) for j in range(20)]
    # with N(0, 1) held (estimate_latent=False) the model is girth's rasch_mml (which matches the
    # marginal proportions: the same estimates when the model holds)
    _, data, responses = _simulate(items, rng.normal(0, 1, 2000), rng)
    fixed_scale = calibrate(data, "rasch", estimate_latent=False)
    assert fixed_scale.latent_sd == 1.0
    reference = girth.rasch_mml(responses.T.astype(int))["Difficulty"]
    assert np.abs(fixed_scale.bank.b - reference).max() < 0.02

    _, data, responses = _simulate(items, rng.normal(0, 1.3, 2000), rng)
    matrix = responses.T.astype(int)
    # by default a = 1 and the sd is estimated: the same model as girth's onepl_mml with N(0, 1),
    # its common slope being the sd and its difficulties b / sd
    rasch = calibrate(data, "rasch")
    onepl = girth.onepl_mml(matrix)
    assert rasch.settings["estimate_latent"] == "sd" and rasch.latent_mean == 0.0
    assert rasch.latent_sd == pytest.approx(onepl["Discrimination"], abs=0.02)
    assert rasch.latent_sd == pytest.approx(1.3, abs=0.1)
    assert np.abs(rasch.bank.b / rasch.latent_sd - onepl["Difficulty"]).max() < 0.02
    assert np.all(rasch.bank.a == 1.0) and np.isnan(rasch.se["a"]).all()
    assert _rmse(rasch.bank.b, b) < 0.1
    # 1PL: one common slope, N(0, 1): a = sd of the Rasch run, b = b / sd
    one = calibrate(data, "1pl")
    assert np.ptp(one.bank.a) == 0.0
    assert one.bank.a[0] == pytest.approx(rasch.latent_sd, abs=0.01)
    assert np.abs(one.bank.b - rasch.bank.b / rasch.latent_sd).max() < 0.01


def test_gpcm_agrees_with_girth_and_pcm_recovers_truth():
    rng = np.random.default_rng(9)
    a = rng.uniform(0.8, 1.8, 10)
    steps = rng.normal(0, 1, (10, 3))
    items = [ItemParameters(f"p{j}", "gpcm", a=float(a[j]), thresholds=tuple(steps[j]))
             for j in range(10)]
    _, data, responses = _simulate(items, rng.normal(0, 1, 2000), rng)
    result = calibrate(data, "gpcm")
    # girth's pcm_mml estimates a slope per item: it is the generalized partial credit model
    reference = girth.pcm_mml(responses.T.astype(int), options={"max_iteration": 200})
    assert np.abs(result.bank.thresholds - reference["Difficulty"]).max() < 0.05
    assert np.abs(result.bank.a - reference["Discrimination"]).max() < 0.05
    assert _rmse(result.bank.thresholds, steps) < 0.15

    items = [ItemParameters(f"q{j}", "pcm", thresholds=tuple(steps[j])) for j in range(10)]
    _, data, _ = _simulate(items, rng.normal(0, 0.8, 2000), rng)
    pcm = calibrate(data, "pcm")
    assert pcm.converged and np.all(pcm.bank.a == 1.0)
    assert pcm.latent_sd == pytest.approx(0.8, abs=0.08)
    assert _rmse(pcm.bank.thresholds, steps) < 0.15


def test_3pl_with_the_default_beta_prior_on_c():
    rng = np.random.default_rng(10)
    a = rng.uniform(0.8, 2.0, 20)
    b = rng.normal(0, 1, 20)
    c = rng.uniform(0.1, 0.3, 20)
    items = [ItemParameters(f"t{j}", "3pl", a=float(a[j]), b=float(b[j]), c=float(c[j]))
             for j in range(20)]
    _, data, _ = _simulate(items, rng.normal(0, 1, 5000), rng)
    result = calibrate(data, "3pl")
    assert result.settings["priors"]["c"] == ["beta", 5.0, 17.0]
    assert _rmse(result.bank.b, b) < 0.2
    assert abs(result.bank.c.mean() - c.mean()) < 0.04
    assert _rmse(result.bank.c, c) < 0.08
    assert np.isfinite(result.se["c"]).all() and np.isnan(result.se["d"]).all()
    # priors are penalties: a tight prior pulls the estimates to it
    tight = calibrate(data, "3pl", priors={"c": ("beta", 400, 1600), "a": ("lognormal", 0, 0.5)})
    assert tight.settings["priors"]["a"] == ["lognormal", 0.0, 0.5]
    assert np.abs(tight.bank.c - 0.2).max() < 0.02
    shrunk = calibrate(data, "3pl", priors={"b": ("normal", 0.0, 0.3)})
    assert shrunk.converged
    assert np.abs(shrunk.bank.b).mean() < 0.9 * np.abs(result.bank.b).mean()
    assert result.log_likelihood > shrunk.log_likelihood  # reported without the penalty


# ---------------------------------------------------------------------------------------------
# Sparse data: a CAT-like design


def _cat_design(a, b, theta, length, rng, n_random=10, top=40) -> ResponseData:
    """Each person answers ``length`` of the items: ``n_random`` at random, then one of the
    ``top`` most informative items at the running EAP estimate (2PL), as a CAT with randomesque
    exposure control would. Selection depends on observed responses only (ignorable)."""
    n_persons, n_items = theta.size, a.size
    grid = np.linspace(-4, 4, 41)
    log_post = np.tile(-0.5 * grid**2, (n_persons, 1))
    used = np.zeros((n_persons, n_items), dtype=bool)
    rows = np.arange(n_persons)
    people, chosen, answers = [], [], []
    for step in range(length):
        if step < n_random:
            pick = np.argmax(np.where(used, -1.0, rng.random((n_persons, n_items))), axis=1)
        else:
            weights = np.exp(log_post - log_post.max(1, keepdims=True))
            eap = weights @ grid / weights.sum(1)
            p = expit(a * (eap[:, None] - b))
            info = np.where(used, -np.inf, a * a * p * (1 - p))
            best = np.argpartition(-info, top, axis=1)[:, :top]
            pick = best[rows, rng.integers(0, top, n_persons)]
        used[rows, pick] = True
        x = (rng.random(n_persons) < expit(a[pick] * (theta - b[pick]))).astype(np.intp)
        z = a[pick, None] * (grid - b[pick, None])
        log_post += np.where(x[:, None] == 1, log_expit(z), log_expit(-z))
        people.append(rows.copy())
        chosen.append(pick)
        answers.append(x)
    return ResponseData(
        person_ids=tuple(str(i) for i in range(n_persons)),
        item_ids=tuple(f"c{j}" for j in range(n_items)),
        person=np.concatenate(people), item=np.concatenate(chosen),
        response=np.concatenate(answers),
    )


def test_sparse_cat_like_design_recovers_parameters():
    rng = np.random.default_rng(11)
    a = rng.uniform(0.8, 1.6, 200)
    b = rng.uniform(-2, 2, 200)
    data = _cat_design(a, b, rng.normal(0, 1, 10000), 25, rng)
    assert data.n_obs == 10000 * 25
    result = calibrate(data, "2pl")
    assert result.converged
    assert result.settings["estep"] == "sparse"
    assert _rmse(result.bank.a, a) < 0.15
    assert _rmse(result.bank.b, b) < 0.15
    coverage = np.mean(np.abs(result.bank.b - b) < 2 * result.se["b"])
    assert 0.88 <= coverage <= 0.995


# ---------------------------------------------------------------------------------------------
# Fixed-parameter calibration of pretest items onto the anchors' scale


def test_fixed_parameter_calibration_puts_new_items_on_the_anchors_scale():
    rng = np.random.default_rng(12)
    items = _two_pl_items(40, rng)
    bank, data, _ = _simulate(items, rng.normal(0.5, 1.2, 3000), rng)
    anchors = ItemBank.from_items([*items[:30], ItemParameters("not-in-data", "2pl", b=0.0)])
    new = slice(30, 40)

    result = calibrate(data, "2pl", fixed=anchors)
    assert result.settings["estimate_latent"] == "mean_sd"
    assert result.fixed.tolist() == [True] * 30 + [False] * 10
    np.testing.assert_array_equal(result.bank.a[:30], bank.a[:30])  # anchors exactly as given
    np.testing.assert_array_equal(result.bank.b[:30], bank.b[:30])
    assert np.isnan(result.se["b"][:30]).all() and np.isfinite(result.se["b"][new]).all()
    assert result.latent_mean == pytest.approx(0.5, abs=0.1)
    assert result.latent_sd == pytest.approx(1.2, abs=0.1)
    assert _rmse(result.bank.b[new], bank.b[new]) < 0.15
    assert _rmse(result.bank.a[new], bank.a[new]) < 0.15
    fpc_bias = float(np.mean(result.bank.b[new] - bank.b[new]))
    assert abs(fpc_bias) < 0.05
    assert result.n_parameters == 10 * 2 + 2  # pretest items, latent mean and sd

    # the same test fails without the anchors: free calibration under N(0, 1) puts the new items
    # on the sample's own scale, b about (b - 0.5) / 1.2
    free = calibrate(data, "2pl")
    assert _rmse(free.bank.b[new], bank.b[new]) > 0.3
    # and keeping N(0, 1) with the anchors (no prior update) biases the new items towards it
    stale = calibrate(data, "2pl", fixed=anchors, estimate_latent=False)
    assert (stale.latent_mean, stale.latent_sd) == (0.0, 1.0)
    stale_bias = float(np.mean(stale.bank.b[new] - bank.b[new]))
    assert stale_bias < -0.02 and stale_bias < fpc_bias - 0.02


# ---------------------------------------------------------------------------------------------
# Log-likelihood, AIC, BIC, standard errors


def test_log_likelihood_aic_bic_match_an_independent_integration():
    rng = np.random.default_rng(13)
    items = [
        ItemParameters("d1", "2pl", a=1.2, b=-0.5), ItemParameters("d2", "2pl", a=0.8, b=0.7),
        ItemParameters("t1", "3pl", a=1.5, b=0.2, c=0.2),
        ItemParameters("g1", "grm", a=1.3, thresholds=(-1.0, 0.2, 1.1)),
        ItemParameters("p1", "gpcm", a=0.9, thresholds=(0.5, -0.3, 0.8)),
        ItemParameters("r1", "rasch", b=0.3), ItemParameters("q1", "pcm", thresholds=(-0.5, 0.5)),
        ItemParameters("o1", "1pl", b=0.1), ItemParameters("o2", "1pl", b=-0.8),
    ]
    bank = ItemBank.from_items(items)
    responses = models.simulate_responses(bank, np.arange(9)[None, :],
                                          rng.normal(0, 1, 600)[:, None], rng).astype(float)
    responses[rng.random(responses.shape) < 0.25] = np.nan  # incomplete: the sparse layout
    data = from_wide(responses, item_ids=bank.item_ids)
    result = calibrate(data, {i.item_id: i.model for i in items})
    assert result.converged
    # independent: each person's likelihood integrated on a fine grid against N(mean, sd)
    grid = np.linspace(-8, 8, 801)
    density = norm.pdf(grid, result.latent_mean, result.latent_sd)
    total = 0.0
    for row in responses:
        seen = np.flatnonzero(~np.isnan(row))
        if seen.size:
            log_l = models.log_likelihood(result.bank, seen, row[seen].astype(int), grid)
            total += math.log(np.trapezoid(np.exp(log_l) * density, grid))
    assert result.log_likelihood == pytest.approx(total, abs=1e-4)
    # free parameters: 2 + 2 + 3 (3pl) + 4 (grm) + 4 (gpcm) + 1 (rasch) + 2 (pcm) + 2 intercepts
    # and one common slope (1pl) + the latent sd (estimated because of rasch and pcm items)
    assert result.settings["estimate_latent"] == "sd"
    assert result.n_parameters == 2 + 2 + 3 + 4 + 4 + 1 + 2 + 2 + 1 + 1
    n_persons = int(np.any(~np.isnan(responses), axis=1).sum())
    assert result.n_persons == n_persons
    k = result.n_parameters
    assert result.aic == pytest.approx(-2 * total + 2 * k, abs=1e-3)
    assert result.bic == pytest.approx(-2 * total + k * math.log(n_persons), abs=1e-3)
    assert result.bank.a[7] == result.bank.a[8]  # the 1pl items share their slope


def test_standard_errors_cover_the_truth():
    """About 95 % of true parameters lie within 2 SE of the estimates (5 samples x 40 items)."""
    inside_b, inside_a = [], []
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        items = _two_pl_items(40, rng)
        bank, data, _ = _simulate(items, rng.normal(0, 1, 2000), rng)
        result = calibrate(data, "2pl")
        assert result.settings["se_method"].endswith("full inverse")
        inside_b.append(np.abs(result.bank.b - bank.b) < 2 * result.se["b"])
        inside_a.append(np.abs(result.bank.a - bank.a) < 2 * result.se["a"])
    assert 0.90 <= np.mean(inside_b) <= 0.98
    assert 0.90 <= np.mean(inside_a) <= 0.98


# ---------------------------------------------------------------------------------------------
# A published classic: LSAT7

# LSAT section 7 (Bock & Lieberman, 1970), 1000 examinees, 5 items: the pattern frequencies of
# R's mirt dataset ``LSAT7`` (patterns in binary order 00000, 00001, ..., 11111; its first rows,
# 12, 19, 1, 7, 3, 19, are printed in mirt's ``expand.table`` documentation).
LSAT7_FREQUENCIES = [12, 19, 1, 7, 3, 19, 3, 17, 10, 5, 3, 7, 7, 23, 8, 28,
                     7, 39, 11, 34, 14, 51, 15, 90, 6, 25, 7, 35, 18, 136, 32, 308]
# mirt 1.45.5, ``mirt(expand.table(LSAT7), 1)`` (2PL, slope-intercept a1, d), as printed in its
# documentation (PLCI.mirt and imputeMissing examples): converged to 1e-4 after 28 EM cycles,
# log-likelihood -2658.805, AIC 5337.61, BIC 5386.688.
MIRT_LSAT7_A = [0.9879254, 1.0808847, 1.7058006, 0.7651853, 0.7357980]
MIRT_LSAT7_D = [1.8560605, 0.8079786, 1.8042187, 0.4859966, 1.8545127]


def _lsat7() -> tuple[np.ndarray, np.ndarray]:
    patterns = np.array(list(itertools.product([0, 1], repeat=5)))
    return patterns, np.array(LSAT7_FREQUENCIES)


def test_lsat7_matches_mirt_published_estimates():
    patterns, freq = _lsat7()
    responses = np.repeat(patterns, freq, axis=0)
    assert responses.shape == (1000, 5)
    np.testing.assert_allclose(responses.mean(0), [0.828, 0.658, 0.772, 0.606, 0.843])
    data = from_wide(responses, item_ids=[f"Item.{k}" for k in range(1, 6)])
    result = calibrate(data, "2pl")
    intercepts = -result.bank.a * result.bank.b
    # mirt stopped at its 1e-4 tolerance: agreement to 5e-3 (the flat direction of item 3)
    np.testing.assert_allclose(result.bank.a, MIRT_LSAT7_A, atol=5e-3)
    np.testing.assert_allclose(intercepts, MIRT_LSAT7_D, atol=5e-3)
    assert result.log_likelihood == pytest.approx(-2658.805, abs=5e-4)
    assert result.aic == pytest.approx(5337.61, abs=5e-3)
    assert result.bic == pytest.approx(5386.688, abs=5e-4)
    assert result.n_parameters == 10 and result.n_persons == 1000


def test_lsat7_matches_direct_maximisation_of_the_marginal_likelihood():
    """scipy.optimize.minimize over all 10 parameters of the pattern likelihood, 61-point
    Gauss-Hermite quadrature: agreement to 3 decimals (EM run to a tolerance of 1e-6)."""
    patterns, freq = _lsat7()
    nodes, weights = hermegauss(61)
    log_w = np.log(weights / weights.sum())

    def negative_log_likelihood(params):
        a, d = params[:5], params[5:]
        z = a[:, None] * nodes[None, :] + d[:, None]  # (items, nodes)
        log_p = np.where(patterns[:, :, None] == 1, log_expit(z)[None], log_expit(-z)[None])
        return -float(freq @ logsumexp(log_p.sum(1) + log_w, axis=1))

    best = minimize(negative_log_likelihood, np.r_[np.ones(5), np.zeros(5)], method="BFGS",
                    options={"gtol": 1e-8})
    data = from_wide(np.repeat(patterns, freq, axis=0))
    result = calibrate(data, "2pl", tolerance=1e-6)
    np.testing.assert_allclose(result.bank.a, best.x[:5], atol=1e-3)
    np.testing.assert_allclose(-result.bank.a * result.bank.b, best.x[5:], atol=1e-3)
    assert result.log_likelihood == pytest.approx(-best.fun, abs=1e-4)


def test_pcm_with_estimated_sd_matches_direct_maximisation():
    """Partial credit model, a = 1, latent N(0, sd^2) with sd estimated: the EM estimates equal
    a direct maximisation (thresholds and log sd, Gauss-Hermite) to 3 decimals."""
    rng = np.random.default_rng(14)
    steps = np.array([[-0.8, 0.4], [0.0, 0.9], [-1.2, -0.1], [0.5, 1.3]])
    items = [ItemParameters(f"q{j}", "pcm", thresholds=tuple(steps[j])) for j in range(4)]
    _, data, responses = _simulate(items, rng.normal(0, 1.4, 600), rng)
    patterns, freq = np.unique(responses, axis=0, return_counts=True)
    nodes, weights = hermegauss(61)
    log_w = np.log(weights / weights.sum())
    k = np.arange(3)

    def negative_log_likelihood(params):
        b, sd = params[:8].reshape(4, 2), math.exp(params[8])
        theta = sd * nodes
        # z_k = sum_{v <= k} (theta - b_v), z_0 = 0
        z = k[None, :, None] * theta[None, None, :] - np.concatenate(
            [np.zeros((4, 1)), np.cumsum(b, axis=1)], axis=1)[:, :, None]
        log_p = z - logsumexp(z, axis=1, keepdims=True)  # (items, categories, nodes)
        chosen = log_p[np.arange(4)[None, :], patterns, :]  # (patterns, items, nodes)
        return -float(freq @ logsumexp(chosen.sum(1) + log_w, axis=1))

    best = minimize(negative_log_likelihood, np.zeros(9), method="BFGS", options={"gtol": 1e-8})
    result = calibrate(data, "pcm", tolerance=1e-6)
    np.testing.assert_allclose(result.bank.thresholds, best.x[:8].reshape(4, 2), atol=1e-3)
    assert result.latent_sd == pytest.approx(math.exp(best.x[8]), abs=1e-3)
    assert result.log_likelihood == pytest.approx(-best.fun, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# The girth backend


def test_girth_backend_converts_and_scores_girths_estimates():
    rng = np.random.default_rng(15)
    items = _two_pl_items(6, rng) + [
        ItemParameters(f"g{j}", "grm", a=1.1, thresholds=(-1.0, 0.0, 1.0)) for j in range(3)]
    bank = ItemBank.from_items(items)
    responses = models.simulate_responses(bank, np.arange(9)[None, :],
                                          rng.normal(0, 1, 1500)[:, None], rng).astype(float)
    responses[rng.random(responses.shape) < 0.1] = np.nan
    data = from_wide(responses, item_ids=bank.item_ids)
    kinds = {i.item_id: i.model for i in items}
    via_girth = calibrate(data, kinds, backend="girth")
    assert via_girth.settings["girth_function"] == "grm_mml"
    assert np.isnan(via_girth.se["a"]).all()
    matrix = np.where(np.isnan(responses), girth.INVALID_RESPONSE, responses).T.astype(int)
    direct = girth.grm_mml(matrix, options={"quadrature_n": 49, "quadrature_bounds": (-6, 6),
                                            "max_iteration": 500})
    np.testing.assert_allclose(via_girth.bank.a, direct["Discrimination"])
    ours = calibrate(data, kinds)
    # our log-likelihood at girth's estimates cannot exceed the maximum found by EM
    assert via_girth.log_likelihood <= ours.log_likelihood + 1e-6
    assert via_girth.log_likelihood == pytest.approx(ours.log_likelihood, abs=1.0)
    assert np.abs(via_girth.bank.a - ours.bank.a).max() < 0.05


@pytest.mark.parametrize(("model", "message"), [
    ("3pl", "does not estimate 3pl"),
    ("pcm", "use 'gpcm'"),
])
def test_girth_backend_rejects_what_it_cannot_estimate(model, message):
    rng = np.random.default_rng(16)
    if model == "pcm":
        items = [ItemParameters(f"x{j}", "pcm", thresholds=(-0.5, 0.5)) for j in range(4)]
    else:
        items = _two_pl_items(4, rng, prefix="x")
    _, data, _ = _simulate(items, rng.normal(0, 1, 300), rng)
    with pytest.raises(CalibrationError, match=message) as caught:
        calibrate(data, model, backend="girth")
    assert "'x0'" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Results


def test_records_summary_and_progress(two_pl_run):
    _, data, _, result = two_pl_run
    records = result.to_records()
    assert [r["item_id"] for r in records] == list(data.item_ids)
    first = records[0]
    assert first["model"] == "2pl" and first["se_a"] > 0 and first["se_b"] > 0
    assert first["se_c"] is None and first["fixed"] is False and first["n_responses"] == 3000
    again = ItemBank.from_records(records)
    np.testing.assert_allclose(again.a, result.bank.a)
    np.testing.assert_allclose(again.b, result.bank.b)
    summary = result.summary()
    assert summary["n_items"] == 30 and summary["n_persons"] == 3000
    assert summary["log_likelihood"] == result.log_likelihood and summary["converged"]
    for key in ("model", "priors", "tolerance", "quadrature", "backend", "se_method", "D"):
        assert key in result.settings
    json.dumps({**summary, "settings": result.settings, "records": records})  # plain types only

    seen: list[tuple[int, float]] = []
    calibrate(data, "2pl", progress=lambda i, ll: seen.append((i, ll)))
    assert [i for i, _ in seen] == list(range(1, len(seen) + 1))
    assert all(b >= a - 1e-3 for (_, a), (_, b) in itertools.pairwise(seen))  # EM climbs


def test_polytomous_records_round_trip():
    rng = np.random.default_rng(17)
    items = [ItemParameters(f"g{j}", "grm", a=1.2, thresholds=(-1.0, 0.0, 1.0))
             for j in range(4)] + _two_pl_items(3, rng)
    _, data, _ = _simulate(items, rng.normal(0, 1, 800), rng)
    result = calibrate(data, {i.item_id: i.model for i in items})
    records = result.to_records()
    assert records[0]["b"] is None and records[0]["b3"] is not None
    assert records[0]["se_b1"] > 0 and records[-1]["b1"] is None
    again = ItemBank.from_records(records)
    np.testing.assert_allclose(again.thresholds, result.bank.thresholds)
    assert np.isfinite(result.se["thresholds"][:4]).all()


def test_max_iterations_reports_no_convergence(two_pl_run):
    _, data, _, _ = two_pl_run
    result = calibrate(data, "2pl", max_iterations=2)
    assert result.iterations == 2 and not result.converged


# ---------------------------------------------------------------------------------------------
# Bad input


def _long(rows: list[tuple[str, str, int]]) -> ResponseData:
    people, items, responses = zip(*rows, strict=True)
    return from_long(people, items, responses)


def _varied(item: str, n: int = 20, top: int = 1) -> list[tuple[str, str, int]]:
    return [(f"p{i}", item, i % (top + 1)) for i in range(n)]


def test_bad_inputs_name_the_items():
    good = _varied("ok")
    with pytest.raises(CalibrationError, match="unknown model 'nominal'"):
        calibrate(_long(good), "nominal")
    with pytest.raises(CalibrationError, match=r"'nominal' \(item 'ok'\)"):
        calibrate(_long(good), {"ok": "nominal"})
    with pytest.raises(CalibrationError, match=r"no model given for item.*'other'"):
        calibrate(_long(good + _varied("other")), {"ok": "2pl"})

    with pytest.raises(CalibrationError, match=r"dichotomous model.*'poly' \(category 2\)"):
        calibrate(_long(good + _varied("poly", top=2)), "2pl")

    gap = [(f"p{i}", "gap", (0, 1, 3)[i % 3]) for i in range(30)]
    with pytest.raises(CalibrationError, match=r"never observed.*'gap' \(category 2 of 0..3\)"):
        calibrate(_long(good + gap), "grm")

    constant = [(f"p{i}", "flat", 1) for i in range(20)]
    with pytest.raises(CalibrationError, match=r"no variance.*'flat' \(all 1\)"):
        calibrate(_long(good + constant), "2pl")

    few = _varied("rare", n=6)
    with pytest.raises(CalibrationError, match=r"fewer than 10 responses.*'rare' \(6\)"):
        calibrate(_long(good + few), "2pl")
    assert calibrate(_long(good + _varied("rare", n=20)), "2pl", min_responses=5)

    # several problems at once: all of them, each naming its items
    with pytest.raises(CalibrationError) as caught:
        calibrate(_long(good + constant + few), "2pl")
    assert "'flat'" in str(caught.value) and "'rare'" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_bad_settings_are_refused():
    rng = np.random.default_rng(18)
    items = _two_pl_items(5, rng)
    _, data, _ = _simulate(items, rng.normal(0, 1, 200), rng)
    with pytest.raises(CalibrationError, match="cannot be estimated without anchor"):
        calibrate(data, "2pl", estimate_latent=True)
    with pytest.raises(CalibrationError, match="unknown prior 'g'"):
        calibrate(data, "3pl", priors={"g": ("beta", 5, 17)})
    with pytest.raises(CalibrationError, match="prior on 'c' must be one of beta"):
        calibrate(data, "3pl", priors={"c": ("normal", 0.2, 0.1)})
    with pytest.raises(CalibrationError, match="unknown backend"):
        calibrate(data, "2pl", backend="mirt")
    with pytest.raises(CalibrationError, match=r"D = 1\.702"):
        calibrate(data, "2pl", fixed=ItemBank.from_items(items[:2], D=1.702))
    with pytest.raises(CalibrationError, match=r"category 2, the bank has 0\.\.1"):
        poly = [(f"p{i}", "i0", i % 3) for i in range(30)]
        calibrate(_long(poly + _varied("z")), "2pl", fixed=ItemBank.from_items(items[:1]))
