"""The mastery model (reports.mastery) against independent computations.

Every reference here is computed in the test itself: item response functions written out from
their formulas (not cat_engine's), adaptive quadrature (scipy.integrate.quad) for one skill's
posterior, a grid fifteen times finer and wider than the module's for the hierarchical prior,
closed forms where the likelihoods are Gaussian, and simulated populations whose true abilities
are known for the population figures. Only the Fisher information at the estimate is taken from
cat_engine.models.information, as the brief asks (it is what "information" means in the report).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.stats import norm

from cat_engine.bank import ItemBank
from cat_engine.models import information
from reports import mastery
from reports.mastery import (
    GRID,
    Block,
    Pieces,
    decay_weights,
    pieces,
    skill_posterior,
    skill_priors,
    skill_spreads,
    student_posterior,
    suggest,
)

STEP = float(GRID[1] - GRID[0])

# -- one skill's posterior: items and rubric pieces, each with its decay -------------------------

ITEMS = [
    {"item_id": "2pl-easy", "model": "2pl", "a": 1.4, "b": -0.3},
    {"item_id": "2pl-hard", "model": "2pl", "a": 0.9, "b": 0.8},
    {"item_id": "3pl-mid", "model": "3pl", "a": 1.7, "b": 0.2, "c": 0.2},
    {"item_id": "3pl-hard", "model": "3pl", "a": 1.1, "b": 1.3, "c": 0.25},
    # rubric criteria on the scale: GPCM, thresholds already shifted by the rater's severity
    {"item_id": "rubric-1", "model": "gpcm", "a": 0.8, "thresholds": [-1.2, 0.1, 1.4]},
    {"item_id": "rubric-2", "model": "gpcm", "a": 1.2, "thresholds": [-0.5, 0.4, 1.0]},
]
RESPONSES = [1, 0, 1, 0, 2, 1]
DECAY = [1.0, 0.8, 0.5, 0.95, 0.7, 1.0]
PRIOR_MEAN, PRIOR_SD = 0.3, 0.8


def _likelihood(theta: float, item: dict, response: int) -> float:
    """P(response | theta) from the model's formula, written out."""
    if item["model"] == "gpcm":
        steps = item["a"] * (theta - np.asarray(item["thresholds"]))
        z = np.concatenate([[0.0], np.cumsum(steps)])
        e = np.exp(z - z.max())
        return float(e[response] / e.sum())
    c = item.get("c", 0.0)
    p = c + (1.0 - c) / (1.0 + np.exp(-item["a"] * (theta - item["b"])))
    return float(p if response == 1 else 1.0 - p)


def _density(theta: float, skip: int | None = None) -> float:
    """Unnormalised posterior: normal prior x prod(likelihood_i ** decay_i), piece ``skip``
    left out."""
    value = np.exp(-0.5 * ((theta - PRIOR_MEAN) / PRIOR_SD) ** 2)
    for k, (item, response, decay) in enumerate(zip(ITEMS, RESPONSES, DECAY, strict=True)):
        if k != skip:
            value *= _likelihood(theta, item, response) ** decay
    return float(value)


def _quad(f, lo: float = -12.0, hi: float = 12.0) -> float:
    return integrate.quad(f, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]


def _moments(skip: int | None = None) -> tuple[float, float, float]:
    z = _quad(lambda t: _density(t, skip))
    mean = _quad(lambda t: t * _density(t, skip)) / z
    var = _quad(lambda t: (t - mean) ** 2 * _density(t, skip)) / z
    return z, mean, float(np.sqrt(var))


@pytest.fixture(scope="module")
def one_skill():
    bank = ItemBank.from_records(ITEMS)
    evidence = pieces([Block(bank, np.arange(4), np.array(RESPONSES[:4]), np.array(DECAY[:4])),
                       Block(bank, np.array([4, 5]), np.array(RESPONSES[4:]),
                             np.array(DECAY[4:]))])
    log_prior = norm.logpdf(GRID, PRIOR_MEAN, PRIOR_SD)
    return bank, evidence, log_prior


def test_posterior_moments_match_quadrature(one_skill) -> None:
    _bank, evidence, log_prior = one_skill
    post = skill_posterior(evidence, log_prior)
    _z, mean, sd = _moments()
    # The integrand is smooth and negligible at the grid's ends (+-6, the posterior sd is 0.5),
    # so the grid's sums converge geometrically: agreement to 1e-8 is what such sums give.
    assert post.theta == pytest.approx(mean, abs=1e-8)
    assert post.se == pytest.approx(sd, abs=1e-8)
    assert post.prior_mean == pytest.approx(PRIOR_MEAN, abs=1e-8)
    assert post.prior_sd == pytest.approx(PRIOR_SD, abs=1e-8)
    assert post.mastery_probability is None


@pytest.mark.parametrize("cut", [0.5, 0.0, -0.23, 1.1, 1.98])
def test_mastery_probability_and_interval_match_quadrature(one_skill, cut: float) -> None:
    _bank, evidence, log_prior = one_skill
    post = skill_posterior(evidence, log_prior, cut=cut)
    z, _mean, sd = _moments()
    above = _quad(lambda t: _density(t), cut, 12.0) / z
    # The module reads the posterior as a histogram of the grid's bins (mass spread evenly in
    # a bin). Its CDF is then off by at most h^2 max|f'| / 8 within a bin; for a posterior of sd
    # 0.51, max|f'| <= 0.242 / sd^2 = 0.93, so |error| <= 3e-4 (h = 0.05). 1e-3 leaves room.
    assert post.mastery_probability == pytest.approx(above, abs=1e-3)

    def cdf(x: float) -> float:
        return _quad(lambda t: _density(t), -12.0, x) / z

    lo, hi = (optimize.brentq(lambda x, p=p: cdf(x) - p, -6, 6, xtol=1e-10)
              for p in (0.025, 0.975))
    # A quantile is off by the CDF's error over the density there (f >= 0.1 at the 2.5% and
    # 97.5% points of this posterior): 3e-4 / 0.1 = 3e-3.
    assert post.interval95[0] == pytest.approx(lo, abs=3e-3)
    assert post.interval95[1] == pytest.approx(hi, abs=3e-3)
    assert sd > 0.4  # the bounds above assume a posterior this wide


def test_shifts_are_the_estimate_minus_the_estimate_refitted_without_the_piece(one_skill) -> None:
    _bank, evidence, log_prior = one_skill
    post = skill_posterior(evidence, log_prior)
    _z, mean, _sd = _moments()
    expected = [mean - _moments(skip=k)[1] for k in range(len(ITEMS))]
    np.testing.assert_allclose(post.shifts, expected, atol=1e-8)
    # right answers and high rubric scores pull up, wrong ones down
    assert post.shifts[0] > 0 and post.shifts[1] < 0 and post.shifts[3] < 0


def test_weights_are_shares_of_the_information_at_the_estimate(one_skill) -> None:
    bank, evidence, log_prior = one_skill
    post = skill_posterior(evidence, log_prior)
    assert post.weights.sum() + post.prior_weight == pytest.approx(1.0, abs=1e-12)
    info = np.asarray(DECAY) * information(bank, np.arange(len(ITEMS)), np.full(len(ITEMS),
                                                                                 post.theta))
    prior_info = 1.0 / PRIOR_SD**2
    total = info.sum() + prior_info
    # The module interpolates the information linearly between grid points: a relative error of
    # about h^2 |I''| / (8 I) <= 1e-3 for these items (a <= 1.7).
    np.testing.assert_allclose(post.weights, info / total, rtol=2e-3)
    assert post.prior_weight == pytest.approx(prior_info / total, rel=2e-3)
    # proportional to decay x information: the ratio of two pieces is the ratio of theirs
    assert post.weights[2] / post.weights[0] == pytest.approx(info[2] / info[0], rel=2e-3)


def test_a_piece_with_half_the_decay_counts_half(one_skill) -> None:
    bank, _evidence, log_prior = one_skill
    one = [0]
    full = skill_posterior(pieces([Block(bank, np.array(one), np.array([1]), np.array([1.0]))]),
                           log_prior)
    half = skill_posterior(pieces([Block(bank, np.array(one), np.array([1]), np.array([0.5]))]),
                           log_prior)
    assert 0 < half.shifts[0] < full.shifts[0]
    assert half.weights[0] < full.weights[0]
    assert half.se > full.se


# -- the empirical-Bayes prior of several skills -------------------------------------------------


def _log_2pl(a: np.ndarray, b: np.ndarray, r: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Summed log-likelihood of 2PL answers at each theta."""
    z = a[:, None] * (theta[None, :] - b[:, None])
    return np.where(r[:, None] == 1, -np.logaddexp(0, -z), -np.logaddexp(0, z)).sum(axis=0)


def _three_skills(seed: int = 3):
    rng = np.random.default_rng(seed)
    out = []
    for n in (6, 3, 9):
        out.append((rng.uniform(0.8, 2.0, n), rng.normal(0, 1, n), rng.integers(0, 2, n)))
    return out


def test_skill_priors_are_the_predictive_from_the_other_skills_evidence() -> None:
    skills = _three_skills()
    tau = np.array([0.4, 0.7, 0.25])
    mu0, sd0 = 0.2, 1.1
    priors = skill_priors(np.vstack([_log_2pl(*s, GRID) for s in skills]), tau, mu0=mu0,
                          sd0=sd0)
    # Direct integration of the hierarchical model on a grid 5x finer and 4/3 as wide:
    # p(g | other skills) ~ N(g; mu0, sd0^2) prod_{s != A} int N(t; g, tau_s^2) L_s(t) dt,
    # prior_A(t) = int N(t; g, tau_A^2) p(g | other skills) dg.
    fine = np.linspace(-8.0, 8.0, 1601)
    h = fine[1] - fine[0]
    lik = [np.exp(_log_2pl(*s, fine)) for s in skills]
    diff = fine[None, :] - fine[:, None]
    kernel = [np.exp(-0.5 * (diff / t) ** 2) * h / (t * np.sqrt(2 * np.pi)) for t in tau]
    marginal = [kernel[s] @ lik[s] for s in range(3)]
    for a in range(3):
        general = norm.pdf(fine, mu0, sd0) * np.prod(
            [marginal[s] for s in range(3) if s != a], axis=0)
        general /= general.sum()
        density = general @ kernel[a] / h                       # prior of theta_A
        mine = np.exp(priors.skill_log_prior[a])
        mine /= mine.sum() * STEP
        np.testing.assert_allclose(mine, np.interp(GRID, fine, density), atol=1e-6)
        mean = (density * fine).sum() * h
        theirs = mine * STEP
        assert theirs @ GRID == pytest.approx(mean, abs=1e-6)
    general = norm.pdf(fine, mu0, sd0) * np.prod(marginal, axis=0)
    general /= general.sum()
    assert priors.general @ GRID == pytest.approx(general @ fine, abs=1e-6)


def test_skill_priors_with_gaussian_likelihoods_have_the_closed_form() -> None:
    # Skill s's evidence: a Gaussian likelihood of theta_s, centre y_s, error sd e_s. Then
    # theta_g | others ~ N(m, 1 / P) with P = 1/sd0^2 + sum 1/(e_s^2 + tau_s^2), and the prior
    # of skill A is N(m, 1 / P + tau_A^2) (the others only).
    y = np.array([0.9, -0.4, 0.3, 1.5])
    e = np.array([0.5, 0.8, 0.35, 1.0])
    tau = np.array([0.3, 0.6, 0.45, 0.2])
    mu0, sd0 = -0.1, 1.0
    loglik = -0.5 * ((GRID[None, :] - y[:, None]) / e[:, None]) ** 2
    priors = skill_priors(loglik, tau, mu0=mu0, sd0=sd0)
    for a in range(4):
        others = np.arange(4) != a
        precision = 1 / sd0**2 + (1 / (e[others] ** 2 + tau[others] ** 2)).sum()
        mean = (mu0 / sd0**2 + (y[others] / (e[others] ** 2 + tau[others] ** 2)).sum()) / precision
        sd = np.sqrt(1 / precision + tau[a] ** 2)
        weights = np.exp(priors.skill_log_prior[a] - priors.skill_log_prior[a].max())
        weights /= weights.sum()
        got = weights @ GRID
        assert got == pytest.approx(mean, abs=1e-6)
        assert np.sqrt(weights @ (GRID - got) ** 2) == pytest.approx(sd, abs=1e-6)
    precision = 1 / sd0**2 + (1 / (e**2 + tau**2)).sum()
    mean = (mu0 / sd0**2 + (y / (e**2 + tau**2)).sum()) / precision
    assert priors.general @ GRID == pytest.approx(mean, abs=1e-6)


def test_skill_prior_without_other_evidence_is_the_population_spread_by_tau() -> None:
    priors = skill_priors(np.zeros((1, GRID.shape[0])), np.array([0.5]), mu0=0.4, sd0=0.9)
    weights = np.exp(priors.skill_log_prior[0] - priors.skill_log_prior[0].max())
    weights /= weights.sum()
    assert weights @ GRID == pytest.approx(0.4, abs=1e-6)
    assert np.sqrt(weights @ (GRID - 0.4) ** 2) == pytest.approx(np.hypot(0.9, 0.5), abs=1e-6)


def test_student_posterior_with_gaussian_pieces_has_the_closed_form() -> None:
    # Two pieces per skill, Gaussian in theta_s (centre y, sd e, decay d: precision d / e^2),
    # constant information 1/e^2. The skill's posterior is normal: prior from the other skills
    # (as above, the pieces' combined precision), times its own pieces.
    y = {"a": [0.8, 1.2], "b": [-0.5, 0.1], "c": [0.4, 0.6]}
    e = {"a": [0.6, 0.9], "b": [0.7, 0.5], "c": [1.0, 0.8]}
    d = {"a": [1.0, 0.5], "b": [0.25, 1.0], "c": [0.9, 0.7]}
    tau = {"a": 0.5, "b": 0.3, "c": 0.7}
    cuts = {"a": 0.7, "b": None, "c": 0.0}
    evidence = {}
    combined = {}
    for s in y:
        ys, es, ds = (np.array(v[s]) for v in (y, e, d))
        evidence[s] = Pieces(loglik=-0.5 * ((GRID[None, :] - ys[:, None]) / es[:, None]) ** 2,
                             info=np.repeat((1 / es**2)[:, None], GRID.shape[0], axis=1),
                             decay=ds)
        precision = (ds / es**2).sum()
        combined[s] = ((ds * ys / es**2).sum() / precision, precision)
    result = student_posterior(evidence, tau, cuts, mu0=0.0, sd0=1.0)
    for s in y:
        prior_precision_g = 1.0 + sum(1 / (1 / combined[o][1] + tau[o] ** 2)
                                      for o in y if o != s)
        prior_mean = sum(combined[o][0] / (1 / combined[o][1] + tau[o] ** 2)
                         for o in y if o != s) / prior_precision_g
        prior_var = 1 / prior_precision_g + tau[s] ** 2
        own_mean, own_precision = combined[s]
        precision = 1 / prior_var + own_precision
        mean = (prior_mean / prior_var + own_mean * own_precision) / precision
        post = result.skills[s]
        assert post.theta == pytest.approx(mean, abs=1e-6)
        assert post.se == pytest.approx(precision ** -0.5, abs=1e-6)
        assert post.prior_mean == pytest.approx(prior_mean, abs=1e-6)
        assert post.prior_sd == pytest.approx(np.sqrt(prior_var), abs=1e-6)
        pieces_info = np.array(d[s]) / np.array(e[s]) ** 2
        np.testing.assert_allclose(post.weights, pieces_info / precision, atol=1e-6)
        assert post.prior_weight == pytest.approx((1 / prior_var) / precision, abs=1e-6)
        if cuts[s] is None:
            assert post.mastery_probability is None
        else:
            expected = norm.sf(cuts[s], mean, precision**-0.5)
            assert post.mastery_probability == pytest.approx(expected, abs=1e-3)
            lo, hi = norm.ppf([0.025, 0.975], mean, precision**-0.5)
            assert post.interval95 == pytest.approx((lo, hi), abs=3e-3)
    assert result.overall_se < min(p.se for p in result.skills.values()) + 1.0


def test_student_posterior_refuses_no_evidence() -> None:
    with pytest.raises(ValueError, match="no evidence"):
        student_posterior({}, {}, {})


# -- decay and thresholds ------------------------------------------------------------------------


def test_decay_weights_half_life() -> None:
    ages = np.array([0.0, 90.0, 180.0, 360.0, 540.0, -5.0])
    np.testing.assert_allclose(decay_weights(ages, 180.0),
                               [1.0, 2 ** -0.5, 0.5, 0.25, 0.125, 1.0], rtol=1e-12)
    np.testing.assert_array_equal(decay_weights(ages, None), np.ones(6))
    np.testing.assert_array_equal(decay_weights(ages, float("inf")), np.ones(6))
    assert decay_weights(np.array([30.0]), 30.0)[0] == pytest.approx(0.5)


@pytest.mark.parametrize(("probability", "expected"), [
    (0.95, "mastered"), (0.9, "mastered"), (0.8999, "needs_evidence"), (0.5, "needs_evidence"),
    (0.1001, "needs_evidence"), (0.1, "not_mastered"), (0.0, "not_mastered"),
    (None, "needs_evidence")])
def test_suggest_thresholds(probability, expected) -> None:
    assert suggest(probability, 0.9, 0.1) == expected


# -- population figures: the spread of skills and Haberman's PRMSE -------------------------------

POP_GRID = np.linspace(-5.0, 5.0, 201)
#: Four skills of a test: (true tau, number of items). Skill 1 has 3 items and no deviation.
POP_SKILLS = ((0.6, 20), (0.0, 3), (0.3, 20), (0.8, 30))
N_STUDENTS = 2000


def _eap(a: np.ndarray, b: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EAP and posterior sd of every student (rows of ``r``) under N(0, 1), as a test's
    stored result has them (the test's prior and estimator)."""
    z = a[None, :, None] * (POP_GRID[None, None, :] - b[None, :, None])
    log_post = np.where(r[..., None] == 1, -np.logaddexp(0, -z), -np.logaddexp(0, z)).sum(1)
    log_post -= 0.5 * POP_GRID**2
    w = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    mean = w @ POP_GRID
    return mean, np.sqrt(np.maximum(w @ POP_GRID**2 - mean**2, 0.0))


@pytest.fixture(scope="module")
def population():
    """A population with known skill abilities: theta_s = theta_g + delta_s, 2PL items per
    skill; each student's per-skill EAP (that skill's items) and overall EAP (all items)."""
    rng = np.random.default_rng(2026)
    general = rng.normal(0.0, 1.0, N_STUDENTS)
    truth, a_all, b_all, r_all, per_skill = [], [], [], [], []
    for tau, n in POP_SKILLS:
        theta = general + rng.normal(0.0, 1.0, N_STUDENTS) * tau
        a, b = rng.uniform(0.8, 2.0, n), rng.normal(0.0, 1.0, n)
        r = (rng.random((N_STUDENTS, n)) < 1 / (1 + np.exp(-a * (theta[:, None] - b)))).astype(int)
        truth.append(theta)
        a_all.append(a)
        b_all.append(b)
        r_all.append(r)
        per_skill.append(_eap(a, b, r))
    overall = _eap(np.concatenate(a_all), np.concatenate(b_all), np.hstack(r_all))
    return truth, per_skill, overall


def _spread(population, k: int) -> mastery.SkillSpread:
    _truth, per_skill, overall = population
    theta_s = np.column_stack([p[0] for p in per_skill])
    se_s = np.column_stack([p[1] for p in per_skill])
    return skill_spreads(theta_s, se_s, overall[0], overall[1], bayesian=True)[k]


def test_skill_spread_recovers_tau_in_a_population_where_every_skill_deviates(population) -> None:
    # The sampling sd of the estimate over seeds is about 0.02 with 2000 students; 0.1 also
    # allows for EAP estimates made under N(0, 1) of a skill whose variance is 1 + tau^2.
    for k in (0, 2, 3):
        tau = POP_SKILLS[k][0]
        got = _spread(population, k)
        assert got.estimated and got.n_students == N_STUDENTS
        assert got.tau == pytest.approx(tau, abs=0.1), f"skill {k}: tau {tau}, got {got.tau}"


def test_skill_spread_of_a_skill_without_deviation_is_at_the_lower_bound(population) -> None:
    assert _spread(population, 1).tau == pytest.approx(0.1)


def test_prmse_subscore_is_the_reliability_of_the_skill_estimate(population) -> None:
    # Haberman's PRMSE of the subscore = squared correlation of the true skill ability with
    # its estimate, realised here from the known truth (sampling sd ~0.01 at n = 2000).
    truth, per_skill, _overall = population
    for k in range(len(POP_SKILLS)):
        realised = np.corrcoef(truth[k], per_skill[k][0])[0, 1] ** 2
        assert _spread(population, k).prmse_subscore == pytest.approx(realised, abs=0.03)


def test_prmse_total_is_the_squared_correlation_of_the_true_skill_with_the_overall(
        population) -> None:
    # PRMSE of the total = squared correlation of the true skill ability with the overall
    # estimate. The tolerance allows for the EAP prior's mismatch with the skill's variance.
    truth, _per_skill, overall = population
    for k in range(len(POP_SKILLS)):
        realised = np.corrcoef(truth[k], overall[0])[0, 1] ** 2
        got = _spread(population, k).prmse_total
        assert got == pytest.approx(realised, abs=0.08), f"skill {k}: {realised:.3f}, {got:.3f}"


def test_haberman_a_long_deviating_skill_adds_value_a_short_undeviating_one_does_not(
        population) -> None:
    truth, per_skill, overall = population

    # The truth first: the criterion the figures must reproduce.
    def realised(k: int) -> tuple[float, float]:
        return (np.corrcoef(truth[k], per_skill[k][0])[0, 1] ** 2,
                np.corrcoef(truth[k], overall[0])[0, 1] ** 2)

    sub, tot = realised(3)
    assert sub > tot + 0.05
    sub, tot = realised(1)
    assert sub < tot - 0.2
    assert _spread(population, 3).adds_value is True
    assert _spread(population, 1).adds_value is False


def test_skill_spread_with_too_few_students_is_the_stated_default() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(4, 20))
    (got,) = skill_spreads(values[0][:, None], values[1][:, None], values[2], values[3],
                           bayesian=True, min_students=30, default_tau=0.5)
    assert (got.tau, got.estimated, got.n_students, got.adds_value) == (0.5, False, 20, None)
    with_nan = values.copy()
    with_nan[0, :5] = np.nan
    (got,) = skill_spreads(with_nan[0][:, None], with_nan[1][:, None], with_nan[2], with_nan[3],
                           bayesian=True, min_students=10)
    assert got.n_students == 15


def test_pooled_spreads_weigh_each_test_by_its_students() -> None:
    a = mastery.SkillSpread(tau=0.3, estimated=True, n_students=100, prmse_subscore=0.6,
                            prmse_total=0.5)
    b = mastery.SkillSpread(tau=0.6, estimated=True, n_students=300, prmse_subscore=0.8,
                            prmse_total=0.4)
    few = mastery.SkillSpread(tau=0.5, estimated=False, n_students=10)
    got = mastery.pool_spreads([a, b, few])
    assert got.n_students == 410 and got.estimated
    assert got.tau == pytest.approx(np.sqrt((100 * 0.09 + 300 * 0.36) / 400))
    assert got.prmse_subscore == pytest.approx(0.75) and got.prmse_total == pytest.approx(0.425)
    assert mastery.pool_spreads([few]) == mastery.SkillSpread(0.5, False, 10)
