"""DIF: Mantel-Haenszel, SMD with Mantel's test, ETS categories, purification and errors.

The reference values are computed here independently: by hand for a small table, and by plain
Python loops over persons for random data, so a mistake in the vectorised code shows.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from calibration.data import from_long, from_wide
from calibration.dif import (
    MantelHaenszelResult,
    SMDResult,
    dif_report,
    ets_category,
    mantel_haenszel,
    mh_statistics,
    polytomous_category,
    smd_statistics,
    standardized_mean_difference,
)
from calibration.errors import CalibrationError

# --------------------------------------------------------------------------------------------
# independent reference computations


def _mh_by_hand(strata: list[tuple[int, int, int, int]]) -> dict[str, float]:
    """MH statistics from (A, B, C, D) per stratum: A/B reference right/wrong, C/D focal."""
    num = den = sum_a = sum_e = sum_v = 0.0
    pr = ps_qr = qs = 0.0
    for a, b, c, d in strata:
        n_ref, n_foc = a + b, c + d
        if n_ref == 0 or n_foc == 0:
            continue
        n = a + b + c + d
        r, s = a * d / n, b * c / n
        p, q = (a + d) / n, (b + c) / n
        num += r
        den += s
        pr += p * r
        ps_qr += p * s + q * r
        qs += q * s
        sum_a += a
        sum_e += n_ref * (a + c) / n
        sum_v += n_ref * n_foc * (a + c) * (b + d) / (n * n * (n - 1))
    alpha = num / den
    var_log = pr / (2 * num**2) + ps_qr / (2 * num * den) + qs / (2 * den**2)
    chi = max(abs(sum_a - sum_e) - 0.5, 0.0) ** 2 / sum_v
    return {
        "alpha_mh": alpha,
        "delta_mh": -2.35 * math.log(alpha),
        "se_delta": 2.35 * math.sqrt(var_log),
        "chi_square": chi,
        "p_value": float(stats.chi2.sf(chi, 1)),
    }


def _data_from_tables(tables: dict[int, tuple[int, int, int, int]]):
    """Persons answering a studied item S and two anchors X1, X2 so that, stratifying on the
    total score t = S + X1 + X2, stratum t has the given (A, B, C, D) counts for S."""
    persons, items, responses, groups = [], [], [], []
    for total, counts in tables.items():
        for (group, right), count in zip(
            [("R", 1), ("R", 0), ("F", 1), ("F", 0)], counts, strict=True
        ):
            for _ in range(count):
                anchors = total - right
                assert 0 <= anchors <= 2
                pid = f"p{len(set(persons))}"
                for item, value in (
                    ("S", right),
                    ("X1", int(anchors >= 1)),
                    ("X2", int(anchors >= 2)),
                ):
                    persons.append(pid)
                    items.append(item)
                    responses.append(value)
                    groups.append(group)
    return from_long(persons, items, responses, groups)


def _smd_by_loop(y: np.ndarray, score: np.ndarray, group: np.ndarray) -> dict[str, float]:
    """SMD, SMD/SD and Mantel's chi-square by explicit loops over strata and persons."""
    smd_num = smd_den = sum_t = sum_e = sum_v = 0.0
    for level in sorted(set(score.tolist())):
        ref = [float(v) for v, s, g in zip(y, score, group, strict=True) if s == level and g == "R"]
        foc = [float(v) for v, s, g in zip(y, score, group, strict=True) if s == level and g == "F"]
        if not ref or not foc:
            continue
        smd_num += len(foc) * (sum(foc) / len(foc) - sum(ref) / len(ref))
        smd_den += len(foc)
        allv = ref + foc
        n = len(allv)
        s1, s2 = sum(allv), sum(v * v for v in allv)
        sum_t += sum(foc)
        sum_e += len(foc) * s1 / n
        if n > 1:
            sum_v += len(ref) * len(foc) * (n * s2 - s1 * s1) / (n * n * (n - 1))
    smd = smd_num / smd_den
    sd = float(np.std(y, ddof=1))
    chi = (sum_t - sum_e) ** 2 / sum_v
    return {
        "smd": smd,
        "effect_size": smd / sd,
        "item_sd": sd,
        "chi_square": chi,
        "p_value": float(stats.chi2.sf(chi, 1)),
    }


def _simulate_2pl(rng, n_per_group, a, b, dif_item, shift, focal_mean=0.0):
    theta = np.r_[rng.normal(0, 1, n_per_group), rng.normal(focal_mean, 1, n_per_group)]
    groups = ["R"] * n_per_group + ["F"] * n_per_group
    bb = np.tile(b, (theta.size, 1))
    bb[n_per_group:, dif_item] += shift
    p = 1 / (1 + np.exp(-a * (theta[:, None] - bb)))
    return (rng.random(p.shape) < p).astype(float), theta, groups


def _simulate_grm(rng, theta, a, thresholds):
    """Graded response: P(X >= k) = logistic(a (theta - b_k)); thresholds (P, K-1) increasing."""
    above = 1 / (1 + np.exp(-a * (theta[:, None] - thresholds)))
    return (rng.random(theta.size)[:, None] < above).sum(axis=1).astype(float)


# --------------------------------------------------------------------------------------------
# Mantel-Haenszel against hand computation


HAND_TABLES = {
    0: (0, 4, 0, 0),  # only the reference group: contributes nothing
    1: (10, 5, 6, 9),
    2: (12, 3, 8, 7),
    3: (0, 0, 5, 0),  # only the focal group: contributes nothing
}


def test_mh_matches_hand_computed_two_strata():
    data = _data_from_tables(HAND_TABLES)
    [result] = mantel_haenszel(data, "R", "F", items=["S"])
    expected = _mh_by_hand(list(HAND_TABLES.values()))
    # the literal numbers, worked by hand: alpha = (3 + 2.8) / (1 + 0.8)
    assert expected["alpha_mh"] == pytest.approx(5.8 / 1.8, abs=1e-12)
    assert expected["chi_square"] == pytest.approx(3.5**2 / (50400 / 26100 + 45000 / 26100))
    for key, value in expected.items():
        assert getattr(result, key) == pytest.approx(value, rel=1e-10, abs=1e-12), key
    assert result.item_id == "S"
    assert (result.n_reference, result.n_focal) == (15 + 15 + 4, 15 + 15 + 5)
    assert result.n_strata == 2
    # delta = -2.35 ln(3.22) = -2.75, but p = .067 >= .05: A, favouring nobody
    assert result.delta_mh < -1
    assert result.p_value > 0.05
    assert (result.category, result.favours) == ("A", None)


def test_mh_statistics_on_tables_is_vectorised_over_items():
    tables = np.array(
        [
            [[[4, 0], [0, 0]], [[5, 10], [9, 6]], [[3, 12], [7, 8]], [[0, 0], [0, 5]]],
            [[[20, 20], [25, 15]], [[8, 30], [14, 24]], [[1, 1], [1, 1]], [[0, 0], [0, 0]]],
        ],
        dtype=float,
    )  # [item, stratum, group, (wrong, right)]
    got = mh_statistics(tables)
    for i in range(2):
        strata = [(t[0, 1], t[0, 0], t[1, 1], t[1, 0]) for t in tables[i]]
        for key, value in _mh_by_hand(strata).items():
            assert got[key][i] == pytest.approx(value, rel=1e-10), (i, key)
    assert got["n_strata"].tolist() == [2, 3]


def test_mh_continuity_correction_does_not_overshoot():
    # A equals its expectation: no evidence at all, not (0 - 0.5)^2 / V
    tables = np.array([[[[5, 5], [5, 5]], [[2, 8], [2, 8]]]], dtype=float)
    got = mh_statistics(tables)
    assert got["chi_square"][0] == 0.0
    assert got["p_value"][0] == 1.0
    assert got["alpha_mh"][0] == pytest.approx(1.0)


def test_mh_and_smd_match_loops_on_random_complete_data():
    rng = np.random.default_rng(7)
    n = 120
    x = np.column_stack(
        [
            rng.integers(0, 2, n),
            rng.integers(0, 2, n),
            rng.integers(0, 2, n),
            rng.integers(0, 3, n),
            rng.integers(0, 4, n),
        ]
    ).astype(float)
    groups = np.where(rng.random(n) < 0.45, "F", "R").tolist()
    data = from_wide(x, groups=groups, item_ids=["d1", "d2", "d3", "p1", "p2"])
    g = np.array(groups)
    score = x.sum(axis=1)
    mh = {r.item_id: r for r in mantel_haenszel(data, "R", "F")}
    assert list(mh) == ["d1", "d2", "d3"]
    for j, item in enumerate(["d1", "d2", "d3"]):
        strata = []
        for level in sorted(set(score.tolist())):
            at = score == level
            strata.append(
                tuple(
                    int(((g == grp) & at & (x[:, j] == right)).sum())
                    for grp, right in (("R", 1), ("R", 0), ("F", 1), ("F", 0))
                )
            )
        for key, value in _mh_by_hand(strata).items():
            assert getattr(mh[item], key) == pytest.approx(value, rel=1e-10), (item, key)
    smd = {r.item_id: r for r in standardized_mean_difference(data, "R", "F")}
    assert list(smd) == ["p1", "p2"]
    for j, item in ((3, "p1"), (4, "p2")):
        for key, value in _smd_by_loop(x[:, j], score, g).items():
            assert getattr(smd[item], key) == pytest.approx(value, rel=1e-10), (item, key)
    # SMD may be asked for a dichotomous item too (standardization STD P-DIF)
    [std_p] = standardized_mean_difference(data, "R", "F", items=["d1"])
    assert std_p.smd == pytest.approx(_smd_by_loop(x[:, 0], score, g)["smd"], rel=1e-10)


def test_smd_statistics_vectorised_over_items():
    n = np.array([[[3, 2], [4, 4]], [[1, 0], [5, 6]]], dtype=float)
    s1 = np.array([[[3, 1], [8, 5]], [[2, 0], [5, 9]]], dtype=float)
    s2 = np.array([[[5, 1], [18, 9]], [[4, 0], [9, 17]]], dtype=float)
    got = smd_statistics(n, s1, s2)
    # item 0: strata means R 1, F .5 (w 2); R 2, F 1.25 (w 4)
    assert got["smd"][0] == pytest.approx((2 * -0.5 + 4 * -0.75) / 6)
    # item 1: the first stratum has no focal person and contributes nothing
    assert got["smd"][1] == pytest.approx(9 / 6 - 5 / 5)
    assert got["n_strata"].tolist() == [2, 1]


# --------------------------------------------------------------------------------------------
# simulations


@pytest.fixture(scope="module")
def simulated_2pl():
    rng = np.random.default_rng(2024)
    n_items = 25
    a = rng.uniform(0.8, 2.0, n_items)
    b = rng.normal(0, 1, n_items)
    a[3], b[3] = 1.3, 0.2
    x, theta, groups = _simulate_2pl(rng, 2000, a, b, dif_item=3, shift=0.8, focal_mean=-0.4)
    data = from_wide(x, groups=groups, item_ids=[f"i{k:02d}" for k in range(n_items)])
    return data, theta


def test_simulated_uniform_dif_is_flagged_and_favours_reference(simulated_2pl):
    data, _ = simulated_2pl
    results = mantel_haenszel(data, "R", "F")
    assert all(isinstance(r, MantelHaenszelResult) for r in results)
    by_id = {r.item_id: r for r in results}
    studied = by_id["i03"]
    assert studied.category in ("B", "C")
    assert studied.favours == "reference"
    assert studied.delta_mh < -1
    assert (studied.n_reference, studied.n_focal) == (2000, 2000)
    others = [r for r in results if r.item_id != "i03"]
    share_a = sum(r.category == "A" for r in others) / len(others)
    assert share_a >= 0.85
    assert all(r.favours is None for r in others if r.category == "A")


def test_simulated_dif_without_dif_item_is_not_flagged():
    rng = np.random.default_rng(11)
    a = rng.uniform(0.8, 2.0, 15)
    b = rng.normal(0, 1, 15)
    x, _, groups = _simulate_2pl(rng, 1500, a, b, dif_item=0, shift=0.0)
    results = mantel_haenszel(from_wide(x, groups=groups), "R", "F")
    assert sum(r.category == "A" for r in results) >= 0.85 * len(results)


def test_purification_removes_c_items_but_keeps_the_studied_item(simulated_2pl):
    data, _ = simulated_2pl
    first = {r.item_id: r for r in mantel_haenszel(data, "R", "F")}
    flagged = [i for i, r in first.items() if r.category == "C"]
    assert flagged == ["i03"]
    purified = mantel_haenszel(data, "R", "F", purify=True)
    x = data.dense()
    g = data.group
    keep = np.array([i not in flagged for i in data.item_ids])
    for j in (0, 3):  # a clean item and the flagged one
        score = x[:, keep].sum(axis=1) + (0 if keep[j] else x[:, j])
        strata = []
        for level in np.unique(score):
            at = score == level
            strata.append(
                tuple(
                    int(((g == grp) & at & (x[:, j] == right)).sum())
                    for grp, right in (("R", 1), ("R", 0), ("F", 1), ("F", 0))
                )
            )
        expected = _mh_by_hand(strata)
        assert purified[j].alpha_mh == pytest.approx(expected["alpha_mh"], rel=1e-10)
        assert purified[j].chi_square == pytest.approx(expected["chi_square"], rel=1e-10)
    # the matching changed for the clean item: the purified result differs from the first one
    assert purified[0].alpha_mh != pytest.approx(first["i00"].alpha_mh, rel=1e-12)
    assert purified[3].category in ("B", "C") and purified[3].favours == "reference"


def test_theta_matching_on_sparse_data(simulated_2pl):
    data, theta = simulated_2pl
    rng = np.random.default_rng(5)
    # make it sparse: each person saw about 60% of the items
    keep = rng.random(data.n_obs) < 0.6
    keep[data.item == 3] = True
    sparse_data = from_long(
        [data.person_ids[p] for p in data.person[keep]],
        [data.item_ids[j] for j in data.item[keep]],
        data.response[keep],
        [str(data.group[p]) for p in data.person[keep]],
    )
    position = {p: k for k, p in enumerate(data.person_ids)}
    order = [position[p] for p in sparse_data.person_ids]
    ability = theta[order]
    with pytest.raises(CalibrationError, match="matching='total' needs every person"):
        mantel_haenszel(sparse_data, "R", "F")
    results = {
        r.item_id: r
        for r in mantel_haenszel(sparse_data, "R", "F", matching="theta", ability=ability)
    }
    assert results["i03"].category in ("B", "C")
    assert results["i03"].favours == "reference"
    assert results["i03"].n_strata == 10
    others = [r for i, r in results.items() if i != "i03"]
    assert sum(r.category == "A" for r in others) >= 0.85 * len(others)


def test_theta_strata_are_deciles_of_the_ability():
    # ten persons per decile, hand-checkable: stratum = decile of ability
    rng = np.random.default_rng(3)
    n = 200
    ability = rng.permutation(np.linspace(-2, 2, n))
    group = np.where(np.arange(n) % 2 == 0, "R", "F")
    y = rng.integers(0, 2, n)
    data = from_long([f"p{k}" for k in range(n)], ["i"] * n, y, group.tolist())
    [got] = mantel_haenszel(data, "R", "F", matching="theta", ability=ability)
    decile = np.argsort(np.argsort(ability)) // 20
    strata = [
        tuple(
            int(((group == grp) & (decile == k) & (y == right)).sum())
            for grp, right in (("R", 1), ("R", 0), ("F", 1), ("F", 0))
        )
        for k in range(10)
    ]
    assert got.alpha_mh == pytest.approx(_mh_by_hand(strata)["alpha_mh"], rel=1e-10)
    [five] = mantel_haenszel(data, "R", "F", matching="theta", ability=ability, n_strata=5)
    quintile = decile // 2
    strata = [
        tuple(
            int(((group == grp) & (quintile == k) & (y == right)).sum())
            for grp, right in (("R", 1), ("R", 0), ("F", 1), ("F", 0))
        )
        for k in range(5)
    ]
    assert five.chi_square == pytest.approx(_mh_by_hand(strata)["chi_square"], rel=1e-10)


def test_smd_on_simulated_grm_item_with_shift():
    rng = np.random.default_rng(99)
    n = 2000
    theta = np.r_[rng.normal(0, 1, n), rng.normal(-0.3, 1, n)]
    groups = ["R"] * n + ["F"] * n
    a_d = rng.uniform(0.8, 2.0, 12)
    b_d = rng.normal(0, 1, 12)
    dich = (rng.random((2 * n, 12)) < 1 / (1 + np.exp(-a_d * (theta[:, None] - b_d)))).astype(float)
    base = np.array([[-1.0, 0.0, 1.0], [-1.5, -0.3, 0.8], [-0.8, 0.2, 1.4], [-1.2, 0.1, 0.9]])
    poly = []
    for k, thresholds in enumerate(base):
        tau = np.tile(thresholds, (2 * n, 1))
        if k == 0:
            tau[n:] += 0.8  # focal persons need 0.8 more ability for each category
        poly.append(_simulate_grm(rng, theta, 1.4, tau))
    x = np.column_stack([dich, *poly])
    ids = [f"d{k}" for k in range(12)] + [f"g{k}" for k in range(4)]
    data = from_wide(x, groups=groups, item_ids=ids)
    results = standardized_mean_difference(data, "R", "F")
    assert all(isinstance(r, SMDResult) for r in results)
    assert [r.item_id for r in results] == ["g0", "g1", "g2", "g3"]
    shifted = results[0]
    assert shifted.smd < 0
    assert shifted.effect_size < -0.17
    assert shifted.category in ("B", "C")
    assert shifted.favours == "reference"
    assert shifted.p_value < 1e-6
    assert all(r.category == "A" and r.favours is None for r in results[1:])
    assert all(abs(r.effect_size) < 0.17 for r in results[1:])
    # the combined report: MH for the dichotomous items, SMD for the polytomous ones
    report = dif_report(data, "R", "F", purify=True)
    assert len(report["mantel_haenszel"]) == 12
    assert len(report["standardized_mean_difference"]) == 4
    assert "g0" in report["removed_from_matching"]
    assert "g0" in report["flagged"]


# --------------------------------------------------------------------------------------------
# ETS categories


@pytest.mark.parametrize(
    ("delta", "se", "p", "expected"),
    [
        (-0.99, 0.01, 1e-9, "A"),  # |D| < 1: A however significant
        (0.999999, 0.01, 1e-9, "A"),
        (-1.0, 0.01, 1e-9, "B"),  # |D| = 1 and significant: B
        (1.0, 0.01, 1e-9, "B"),
        (-3.0, 0.3, 0.05, "A"),  # p = .05 is not significant: A
        (-3.0, 0.3, 0.0499, "C"),
        (-1.49, 0.01, 1e-9, "B"),  # |D| < 1.5: never C
        (1.5, 0.01, 1e-9, "C"),  # |D| = 1.5 and |D| - 1 = .5 > 1.645 * .01
        (1.5, 0.5 / 1.645 + 1e-6, 1e-9, "B"),  # |D| - 1 not significantly > 1
        (1.5, 0.5 / 1.645 - 1e-6, 1e-9, "C"),
        (-2.0, 0.6, 0.001, "C"),  # |D| - 1 = 1.0 > 1.645 * .6 = .987: C
        (-2.0, 0.61, 0.001, "B"),  # 1.0 < 1.645 * .61 = 1.003: B
        (float("nan"), float("nan"), 1.0, "A"),
    ],
)
def test_ets_category_boundaries(delta, se, p, expected):
    assert ets_category(delta, se, p) == expected


def test_ets_category_is_vectorised():
    got = ets_category(
        np.array([0.5, -1.2, 2.5]), np.array([0.1, 0.1, 0.1]), np.array([0.001, 0.001, 0.001])
    )
    assert got.tolist() == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("size", "p", "expected"),
    [
        (0.17, 1e-9, "A"),
        (-0.1701, 1e-9, "B"),
        (0.25, 1e-9, "B"),
        (-0.2501, 1e-9, "C"),
        (0.9, 0.05, "A"),
        (0.9, 0.049, "C"),
        (float("nan"), 1.0, "A"),
    ],
)
def test_polytomous_category_boundaries(size, p, expected):
    assert polytomous_category(size, p) == expected


def test_end_to_end_categories_follow_the_rules(simulated_2pl):
    data, _ = simulated_2pl
    for r in mantel_haenszel(data, "R", "F"):
        d, se = abs(r.delta_mh), r.se_delta
        if d < 1 or r.p_value >= 0.05:
            assert r.category == "A"
        elif d >= 1.5 and d - 1 > 1.645 * se:
            assert r.category == "C"
        else:
            assert r.category == "B"


# --------------------------------------------------------------------------------------------
# degenerate items and the report


def test_item_everyone_answered_correctly_is_a_with_nan_alpha():
    x = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 0, 1]], dtype=float)
    data = from_wide(x, groups=["R", "R", "R", "F", "F", "F"])
    [result] = mantel_haenszel(data, "R", "F", items=["item1"])
    assert math.isnan(result.alpha_mh)
    assert (result.chi_square, result.p_value, result.category) == (0.0, 1.0, "A")
    assert result.n_strata >= 1


def test_dif_report_is_plain_json(simulated_2pl):
    data, _ = simulated_2pl
    x = data.dense()
    x[:, 0] = 1.0  # an item without information: NaN statistics must become null
    data = from_wide(x, groups=data.group.tolist(), item_ids=data.item_ids)
    report = dif_report(data, "R", "F")
    text = json.dumps(report, allow_nan=False)
    back = json.loads(text)
    assert back["reference"] == "R" and back["focal"] == "F"
    assert back["n_reference"] == back["n_focal"] == 2000
    assert back["mantel_haenszel"][0]["alpha_mh"] is None
    assert back["standardized_mean_difference"] == []
    assert sum(back["summary"].values()) == 25
    row = next(r for r in back["mantel_haenszel"] if r["item_id"] == "i03")
    assert row["category"] in ("B", "C") and row["favours"] == "reference"
    assert back["removed_from_matching"] == []
    assert "i03" in back["flagged"]


# --------------------------------------------------------------------------------------------
# errors


@pytest.fixture
def small():
    x = np.array([[1, 0, 2], [0, 1, 1], [1, 1, 0], [0, 0, 2]], dtype=float)
    return from_wide(x, groups=["boys", "girls", "boys", "girls"], item_ids=["a", "b", "poly"])


def test_error_unknown_group_lists_the_labels_present(small):
    with pytest.raises(CalibrationError) as info:
        mantel_haenszel(small, "boys", "women")
    message = str(info.value)
    assert "'women'" in message
    assert "'boys'" in message and "'girls'" in message


def test_error_data_without_groups():
    data = from_wide(np.array([[1, 0], [0, 1]], dtype=float))
    with pytest.raises(CalibrationError, match="no group labels"):
        mantel_haenszel(data, "R", "F")
    with pytest.raises(CalibrationError, match="no group labels"):
        dif_report(data, "R", "F")


def test_error_item_without_responses_in_one_group():
    data = from_long(
        ["p1", "p2", "p1", "p2", "p3"],
        ["a", "a", "b", "b", "c"],
        [1, 0, 1, 1, 0],
        ["R", "F", "R", "F", "R"],
    )
    with pytest.raises(CalibrationError) as info:
        mantel_haenszel(data, "R", "F", matching="theta", ability=np.zeros(3))
    assert "'F'" in str(info.value) and "'c'" in str(info.value)
    assert "'a'" not in str(info.value)


def test_error_same_group_twice(small):
    with pytest.raises(CalibrationError, match="both 'boys'"):
        mantel_haenszel(small, "boys", "boys")


def test_error_unknown_and_polytomous_items(small):
    with pytest.raises(CalibrationError, match=r"unknown item.*'zz'"):
        mantel_haenszel(small, "boys", "girls", items=["a", "zz"])
    with pytest.raises(CalibrationError, match="polytomous: 'poly'"):
        mantel_haenszel(small, "boys", "girls", items=["poly"])


def test_error_incomplete_data_with_total_matching_names_persons():
    data = from_long(
        ["p1", "p1", "p2", "p3", "p3"],
        ["a", "b", "a", "a", "b"],
        [1, 0, 1, 0, 1],
        ["R", "R", "F", "F", "F"],
    )
    with pytest.raises(CalibrationError, match=r"1 of 3 persons.*'p2'.*matching='theta'"):
        mantel_haenszel(data, "R", "F")


def test_error_bad_matching_and_ability(small):
    with pytest.raises(CalibrationError, match="matching must be one of"):
        mantel_haenszel(small, "boys", "girls", matching="rest")
    with pytest.raises(CalibrationError, match="needs ability"):
        mantel_haenszel(small, "boys", "girls", matching="theta")
    with pytest.raises(CalibrationError, match=r"shape \(4,\)"):
        mantel_haenszel(small, "boys", "girls", matching="theta", ability=np.zeros(3))
    with pytest.raises(CalibrationError, match=r"finite.*'3'"):
        mantel_haenszel(
            small, "boys", "girls", matching="theta", ability=np.array([0.0, 1.0, np.nan, 2.0])
        )
    with pytest.raises(CalibrationError, match="purify applies to matching='total'"):
        mantel_haenszel(small, "boys", "girls", matching="theta", ability=np.zeros(4), purify=True)


def test_empty_off_diagonal_gives_an_infinite_delta_classed_c():
    """No B_k C_k in any stratum: alpha is infinite, Var(ln alpha) unbounded, and the item C."""
    rng = np.random.default_rng(3)
    n = 400
    groups = np.array(["R"] * n + ["F"] * n)
    x = (rng.random((2 * n, 20)) < 0.6).astype(float)
    # item0: every reference test taker right; the focal group right only 30% of the time.
    x[:n, 0] = 1.0
    x[n:, 0] = (rng.random(n) < 0.3).astype(float)
    data = from_wide(x, groups=groups.tolist())
    [result] = mantel_haenszel(data, "R", "F", items=["item1"])
    # Independent computation: B_k = 0 in every stratum, so sum(B_k C_k / N_k) = 0.
    assert math.isinf(result.alpha_mh) and result.delta_mh == -math.inf
    assert result.se_delta == math.inf
    assert result.p_value < 1e-10
    assert (result.category, result.favours) == ("C", "reference")
    assert ets_category(-math.inf, math.inf, 1e-10) == "C"
    assert ets_category(math.inf, math.inf, 0.2) == "A"  # not significant
    report = dif_report(data, "R", "F", items=["item1"])
    json.dumps(report, allow_nan=False)
