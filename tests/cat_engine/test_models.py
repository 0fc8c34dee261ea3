"""Tests of the vectorised IRT models against independently written closed forms.

Every expected value here is computed by the test itself, from the textbook formulas (4PL family,
Samejima's graded response model, Muraki's generalized partial credit model), by finite
differences, or from hand-worked and published numbers; never from the module's own helpers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from cat_engine import models
from cat_engine.bank import ItemBank, ItemParameters

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
D_NORMAL = 1.702


# ---------------------------------------------------------------------------------------------
# Reference formulas, written out independently of cat_engine (scalar theta, plain math)


def _logistic(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def ref_p4(theta: float, a: float, b: float, c: float = 0.0, d: float = 1.0, D: float = 1.0):
    """4PL: P(1) = c + (d - c) / (1 + exp(-D a (theta - b)))."""
    return c + (d - c) * _logistic(D * a * (theta - b))


def ref_info4(theta: float, a: float, b: float, c: float = 0.0, d: float = 1.0, D: float = 1.0):
    """4PL information D^2 a^2 (P - c)^2 (d - P)^2 / ((d - c)^2 P (1 - P))."""
    p = ref_p4(theta, a, b, c, d, D)
    return D**2 * a**2 * (p - c) ** 2 * (d - p) ** 2 / ((d - c) ** 2 * p * (1 - p))


def ref_grm_probs(theta: float, a: float, bs, D: float = 1.0) -> list[float]:
    """Samejima: P_k = P*_k - P*_{k+1}, P*_0 = 1, P*_{m+1} = 0, P*_k = logistic(D a (t - b_k))."""
    star = [1.0] + [_logistic(D * a * (theta - bk)) for bk in bs] + [0.0]
    return [star[k] - star[k + 1] for k in range(len(bs) + 1)]


def ref_grm_info(theta: float, a: float, bs, D: float = 1.0) -> float:
    """sum_k (P*'_k - P*'_{k+1})^2 / P_k with P*' = D a P* (1 - P*) (0 at both ends)."""
    star = [_logistic(D * a * (theta - bk)) for bk in bs]
    dstar = [0.0] + [D * a * s * (1 - s) for s in star] + [0.0]
    probs = ref_grm_probs(theta, a, bs, D)
    return sum((dstar[k] - dstar[k + 1]) ** 2 / probs[k] for k in range(len(bs) + 1))


def ref_gpcm_probs(theta: float, a: float, steps, D: float = 1.0) -> list[float]:
    """Muraki: P_k proportional to exp(sum_{v<=k} D a (theta - b_v)), the empty sum being 0."""
    z = [0.0]
    for bv in steps:
        z.append(z[-1] + D * a * (theta - bv))
    top = max(z)
    num = [math.exp(zk - top) for zk in z]
    total = sum(num)
    return [n / total for n in num]


def ref_gpcm_info(theta: float, a: float, steps, D: float = 1.0) -> float:
    """D^2 a^2 Var(category | theta)."""
    probs = ref_gpcm_probs(theta, a, steps, D)
    mean = sum(k * p for k, p in enumerate(probs))
    var = sum((k - mean) ** 2 * p for k, p in enumerate(probs))
    return D**2 * a**2 * var


def ref_probs(item: ItemParameters, theta: float, D: float = 1.0) -> list[float]:
    if item.model in ("rasch", "1pl", "2pl", "3pl", "4pl"):
        p = ref_p4(theta, item.a, item.b, item.c, item.d, D)
        return [1 - p, p]
    if item.model == "grm":
        return ref_grm_probs(theta, item.a, item.thresholds, D)
    return ref_gpcm_probs(theta, item.a, item.thresholds, D)


def ref_info(item: ItemParameters, theta: float, D: float = 1.0) -> float:
    if item.model in ("rasch", "1pl", "2pl", "3pl", "4pl"):
        return ref_info4(theta, item.a, item.b, item.c, item.d, D)
    if item.model == "grm":
        return ref_grm_info(theta, item.a, item.thresholds, D)
    return ref_gpcm_info(theta, item.a, item.thresholds, D)


def n_cat(item: ItemParameters) -> int:
    return len(item.thresholds) + 1 if item.model in ("grm", "gpcm", "pcm") else 2


# ---------------------------------------------------------------------------------------------
# Strategies: random valid items and banks


def floats(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def items_of(draw, model: str | None = None, item_id: str = "i") -> ItemParameters:
    model = model or draw(
        st.sampled_from(["rasch", "1pl", "2pl", "3pl", "4pl", "grm", "gpcm", "pcm"])
    )
    if model == "rasch":
        return ItemParameters(item_id, model, b=draw(floats(-3, 3)))
    a = draw(floats(0.3, 2.5))
    if model in ("1pl", "2pl"):
        return ItemParameters(item_id, model, a=a, b=draw(floats(-3, 3)))
    if model == "3pl":
        return ItemParameters(item_id, model, a=a, b=draw(floats(-3, 3)), c=draw(floats(0, 0.35)))
    if model == "4pl":
        c, d = draw(floats(0, 0.3)), draw(floats(0.75, 1.0))
        return ItemParameters(item_id, model, a=a, b=draw(floats(-3, 3)), c=c, d=d)
    m = draw(st.integers(1, 4))
    if model == "grm":
        start = draw(floats(-3, 1))
        gaps = draw(st.lists(floats(0.2, 1.5), min_size=m - 1, max_size=m - 1))
        bs = [start]
        for gap in gaps:
            bs.append(bs[-1] + gap)
        return ItemParameters(item_id, model, a=a, thresholds=tuple(bs))
    steps = tuple(draw(st.lists(floats(-3, 3), min_size=m, max_size=m)))
    return ItemParameters(item_id, model, a=1.0 if model == "pcm" else a, thresholds=steps)


@st.composite
def banks(draw, min_size: int = 1, max_size: int = 6, models_: list[str] | None = None):
    n = draw(st.integers(min_size, max_size))
    chosen = [
        draw(items_of(draw(st.sampled_from(models_)) if models_ else None, f"item-{j}"))
        for j in range(n)
    ]
    D = draw(st.sampled_from([1.0, D_NORMAL]))
    return chosen, ItemBank.from_items(chosen, D=D)


thetas = floats(-4, 4)


def make_bank(*items: ItemParameters, D: float = 1.0) -> ItemBank:
    return ItemBank.from_items(items, D=D)


MIXED_ITEMS = (
    ItemParameters("r", "rasch", b=-0.4),
    ItemParameters("p1", "1pl", a=1.3, b=0.2),
    ItemParameters("p2", "2pl", a=1.7, b=0.9),
    ItemParameters("p3", "3pl", a=1.1, b=-1.2, c=0.2),
    ItemParameters("p4", "4pl", a=2.0, b=0.3, c=0.15, d=0.9),
    ItemParameters("g2", "grm", a=1.4, thresholds=(-1.0, 0.5)),
    ItemParameters("g4", "grm", a=0.8, thresholds=(-2.0, -0.3, 0.4, 1.9)),
    ItemParameters("m3", "gpcm", a=1.2, thresholds=(0.7, -0.6, 1.0)),
    ItemParameters("c2", "pcm", thresholds=(0.3, -0.2)),
    ItemParameters("c1", "pcm", thresholds=(0.5,)),
)


@pytest.fixture(scope="module", params=[1.0, D_NORMAL], ids=["D=1", "D=1.702"])
def mixed(request) -> ItemBank:
    return ItemBank.from_items(MIXED_ITEMS, D=request.param)


# ---------------------------------------------------------------------------------------------
# Hand-worked and published numbers


def test_rasch_item_at_its_difficulty() -> None:
    bank = make_bank(ItemParameters("r", "rasch", b=0.0))
    assert models.p_correct(bank, 0, 0.0) == pytest.approx(0.5)
    assert models.information(bank, 0, 0.0) == pytest.approx(0.25)
    np.testing.assert_allclose(models.category_probabilities(bank, 0, 0.0), [0.5, 0.5])


def test_2pl_information_at_its_difficulty() -> None:
    bank = make_bank(ItemParameters("x", "2pl", a=1.5, b=1.0))
    assert models.information(bank, 0, 1.0) == pytest.approx(0.5625)  # a^2 / 4


def test_2pl_hand_worked_value_off_difficulty() -> None:
    # a = 1.5, b = 1, theta = 0: P = 1 / (1 + e^1.5) = 0.18242552380635635
    bank = make_bank(ItemParameters("x", "2pl", a=1.5, b=1.0))
    p = 0.18242552380635635
    assert models.p_correct(bank, 0, 0.0) == pytest.approx(p, rel=1e-12)
    assert models.information(bank, 0, 0.0) == pytest.approx(2.25 * p * (1 - p), rel=1e-12)


def test_3pl_information_at_its_difficulty() -> None:
    # P(b) = (1 + c) / 2, so I(b) = a^2 (1 - c) / (4 (1 + c)); a = 1, c = 0.2 gives 1/6
    bank = make_bank(ItemParameters("x", "3pl", a=1.0, b=0.5, c=0.2))
    assert models.p_correct(bank, 0, 0.5) == pytest.approx(0.6)
    assert models.information(bank, 0, 0.5) == pytest.approx(1 / 6)


@pytest.mark.parametrize(("a", "b", "c", "D"), [(1.3, 0.4, 0.25, 1.0), (0.8, -1.0, 0.15, D_NORMAL)])
def test_3pl_maximum_information_matches_birnbaum_and_lord(a, b, c, D) -> None:
    # Lord (1980): theta_max = b + ln((1 + sqrt(1 + 8c)) / 2) / (D a),
    # I_max = D^2 a^2 (1 - 20c - 8c^2 + (1 + 8c)^{3/2}) / (8 (1 - c)^2)
    bank = make_bank(ItemParameters("x", "3pl", a=a, b=b, c=c), D=D)
    grid = np.linspace(b - 3, b + 3, 600_001)
    info = models.information(bank, 0, grid)
    theta_max = b + math.log((1 + math.sqrt(1 + 8 * c)) / 2) / (D * a)
    i_max = D**2 * a**2 * (1 - 20 * c - 8 * c**2 + (1 + 8 * c) ** 1.5) / (8 * (1 - c) ** 2)
    assert grid[info.argmax()] == pytest.approx(theta_max, abs=2e-5)
    assert info.max() == pytest.approx(i_max, rel=1e-9)


def test_grm_hand_worked_example() -> None:
    # a = 1, b = (-1, 1), theta = 0: P*_1 = logistic(1), P*_2 = logistic(-1)
    bank = make_bank(ItemParameters("g", "grm", a=1.0, thresholds=(-1.0, 1.0)))
    s1, s2 = 0.7310585786300049, 0.2689414213699951
    np.testing.assert_allclose(
        models.category_probabilities(bank, 0, 0.0), [1 - s1, s1 - s2, s2], rtol=1e-12
    )
    ds = s1 * (1 - s1)  # == s2 (1 - s2)
    expected = ds**2 / (1 - s1) + 0.0 + ds**2 / s2
    assert models.information(bank, 0, 0.0) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.287469, abs=1e-6)


def test_gpcm_equal_steps_is_uniform_with_variance_two_thirds() -> None:
    for D in (1.0, D_NORMAL):
        bank = make_bank(ItemParameters("m", "gpcm", a=1.5, thresholds=(0.0, 0.0)), D=D)
        np.testing.assert_allclose(models.category_probabilities(bank, 0, 0.0), [1 / 3] * 3)
        assert models.information(bank, 0, 0.0) == pytest.approx(D**2 * 1.5**2 * 2 / 3)


def test_pcm_hand_worked_example() -> None:
    # steps (-1, 1) at theta 0: z = (0, 1, 0) -> P = (1, e, 1) / (2 + e), mean 1, var 2 / (2 + e)
    bank = make_bank(ItemParameters("m", "pcm", thresholds=(-1.0, 1.0)))
    e = math.e
    np.testing.assert_allclose(
        models.category_probabilities(bank, 0, 0.0), [1 / (2 + e), e / (2 + e), 1 / (2 + e)]
    )
    assert models.information(bank, 0, 0.0) == pytest.approx(2 / (2 + e))


# ---------------------------------------------------------------------------------------------
# Closed forms of the 4PL family


@PROPERTY
@given(item=items_of("4pl"), theta=thetas, D=st.sampled_from([1.0, D_NORMAL]))
def test_4pl_matches_closed_form(item, theta, D) -> None:
    bank = make_bank(item, D=D)
    assert models.p_correct(bank, 0, theta) == pytest.approx(
        ref_p4(theta, item.a, item.b, item.c, item.d, D), rel=1e-12, abs=1e-15
    )
    assert models.information(bank, 0, theta) == pytest.approx(
        ref_info4(theta, item.a, item.b, item.c, item.d, D), rel=1e-7, abs=1e-10
    )


@PROPERTY
@given(item=items_of("3pl"), theta=thetas, D=st.sampled_from([1.0, D_NORMAL]))
def test_3pl_information_closed_form(item, theta, D) -> None:
    bank = make_bank(item, D=D)
    a, c = item.a, item.c
    p = c + (1 - c) / (1 + math.exp(-D * a * (theta - item.b)))
    expected = D**2 * a**2 * (p - c) ** 2 * (1 - p) / ((1 - c) ** 2 * p)
    assert models.p_correct(bank, 0, theta) == pytest.approx(p, rel=1e-12)
    assert models.information(bank, 0, theta) == pytest.approx(expected, rel=1e-7, abs=1e-10)


@PROPERTY
@given(model=st.sampled_from(["1pl", "2pl"]), a=floats(0.3, 2.5), b=floats(-3, 3), theta=thetas)
def test_2pl_information_is_a_squared_pq(model, a, b, theta) -> None:
    bank = make_bank(ItemParameters("x", model, a=a, b=b))
    p = 1 / (1 + math.exp(-a * (theta - b)))
    assert models.p_correct(bank, 0, theta) == pytest.approx(p, rel=1e-12)
    assert models.information(bank, 0, theta) == pytest.approx(a * a * p * (1 - p), rel=1e-9)


@PROPERTY
@given(b=floats(-3, 3), theta=thetas)
def test_rasch_information_is_pq(b, theta) -> None:
    bank = make_bank(ItemParameters("r", "rasch", b=b))
    p = 1 / (1 + math.exp(-(theta - b)))
    assert models.p_correct(bank, 0, theta) == pytest.approx(p, rel=1e-12)
    assert models.information(bank, 0, theta) == pytest.approx(p * (1 - p), rel=1e-9)


def test_scaling_constant_multiplies_a() -> None:
    theta = np.linspace(-3, 3, 61)
    item = ItemParameters("x", "3pl", a=1.2, b=0.3, c=0.2)
    plain, normal = make_bank(item), make_bank(item, D=D_NORMAL)
    p_plain = np.array([ref_p4(t, 1.2, 0.3, 0.2) for t in theta])
    p_normal = np.array([ref_p4(t, 1.2 * D_NORMAL, 0.3, 0.2) for t in theta])
    np.testing.assert_allclose(models.p_correct(plain, 0, theta), p_plain, rtol=1e-12)
    np.testing.assert_allclose(models.p_correct(normal, 0, theta), p_normal, rtol=1e-12)
    assert not np.allclose(p_plain, p_normal)
    # D = 1.702 with a is the same as D = 1 with a * 1.702, for every family
    for model_item, scaled in [
        (ItemParameters("x", "4pl", a=0.9, b=-0.5, c=0.1, d=0.95), None),
        (ItemParameters("x", "grm", a=0.9, thresholds=(-1.0, 0.2, 1.1)), None),
        (ItemParameters("x", "gpcm", a=0.9, thresholds=(0.4, -0.8)), None),
        (
            ItemParameters("x", "rasch", b=0.4),
            ItemParameters("x", "1pl", a=D_NORMAL, b=0.4),
        ),
        (
            ItemParameters("x", "pcm", thresholds=(0.4, -0.8)),
            ItemParameters("x", "gpcm", a=D_NORMAL, thresholds=(0.4, -0.8)),
        ),
    ]:
        scaled = scaled or ItemParameters(
            "x",
            model_item.model,
            a=model_item.a * D_NORMAL,
            b=model_item.b,
            c=model_item.c,
            d=model_item.d,
            thresholds=model_item.thresholds,
        )
        left, right = make_bank(model_item, D=D_NORMAL), make_bank(scaled)
        np.testing.assert_allclose(
            models.category_probabilities(left, 0, theta),
            models.category_probabilities(right, 0, theta),
            rtol=1e-12,
            atol=1e-15,
        )
        np.testing.assert_allclose(
            models.information(left, 0, theta), models.information(right, 0, theta), rtol=1e-10
        )


# ---------------------------------------------------------------------------------------------
# Closed forms of the polytomous models


@PROPERTY
@given(item=items_of("grm"), theta=thetas, D=st.sampled_from([1.0, D_NORMAL]))
def test_grm_matches_closed_form(item, theta, D) -> None:
    bank = make_bank(item, D=D)
    np.testing.assert_allclose(
        models.category_probabilities(bank, 0, theta),
        ref_grm_probs(theta, item.a, item.thresholds, D),
        rtol=1e-10,
        atol=1e-14,
    )
    assert models.information(bank, 0, theta) == pytest.approx(
        ref_grm_info(theta, item.a, item.thresholds, D), rel=1e-7, abs=1e-10
    )


@PROPERTY
@given(item=items_of("gpcm"), theta=thetas, D=st.sampled_from([1.0, D_NORMAL]))
def test_gpcm_matches_muraki(item, theta, D) -> None:
    bank = make_bank(item, D=D)
    np.testing.assert_allclose(
        models.category_probabilities(bank, 0, theta),
        ref_gpcm_probs(theta, item.a, item.thresholds, D),
        rtol=1e-10,
        atol=1e-14,
    )
    assert models.information(bank, 0, theta) == pytest.approx(
        ref_gpcm_info(theta, item.a, item.thresholds, D), rel=1e-8, abs=1e-12
    )


@PROPERTY
@given(item=items_of("pcm"), theta=thetas)
def test_pcm_is_gpcm_with_unit_slope(item, theta) -> None:
    pcm = make_bank(item)
    gpcm = make_bank(ItemParameters("x", "gpcm", a=1.0, thresholds=item.thresholds))
    np.testing.assert_allclose(
        models.category_probabilities(pcm, 0, theta),
        models.category_probabilities(gpcm, 0, theta),
        rtol=1e-14,
    )
    np.testing.assert_allclose(
        models.category_probabilities(pcm, 0, theta),
        ref_gpcm_probs(theta, 1.0, item.thresholds),
        rtol=1e-10,
        atol=1e-14,
    )
    assert models.information(pcm, 0, theta) == pytest.approx(
        ref_gpcm_info(theta, 1.0, item.thresholds), rel=1e-8, abs=1e-12
    )


def test_one_threshold_polytomous_items_reduce_to_the_2pl() -> None:
    theta = np.linspace(-4, 4, 41)
    two = make_bank(ItemParameters("x", "2pl", a=1.3, b=0.6))
    for model in ("grm", "gpcm"):
        poly = make_bank(ItemParameters("x", model, a=1.3, thresholds=(0.6,)))
        np.testing.assert_allclose(
            models.category_probabilities(poly, 0, theta),
            models.category_probabilities(two, 0, theta),
            rtol=1e-12,
            atol=1e-15,
        )
        np.testing.assert_allclose(
            models.information(poly, 0, theta), models.information(two, 0, theta), rtol=1e-9
        )


# ---------------------------------------------------------------------------------------------
# Finite differences


def test_derivatives_match_finite_differences(mixed: ItemBank) -> None:
    items = np.arange(len(mixed))
    theta = np.linspace(-3.5, 3.5, 29)[:, None]
    p, dp, d2p = models.category_derivatives(mixed, items, theta)
    assert p.shape == dp.shape == d2p.shape == (29, len(mixed), mixed.max_categories)

    def probs(t):
        return models.category_probabilities(mixed, items, t)

    h1 = 1e-6
    fd1 = (probs(theta + h1) - probs(theta - h1)) / (2 * h1)
    np.testing.assert_allclose(dp, fd1, atol=1e-7)
    h2 = 1e-4
    fd2 = (probs(theta + h2) - 2 * probs(theta) + probs(theta - h2)) / h2**2
    np.testing.assert_allclose(d2p, fd2, atol=2e-6)
    # the derivatives of probabilities that sum to one sum to zero
    np.testing.assert_allclose(dp.sum(-1), 0, atol=1e-12)
    np.testing.assert_allclose(d2p.sum(-1), 0, atol=1e-12)


@PROPERTY
@given(drawn=banks(), theta=floats(-3, 3))
def test_derivatives_match_finite_differences_for_random_banks(drawn, theta) -> None:
    _, bank = drawn
    items = np.arange(len(bank))
    p, dp, d2p = models.category_derivatives(bank, items, theta)
    h = 1e-5
    up = models.category_probabilities(bank, items, theta + h)
    down = models.category_probabilities(bank, items, theta - h)
    np.testing.assert_allclose(dp, (up - down) / (2 * h), atol=1e-6)
    h = 1e-4
    up = models.category_probabilities(bank, items, theta + h)
    down = models.category_probabilities(bank, items, theta - h)
    np.testing.assert_allclose(d2p, (up - 2 * p + down) / h**2, atol=1e-5)


def test_category_derivatives_order() -> None:
    bank = ItemBank.from_items(MIXED_ITEMS)
    assert len(models.category_derivatives(bank, [0, 5], 0.0, order=1)) == 2
    assert len(models.category_derivatives(bank, [0, 5], 0.0)) == 3
    with pytest.raises(ValueError, match="order"):
        models.category_derivatives(bank, [0, 5], 0.0, order=3)


def test_information_matches_finite_difference_fisher_formula(mixed: ItemBank) -> None:
    items = np.arange(len(mixed))
    theta = np.linspace(-3, 3, 13)[:, None]
    h = 1e-6
    p = models.category_probabilities(mixed, items, theta)
    dp = (
        models.category_probabilities(mixed, items, theta + h)
        - models.category_probabilities(mixed, items, theta - h)
    ) / (2 * h)
    fisher = np.where(p > 0, dp**2 / np.where(p > 0, p, 1), 0).sum(-1)
    np.testing.assert_allclose(models.information(mixed, items, theta), fisher, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Properties over random items


@PROPERTY
@given(drawn=banks(), theta=st.lists(floats(-6, 6), min_size=1, max_size=5))
def test_probabilities_are_a_distribution_and_match_reference(drawn, theta) -> None:
    items_, bank = drawn
    theta = np.array(theta)
    p = models.category_probabilities(bank, np.arange(len(bank)), theta[:, None])
    assert p.shape == (len(theta), len(bank), bank.max_categories)
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)
    for j, item in enumerate(items_):
        k = n_cat(item)
        assert np.all(p[:, j, k:] == 0)  # categories the item does not have
        for t, theta_t in enumerate(theta):
            np.testing.assert_allclose(
                p[t, j, :k], ref_probs(item, theta_t, bank.D), rtol=1e-9, atol=1e-13
            )


@PROPERTY
@given(drawn=banks(), theta=st.lists(floats(-6, 6), min_size=1, max_size=5))
def test_information_is_non_negative_and_matches_reference(drawn, theta) -> None:
    items_, bank = drawn
    theta = np.array(theta)
    info = models.information(bank, np.arange(len(bank)), theta[:, None])
    assert info.shape == (len(theta), len(bank))
    assert np.all(info >= 0)
    expected = np.array([[ref_info(item, t, bank.D) for item in items_] for t in theta])
    np.testing.assert_allclose(info, expected, rtol=1e-6, atol=1e-10)


@PROPERTY
@given(item=st.one_of(items_of("2pl"), items_of("3pl")), D=st.sampled_from([1.0, D_NORMAL]))
def test_dichotomous_icc_is_increasing(item, D) -> None:
    bank = make_bank(item, D=D)
    grid = np.linspace(-6, 6, 241)
    p = models.p_correct(bank, 0, grid)
    assert np.all(np.diff(p) >= 0)
    # strictly increasing wherever the curve has not saturated in floating point
    core = np.abs(grid - item.b) * D * item.a < 20
    assert np.all(np.diff(p[core]) > 0)
    assert p[-1] > p[0]


@PROPERTY
@given(item=items_of("grm"), D=st.sampled_from([1.0, D_NORMAL]))
def test_grm_expected_score_is_increasing(item, D) -> None:
    bank = make_bank(item, D=D)
    grid = np.linspace(-6, 6, 241)
    p = models.category_probabilities(bank, 0, grid)
    score = (p * np.arange(p.shape[-1])).sum(-1)
    assert np.all(np.diff(score) >= -1e-12)
    assert score[-1] > score[0]
    # and its derivative is D a sum_k P*_k (1 - P*_k) > 0
    _, dp, _ = models.category_derivatives(bank, 0, grid)
    assert np.all((dp * np.arange(p.shape[-1])).sum(-1) >= 0)


@PROPERTY
@given(drawn=banks(min_size=2), theta=st.lists(floats(-5, 5), min_size=1, max_size=4))
def test_vectorised_evaluation_equals_item_by_item(drawn, theta) -> None:
    items_, bank = drawn
    theta = np.array(theta)
    everything = np.arange(len(bank))
    p_all = models.category_probabilities(bank, everything, theta[:, None])
    i_all = models.information(bank, everything, theta[:, None])
    derivs_all = models.category_derivatives(bank, everything, theta[:, None])
    for j, item in enumerate(items_):
        k = n_cat(item)
        alone = make_bank(item, D=bank.D)  # a bank of one item (fast path when dichotomous)
        for source, index in ((bank, j), (alone, 0)):
            p_j = models.category_probabilities(source, index, theta)
            np.testing.assert_allclose(p_all[:, j, :k], p_j[:, :k], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(
                i_all[:, j], models.information(source, index, theta), rtol=1e-9, atol=1e-14
            )
            for whole, part in zip(
                derivs_all, models.category_derivatives(source, index, theta), strict=True
            ):
                np.testing.assert_allclose(whole[:, j, :k], part[:, :k], rtol=1e-9, atol=1e-13)
    # test information of the mixed bank is the sum of the items' informations
    parts = sum(models.information(make_bank(item, D=bank.D), 0, theta) for item in items_)
    np.testing.assert_allclose(
        models.test_information(bank, everything, theta), parts, rtol=1e-9, atol=1e-13
    )


@PROPERTY
@given(drawn=banks(), theta=st.sampled_from([-50.0, -30.0, -12.5, 12.5, 30.0, 50.0]))
def test_extreme_thetas_stay_finite(drawn, theta) -> None:
    _, bank = drawn
    items = np.arange(len(bank))
    p = models.category_probabilities(bank, items, theta)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)
    info = models.information(bank, items, theta)
    assert np.all(np.isfinite(info)) and np.all(info >= 0)
    for derivative in models.category_derivatives(bank, items, theta):
        assert np.all(np.isfinite(derivative))
    for k in range(bank.max_categories):
        responses = np.minimum(k, bank.n_categories - 1)
        logp = models.response_log_probability(bank, items, theta, responses)
        assert np.all(np.isfinite(logp)) and np.all(logp <= 0)
        ll = models.log_likelihood(bank, items, responses, [theta])
        assert np.all(np.isfinite(ll))
    assert np.all(np.isfinite(models.test_information(bank, items, [theta])))


@pytest.mark.parametrize(
    "bank_items",
    [
        (ItemParameters("x", "2pl", a=2.0, b=0.0),),  # all-dichotomous fast path
        (ItemParameters("x", "2pl", a=2.0, b=0.0), ItemParameters("g", "grm", thresholds=(1,))),
    ],
    ids=["dichotomous-bank", "mixed-bank"],
)
def test_log_probability_is_accurate_in_the_tails(bank_items) -> None:
    bank = make_bank(*bank_items)
    # log(1 - logistic(z)) = -z - log(1 + exp(-z)) = -60 - 8.8e-27 at z = 60
    expected = -60.0 - math.log1p(math.exp(-60.0))
    got = models.response_log_probability(bank, 0, 30.0, 0)
    assert float(got) == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Broadcasting


def test_items_against_a_column_of_thetas(mixed: ItemBank) -> None:
    items = np.array([0, 2, 4, 5, 7, 9])
    theta = np.linspace(-2, 2, 7)
    out_p = models.category_probabilities(mixed, items, theta[:, None])
    out_i = models.information(mixed, items, theta[:, None])
    assert out_p.shape == (7, 6, 4)  # the widest requested item (m3) has 4 categories
    assert out_i.shape == (7, 6)
    for t, theta_t in enumerate(theta):
        for col, j in enumerate(items):
            item, k = MIXED_ITEMS[j], n_cat(MIXED_ITEMS[j])
            np.testing.assert_allclose(out_p[t, col, :k], ref_probs(item, theta_t, mixed.D))
            assert out_i[t, col] == pytest.approx(ref_info(item, theta_t, mixed.D), rel=1e-7)


def test_requested_width_is_the_widest_requested_item() -> None:
    bank = ItemBank.from_items(MIXED_ITEMS)
    assert models.category_probabilities(bank, [0, 2], 0.0).shape == (2, 2)
    assert models.category_probabilities(bank, [0, 7], 0.0).shape == (2, 4)
    assert models.category_probabilities(bank, [0, 6], [[0.0], [1.0]]).shape == (2, 2, 5)


def test_paired_items_and_theta_grid(mixed: ItemBank) -> None:
    rng = np.random.default_rng(7)
    n, q = 8, 11
    items = rng.integers(0, len(mixed), size=(n, 1))
    theta = rng.normal(size=(n, q))
    info = models.information(mixed, items, theta)
    probs = models.category_probabilities(mixed, items, theta)
    p1 = models.p_correct(mixed, items, theta)
    assert info.shape == p1.shape == (n, q)
    assert probs.shape == (n, q, int(mixed.n_categories[items].max()))
    for row in range(n):
        j = int(items[row, 0])
        k = n_cat(MIXED_ITEMS[j])
        np.testing.assert_allclose(info[row], models.information(mixed, j, theta[row]))
        np.testing.assert_allclose(
            probs[row, :, :k], models.category_probabilities(mixed, j, theta[row])[:, :k]
        )
        for col in range(q):
            assert info[row, col] == pytest.approx(
                ref_info(MIXED_ITEMS[j], theta[row, col], mixed.D), rel=1e-7
            )


def test_dichotomous_bank_broadcasting_and_p_correct() -> None:
    items_ = [ItemParameters(f"x{j}", "3pl", a=0.5 + j / 4, b=j - 2.0, c=0.1) for j in range(5)]
    bank = ItemBank.from_items(items_)
    theta = np.linspace(-2, 2, 9)
    p1 = models.p_correct(bank, np.arange(5), theta[:, None])
    assert p1.shape == (9, 5)
    expected = [[ref_p4(t, i.a, i.b, i.c) for i in items_] for t in theta]
    np.testing.assert_allclose(p1, expected, rtol=1e-12)
    paired = models.p_correct(bank, np.arange(5)[:, None], np.tile(theta, (5, 1)))
    np.testing.assert_allclose(paired, np.transpose(expected), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Likelihood and simulation


@PROPERTY
@given(drawn=banks(), theta=st.lists(floats(-4, 4), min_size=1, max_size=4), data=st.data())
def test_log_likelihood_is_sum_of_log_probabilities(drawn, theta, data) -> None:
    items_, bank = drawn
    length = data.draw(st.integers(1, 8))
    items = data.draw(st.lists(st.integers(0, len(bank) - 1), min_size=length, max_size=length))
    responses = [data.draw(st.integers(0, n_cat(items_[j]) - 1)) for j in items]
    ll = models.log_likelihood(bank, items, responses, theta)
    assert ll.shape == (len(theta),)
    expected = [
        sum(
            math.log(ref_probs(items_[j], t, bank.D)[x])
            for j, x in zip(items, responses, strict=True)
        )
        for t in theta
    ]
    np.testing.assert_allclose(ll, expected, rtol=1e-9, atol=1e-9)
    logp = models.response_log_probability(bank, items, np.array(theta)[:, None], responses)
    np.testing.assert_allclose(logp.sum(-1), expected, rtol=1e-9, atol=1e-9)


def test_log_likelihood_of_a_hand_worked_pattern() -> None:
    bank = make_bank(ItemParameters("r", "rasch", b=0.0), ItemParameters("x", "2pl", a=1.5, b=1.0))
    # theta 0: P(r correct) = 1/2, P(x wrong) = 1 - 1 / (1 + e^1.5)
    expected = math.log(0.5) + math.log(1 - 1 / (1 + math.exp(1.5)))
    assert models.log_likelihood(bank, [0, 1], [1, 0], 0.0) == pytest.approx([expected])
    assert models.log_likelihood(bank, [], [], [0.0, 1.0]).tolist() == [0.0, 0.0]


def test_test_information_of_no_items_is_zero() -> None:
    bank = ItemBank.from_items(MIXED_ITEMS)
    assert models.test_information(bank, [], [0.0, 1.0]).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("theta", [-1.0, 0.6])
def test_simulated_frequencies_match_the_model(theta) -> None:
    bank = ItemBank.from_items(MIXED_ITEMS, D=D_NORMAL)
    n = 20_000
    rng = np.random.default_rng(20240611)
    items = np.tile(np.arange(len(bank)), (n, 1))
    responses = models.simulate_responses(bank, items, theta, rng)
    assert responses.shape == (n, len(bank))
    for j, item in enumerate(MIXED_ITEMS):
        k = n_cat(item)
        counts = np.bincount(responses[:, j], minlength=bank.max_categories)
        assert counts[k:].sum() == 0  # never a category the item does not have
        expected = np.array(ref_probs(item, theta, bank.D)) * n
        _, p_value = chisquare(counts[:k], expected)
        assert p_value > 1e-4, (item.item_id, counts[:k], expected)


def test_simulation_is_reproducible_with_a_seed() -> None:
    bank = ItemBank.from_items(MIXED_ITEMS)
    items = np.arange(len(bank))
    theta = np.linspace(-2, 2, 50)[:, None]
    first = models.simulate_responses(bank, items, theta, np.random.default_rng(3))
    second = models.simulate_responses(bank, items, theta, np.random.default_rng(3))
    assert first.shape == (50, len(bank))
    np.testing.assert_array_equal(first, second)


class _TopOfUnitInterval:
    """Stands in for a Generator whose ``random`` draws the largest double below 1 (possible)."""

    def random(self, shape):
        return np.full(shape, np.nextafter(1.0, 0.0))


def test_simulated_response_is_always_a_category_of_the_item() -> None:
    bank = make_bank(
        ItemParameters("g", "gpcm", a=1.0, thresholds=(-0.7, 0.4)),
        ItemParameters("r", "grm", thresholds=(-1.0, 0.0, 1.0, 2.0)),
    )
    theta = np.linspace(-4, 4, 801)[:, None]
    responses = models.simulate_responses(bank, np.array([0, 1]), theta, _TopOfUnitInterval())
    assert responses[:, 0].max() <= 2


# -- the graded response model far in the tails ---------------------------------------------------


def _grm_log_exact(theta: float, a: float, thresholds: list[float], D: float) -> list[float]:
    """log P_k = log(P*_k - P*_{k+1}) in 60-digit decimal arithmetic (independent of numpy)."""
    from decimal import Decimal, localcontext

    with localcontext() as context:
        context.prec = 60
        da = Decimal(D) * Decimal(a)
        star = [Decimal(1)] + [1 / (1 + (-da * (Decimal(theta) - Decimal(b))).exp())
                               for b in thresholds] + [Decimal(0)]
        return [float((star[k] - star[k + 1]).ln()) for k in range(len(thresholds) + 1)]


@pytest.mark.parametrize("theta", [-12.0, -9.0, -4.0, 0.3, 4.0, 9.0, 12.0])
def test_grm_log_probabilities_stay_exact_far_in_the_tails(theta) -> None:
    thresholds = [-1.0, 0.0, 1.0]
    bank = ItemBank.from_records(
        [{"item_id": "g", "model": "grm", "a": 3.0, "thresholds": thresholds}], D=1.702)
    got = [float(models.response_log_probability(bank, [0], [theta], [k])[0]) for k in range(4)]
    expected = _grm_log_exact(theta, 3.0, thresholds, 1.702)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert min(got) > -100  # the subtraction gave the floor, log(1e-300) = -690.8, at 9 and 12
    if theta == 9.0:  # the figure in the issue: category 2 (between b = 0 and b = 1)
        assert got[2] == pytest.approx(-40.854, abs=1e-3)
    p = models.category_probabilities(bank, [0], [theta])[0]
    np.testing.assert_allclose(np.log(p), expected, rtol=1e-9, atol=1e-12)
