"""lz and Snijders' lz*: hand computations, the estimating equations, and the null distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.person_fit import estimate_theta, person_fit
from cat_engine.bank import ItemBank

# Four dichotomous items of the 4PL family on the D = 1.702 metric.
ITEMS = [
    {"item_id": "i1", "model": "2pl", "a": 1.2, "b": -0.5},
    {"item_id": "i2", "model": "3pl", "a": 0.8, "b": 0.4, "c": 0.2},
    {"item_id": "i3", "model": "4pl", "a": 1.5, "b": 1.0, "c": 0.1, "d": 0.95},
    {"item_id": "i4", "model": "rasch", "b": 0.2},
]
D = 1.702


def _p(item: dict, theta: float) -> float:
    a, c, d = item.get("a", 1.0), item.get("c", 0.0), item.get("d", 1.0)
    return c + (d - c) / (1.0 + math.exp(-D * a * (theta - item["b"])))


def _hand(x: list[int], theta: float, r0: float) -> tuple[float, float]:
    """lz and lz* written out from Snijders (2001), derivatives by central differences."""
    h = 1e-4
    big_w = var_lz = num_c = info = 0.0
    rows = []
    for item, xi in zip(ITEMS, x, strict=True):
        p = _p(item, theta)
        dp = (_p(item, theta + h) - _p(item, theta - h)) / (2 * h)
        w = math.log(p / (1 - p))
        r = dp / (p * (1 - p))
        big_w += (xi - p) * w
        var_lz += w * w * p * (1 - p)
        num_c += dp * w
        info += dp * r
        rows.append((p, w, r))
    c_n = num_c / info
    var_star = sum((w - c_n * r) ** 2 * p * (1 - p) for p, w, r in rows)
    return big_w / math.sqrt(var_lz), (big_w + c_n * r0) / math.sqrt(var_star)


def _warm_r0(theta: float) -> float:
    h = 1e-4
    info = j = 0.0
    for item in ITEMS:
        p = _p(item, theta)
        dp = (_p(item, theta + h) - _p(item, theta - h)) / (2 * h)
        d2p = (_p(item, theta + h) - 2 * p + _p(item, theta - h)) / (h * h)
        info += dp * dp / (p * (1 - p))
        j += dp * d2p / (p * (1 - p))
    return j / (2 * info)


@pytest.fixture()
def bank() -> ItemBank:
    return ItemBank.from_records(ITEMS, D=D)


@pytest.mark.parametrize(
    ("estimator", "r0"),
    [
        ("mle", lambda t: 0.0),
        ("wle", _warm_r0),
        ("map", lambda t: -(t - 0.5) / 1.2**2),  # prior N(0.5, 1.2)
    ],
)
def test_lz_and_lz_star_match_a_hand_computation(bank, estimator, r0):
    x = [1, 0, 1, 0]
    theta = 0.3
    fit = person_fit(bank, np.array([x], float), np.array([theta]), estimator=estimator,
                     prior=(0.5, 1.2))
    lz, lz_star = _hand(x, theta, r0(theta))
    assert fit.lz[0] == pytest.approx(lz, rel=1e-6)
    assert fit.lz_star[0] == pytest.approx(lz_star, rel=1e-6)
    assert fit.n_items[0] == 4
    if estimator != "mle":
        assert fit.lz_star[0] != pytest.approx(_hand(x, theta, 0.0)[1], rel=1e-3)


@pytest.mark.parametrize("estimator", ["mle", "wle", "map"])
def test_at_the_engines_estimate_lz_star_is_the_corrected_residual_sum(bank, estimator):
    """At the root of the estimating equation, W + c r0 = sum (x - P)(w - c r): r0 has the sign
    and form of the engine's own estimator (a wrong r0 breaks this identity)."""
    x = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1]], float)
    fit = person_fit(bank, x, estimator=estimator, prior=(0.0, 1.0))
    for row, theta in zip(x, fit.theta, strict=True):
        ps = np.array([_p(item, theta) for item in ITEMS])
        dp = np.array([(_p(i, theta + 1e-5) - _p(i, theta - 1e-5)) / 2e-5 for i in ITEMS])
        w = np.log(ps / (1 - ps))
        r = dp / (ps * (1 - ps))
        c_n = (dp * w).sum() / (dp * r).sum()
        wt = w - c_n * r
        direct = ((row - ps) * wt).sum() / math.sqrt((wt * wt * ps * (1 - ps)).sum())
        i = int(np.flatnonzero((x == row).all(axis=1))[0])
        assert fit.lz_star[i] == pytest.approx(direct, abs=1e-6)


def test_sparse_columns_polytomous_items_and_perfect_patterns(bank):
    records = [*ITEMS, {"item_id": "g1", "model": "grm", "a": 1.0, "thresholds": [-1, 0, 1]}]
    mixed = ItemBank.from_records(records, D=D)
    dense = np.array([[1, 0, 1, 0]], float)
    alone = person_fit(bank, dense, np.array([0.3]))
    # columns in another order (bank positions), an item not presented (NaN), and a response to
    # a polytomous item (ignored): the same statistics as the four dichotomous answers alone
    fit = person_fit(mixed, np.array([[np.nan, 2, 1, 0, 1, 0]], float), np.array([0.3]),
                     items=[2, 4, 0, 1, 2, 3])
    assert fit.n_items[0] == 4
    assert fit.lz[0] == pytest.approx(alone.lz[0], rel=1e-12)
    assert fit.lz_star[0] == pytest.approx(alone.lz_star[0], rel=1e-12)
    # all correct: no finite ML estimate, so no lz*; WLE and MAP have one
    perfect = np.ones((1, 4))
    assert np.isnan(person_fit(bank, perfect, estimator="mle").lz_star[0])
    assert np.isfinite(person_fit(bank, perfect, estimator="wle").lz_star[0])
    assert np.isfinite(person_fit(bank, perfect, estimator="map").lz_star[0])
    nothing = person_fit(bank, np.full((1, 4), np.nan), np.array([0.0]))
    assert np.isnan(nothing.lz[0]) and np.isnan(nothing.lz_star[0]) and nothing.n_items[0] == 0


def test_bad_input_names_what_is_wrong(bank):
    with pytest.raises(CalibrationError, match=r"responses\[0, 2\] \(item 'i3'\) is 2.0"):
        person_fit(bank, np.array([[1, 0, 2, 1]], float), np.array([0.0]))
    with pytest.raises(CalibrationError, match="estimator must be one of mle, wle, map"):
        person_fit(bank, np.ones((1, 4)), estimator="eap")
    with pytest.raises(CalibrationError, match="one value per person"):
        person_fit(bank, np.ones((2, 4)), np.zeros(3))
    with pytest.raises(CalibrationError, match="prior"):
        estimate_theta(bank, np.ones((1, 4)), estimator="map", prior=(0, -1))


def test_under_the_model_lz_star_is_standard_normal_and_plain_lz_is_too_narrow():
    """Snijders' result in a simulation: 4,000 simulees per test of 20 and of 40 items (half 2PL,
    half 3PL, D = 1), theta ~ N(0, 1), ML and WL estimates. lz*: mean within 0.15 of 0 (its
    small positive mean is the finite-test skew, shrinking with length) and variance within 0.08
    of 1 (the sampling sd of a variance here is about 0.03). Plain lz at the same estimates has a
    variance below 0.8: the bias lz* corrects."""
    rng = np.random.default_rng(2001)
    for n_items in (20, 40):
        records = [
            {"item_id": f"s{j}", "model": "3pl" if j % 2 else "2pl",
             "a": float(rng.uniform(0.8, 1.6)), "b": float(rng.normal()),
             **({"c": 0.2} if j % 2 else {})}
            for j in range(n_items)
        ]
        sim_bank = ItemBank.from_records(records)
        theta = rng.normal(size=4000)
        p = sim_bank.c + (sim_bank.d - sim_bank.c) / (
            1 + np.exp(-sim_bank.a * (theta[:, None] - sim_bank.b)))
        x = (rng.random(p.shape) < p).astype(float)
        for estimator in ("mle", "wle"):
            fit = person_fit(sim_bank, x, estimator=estimator)
            ok = np.isfinite(fit.lz_star)
            assert ok.mean() > 0.98
            star, plain = fit.lz_star[ok], fit.lz[ok]
            assert abs(star.mean()) < 0.15, (n_items, estimator, star.mean())
            assert abs(star.var() - 1) < 0.08, (n_items, estimator, star.var())
            assert plain.var() < 0.8, (n_items, estimator, plain.var())
        # at the true theta the plain lz is the standard normal one (a check of the simulation)
        true = person_fit(sim_bank, x, theta).lz
        assert abs(true.var() - 1) < 0.08


def test_no_lz_star_where_the_estimate_stopped_at_a_bound_short_of_the_root():
    """Review: a 3PL pattern right only on the two hardest items has its likelihood rising
    towards -infinity (guessing explains the two right answers better than any ability), so
    the MLE stops at the lower search bound, where the estimating equation does not hold. lz*
    there is not Snijders' statistic: it must be NaN, as for a perfect pattern, not a number
    that looks like a good fit."""
    items = [{"item_id": f"g{j}", "model": "3pl", "a": 1.5, "b": b, "c": 0.25}
             for j, b in enumerate(np.linspace(-2.0, 2.0, 10))]
    guessing = ItemBank.from_records(items, D=D)
    x = np.zeros((1, 10))
    x[0, -2:] = 1.0  # only the two hardest right
    fit = person_fit(guessing, x, estimator="mle", bounds=(-4.0, 4.0))
    assert fit.theta[0] == pytest.approx(-4.0)
    # The score at the bound still points outwards: the root lies beyond it.
    p = np.array([0.25 + 0.75 / (1 + math.exp(-D * 1.5 * (-4.0 - it["b"]))) for it in items])
    dp = (p - 0.25) * (1 - (p - 0.25) / 0.75) * D * 1.5
    assert float((dp / (p * (1 - p)) * (x[0] - p)).sum()) < 0
    assert np.isfinite(fit.lz[0])
    assert np.isnan(fit.lz_star[0])
    # A pattern whose root lies inside the bounds keeps its lz*.
    inner = person_fit(guessing, np.array([[1, 1, 1, 1, 1, 0, 1, 0, 1, 0]], float),
                       estimator="mle")
    assert -4.0 < inner.theta[0] < 4.0 and np.isfinite(inner.lz_star[0])
