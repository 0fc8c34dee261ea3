"""Ability estimators against independent computations.

The reference model probabilities below are written out from the formulas one item and one theta at
a time, and the references integrate and optimise with scipy, so a mistake in the vectorised code
shows up as a disagreement.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.optimize import brentq, minimize_scalar

from cat_engine.bank import ItemBank
from cat_engine.errors import CATError, ConfigError, InvalidResponseError
from cat_engine.estimation import (
    EAP,
    MAP,
    MLE,
    WLE,
    Estimator,
    QuadratureGrid,
    make_estimator,
)
from cat_engine.models import log_likelihood

MIXED = [
    {"item_id": "d1", "model": "3pl", "a": 1.2, "b": 0.0, "c": 0.2},
    {"item_id": "d2", "model": "3pl", "a": 0.8, "b": -1.0, "c": 0.15},
    {"item_id": "d3", "model": "3pl", "a": 1.7, "b": 0.7, "c": 0.25},
    {"item_id": "d4", "model": "2pl", "a": 1.0, "b": 1.2},
    {"item_id": "d5", "model": "4pl", "a": 1.4, "b": -0.4, "c": 0.1, "d": 0.9},
    {"item_id": "g1", "model": "grm", "a": 1.1, "b1": -1.0, "b2": 0.4},
    {"item_id": "g2", "model": "grm", "a": 0.9, "b1": -0.5, "b2": 0.3, "b3": 1.4},
    {"item_id": "p1", "model": "gpcm", "a": 0.8, "b1": 0.5, "b2": -0.3, "b3": 1.0},
    {"item_id": "p2", "model": "pcm", "b1": -0.7, "b2": 0.9},
]
THREE_PL = [
    {"item_id": f"t{j}", "model": "3pl", "a": a, "b": b, "c": c}
    for j, (a, b, c) in enumerate(
        [
            (1.8, -1.5, 0.25),
            (1.2, -0.8, 0.2),
            (2.2, -0.2, 0.3),
            (0.9, 0.1, 0.15),
            (1.6, 0.6, 0.25),
            (2.5, 1.0, 0.3),
            (1.1, 1.5, 0.2),
            (1.9, 2.0, 0.25),
        ]
    )
]
RASCH_B = [-1.2, -0.6, -0.3, 0.0, 0.2, 0.5, 0.9, 1.3]
RASCH = [{"item_id": f"r{j}", "model": "rasch", "b": b} for j, b in enumerate(RASCH_B)]
TWO_PL = [
    {"item_id": f"q{j}", "model": "2pl", "a": a, "b": b}
    for j, (a, b) in enumerate([(0.7, -1.0), (1.5, -0.3), (1.1, 0.2), (2.0, 0.6), (0.9, 1.1)])
]


# -- independent reference model ------------------------------------------------------------------


def ref_probabilities(record: dict, theta: float) -> np.ndarray:
    """Category probabilities of one item at one theta, straight from the formulas (D = 1)."""
    model = record["model"]
    a = record.get("a", 1.0)
    if model in ("rasch", "1pl", "2pl", "3pl", "4pl"):
        c, d = record.get("c", 0.0), record.get("d", 1.0)
        p = c + (d - c) / (1.0 + math.exp(-a * (theta - record["b"])))
        return np.array([1.0 - p, p])
    thresholds = [record[f"b{k}"] for k in range(1, 10) if f"b{k}" in record]
    if model == "grm":
        star = [1.0] + [1.0 / (1.0 + math.exp(-a * (theta - t))) for t in thresholds] + [0.0]
        return np.array([star[k] - star[k + 1] for k in range(len(thresholds) + 1)])
    z = np.concatenate([[0.0], np.cumsum([a * (theta - t) for t in thresholds])])
    e = np.exp(z - z.max())
    return e / e.sum()


def ref_loglik(records: list[dict], pattern: list[tuple[int, int]], theta: float) -> float:
    return sum(math.log(ref_probabilities(records[j], theta)[x]) for j, x in pattern)


def ref_information(records: list[dict], items: list[int], theta: float, h: float = 1e-5) -> float:
    """Fisher information sum_k P'^2 / P, with P' by central differences."""
    total = 0.0
    for j in items:
        p = ref_probabilities(records[j], theta)
        dp = (
            ref_probabilities(records[j], theta + h) - ref_probabilities(records[j], theta - h)
        ) / (2 * h)
        total += float((dp[p > 0] ** 2 / p[p > 0]).sum())
    return total


def ref_argmax(f, lo: float, hi: float) -> float:
    """Global maximiser of f on [lo, hi]: the best of 801 points, then Brent around it."""
    xs = np.linspace(lo, hi, 801)
    values = np.array([f(x) for x in xs])
    i = int(values.argmax())
    left, right = xs[max(i - 1, 0)], xs[min(i + 1, xs.size - 1)]
    result = minimize_scalar(
        lambda x: -f(x), bounds=(left, right), method="bounded", options={"xatol": 1e-11}
    )
    best = max([lo, hi, result.x], key=f)
    return float(best)


def log_normal(theta: float, mean: float, sd: float) -> float:
    return -0.5 * ((theta - mean) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))


# -- helpers --------------------------------------------------------------------------------------


def as_arrays(patterns: list[list[tuple[int, int]]], width: int | None = None):
    """(N, L) items and responses, padded with -1."""
    width = width or max((len(p) for p in patterns), default=0)
    items = np.full((len(patterns), width), -1)
    responses = np.full((len(patterns), width), -1)
    for n, pattern in enumerate(patterns):
        for col, (j, x) in enumerate(pattern):
            items[n, col], responses[n, col] = j, x
    return items, responses


def posterior(bank, grid, items, responses) -> np.ndarray:
    """Log posterior built one response (column) at a time with QuadratureGrid.update."""
    log_post = grid.initial_log_posterior(items.shape[0])
    for col in range(items.shape[1]):
        grid.update(bank, log_post, items[:, col], responses[:, col])
    return log_post


def estimate(estimator, bank, grid, patterns):
    items, responses = as_arrays(patterns)
    return estimator.estimate(bank, items, responses, posterior(bank, grid, items, responses), grid)


MIXED_PATTERNS = [
    [(0, 1), (1, 0), (2, 1), (5, 2), (7, 1)],
    [(0, 0), (1, 1), (3, 0), (4, 1), (6, 3), (8, 0)],
    [(2, 1), (5, 0), (6, 1), (7, 3), (8, 2)],
    [(0, 1), (3, 1), (4, 0)],
    [(5, 1)],
]


@pytest.fixture(scope="module")
def mixed() -> ItemBank:
    return ItemBank.from_records(MIXED)


# -- EAP ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mean, sd", [(0.0, 1.0), (0.5, 0.8)])
def test_eap_matches_numerical_integration(mixed, mean, sd):
    grid = QuadratureGrid.normal(mean=mean, sd=sd)
    theta, se = estimate(EAP(), mixed, grid, MIXED_PATTERNS)
    for n, pattern in enumerate(MIXED_PATTERNS):

        def density(t, pattern=pattern):
            log_prior = log_normal(t, mean, sd)
            if log_prior < -700:  # the prior underflows: nothing to integrate out there
                return 0.0
            return math.exp(ref_loglik(MIXED, pattern, t) + log_prior)

        mass = quad(density, -np.inf, np.inf, limit=200)[0]
        post_mean = quad(lambda t, f=density: t * f(t), -np.inf, np.inf, limit=200)[0] / mass
        post_var = (
            quad(lambda t, f=density, m=post_mean: (t - m) ** 2 * f(t), -np.inf, np.inf)[0] / mass
        )
        assert theta[n] == pytest.approx(post_mean, abs=0.01)
        assert se[n] == pytest.approx(math.sqrt(post_var), abs=0.01)


def test_eap_without_responses_is_the_prior():
    grid = QuadratureGrid.normal(mean=0.3, sd=0.7, lo=-5, hi=5, n=81)
    theta, se = EAP().estimate(None, np.zeros((2, 0), int), np.zeros((2, 0), int),
                               grid.initial_log_posterior(2), grid)  # fmt: skip
    np.testing.assert_allclose(theta, 0.3, atol=1e-6)
    np.testing.assert_allclose(se, 0.7, atol=1e-4)


def test_eap_weights_uneven_grids_by_the_width_each_point_stands_for():
    points = np.concatenate([np.linspace(-4, 0, 81)[:-1], np.linspace(0, 4, 11)])
    grid = QuadratureGrid(points, -0.5 * points**2)
    theta, se = EAP().estimate(None, None, None, grid.initial_log_posterior(1), grid)
    assert abs(theta[0]) < 0.02
    assert se[0] == pytest.approx(1.0, abs=0.03)


# -- MAP ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mean, sd", [(0.0, 1.0), (0.3, 1.5)])
def test_map_matches_scipy(mixed, mean, sd):
    # a uniform grid: MAP must use its own prior, not the grid's
    grid = QuadratureGrid.uniform()
    theta, se = estimate(MAP(mean=mean, sd=sd), mixed, grid, MIXED_PATTERNS)
    for n, pattern in enumerate(MIXED_PATTERNS):
        expected = ref_argmax(
            lambda t, p=pattern: ref_loglik(MIXED, p, t) + log_normal(t, mean, sd), -8, 8
        )
        assert theta[n] == pytest.approx(expected, abs=1e-4)
        info = ref_information(MIXED, [j for j, _ in pattern], expected)
        assert se[n] == pytest.approx(1 / math.sqrt(info + 1 / sd**2), rel=1e-5)


def test_map_follows_a_mode_beyond_the_grid():
    records = [{"item_id": f"e{j}", "model": "rasch", "b": b} for j, b in enumerate([3, 3.5, 4])]
    bank = ItemBank.from_records(records)
    pattern = [(0, 1), (1, 1), (2, 1)]
    theta, _ = estimate(MAP(sd=3.0), bank, QuadratureGrid.normal(sd=3.0), [pattern])
    expected = ref_argmax(lambda t: ref_loglik(records, pattern, t) + log_normal(t, 0, 3), 0, 20)
    assert theta[0] > 4
    assert theta[0] == pytest.approx(expected, abs=1e-4)
    low, _ = estimate(MAP(mean=-5, sd=1.0), bank, QuadratureGrid.normal(), [[(0, 0), (1, 0)]])
    expected = ref_argmax(
        lambda t: ref_loglik(records, [(0, 0), (1, 0)], t) + log_normal(t, -5, 1), -20, 0
    )
    assert low[0] < -4
    assert low[0] == pytest.approx(expected, abs=1e-4)


def test_map_without_responses_is_the_prior_mean(mixed):
    theta, se = estimate(MAP(mean=0.4, sd=0.9), mixed, QuadratureGrid.normal(), [[], [(0, 1)]])
    assert theta[0] == 0.4
    assert se[0] == pytest.approx(0.9)


# -- MLE ------------------------------------------------------------------------------------------


def test_mle_matches_scipy_on_mixed_patterns(mixed):
    theta, se = estimate(MLE(), mixed, QuadratureGrid.normal(), MIXED_PATTERNS[:4])
    for n, pattern in enumerate(MIXED_PATTERNS[:4]):
        expected = ref_argmax(lambda t, p=pattern: ref_loglik(MIXED, p, t), -4, 4)
        assert theta[n] == pytest.approx(expected, abs=1e-4)
        info = ref_information(MIXED, [j for j, _ in pattern], theta[n])
        assert se[n] == pytest.approx(1 / math.sqrt(info), rel=1e-5)


def test_mle_finds_the_global_maximum_of_3pl_likelihoods():
    bank = ItemBank.from_records(THREE_PL)
    rng = np.random.default_rng(7)
    patterns = [
        [(j, int(x)) for j, x in enumerate(rng.integers(0, 2, len(THREE_PL)))] for _ in range(12)
    ]
    # wrong on the easy items, right on the hard ones: a likelihood with two modes
    patterns.append([(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 1), (6, 1), (7, 0)])
    theta, _ = estimate(MLE(bounds=(-5, 5)), bank, QuadratureGrid.normal(), patterns)
    for n, pattern in enumerate(patterns):
        expected = ref_argmax(lambda t, p=pattern: ref_loglik(THREE_PL, p, t), -5, 5)
        assert theta[n] == pytest.approx(expected, abs=1e-4), pattern


def test_mle_extreme_and_empty_patterns(mixed):
    patterns = [
        [(0, 1), (1, 1), (5, 2), (6, 3), (7, 3), (8, 2)],  # every response in the top category
        [(0, 0), (1, 0), (5, 0), (6, 0), (7, 0), (8, 0)],  # every response in the bottom one
        [],
        [(2, 1)],
        [(2, 0)],
    ]
    theta, se = estimate(MLE(bounds=(-3.5, 4.5)), mixed, QuadratureGrid.normal(), patterns)
    np.testing.assert_array_equal(theta, [4.5, -3.5, 0.0, 4.5, -3.5])
    assert se[2] == np.inf
    assert np.isfinite(se[[0, 1, 3, 4]]).all()
    assert se[0] == pytest.approx(1 / math.sqrt(ref_information(MIXED, [0, 1, 5, 6, 7, 8], 4.5)))
    # no responses and 0 outside the bounds: 0 clipped into them
    theta, _ = estimate(MLE(bounds=(1.0, 3.0)), mixed, QuadratureGrid.normal(), [[]])
    assert theta[0] == 1.0


# -- WLE ------------------------------------------------------------------------------------------


def rasch_warm(responses: list[int], theta: float) -> float:
    p = np.array([1 / (1 + math.exp(-(theta - b))) for b in RASCH_B[: len(responses)]])
    pq = p * (1 - p)
    return float(np.sum(np.array(responses) - p) + np.sum(pq * (1 - 2 * p)) / (2 * np.sum(pq)))


@pytest.mark.parametrize(
    "responses",
    [
        [1, 0, 1, 1, 0, 0, 1, 0],
        [0, 0, 0, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 0, 1],
        [1, 1, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 1],
    ],
)
def test_wle_solves_warms_equation_for_rasch(responses):
    bank = ItemBank.from_records(RASCH)
    pattern = list(enumerate(responses))
    theta, se = estimate(WLE(), bank, QuadratureGrid.normal(), [pattern])
    expected = brentq(lambda t: rasch_warm(responses, t), -10, 10, xtol=1e-12)
    assert theta[0] == pytest.approx(expected, abs=1e-6)
    assert -4 < theta[0] < 4
    assert se[0] == pytest.approx(
        1 / math.sqrt(ref_information(RASCH, range(len(responses)), expected)), rel=1e-5
    )


def test_wle_of_a_perfect_rasch_score_is_finite_and_ordered():
    bank = ItemBank.from_records(RASCH)
    patterns = [[(j, 1) for j in range(8)], [(j, int(j != 7)) for j in range(8)]]
    theta, _ = estimate(WLE(), bank, QuadratureGrid.normal(), patterns)
    assert np.isfinite(theta).all()
    assert theta[1] < theta[0] < 4.0


@pytest.mark.parametrize(
    "records, pattern",
    [
        (TWO_PL, [(0, 1), (1, 0), (2, 1), (3, 0), (4, 0)]),
        (TWO_PL, [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]),
        (TWO_PL, [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)]),
        (TWO_PL, [(1, 1), (3, 1)]),
        # Rasch, 2PL, PCM and GPCM are exponential families in theta: the WLE maximises
        # loglik + 0.5 log I for them too
        (MIXED, [(3, 1), (7, 2), (8, 1)]),
        (MIXED, [(7, 3), (8, 2)]),
    ],
)
def test_wle_is_the_jeffreys_map_for_exponential_family_items(records, pattern):
    bank = ItemBank.from_records(records)
    theta, _ = estimate(WLE(), bank, QuadratureGrid.normal(), [pattern])
    items = [j for j, _ in pattern]

    def jeffreys(t):
        return ref_loglik(records, pattern, t) + 0.5 * math.log(ref_information(records, items, t))

    assert theta[0] == pytest.approx(ref_argmax(jeffreys, -4, 4), abs=1e-4)


def test_wle_for_3pl_and_grm_solves_the_general_equation(mixed):
    patterns = MIXED_PATTERNS[:4]
    theta, _ = estimate(WLE(), mixed, QuadratureGrid.normal(), patterns)
    h = 1e-4
    for n, pattern in enumerate(patterns):
        t = theta[n]
        score = (ref_loglik(MIXED, pattern, t + h) - ref_loglik(MIXED, pattern, t - h)) / (2 * h)
        info = warm_j = 0.0
        for j, _ in pattern:
            p0, pp, pm = (ref_probabilities(MIXED[j], t + s) for s in (0, h, -h))
            d1, d2 = (pp - pm) / (2 * h), (pp - 2 * p0 + pm) / h**2
            info += float((d1**2 / p0).sum())
            warm_j += float((d1 * d2 / p0).sum())
        assert abs(score + warm_j / (2 * info)) < 1e-5


def test_wle_clips_to_the_bounds():
    bank = ItemBank.from_records(RASCH)
    patterns = [[(j, 1) for j in range(8)], [(j, 0) for j in range(8)], []]
    theta, se = estimate(WLE(bounds=(-1.0, 1.5)), bank, QuadratureGrid.normal(), patterns)
    np.testing.assert_array_equal(theta, [1.5, -1.0, 0.0])
    assert se[2] == np.inf


# -- vectorisation and the posterior update -------------------------------------------------------


def random_patterns(bank: ItemBank, rng, n: int, length: int):
    """Histories of different lengths with padding at random places."""
    items = np.full((n, length), -1)
    responses = np.full((n, length), -1)
    for row in range(n):
        count = rng.integers(0, length + 1)
        slots = rng.choice(length, count, replace=False)
        chosen = rng.choice(len(bank), count, replace=False)
        items[row, slots] = chosen
        responses[row, slots] = rng.integers(0, bank.n_categories[chosen])
    return items, responses


@pytest.mark.parametrize("estimator", [EAP(), MAP(mean=0.2, sd=1.3), MLE(), WLE()], ids=repr)
def test_many_examinees_at_once_equal_each_alone(mixed, estimator):
    rng = np.random.default_rng(3)
    items, responses = random_patterns(mixed, rng, 40, 7)
    grid = QuadratureGrid.normal(n=41)
    log_post = posterior(mixed, grid, items, responses)
    theta, se = estimator.estimate(mixed, items, responses, log_post, grid)
    for n in range(items.shape[0]):
        one = estimator.estimate(
            mixed, items[n : n + 1], responses[n : n + 1], log_post[n : n + 1], grid
        )
        np.testing.assert_allclose(theta[n], one[0][0], atol=1e-9)
        np.testing.assert_allclose(se[n], one[1][0], rtol=1e-9)


def test_update_in_place_equals_prior_plus_loglik(mixed):
    rng = np.random.default_rng(11)
    items, responses = random_patterns(mixed, rng, 25, 9)
    grid = QuadratureGrid.normal(mean=-0.2, sd=1.1, n=51)
    log_post = grid.initial_log_posterior(25)
    for col in range(items.shape[1]):
        returned = grid.update(mixed, log_post, items[:, col], responses[:, col])
        assert returned is log_post
    for n in range(25):
        valid = items[n] >= 0
        expected = grid.log_prior + log_likelihood(
            mixed, items[n, valid], responses[n, valid], grid.points
        )
        np.testing.assert_allclose(log_post[n], expected, rtol=0, atol=1e-10)


def test_update_leaves_rows_without_an_item_alone(mixed):
    grid = QuadratureGrid.uniform(n=11)
    log_post = grid.initial_log_posterior(3)
    grid.update(mixed, log_post, np.array([-1, 2, -1]), np.array([-1, 1, 0]))
    assert (log_post[[0, 2]] == 0).all()
    assert (log_post[1] < 0).all()


def test_initial_log_posterior_is_a_fresh_copy():
    grid = QuadratureGrid.normal()
    first = grid.initial_log_posterior(2)
    first += 1
    np.testing.assert_array_equal(grid.initial_log_posterior(2)[0], grid.log_prior)
    assert grid.initial_log_posterior(0).shape == (0, 61)


# -- input errors ---------------------------------------------------------------------------------


def test_invalid_histories_are_refused(mixed):
    grid = QuadratureGrid.normal()
    log_post = grid.initial_log_posterior(1)
    with pytest.raises(InvalidResponseError, match="'g1'"):
        MLE().estimate(mixed, np.array([[5]]), np.array([[3]]), log_post, grid)
    with pytest.raises(InvalidResponseError, match="'d1'"):
        grid.update(mixed, log_post, np.array([0]), np.array([2]))
    with pytest.raises(CATError, match="positions"):
        WLE().estimate(mixed, np.array([[len(MIXED)]]), np.array([[0]]), log_post, grid)
    with pytest.raises(CATError, match="shape"):
        MAP().estimate(mixed, np.array([0, 1]), np.array([0, 1]), log_post, grid)
    with pytest.raises(CATError, match="columns"):
        grid.update(mixed, np.zeros((1, 5)), np.array([0]), np.array([1]))


def test_grid_validation():
    with pytest.raises(ConfigError, match="increasing"):
        QuadratureGrid(np.array([0.0, 0.0, 1.0]), np.zeros(3))
    with pytest.raises(ConfigError, match="log_prior"):
        QuadratureGrid(np.array([0.0, 1.0]), np.zeros(3))
    with pytest.raises(ConfigError, match="sd"):
        QuadratureGrid.normal(sd=0)
    grid = QuadratureGrid.normal()
    with pytest.raises(ValueError, match="read-only"):
        grid.points[0] = 1.0


# -- configuration --------------------------------------------------------------------------------


def test_make_estimator_defaults_and_methods():
    estimator, grid = make_estimator({})
    assert isinstance(estimator, EAP)
    assert grid.points.size == 61 and grid.points[0] == -4 and grid.points[-1] == 4
    np.testing.assert_allclose(
        np.exp(grid.log_prior).sum() * (grid.points[1] - grid.points[0]), 1, atol=1e-3
    )
    estimator, grid = make_estimator(
        {
            "method": "MAP",
            "prior": {"mean": 0.5, "sd": 2},
            "grid": {"lo": -5, "hi": 5, "points": 81},
        }
    )
    assert estimator == MAP(mean=0.5, sd=2.0)
    assert grid.points.size == 81
    assert grid.log_prior.argmax() == np.abs(grid.points - 0.5).argmin()
    estimator, grid = make_estimator(
        {"method": "mle", "bounds": [-3, 5], "prior": {"type": "uniform"}}
    )
    assert estimator == MLE(bounds=(-3.0, 5.0))
    assert (grid.log_prior == 0).all()
    assert make_estimator({"method": "wle"})[0] == WLE()
    assert all(isinstance(make_estimator({"method": m})[0], Estimator) for m in ("eap", "map"))


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"method": "foo"}, "estimator.method: 'foo' is not one of eap, map, mle, wle"),
        ({"method": 3}, "estimator.method: 3 is not one of"),
        ({"methd": "eap"}, "estimator.methd: unknown setting"),
        ({"prior": {"sd": -1}}, "estimator.prior.sd: must be greater than 0"),
        ({"prior": {"mean": "zero"}}, "estimator.prior.mean: must be a number"),
        ({"prior": {"mean": float("nan")}}, "estimator.prior.mean: must be a finite number"),
        ({"prior": {"type": "beta"}}, "estimator.prior.type: 'beta' is not one of normal, uniform"),
        ({"prior": {"type": "uniform", "sd": 2}}, "estimator.prior.sd: a uniform prior has no sd"),
        ({"method": "map", "prior": {"type": "uniform"}}, "estimator.prior.type: the map method"),
        ({"prior": [0, 1]}, "estimator.prior: must be a mapping"),
        ({"grid": {"points": 1}}, "estimator.grid.points: must be an integer of at least 2"),
        ({"grid": {"points": 40.5}}, "estimator.grid.points"),
        ({"grid": {"lo": 2, "hi": 1}}, "estimator.grid.hi: must be greater than estimator.grid.lo"),
        ({"grid": {"step": 0.1}}, "estimator.grid.step: unknown setting"),
        ({"bounds": [3, -3]}, "estimator.bounds: the upper bound must be greater"),
        ({"bounds": "-4..4"}, "estimator.bounds: must be a pair"),
        ({"bounds": [1, 2, 3]}, "estimator.bounds: must be a pair"),
        ({"bounds": [None, 2]}, "estimator.bounds[0]: must be a number"),
        ("eap", "estimator: must be a mapping"),
    ],
)
def test_make_estimator_errors_name_the_setting(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_estimator(spec)


def test_estimator_constructors_validate():
    with pytest.raises(ConfigError, match="MAP sd"):
        MAP(sd=0)
    with pytest.raises(ConfigError, match="MLE bounds"):
        MLE(bounds=(2, 1))
    with pytest.raises(ConfigError, match="WLE bounds"):
        WLE(bounds=(0,))


# -- properties -----------------------------------------------------------------------------------

LOG_CONCAVE = [
    {"item_id": "l1", "model": "2pl", "a": 1.9, "b": -0.5},
    {"item_id": "l2", "model": "2pl", "a": 0.6, "b": 1.0},
    {"item_id": "l3", "model": "rasch", "b": 0.3},
    {"item_id": "l4", "model": "grm", "a": 1.4, "b1": -1.2, "b2": 0.1, "b3": 0.9},
    {"item_id": "l5", "model": "gpcm", "a": 1.2, "b1": 0.8, "b2": -0.6},
    {"item_id": "l6", "model": "pcm", "b1": -0.2, "b2": 0.4, "b3": 2.0},
]
LOG_CONCAVE_BANK = ItemBank.from_records(LOG_CONCAVE)
RASCH_BANK = ItemBank.from_records(RASCH)


@st.composite
def log_concave_patterns(draw):
    chosen = draw(st.lists(st.integers(0, len(LOG_CONCAVE) - 1), unique=True, max_size=6))
    cats = LOG_CONCAVE_BANK.n_categories
    return [(j, draw(st.integers(0, int(cats[j]) - 1))) for j in chosen]


@settings(max_examples=60, deadline=None)
@given(pattern=log_concave_patterns(), sd=st.floats(0.4, 2.5), mean=st.floats(-1.5, 1.5))
def test_eap_se_never_exceeds_the_prior_sd_for_log_concave_likelihoods(pattern, sd, mean):
    # Brascamp-Lieb: a normal prior times a log-concave likelihood has variance <= the prior's
    grid = QuadratureGrid.normal(mean=mean, sd=sd, lo=-7, hi=7, n=141)
    _, se = estimate(EAP(), LOG_CONCAVE_BANK, grid, [pattern])
    assert se[0] <= sd + 1e-6


@settings(max_examples=60, deadline=None)
@given(
    responses=st.lists(st.integers(0, 1), min_size=1, max_size=len(RASCH)),
    flip=st.integers(0, len(RASCH) - 1),
)
def test_one_more_correct_answer_never_lowers_the_estimate(responses, flip):
    flip %= len(responses)
    better = list(responses)
    better[flip] = 1
    patterns = [list(enumerate(responses)), list(enumerate(better))]
    grid = QuadratureGrid.normal()
    for estimator in (EAP(), MLE(), WLE(), MAP()):
        theta, _ = estimate(estimator, RASCH_BANK, grid, patterns)
        assert theta[1] >= theta[0] - 1e-9, estimator
