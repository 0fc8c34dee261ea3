"""Item selection and exposure control against independent computations.

Selectors are fed hand-made :class:`SelectionContext` objects and compared with references
computed here item by item (information from :func:`cat_engine.models.information`, KL
divergences integrated with scipy, posterior variances by brute force). Exposure controls are
fed score matrices with a known order; the random ones are checked statistically with many rows
(one row is one test taker, so one call gives thousands of independent draws).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import log_expit

from cat_engine import CATSession, ItemBank, simulate
from cat_engine.errors import ConfigError
from cat_engine.exposure import (
    ExposureContext,
    ExposureStats,
    ItemEligibility,
    NoExposureControl,
    Progressive,
    Randomesque,
    SympsonHetter,
    make_exposure,
)
from cat_engine.models import category_probabilities, information, log_likelihood
from cat_engine.selection import (
    AStratified,
    ExpectedPosteriorVariance,
    KullbackLeibler,
    MaximumInformation,
    PosteriorWeightedInformation,
    RandomSelection,
    SelectionContext,
    bank_tables,
    make_selector,
)


def make_bank(n_items: int = 200, seed: int = 0, model: str = "mixed") -> ItemBank:
    rng = np.random.default_rng(seed)
    records = []
    for j in range(n_items):
        three = model == "mixed" and j % 2 == 1
        records.append({
            "item_id": f"i{j}",
            "model": "3pl" if three else "2pl",
            "a": float(rng.uniform(0.5, 2.5)),
            "b": float(rng.normal(0, 1.2)),
            "c": 0.2 if three else 0.0,
        })
    return ItemBank.from_records(records)


BANK = make_bank()
BANK_2PL = make_bank(60, seed=3, model="2pl")
POLY = ItemBank.from_records([
    {"item_id": "d1", "model": "3pl", "a": 1.2, "b": 0.0, "c": 0.2},
    {"item_id": "d2", "model": "2pl", "a": 0.8, "b": -1.0},
    {"item_id": "d3", "model": "2pl", "a": 1.9, "b": 0.9},
    {"item_id": "g1", "model": "grm", "a": 1.1, "b1": -1.0, "b2": 0.4},
    {"item_id": "g2", "model": "grm", "a": 1.6, "b1": -0.5, "b2": 0.3, "b3": 1.4},
    {"item_id": "p1", "model": "gpcm", "a": 0.9, "b1": 0.2, "b2": -0.3},
    {"item_id": "p2", "model": "pcm", "b1": -1.5, "b2": 0.0, "b3": 1.0},
    {"item_id": "d4", "model": "4pl", "a": 1.4, "b": 1.5, "c": 0.1, "d": 0.9},
])


def selection_context(
    bank, theta, *, available=None, log_posterior=None, points=None, n_scored=None,
    max_items=20, seed=0,
) -> SelectionContext:
    theta = np.asarray(theta, dtype=float)
    n = theta.size
    points = np.linspace(-4, 4, 61) if points is None else points
    if log_posterior is None:
        log_posterior = np.tile(-0.5 * points**2, (n, 1))
    n_scored = np.zeros(n, dtype=np.intp) if n_scored is None else np.asarray(n_scored)
    return SelectionContext(
        bank=bank,
        available=np.ones((n, len(bank)), dtype=bool) if available is None else available,
        theta=theta,
        se=np.full(n, 0.5),
        log_posterior=log_posterior,
        grid_points=points,
        n_scored=n_scored,
        n_given=n_scored.copy(),
        max_items=max_items,
        rng=np.random.default_rng(seed),
    )


def exposure_context(scores: np.ndarray, seed: int = 0, theta=None, n_given=None, stats=None):
    n, j = scores.shape
    return ExposureContext(
        rng=np.random.default_rng(seed),
        n_given=np.zeros(n, dtype=np.intp) if n_given is None else n_given,
        max_items=20,
        theta=np.zeros(n) if theta is None else theta,
        excluded=np.zeros((n, j), dtype=bool),
        stats=stats or ExposureStats.empty(j),
    )


# -- maximum information ----------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 300], ids=["direct", "table"])
def test_mfi_picks_the_most_informative_available_item(n) -> None:
    rng = np.random.default_rng(n)
    theta = rng.uniform(-3.5, 3.5, n)
    available = rng.random((n, len(BANK))) < 0.7
    scores = MaximumInformation().scores(selection_context(BANK, theta, available=available))
    assert np.isneginf(scores[~available]).all()
    direct = np.array([
        [information(BANK, j, theta[r]) if available[r, j] else -np.inf for j in range(len(BANK))]
        for r in range(n)
    ])
    best = direct.max(axis=1)
    chosen = scores.argmax(axis=1)
    np.testing.assert_array_equal(chosen, direct.argmax(axis=1))
    assert (direct[np.arange(n), chosen] >= best * (1 - 1e-4)).all()
    finite = np.isfinite(direct)
    relative = np.abs(scores[finite] - direct[finite]) / np.repeat(best, finite.sum(axis=1))
    assert relative.max() < 1e-4


def test_table_interpolation_matches_direct_information_everywhere() -> None:
    theta = np.random.default_rng(1).uniform(-6.5, 6.5, 3000)  # beyond the table's ends too
    table = bank_tables(BANK).information_at(theta)
    direct = information(BANK, np.arange(len(BANK))[None, :], np.clip(theta, -6, 6)[:, None])
    scale = direct.max(axis=1, keepdims=True)
    assert (np.abs(table - direct) / scale).max() < 1e-4
    assert bank_tables(BANK) is bank_tables(BANK)  # computed once per bank


# -- Kullback-Leibler ---------------------------------------------------------------------------


def _kl_integral(bank: ItemBank, j: int, theta_hat: float, lo: float, hi: float) -> float:
    a, b = bank.a[j], bank.b[j]
    log_p_hat, log_q_hat = log_expit(a * (theta_hat - b)), log_expit(-a * (theta_hat - b))

    def divergence(t: float) -> float:  # 2PL, D = 1, in logs (accurate far in the tails)
        log_p, log_q = log_expit(a * (t - b)), log_expit(-a * (t - b))
        return (np.exp(log_p_hat) * (log_p_hat - log_p)
                + np.exp(log_q_hat) * (log_q_hat - log_q))

    inner = [theta_hat] if lo < theta_hat < hi else None
    return quad(divergence, lo, hi, points=inner, limit=200)[0]


@pytest.mark.parametrize("rows", [1, 4], ids=["quadrature", "table"])
def test_kl_index_is_the_integral_of_the_kl_divergence_over_the_window(rows) -> None:
    """The selector's index is the integral over the whole window (scipy's quad here), by
    quadrature for a few rows and from the per-bank table for many (past its end too)."""
    theta = np.tile([-1.3, 0.2, 2.5, 0.0, 3.6], rows)
    n_scored = np.tile([1, 4, 16, 0, 1], rows)
    theta[-1], n_scored[-1] = 10.5, 1  # the window reaches 13.5, past the table's 12
    ctx = selection_context(BANK_2PL, theta, n_scored=n_scored)
    scores = KullbackLeibler(z=3.0).scores(ctx)
    for row in range(theta.size):
        delta = 3.0 / np.sqrt(max(n_scored[row], 1))
        reference = np.array([
            _kl_integral(BANK_2PL, j, theta[row], theta[row] - delta, theta[row] + delta)
            for j in range(len(BANK_2PL))
        ])
        # Relative to each value, and to the row's best for the items that carry nothing
        # there (KL ~ 1e-11 far from their difficulty).
        np.testing.assert_allclose(scores[row], reference, rtol=1e-6, atol=1e-9 * reference.max())


def test_kl_after_one_item_chooses_the_exact_chang_ying_best() -> None:
    """Early in a test (the widest window) the choice is the exact index's best item."""
    bank = make_bank(80, seed=9, model="2pl")
    theta = np.linspace(-3.5, 3.5, 57)
    n_scored = np.ones(theta.size, dtype=np.intp)
    scores = KullbackLeibler().scores(selection_context(bank, theta, n_scored=n_scored))
    chosen = scores.argmax(axis=1)
    for row, t in enumerate(theta):
        reference = np.array([_kl_integral(bank, j, t, t - 3.0, t + 3.0)
                              for j in range(len(bank))])
        assert reference[chosen[row]] >= (1 - 1e-6) * reference.max(), t


def test_kl_of_polytomous_items_matches_quad() -> None:
    theta_hat, delta = 0.4, 3.0

    def divergence(t: float, j: int) -> float:
        p_hat = category_probabilities(POLY, j, theta_hat)
        p = category_probabilities(POLY, j, t)
        k = p_hat > 0
        return float((p_hat[k] * np.log(p_hat[k] / p[k])).sum())

    reference = [quad(divergence, theta_hat - delta, theta_hat, args=(j,))[0]
                 + quad(divergence, theta_hat, theta_hat + delta, args=(j,))[0]
                 for j in range(len(POLY))]
    ctx = selection_context(POLY, [theta_hat], n_scored=np.array([1]))
    np.testing.assert_allclose(KullbackLeibler().scores(ctx)[0], reference, rtol=1e-6)
    many = selection_context(POLY, np.full(12, theta_hat), n_scored=np.ones(12, dtype=np.intp))
    np.testing.assert_allclose(KullbackLeibler().scores(many)[5], reference, rtol=1e-6)
    # a wider z widens the window: every score grows
    wide = KullbackLeibler(z=4.0).scores(ctx)
    assert (wide[0] > np.array(reference)).all()


# -- posterior-weighted information and expected posterior variance -----------------------------


def _log_posterior(bank, points, seed, n_rows=3, length=6):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_rows):
        items = rng.choice(len(bank), size=length, replace=False)
        responses = np.array([rng.integers(0, bank.n_categories[j]) for j in items])
        rows.append(-0.5 * points**2 + log_likelihood(bank, items, responses, points))
    return np.array(rows)


@pytest.mark.parametrize("bank", [BANK, POLY], ids=["dichotomous", "polytomous"])
def test_mpwi_is_posterior_weighted_information(bank) -> None:
    points = np.linspace(-4, 4, 61)
    log_post = _log_posterior(bank, points, seed=2)
    available = np.ones((3, len(bank)), dtype=bool)
    available[1, :3] = False
    ctx = selection_context(bank, np.zeros(3), available=available, log_posterior=log_post)
    scores = PosteriorWeightedInformation().scores(ctx)
    for row in range(3):
        weights = np.exp(log_post[row] - log_post[row].max())
        weights /= weights.sum()
        for j in range(len(bank)):
            if not available[row, j]:
                assert scores[row, j] == -np.inf
                continue
            expected = float(np.dot(weights, information(bank, j, points)))
            assert scores[row, j] == pytest.approx(expected, rel=1e-10)
    assert make_selector({"method": "mpwi"}).__class__ is PosteriorWeightedInformation


def test_mpwi_is_named_for_what_it_computes_and_equals_mepwi_by_brute_force() -> None:
    """MEPWI by brute force (the posterior updated with each predicted response) ranks as MPWI."""
    points = np.linspace(-4, 4, 61)
    log_post = _log_posterior(POLY, points, seed=4, n_rows=1)
    ctx = selection_context(POLY, np.zeros(1), log_posterior=log_post)
    scores = PosteriorWeightedInformation().scores(ctx)[0]
    weights = np.exp(log_post[0] - log_post[0].max())
    weights /= weights.sum()
    for j in range(len(POLY)):
        probs = category_probabilities(POLY, j, points)  # (Q, K)
        info = information(POLY, j, points)
        expected = 0.0
        for k in range(int(POLY.n_categories[j])):
            joint = weights * probs[:, k]
            predictive = joint.sum()
            expected += predictive * float(np.dot(joint / predictive, info))
        assert scores[j] == pytest.approx(expected, rel=1e-10)
    assert make_selector({"method": "mpwi"}).name == "mpwi"
    assert make_selector({"method": "mepwi"}).name == "mpwi"  # the stored configurations' alias


@pytest.mark.parametrize("bank", [BANK_2PL, POLY], ids=["2pl", "polytomous"])
def test_mepv_minimises_the_brute_force_expected_posterior_variance(bank) -> None:
    points = np.linspace(-4, 4, 61)
    log_post = _log_posterior(bank, points, seed=5, n_rows=1, length=3)
    ctx = selection_context(bank, np.zeros(1), log_posterior=log_post)
    scores = ExpectedPosteriorVariance().scores(ctx)[0]
    prior = np.exp(log_post[0] - log_post[0].max())
    expected = []
    for j in range(len(bank)):
        total = 0.0
        for k in range(int(bank.n_categories[j])):
            likelihood = np.array([category_probabilities(bank, j, t)[k] for t in points])
            joint = prior * likelihood
            marginal = joint.sum() / prior.sum()  # P(response k)
            post = joint / joint.sum()
            mean = (post * points).sum()
            total += marginal * (post * (points - mean) ** 2).sum()
        expected.append(total)
    expected = np.array(expected)
    np.testing.assert_allclose(-scores, expected, rtol=1e-9)
    assert scores.argmax() == expected.argmin()


# -- a-stratified -----------------------------------------------------------------------------


def _independent_strata(bank: ItemBank, strata: int) -> np.ndarray:
    """Sort by b, cut into blocks of ``strata`` items, rank a within a block (full blocks)."""
    order = np.argsort(bank.b, kind="stable")
    stratum = np.full(len(bank), -1)
    for start in range(0, len(bank) - len(bank) % strata, strata):
        block = order[start:start + strata]
        stratum[block[np.argsort(bank.a[block], kind="stable")]] = np.arange(strata)
    return stratum


def test_astrat_moves_from_low_a_to_high_a_strata_choosing_b_near_theta() -> None:
    strata = _independent_strata(BANK, 4)  # 200 items: 50 full blocks
    theta = np.array([-1.0, 0.3, 1.2, 2.0, 0.0])
    n_scored = np.array([0, 5, 10, 15, 19])  # max_items 20: stages of 5 items
    scores = AStratified(strata=4).scores(
        selection_context(BANK, theta, n_scored=n_scored, max_items=20)
    )
    chosen = scores.argmax(axis=1)
    assert strata[chosen].tolist() == [0, 1, 2, 3, 3]
    for row, stage in enumerate([0, 1, 2, 3, 3]):
        members = np.flatnonzero(strata == stage)
        closest = members[np.abs(BANK.b[members] - theta[row]).argmin()]
        assert chosen[row] == closest
    mean_a = [BANK.a[strata == s].mean() for s in range(4)]
    assert mean_a == sorted(mean_a) and mean_a[3] > mean_a[0] + 0.8


def test_astrat_b_blocking_spreads_b_within_every_stratum() -> None:
    strata = _independent_strata(BANK, 4)
    quartiles = np.quantile(BANK.b, [0.25, 0.5, 0.75])
    for s in range(4):
        counts = np.bincount(np.searchsorted(quartiles, BANK.b[strata == s]), minlength=4)
        assert counts.min() >= 12 and counts.max() <= 13  # 50 items: one per block of 4


def test_astrat_session_gives_low_a_items_first() -> None:
    strata = _independent_strata(BANK, 4)
    session = CATSession(
        BANK, {"selection": {"method": "astrat", "strata": 4}, "stopping": {"max_items": 20}}
    )
    rng = np.random.default_rng(0)
    while not session.finished:
        session.answer(session.next_item(), int(rng.random() < 0.5))
    given = BANK.indices_of([h.item_id for h in session.history])
    assert strata[given].tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    assert BANK.a[given[:5]].mean() < BANK.a[given[-5:]].mean()


def test_astrat_falls_back_to_any_item_when_the_stratum_is_used_up() -> None:
    strata = _independent_strata(BANK, 4)
    available = np.ones((1, len(BANK)), dtype=bool)
    available[0, strata == 0] = False
    scores = AStratified(4).scores(selection_context(BANK, [0.0], available=available))
    assert np.isfinite(scores).sum() == available.sum()


# -- randomesque ---------------------------------------------------------------------------------


def test_randomesque_picks_uniformly_among_the_top_n() -> None:
    rng = np.random.default_rng(0)
    row = rng.random(50)
    row[[3, 17]] = -np.inf
    scores = np.tile(row, (30000, 1))
    chosen = Randomesque(n=5).choose(scores, exposure_context(scores, seed=1))
    top = set(np.argsort(-row)[:5].tolist())
    assert set(chosen.tolist()) == top
    counts = np.array([np.sum(chosen == j) for j in sorted(top)])
    assert np.abs(counts - 6000).max() < 5 * np.sqrt(30000 * 0.2 * 0.8)


def test_randomesque_never_gives_an_unavailable_item_and_n_1_is_argmax() -> None:
    scores = np.full((1000, 10), -np.inf)
    scores[:, [2, 7]] = [0.5, 0.9]
    chosen = Randomesque(n=5).choose(scores, exposure_context(scores))
    assert set(chosen.tolist()) == {2, 7}
    rng = np.random.default_rng(2)
    scores = rng.random((100, 30))
    np.testing.assert_array_equal(
        Randomesque(n=1).choose(scores, exposure_context(scores)), scores.argmax(axis=1)
    )


# -- Sympson-Hetter -------------------------------------------------------------------------------


def test_sympson_hetter_with_k_one_is_argmax_and_withdraws_nothing() -> None:
    scores = np.random.default_rng(0).random((500, 40))
    scores[:, 5] = -np.inf
    control = SympsonHetter(k=np.ones((1, 40)))
    ctx = exposure_context(scores)
    np.testing.assert_array_equal(control.choose(scores, ctx), scores.argmax(axis=1))
    assert not ctx.excluded.any()


def test_sympson_hetter_k_zero_item_is_never_given_and_is_withdrawn() -> None:
    scores = np.tile(np.linspace(0.1, 1.0, 20), (2000, 1))  # item 19 best, then 18
    k = np.ones((1, 20))
    k[0, 19] = 0.0
    ctx = exposure_context(scores)
    chosen = SympsonHetter(k=k).choose(scores, ctx)
    assert (chosen == 18).all()
    assert ctx.excluded[:, 19].all()
    assert ctx.excluded.sum() == 2000  # nothing else withdrawn


def test_sympson_hetter_gives_an_always_best_item_with_probability_k() -> None:
    n = 20000
    scores = np.tile(np.linspace(0.1, 1.0, 20), (n, 1))
    k = np.ones((1, 20))
    k[0, 19] = 0.3
    control = SympsonHetter(k=k)
    ctx = exposure_context(scores, seed=7)
    chosen = control.choose(scores, ctx)
    share = np.mean(chosen == 19)
    assert abs(share - 0.3) < 5 * np.sqrt(0.3 * 0.7 / n)
    assert set(chosen.tolist()) == {18, 19}
    np.testing.assert_array_equal(ctx.excluded[:, 19], chosen == 18)  # failed its lottery
    # every row went through the lottery of item 19; those that failed also through 18's
    assert control.last_selected[:, 19].all()
    np.testing.assert_array_equal(control.last_selected[:, 18], chosen == 18)


def test_conditional_sympson_hetter_uses_the_row_of_the_theta_stratum() -> None:
    scores = np.tile(np.linspace(0.1, 1.0, 10), (1000, 1))
    k = np.ones((2, 10))
    k[0, 9] = 0.0  # below the cut the best item is never given
    theta = np.where(np.arange(1000) % 2 == 0, -1.0, 1.0)
    control = make_exposure(
        {"method": "sympson-hetter", "k": k.tolist(), "theta_cuts": [0.0]}, 10
    )
    chosen = control.choose(scores, exposure_context(scores, theta=theta))
    np.testing.assert_array_equal(chosen, np.where(theta < 0, 8, 9))


# -- progressive and item eligibility --------------------------------------------------------------


def test_progressive_is_random_at_the_start_and_optimal_at_the_end() -> None:
    n = 20000
    scores = np.tile(np.linspace(0.1, 1.0, 10), (n, 1))
    scores[:, 0] = -np.inf
    control = Progressive()
    start = control.choose(scores, exposure_context(scores, n_given=np.zeros(n, dtype=int)))
    counts = np.bincount(start, minlength=10)
    assert counts[0] == 0
    assert np.abs(counts[1:] - n / 9).max() < 5 * np.sqrt(n / 9)
    end = control.choose(scores, exposure_context(scores, n_given=np.full(n, 20)))
    assert (end == 9).all()


def test_restricted_progressive_withholds_items_over_r_max() -> None:
    scores = np.tile(np.linspace(0.1, 1.0, 10), (500, 1))
    stats = ExposureStats(counts=np.array([0, 0, 0, 0, 0, 0, 0, 0, 5, 5.0]), tests=10)
    control = Progressive(r_max=0.4)
    chosen = control.choose(scores, exposure_context(scores, n_given=np.full(500, 20),
                                                     stats=stats))
    assert (chosen == 7).all()  # items 8 and 9 were given to half the test takers
    only_over = np.full((500, 10), -np.inf)
    only_over[:, [8, 9]] = [0.1, 0.2]
    chosen = control.choose(only_over, exposure_context(only_over, n_given=np.full(500, 20),
                                                        stats=stats))
    assert (chosen == 9).all()  # nothing else left: an over-exposed item is still given


def test_item_eligibility_start_excludes_with_probability_one_minus_p() -> None:
    """Without an eligibility record, every item counts as eligible in every test so far."""
    control = ItemEligibility(r_max=0.2)
    rates = np.array([0.1, 0.2, 0.4, 0.8])
    stats = ExposureStats(counts=rates * 1000, tests=1000)
    excluded = np.zeros((20000, 4), dtype=bool)
    control.start(excluded, np.random.default_rng(0), stats)
    np.testing.assert_allclose(control.probabilities(stats), [1.0, 1.0, 0.5, 0.25])
    np.testing.assert_allclose(excluded.mean(axis=0), [0, 0, 0.5, 0.75], atol=0.015)


def test_item_eligibility_follows_van_der_linden_and_veldkamp() -> None:
    """p = 1 - n/f + r_max (rho / alpha) (n / f), from the counts kept (2007, p. 407)."""
    control = ItemEligibility(r_max=0.2)
    # 100 tests, 80 feasible; item 0 given in 40 and eligible (or released) in 50; item 1
    # given in 10 of 100; item 2 never given; item 3 given in 30 of the 35 it was eligible in.
    stats = ExposureStats(counts=np.array([40.0, 10, 0, 30]), tests=100,
                          eligible=np.array([50.0, 100, 20, 35]), feasible=80)
    ratio = 100 / 80
    expected = [1 - ratio + 0.2 * 50 / 40 * ratio, 1.0, 1.0, 1 - ratio + 0.2 * 35 / 30 * ratio]
    np.testing.assert_allclose(control.probabilities(stats), expected)
    # All feasible: p_new = r_max * P(E) / P(A), the previous eligibility times r_max / rate.
    stats = ExposureStats(counts=np.array([40.0]), tests=100, eligible=np.array([50.0]),
                          feasible=100)
    np.testing.assert_allclose(control.probabilities(stats), [0.2 * 0.5 / 0.4])


def test_exposure_stats_record_counts_eligibility_and_released_tests() -> None:
    stats = ExposureStats.empty(3)
    given = np.array([[True, False, True], [True, True, False]])
    withheld = np.array([[False, True, False], [False, False, True]])
    stats.record(given, withheld, released=np.array([False, True]))
    np.testing.assert_array_equal(stats.counts, [2, 1, 1])
    # The second test released what it withheld: every item counts as eligible there.
    np.testing.assert_array_equal(stats.eligible, [2, 1, 2])
    assert (stats.tests, stats.feasible) == (2, 1)


def _max_exposure(exposure: dict) -> float:
    thetas = np.random.default_rng(11).normal(size=300)
    settings = {"exposure": exposure, "stopping": {"se": 0.35, "max_items": 20}}
    return simulate(BANK, thetas, settings, seed=2).max_exposure


def test_eligibility_and_restricted_progressive_reduce_maximum_exposure() -> None:
    none = _max_exposure({"method": "none"})
    assert none == 1.0  # everyone starts at theta 0 with the same item
    eligibility = _max_exposure({"method": "eligibility", "r_max": 0.2})
    progressive = _max_exposure({"method": "progressive", "r_max": 0.2})
    assert eligibility < 0.4  # r_max 0.2, adapted between cohorts of 30 simulees
    assert progressive < 0.3
    assert progressive < _max_exposure({"method": "progressive"})  # the restriction matters


# -- configuration -------------------------------------------------------------------------------


def test_make_selector_builds_each_selector() -> None:
    assert isinstance(make_selector({}), MaximumInformation)
    assert isinstance(make_selector({"method": "MFI"}), MaximumInformation)
    assert isinstance(make_selector({"method": "mepv"}), ExpectedPosteriorVariance)
    assert isinstance(make_selector({"method": "random"}), RandomSelection)
    assert make_selector({"method": "kl", "z": 2}).z == 2.0
    assert make_selector({"method": "astrat", "strata": 3}).strata == 3


def test_make_exposure_builds_each_control() -> None:
    assert isinstance(make_exposure({}, 5), NoExposureControl)
    assert make_exposure({"method": "randomesque"}, 5).n == 5
    assert make_exposure({"method": "progressive"}, 5).r_max is None
    assert make_exposure({"method": "progressive-restricted", "r_max": 0.3}, 5).r_max == 0.3
    assert make_exposure({"method": "eligibility", "r_max": 0.25}, 5).r_max == 0.25
    control = make_exposure({"method": "sympson-hetter", "r_max": 0.3}, 5)
    assert control.k.shape == (1, 5) and (control.k == 1).all()
    assert control.settings()["k"] == [[1.0] * 5]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"method": "best"}, "selection.method: 'best' is not one of"),
        ({"method": "astrat", "strata": 0}, "selection.strata must be at least 1"),
    ],
)
def test_make_selector_errors_name_the_setting(spec, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make_selector(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"method": "lottery"}, "exposure.method: 'lottery' is not one of"),
        ({"method": "randomesque", "n": 0}, "exposure.n must be at least 1"),
        ({"method": "progressive", "r_max": 1.5}, r"exposure.r_max must be in \(0, 1\]"),
        ({"method": "eligibility", "r_max": 0}, r"exposure.r_max must be in \(0, 1\]"),
        ({"method": "sympson-hetter", "r_max": 2}, r"exposure.r_max must be in \(0, 1\]"),
        ({"method": "sympson-hetter", "k": [0.5] * 4}, r"exposure.k must have shape \(1, 5\)"),
        ({"method": "sympson-hetter", "k": [[1] * 5] * 2, "theta_cuts": [0, 1]},
         r"exposure.k must have shape \(3, 5\) for 3 theta strata"),
        ({"method": "sympson-hetter", "k": [1, 1, 1, 1, 1.5]}, "exposure.k values must be"),
    ],
)
def test_make_exposure_errors_name_the_setting(spec, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make_exposure(spec, 5)


@pytest.mark.parametrize(
    ("build", "spec", "setting"),
    [
        (lambda s: make_exposure(s, 5), {"method": "randomesque", "n": "x"}, "exposure.n"),
        (lambda s: make_exposure(s, 5), {"method": "randomesque", "n": None}, "exposure.n"),
        (make_selector, {"method": "astrat", "strata": None}, "selection.strata"),
        (make_selector, {"method": "kl", "z": "wide"}, "selection.z"),
    ],
)
def test_non_numbers_are_config_errors(build, spec, setting) -> None:
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")):
        build(spec)
