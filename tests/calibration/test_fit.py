"""Tests of item and person fit against enumeration, hand computation and simulation.

Expected values are computed here from the textbook response functions (4PL family, GRM, GPCM),
by enumerating response patterns, by ``scipy.integrate.quad`` or from hand-worked tables; the
simulation tests use data drawn from the model with fixed seeds.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from calibration import fit
from calibration.data import from_long, from_wide
from calibration.em import calibrate
from calibration.errors import CalibrationError
from cat_engine.bank import ItemBank
from cat_engine.models import simulate_responses

# -- independent response functions and quadrature ------------------------------------------------


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _curves(record: dict, theta: float) -> list[float]:
    """Category probabilities of one item at one theta, from the textbook formulas (D = 1)."""
    a = record.get("a", 1.0)
    if record["model"] == "grm":
        star = [1.0] + [_logistic(a * (theta - t)) for t in record["thresholds"]] + [0.0]
        return [star[k] - star[k + 1] for k in range(len(star) - 1)]
    if record["model"] in ("gpcm", "pcm"):
        z = [0.0]
        for t in record["thresholds"]:
            z.append(z[-1] + a * (theta - t))
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]
    c, d = record.get("c", 0.0), record.get("d", 1.0)
    p = c + (d - c) * _logistic(a * (theta - record["b"]))
    return [1.0 - p, p]


def _grid(mean=0.0, sd=1.0, n=49):
    """The documented rule: n even points over mean +- 6 sd, normal weights summing to 1."""
    z = np.linspace(-6, 6, n)
    w = np.exp(-z * z / 2)
    return mean + sd * z, w / w.sum()


def _pattern_probability(records, pattern, points, weights) -> float:
    return sum(
        w * math.prod(_curves(r, t)[x] for r, x in zip(records, pattern, strict=True))
        for t, w in zip(points, weights, strict=True)
    )


def _simulate(bank: ItemBank, theta: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return simulate_responses(bank, np.arange(len(bank))[None, :], theta[:, None], rng)


def _dichotomous_records(n: int, seed: int, model: str = "2pl") -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "item_id": f"i{j:02d}",
            "model": model,
            "a": float(rng.uniform(0.8, 2.0)),
            "b": float(rng.normal(0.0, 1.0)),
        }
        for j in range(n)
    ]


MIXED = [
    {"item_id": "d1", "model": "2pl", "a": 1.2, "b": -0.5},
    {"item_id": "d2", "model": "3pl", "a": 1.6, "b": 0.3, "c": 0.2},
    {"item_id": "g1", "model": "grm", "a": 1.1, "thresholds": [-1.0, 0.2, 1.4]},
    {"item_id": "p1", "model": "gpcm", "a": 0.9, "thresholds": [0.5, -0.3]},
    {"item_id": "d3", "model": "4pl", "a": 0.8, "b": 1.0, "c": 0.1, "d": 0.9},
]


# -- Lord-Wingersky ---------------------------------------------------------------------------


def test_lord_wingersky_equals_enumeration_of_all_2_to_the_8_patterns():
    records = _dichotomous_records(8, seed=1)
    records[2] = {**records[2], "model": "3pl", "c": 0.2}
    records[5] = {**records[5], "model": "4pl", "c": 0.1, "d": 0.85}
    bank = ItemBank.from_records(records)
    theta = np.array([-2.5, -0.3, 0.0, 1.1, 3.0])
    out = fit.summed_score_likelihoods(bank, np.arange(8), theta)
    assert out.shape == (9, 5)
    for q, t in enumerate(theta):
        expected = np.zeros(9)
        for pattern in itertools.product((0, 1), repeat=8):
            prob = math.prod(_curves(r, t)[x] for r, x in zip(records, pattern, strict=True))
            expected[sum(pattern)] += prob
        np.testing.assert_allclose(out[:, q], expected, rtol=1e-12, atol=1e-15)


def test_lord_wingersky_equals_enumeration_for_polytomous_items():
    bank = ItemBank.from_records(MIXED)
    theta = np.array([-1.7, 0.4, 2.2])
    out = fit.summed_score_likelihoods(bank, [4, 2, 0, 3], theta)
    records = [MIXED[j] for j in (4, 2, 0, 3)]
    tops = [1, 3, 1, 2]
    assert out.shape == (sum(tops) + 1, 3)
    for q, t in enumerate(theta):
        expected = np.zeros(sum(tops) + 1)
        for pattern in itertools.product(*(range(k + 1) for k in tops)):
            prob = math.prod(_curves(r, t)[x] for r, x in zip(records, pattern, strict=True))
            expected[sum(pattern)] += prob
        np.testing.assert_allclose(out[:, q], expected, rtol=1e-12, atol=1e-15)


def test_leave_one_out_likelihoods_equal_the_recursion_without_the_item():
    bank = ItemBank.from_records(MIXED)
    theta = np.linspace(-3, 3, 7)
    padded = [[[*_curves(r, t), 0.0, 0.0][:4] for t in theta] for r in MIXED]  # (J, Q, K)
    p = np.moveaxis(np.array(padded), -1, 1)
    top = bank.n_categories - 1
    out = fit._leave_one_out(p, top)
    for i in range(len(MIXED)):
        rest = [j for j in range(len(MIXED)) if j != i]
        expected = fit.summed_score_likelihoods(bank, rest, theta)
        np.testing.assert_allclose(out[i, : expected.shape[0]], expected, atol=1e-14)
        assert np.all(out[i, expected.shape[0] :] == 0)


# -- S-X2 ------------------------------------------------------------------------------------


def test_s_x2_equals_a_hand_computation_from_enumerated_patterns():
    records = _dichotomous_records(4, seed=3)
    bank = ItemBank.from_records(records)
    theta = np.random.default_rng(0).normal(size=60)
    x = _simulate(bank, theta, seed=9)
    data = from_wide(x, item_ids=bank.item_ids)
    points, weights = _grid()
    patterns = list(itertools.product((0, 1), repeat=4))
    probs = {pat: _pattern_probability(records, pat, points, weights) for pat in patterns}
    out = fit.item_fit(data, bank, groups_min_expected=0.0)
    scores = x.sum(axis=1)
    for i in range(4):
        statistic, groups = 0.0, 0
        for s in range(5):
            n_s = int((scores == s).sum())
            if n_s == 0:
                continue
            p_s = sum(v for pat, v in probs.items() if sum(pat) == s)
            e = sum(v for pat, v in probs.items() if sum(pat) == s and pat[i] == 1) / p_s
            o = x[scores == s, i].mean()
            if 0 < s < 4:
                statistic += n_s * (o - e) ** 2 / (e * (1 - e))
                groups += 1
        assert out[i]["s_x2"] == pytest.approx(statistic, rel=1e-9)
        assert out[i]["df"] == groups - 2  # 2PL: two parameters
        assert out[i]["p_value"] == pytest.approx(stats.chi2.sf(statistic, groups - 2))


def test_score_groups_are_collapsed_like_mirt():
    observed = np.array([[4, 0], [3, 2], [0, 0], [10, 10], [1, 5], [0, 3]], dtype=float)
    expected = np.array([[4, 0], [4.5, 0.5], [0, 0], [9, 11], [0.8, 5.2], [0, 3]])
    possible = np.array([[1, 0], [1, 1], [1, 1], [1, 1], [1, 1], [0, 1]], dtype=bool)
    n_s = np.array([4, 5, 0, 20, 6, 3])
    # s2 is empty and dropped; s1 (0.5) joins s0 (fewer persons than s3), that row (still 0.5)
    # joins s3; s4 (0.8) joins s5 (fewer than the merged row), which as the last row joins the rest
    o, e, ok = fit._collapse(observed, expected, possible, n_s, 1.0)
    np.testing.assert_allclose(o, [[18, 20]])
    np.testing.assert_allclose(e, [[18.3, 19.7]])
    statistic, df = fit._s_x2(observed, expected, possible, n_s, 0, 1.0)
    assert statistic == pytest.approx(0.3**2 / 18.3 + 0.3**2 / 19.7)
    assert df == 1
    # with a threshold of 0.6, s4 (0.8) stays, and the impossible cell of s5 is no small cell
    o, e, ok = fit._collapse(observed, expected, possible, n_s, 0.6)
    np.testing.assert_allclose(o, [[17, 12], [1, 5], [0, 3]])
    np.testing.assert_allclose(e, [[17.5, 11.5], [0.8, 5.2], [0, 3]])
    np.testing.assert_array_equal(ok, [[1, 1], [1, 1], [0, 1]])
    statistic, df = fit._s_x2(observed, expected, possible, n_s, 0, 0.6)
    cells = [(17, 17.5), (12, 11.5), (1, 0.8), (5, 5.2), (3, 3)]
    assert statistic == pytest.approx(sum((o - e) ** 2 / e for o, e in cells))
    assert df == 5 - 3


@pytest.fixture(scope="module")
def model_data():
    """2000 persons answering 20 2PL items, drawn from the model; and the true thetas."""
    bank = ItemBank.from_records(_dichotomous_records(20, seed=7))
    theta = np.random.default_rng(70).normal(size=2000)
    return bank, theta, from_wide(_simulate(bank, theta, seed=71), item_ids=bank.item_ids)


def test_s_x2_p_values_are_roughly_uniform_under_the_model(model_data):
    bank, _, data = model_data
    known = fit.item_fit(data, bank, n_parameters=0)  # the true parameters: nothing estimated
    p = np.array([r["p_value"] for r in known])
    assert (p < 0.05).sum() < 3
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert not any("s_x2" in r["flags"] for r in known)
    default = fit.item_fit(data, bank)
    assert all(r["df"] == k["df"] - 2 for r, k in zip(default, known, strict=True))


def test_s_x2_flags_an_item_from_a_different_model():
    records = _dichotomous_records(20, seed=7)
    truth = [dict(r) for r in records]
    truth[3] = {**records[3], "model": "3pl", "c": 0.35}  # guessing the 2PL bank knows nothing of
    truth[8] = {**records[8], "a": 0.25}  # a much flatter slope than the bank's
    theta = np.random.default_rng(80).normal(size=2000)
    x = _simulate(ItemBank.from_records(truth), theta, seed=81)
    out = fit.item_fit(
        from_wide(x, item_ids=[r["item_id"] for r in records]), ItemBank.from_records(records)
    )
    for j in (3, 8):
        assert out[j]["p_value"] < 1e-6
        assert out[j]["flags"][:2] == ["misfit", "s_x2"]
        assert out[j]["misfit"]
    assert "outfit_high" in out[3]["flags"]


def test_s_x2_for_polytomous_items_under_the_model():
    rng = np.random.default_rng(12)
    records = []
    for j in range(15):
        model = ("2pl", "grm", "gpcm")[j % 3]
        record = {"item_id": f"m{j}", "model": model, "a": float(rng.uniform(0.8, 1.8))}
        if model == "2pl":
            record["b"] = float(rng.normal())
        else:
            record["thresholds"] = sorted(rng.normal(0, 1, 3).tolist())
        records.append(record)
    bank = ItemBank.from_records(records)
    theta = rng.normal(size=2000)
    data = from_wide(_simulate(bank, theta, seed=13), item_ids=bank.item_ids)
    out = fit.item_fit(data, bank, n_parameters=0)
    p = np.array([r["p_value"] for r in out])
    assert (p < 0.05).sum() < 3
    # a GRM item whose slope is far from the one generating the data is caught
    wrong = [dict(r) for r in records]
    wrong[1] = {**records[1], "a": 4.0}
    out = fit.item_fit(data, ItemBank.from_records(wrong), n_parameters=0)
    assert out[1]["p_value"] < 1e-6


def test_s_x2_is_not_computed_for_sparse_data(model_data):
    bank, _, data = model_data
    keep = np.random.default_rng(1).random(data.n_obs) < 0.5
    sparse_data = from_long(
        [data.person_ids[p] for p in data.person[keep]],
        [data.item_ids[i] for i in data.item[keep]],
        data.response[keep].tolist(),
    )
    out = fit.item_fit(sparse_data, bank)
    assert all(r["s_x2"] is None and r["p_value"] is None and r["df"] is None for r in out)
    assert "complete data" in out[0]["note"]
    assert all(0.5 < r["infit"] < 1.5 for r in out)


# -- infit and outfit ----------------------------------------------------------------------------


def test_infit_and_outfit_match_a_hand_computation():
    records = [MIXED[0], MIXED[3]]  # a 2PL item and a 3-category GPCM item
    bank = ItemBank.from_records(records)
    theta = np.array([-1.0, 0.2, 1.5])
    x = np.array([[1, 0], [0, 2], [1, 1]])
    data = from_wide(x, item_ids=["d1", "p1"])
    out = fit.item_fit(data, bank, theta=theta)
    for j, record in enumerate(records):
        squared, variances, z2 = [], [], []
        for n, t in enumerate(theta):
            p = _curves(record, t)
            e = sum(k * pk for k, pk in enumerate(p))
            v = sum((k - e) ** 2 * pk for k, pk in enumerate(p))
            squared.append((x[n, j] - e) ** 2)
            variances.append(v)
            z2.append((x[n, j] - e) ** 2 / v)
        assert out[j]["outfit"] == pytest.approx(sum(z2) / 3, rel=1e-12)
        assert out[j]["infit"] == pytest.approx(sum(squared) / sum(variances), rel=1e-12)
        assert out[j]["n"] == 3


def test_infit_and_outfit_are_near_1_under_the_model(model_data):
    bank, theta, data = model_data
    true_theta = fit.item_fit(data, bank, theta=theta)
    infit = np.array([r["infit"] for r in true_theta])
    outfit = np.array([r["outfit"] for r in true_theta])
    assert abs(infit.mean() - 1) < 0.03 and abs(outfit.mean() - 1) < 0.05
    assert np.all(np.abs(infit - 1) < 0.1)
    eap = fit.item_fit(data, bank)  # with EAP theta the mean squares shrink a little
    infit = np.array([r["infit"] for r in eap])
    assert 0.85 < infit.mean() < 1.0
    assert np.all((infit > 0.7) & (infit < 1.3))


# -- person fit ------------------------------------------------------------------------------


def test_lz_matches_a_hand_computation():
    bank = ItemBank.from_records([MIXED[0], MIXED[2], MIXED[3]])
    x = [1, 3, 0]
    data = from_wide(np.array([x]), item_ids=["d1", "g1", "p1"])
    theta = 0.4
    l0 = mean = var = 0.0
    for record, xi in zip([MIXED[0], MIXED[2], MIXED[3]], x, strict=True):
        p = _curves(record, theta)
        l0 += math.log(p[xi])
        m = sum(pk * math.log(pk) for pk in p)
        mean += m
        var += sum(pk * math.log(pk) ** 2 for pk in p) - m * m
    lz = fit.person_fit(data, bank, np.array([theta]))
    assert lz[0] == pytest.approx((l0 - mean) / math.sqrt(var), rel=1e-10)


def test_lz_is_standard_normal_for_model_conforming_persons_and_negative_for_aberrant_ones():
    rng = np.random.default_rng(21)
    records = []
    for j in range(40):
        model = ("2pl", "2pl", "gpcm", "grm")[j % 4]
        record = {"item_id": f"z{j}", "model": model, "a": float(rng.uniform(0.8, 2.0))}
        if model == "2pl":
            record["b"] = float(rng.uniform(-2, 2))
        else:
            record["thresholds"] = sorted(rng.uniform(-2, 2, 2).tolist())
        records.append(record)
    bank = ItemBank.from_records(records)
    theta = rng.normal(size=3000)
    x = _simulate(bank, theta, seed=22)
    # 30 aberrant persons: the top category on the hardest half of the items, 0 on the easiest
    location = np.array([r.get("b", np.mean(r.get("thresholds", [0]))) for r in records])
    hard = location > np.median(location)
    reversed_ = np.where(hard, bank.n_categories - 1, 0)[None, :].repeat(30, axis=0)
    all_x = np.vstack([x, reversed_])
    data = from_wide(all_x, item_ids=bank.item_ids)
    lz = fit.person_fit(data, bank, np.concatenate([theta, np.zeros(30)]))
    normal = lz[:3000]
    assert abs(normal.mean()) < 0.08
    assert 0.92 < normal.std() < 1.08
    assert np.all(lz[3000:] < -5)
    # with EAP abilities (the default) the aberrant persons still stand far out
    lz_eap = fit.person_fit(data, bank)
    assert np.all(lz_eap[3000:] < -4)
    assert np.corrcoef(lz_eap[:3000], normal)[0, 1] > 0.7


# -- EAP ---------------------------------------------------------------------------------------


def test_eap_scores_equal_an_independent_numerical_integration():
    records = [
        *MIXED,
        {"item_id": "e1", "model": "2pl", "a": 1.4, "b": 0.8},
        {"item_id": "e2", "model": "pcm", "thresholds": [-0.6, 0.1, 0.9]},
    ]
    bank = ItemBank.from_records(records)
    rng = np.random.default_rng(5)
    x = _simulate(bank, rng.normal(size=6), seed=6).astype(float)
    x[1, [0, 3]] = np.nan  # sparse: some persons saw only some items
    x[4, :5] = np.nan
    data = from_wide(x, item_ids=bank.item_ids)
    mean, sd = 0.3, 1.2
    theta, se = fit.eap_scores(data, bank, latent=(mean, sd), quadrature=61)
    for n in range(6):
        seen = [(records[j], int(x[n, j])) for j in range(len(records)) if not np.isnan(x[n, j])]

        def posterior(t, seen=seen):
            like = math.prod(_curves(r, t)[v] for r, v in seen)
            return like * stats.norm.pdf(t, mean, sd)

        limits = (mean - 10 * sd, mean + 10 * sd)
        z = integrate.quad(posterior, *limits, limit=200)[0]
        m1 = integrate.quad(lambda t, f=posterior: t * f(t), *limits, limit=200)[0] / z
        m2 = integrate.quad(lambda t, f=posterior: t * t * f(t), *limits, limit=200)[0] / z
        assert theta[n] == pytest.approx(m1, abs=1e-6)
        assert se[n] == pytest.approx(math.sqrt(m2 - m1 * m1), abs=1e-6)


# -- M2 ----------------------------------------------------------------------------------------


def _m2_by_enumeration(records, x, points, weights, latent=None, estimated=(), anchors=0):
    """M2 from the multinomial of all patterns: Xi = T (diag(pi) - pi pi') T', Delta numerically
    (with columns for the latent mean and sd named in ``estimated``, by moving the quadrature
    rule of N(mean, sd) given as ``latent``)."""
    n_items = len(records)
    patterns = np.array(list(itertools.product((0, 1), repeat=n_items)))
    margins = [(i, i) for i in range(n_items)] + list(itertools.combinations(range(n_items), 2))
    t = np.array([[pat[i] * pat[j] for pat in patterns] for i, j in margins], dtype=float)

    def pi(recs):
        return np.array([_pattern_probability(recs, pat, points, weights) for pat in patterns])

    def margin_vector(recs):
        return t @ pi(recs)

    free = {"2pl": ("a", "b"), "3pl": ("a", "b", "c"), "rasch": ("b",)}
    columns = []
    for j, record in enumerate(records):
        for name in free[record["model"]] if j >= anchors else ():
            h = 1e-5
            up = [dict(r) for r in records]
            down = [dict(r) for r in records]
            up[j][name] = record.get(name, 0.0) + h
            down[j][name] = record.get(name, 0.0) - h
            columns.append((margin_vector(up) - margin_vector(down)) / (2 * h))
    for name in estimated:
        h = 1e-5
        moved = []
        for sign in (1, -1):
            mean, sd = latent
            mean, sd = (mean + sign * h, sd) if name == "mean" else (mean, sd + sign * h)
            grid_points, grid_weights = _grid(mean, sd, n=points.size)
            moved.append(t @ np.array([_pattern_probability(records, pat, grid_points,
                                                            grid_weights) for pat in patterns]))
        columns.append((moved[0] - moved[1]) / (2 * h))
    delta = np.array(columns).T
    p = pi(records)
    xi = t @ (np.diag(p) - np.outer(p, p)) @ t.T
    inv = np.linalg.inv(xi)
    c2 = inv - inv @ delta @ np.linalg.inv(delta.T @ inv @ delta) @ delta.T @ inv
    observed = np.array([(x[:, i] * x[:, j]).mean() for i, j in margins])
    e = observed - t @ p
    return x.shape[0] * e @ c2 @ e, len(margins) - delta.shape[1]


def test_m2_equals_the_statistic_computed_from_all_patterns():
    records = [
        {"item_id": "a", "model": "2pl", "a": 1.3, "b": -0.7},
        {"item_id": "b", "model": "3pl", "a": 1.8, "b": 0.2, "c": 0.2},
        {"item_id": "c", "model": "2pl", "a": 0.7, "b": 0.9},
        {"item_id": "d", "model": "rasch", "b": -0.1},
        {"item_id": "e", "model": "2pl", "a": 1.1, "b": 0.4},
    ]
    bank = ItemBank.from_records(records)
    theta = np.random.default_rng(31).normal(size=400)
    x = _simulate(bank, theta, seed=32)
    out = fit.m2(from_wide(x, item_ids=bank.item_ids), bank, quadrature=41)
    expected, df = _m2_by_enumeration(records, x, *_grid(n=41))
    assert out["m2"] == pytest.approx(expected, rel=1e-6)
    assert out["df"] == df == 15 - 10
    assert out["n_parameters"] == 10
    assert out["p_value"] == pytest.approx(stats.chi2.sf(expected, df), rel=1e-5)
    assert out["rmsea"] == pytest.approx(math.sqrt(max(expected - df, 0) / (400 * df)))


@pytest.mark.parametrize("estimated", ["sd", "mean_sd"])
def test_m2_counts_an_estimated_latent_mean_and_sd(estimated):
    """Rasch items with an estimated sd (and, anchored, mean): one (two) parameters more."""
    records = [{"item_id": f"r{j}", "model": "rasch", "b": b}
               for j, b in enumerate([-1.0, -0.3, 0.2, 0.8, 1.4])]
    bank = ItemBank.from_records(records)
    latent = (0.2, 1.3)
    x = _simulate(bank, np.random.default_rng(61).normal(0.2, 1.3, size=500), seed=62)
    data = from_wide(x, item_ids=bank.item_ids)
    # The mean is identified only with anchors (here the first two items).
    anchors = 2 if estimated == "mean_sd" else 0
    fixed = np.arange(5) < anchors
    out = fit.m2(data, bank, latent=latent, quadrature=41, estimated_latent=estimated,
                 fixed=fixed)
    names = ("sd",) if estimated == "sd" else ("mean", "sd")
    expected, df = _m2_by_enumeration(records, x, *_grid(*latent, n=41), latent=latent,
                                      estimated=names, anchors=anchors)
    assert out["df"] == df == 15 - (5 - anchors) - len(names)
    assert out["n_parameters"] == 5 - anchors + len(names)
    assert out["m2"] == pytest.approx(expected, rel=1e-5)
    assert fit.m2(data, bank, latent=latent, quadrature=41)["df"] == 10
    with pytest.raises(CalibrationError, match="estimated_latent must be one of"):
        fit.m2(data, bank, estimated_latent="mean")


def test_s_x2_degrees_of_freedom_count_estimated_latent_parameters(model_data):
    bank, _, data = model_data
    plain = fit.item_fit(data, bank, n_parameters=0)
    both = fit.item_fit(data, bank, n_parameters=0, estimated_latent="mean_sd")
    assert [b["df"] for b in both] == [p["df"] - 2 for p in plain]
    # A calibration that estimated the sd (Rasch) reports S-X2 with one df fewer per item.
    rasch = ItemBank.from_records([{"item_id": f"i{j:02d}", "model": "rasch", "b": b}
                                   for j, b in enumerate(np.linspace(-1.5, 1.5, 12))])
    x = _simulate(rasch, np.random.default_rng(63).normal(0, 1.4, size=1500), seed=64)
    result = calibrate(from_wide(x, item_ids=rasch.item_ids), "rasch", fit=True)
    assert result.settings["estimate_latent"] == "sd"
    table = fit.item_fit(from_wide(x, item_ids=rasch.item_ids), result.bank,
                         latent=(result.latent_mean, result.latent_sd), n_parameters=1)
    assert [r["df"] for r in result.fit] == [r["df"] - 1 for r in table]


def _fit_2pl(x: np.ndarray, points, weights) -> list[dict]:
    """Marginal maximum likelihood for the 2PL from pattern counts (few items only)."""
    n_items = x.shape[1]
    patterns, counts = np.unique(x, axis=0, return_counts=True)

    def negative_log_likelihood(params):
        a, b = params[:n_items], params[n_items:]
        p = 1 / (1 + np.exp(-a[:, None] * (points[None, :] - b[:, None])))  # (J, Q)
        joint = np.exp(patterns @ np.log(p) + (1 - patterns) @ np.log(1 - p)) * weights
        like = joint.sum(axis=1)
        r = counts[:, None] * joint / like[:, None]  # persons' posterior weights, (patterns, Q)
        residual = patterns.T @ r - p * r.sum(axis=0)  # sum_n r_nq (x_nj - P_jq), (J, Q)
        grad_a = (residual * (points[None, :] - b[:, None])).sum(axis=1)
        grad_b = -a * residual.sum(axis=1)
        return -counts @ np.log(like), -np.concatenate([grad_a, grad_b])

    start = np.concatenate([np.ones(n_items), np.zeros(n_items)])
    bounds = [(0.1, 5.0)] * n_items + [(-5.0, 5.0)] * n_items
    result = optimize.minimize(
        negative_log_likelihood,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-9},
    )
    assert result.success
    a, b = result.x[:n_items], result.x[n_items:]
    return [
        {"item_id": f"i{j}", "model": "2pl", "a": float(a[j]), "b": float(b[j])}
        for j in range(n_items)
    ]


def test_m2_is_chi_square_with_estimated_parameters():
    truth = ItemBank.from_records(_dichotomous_records(5, seed=41))
    points, weights = _grid()
    rng = np.random.default_rng(42)
    values = []
    for _ in range(60):
        x = _simulate(truth, rng.normal(size=500), seed=int(rng.integers(1 << 30)))
        estimated = ItemBank.from_records(_fit_2pl(x, points, weights))
        out = fit.m2(from_wide(x, item_ids=estimated.item_ids), estimated)
        values.append(out["m2"])
    assert out["df"] == 15 - 10
    # mean of chi2(5) is 5 (sd of the mean of 60 draws ~0.41); with the parameters' derivatives
    # wrong the statistic would not be pivotal
    assert abs(np.mean(values) - 5) < 1.3
    assert stats.kstest(values, stats.chi2(5).cdf).pvalue > 0.001


def test_m2_with_true_parameters_and_a_misspecified_model():
    records = _dichotomous_records(8, seed=51)
    bank = ItemBank.from_records(records)
    rng = np.random.default_rng(52)
    values = [
        fit.m2(
            from_wide(_simulate(bank, rng.normal(size=800), seed=s), item_ids=bank.item_ids), bank
        )["m2"]
        for s in range(100)
    ]
    assert abs(np.mean(values) - (36 - 16)) < 1.5  # chi2(20): mean 20, sd of the mean ~0.63
    guessing = ItemBank.from_records([{**r, "model": "3pl", "c": 0.3} for r in records])
    x = _simulate(guessing, rng.normal(size=800), seed=99)
    out = fit.m2(from_wide(x, item_ids=bank.item_ids), bank)
    assert out["p_value"] < 1e-6 and out["rmsea"] > 0.05


# -- errors ----------------------------------------------------------------------------------


def test_errors_name_the_items_and_shapes(model_data):
    bank, _, data = model_data
    small = ItemBank.from_records(_dichotomous_records(20, seed=7)[:18])
    with pytest.raises(CalibrationError, match="not in the bank: 'i18', 'i19'"):
        fit.item_fit(data, small)
    two = from_wide(np.array([[0, 2], [1, 1]]), item_ids=["i00", "i01"])
    with pytest.raises(CalibrationError, match="'i01' \\(has 2 categories\\)"):
        fit.eap_scores(two, bank)
    with pytest.raises(CalibrationError, match="one value per person"):
        fit.person_fit(data, bank, np.zeros(3))
    with pytest.raises(CalibrationError, match="latent"):
        fit.eap_scores(data, bank, latent=(0, -1))
    poly = ItemBank.from_records(MIXED)
    with pytest.raises(CalibrationError, match="dichotomous items only: 'g1', 'p1'"):
        fit.m2(from_wide(np.zeros((3, 5)), item_ids=[r["item_id"] for r in MIXED]), poly)
    sparse_data = from_wide(np.array([[0, 1], [1, np.nan]]), item_ids=["i00", "i01"])
    with pytest.raises(CalibrationError, match="complete data"):
        fit.m2(sparse_data, bank)
