"""Tests of scale linking: known transformations recovered, criteria checked by hand-written curves.

The "new" calibration is made from a reference bank by a known change of scale
(``theta_new = (theta_ref - B) / A``), so every method must give back A and B; the characteristic
curve criteria are recomputed here from the textbook response functions, not from cat_engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.linking import METHODS, LinkingResult, link
from cat_engine.bank import ItemBank

A_TRUE, B_TRUE = 1.3, -0.4


def _close(x: float, y: float, rel: float = 0.0, abs: float = 0.0) -> bool:
    """``math.isclose`` with pytest.approx's keywords (ruff reads ``result.A == ...`` as Yoda)."""
    return math.isclose(x, y, rel_tol=rel, abs_tol=abs)


def _reference_records() -> list[dict]:
    rng = np.random.default_rng(2024)
    records = []
    for j in range(20):
        model = ("2pl", "3pl", "grm", "gpcm", "4pl")[j % 5]
        a = float(rng.uniform(0.6, 2.0))
        record = {"item_id": f"q{j:02d}", "model": model, "a": a, "content": ["algebra"]}
        if model in ("grm", "gpcm"):
            k = 2 + j % 3
            record["thresholds"] = sorted(float(t) for t in rng.normal(0.0, 1.0, k))
        else:
            record["b"] = float(rng.normal(0.2, 1.0))
            if model in ("3pl", "4pl"):
                record["c"] = 0.2
            if model == "4pl":
                record["d"] = 0.95
        records.append(record)
    return records


def _to_new_scale(records, A, B, noise=0.0, rng=None) -> list[dict]:
    """The same items calibrated on a scale with theta_new = (theta_ref - B) / A."""
    out = []
    for record in records:
        r = dict(record)
        jitter = (lambda: noise * rng.normal()) if noise else (lambda: 0.0)
        r["a"] = record["a"] * A * math.exp(jitter())
        if "thresholds" in record:
            r["thresholds"] = sorted((t - B) / A + jitter() for t in record["thresholds"])
        else:
            r["b"] = (record["b"] - B) / A + jitter()
        out.append(r)
    return out


@pytest.fixture(scope="module")
def reference() -> ItemBank:
    return ItemBank.from_records(_reference_records())


@pytest.fixture(scope="module")
def new() -> ItemBank:
    return ItemBank.from_records(_to_new_scale(_reference_records(), A_TRUE, B_TRUE))


# -- independent response functions --------------------------------------------------------------


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _category_curves(record: dict, theta: float) -> list[float]:
    a = record["a"]
    if record["model"] == "grm":
        star = [1.0] + [_logistic(a * (theta - t)) for t in record["thresholds"]] + [0.0]
        return [star[k] - star[k + 1] for k in range(len(star) - 1)]
    if record["model"] == "gpcm":
        z = [0.0]
        for t in record["thresholds"]:
            z.append(z[-1] + a * (theta - t))
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]
    c, d = record.get("c", 0.0), record.get("d", 1.0)
    p = c + (d - c) * _logistic(a * (theta - record["b"]))
    return [1.0 - p, p]


def _transformed(record: dict, A: float, B: float) -> dict:
    r = dict(record)
    r["a"] = record["a"] / A
    if "thresholds" in record:
        r["thresholds"] = [A * t + B for t in record["thresholds"]]
    else:
        r["b"] = A * record["b"] + B
    return r


def _criterion(method, new_records, ref_records, A, B) -> float:
    points = np.linspace(-4, 4, 41)
    weights = np.exp(-0.5 * points**2)
    weights /= weights.sum()
    total = 0.0
    for theta, w in zip(points, weights, strict=True):
        if method == "stocking-lord":
            t_ref = sum(
                sum(k * p for k, p in enumerate(_category_curves(r, theta))) for r in ref_records
            )
            t_new = sum(
                sum(k * p for k, p in enumerate(_category_curves(_transformed(r, A, B), theta)))
                for r in new_records
            )
            total += w * (t_ref - t_new) ** 2
        else:
            for r_ref, r_new in zip(ref_records, new_records, strict=True):
                p_ref = _category_curves(r_ref, theta)
                p_new = _category_curves(_transformed(r_new, A, B), theta)
                total += w * sum((x - y) ** 2 for x, y in zip(p_ref, p_new, strict=True))
    return total


# -- recovery --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_every_method_recovers_a_known_transformation(new, reference, method):
    result = link(new, reference, method)
    assert isinstance(result, LinkingResult)
    assert result.method == method
    assert _close(result.A, A_TRUE, abs=1e-6)
    assert _close(result.B, B_TRUE, abs=1e-6)
    assert result.common_items == reference.item_ids
    if method in ("stocking-lord", "haebara"):
        assert result.criterion == pytest.approx(0.0, abs=1e-12)
    else:
        assert result.criterion is None


@pytest.mark.parametrize("method", ["stocking-lord", "haebara"])
@pytest.mark.parametrize("start", [(1.0, 0.0), (0.5, 1.5), (3.0, -2.0)])
def test_curve_methods_converge_from_poor_starts(new, reference, method, start):
    result = link(new, reference, method, start=start)
    assert _close(result.A, A_TRUE, abs=1e-6)
    assert _close(result.B, B_TRUE, abs=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("method", ["stocking-lord", "haebara"])
def test_curve_methods_recover_the_transformation_from_noisy_estimates(reference, method, seed):
    rng = np.random.default_rng(seed)
    noisy = ItemBank.from_records(
        _to_new_scale(_reference_records(), A_TRUE, B_TRUE, noise=0.05, rng=rng)
    )
    result = link(noisy, reference, method)
    assert abs(result.A - A_TRUE) < 0.05
    assert abs(result.B - B_TRUE) < 0.05
    assert result.criterion > 0


@pytest.mark.parametrize("method", ["stocking-lord", "haebara"])
def test_criterion_matches_hand_computed_curves_and_is_a_minimum(method):
    rng = np.random.default_rng(11)
    ref_records = _reference_records()[:10]
    new_records = _to_new_scale(ref_records, A_TRUE, B_TRUE, noise=0.1, rng=rng)
    result = link(ItemBank.from_records(new_records), ItemBank.from_records(ref_records), method)
    at_optimum = _criterion(method, new_records, ref_records, result.A, result.B)
    assert result.criterion == pytest.approx(at_optimum, rel=1e-9)
    for d_a, d_b in ((0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01)):
        assert _criterion(method, new_records, ref_records, result.A + d_a, result.B + d_b) > (
            at_optimum
        )


def test_the_two_curve_criteria_differ_on_noisy_data():
    rng = np.random.default_rng(5)
    ref_records = _reference_records()
    new_records = _to_new_scale(ref_records, A_TRUE, B_TRUE, noise=0.1, rng=rng)
    new, ref = ItemBank.from_records(new_records), ItemBank.from_records(ref_records)
    sl, hb = link(new, ref, "stocking-lord"), link(new, ref, "haebara")
    assert not _close(sl.A, hb.A, abs=1e-4) or not _close(sl.B, hb.B, abs=1e-4)


def test_moment_methods_match_their_formulas_on_noisy_data():
    rng = np.random.default_rng(8)
    ref_records = _reference_records()
    new_records = _to_new_scale(ref_records, A_TRUE, B_TRUE, noise=0.1, rng=rng)
    new, ref = ItemBank.from_records(new_records), ItemBank.from_records(ref_records)

    def locations(records):
        return np.array([t for r in records for t in r.get("thresholds", [r.get("b")])])

    b_new, b_ref = locations(new_records), locations(ref_records)
    a_new = np.array([r["a"] for r in new_records])
    a_ref = np.array([r["a"] for r in ref_records])
    ms = link(new, ref, "mean-sigma")
    assert _close(ms.A, b_ref.std() / b_new.std(), rel=1e-12)
    assert _close(ms.B, b_ref.mean() - ms.A * b_new.mean(), abs=1e-12)
    mm = link(new, ref, "mean-mean")
    assert _close(mm.A, a_new.mean() / a_ref.mean(), rel=1e-12)
    assert _close(mm.B, b_ref.mean() - mm.A * b_new.mean(), abs=1e-12)


def test_weights_and_range_options_are_used(new, reference):
    rng = np.random.default_rng(4)
    noisy = ItemBank.from_records(
        _to_new_scale(_reference_records(), A_TRUE, B_TRUE, noise=0.1, rng=rng)
    )
    normal = link(noisy, reference, "stocking-lord")
    uniform = link(noisy, reference, "stocking-lord", weights="uniform", theta_range=(-3, 3))
    explicit = link(noisy, reference, "stocking-lord", weights=np.ones(41), theta_range=(-3, 3))
    assert not _close(normal.A, uniform.A, abs=1e-6)
    assert _close(uniform.A, explicit.A, abs=1e-9)
    exact = link(new, reference, "haebara", weights="uniform", quadrature=21)
    assert _close(exact.A, A_TRUE, abs=1e-6)


# -- transform -------------------------------------------------------------------------------


def test_transform_maps_the_new_parameters_back_to_the_reference(new, reference):
    result = link(new, reference, "stocking-lord")
    back = result.transform(new)
    assert back.item_ids == reference.item_ids
    assert list(back.models) == list(reference.models)
    for name in ("a", "b", "c", "d"):
        np.testing.assert_allclose(getattr(back, name), getattr(reference, name), atol=1e-6)
    np.testing.assert_allclose(back.thresholds, reference.thresholds, atol=1e-6)
    assert back.content == reference.content


def test_transform_uses_the_stated_formulas():
    result = LinkingResult("mean-mean", 2.0, 1.0, ("x", "y"))
    bank = ItemBank.from_records(
        [
            {"item_id": "x", "model": "3pl", "a": 1.0, "b": 0.5, "c": 0.25},
            {"item_id": "y", "model": "grm", "a": 2.0, "thresholds": [-1.0, 0.0, 2.0]},
            {"item_id": "z", "model": "4pl", "a": 0.8, "b": -1.0, "c": 0.1, "d": 0.9},
        ]
    )
    out = result.transform(bank).to_records()
    assert out[0] == {"item_id": "x", "model": "3pl", "a": 0.5, "b": 2.0, "c": 0.25, "d": 1.0}
    assert out[1] == {"item_id": "y", "model": "grm", "a": 1.0, "thresholds": [-1.0, 1.0, 5.0]}
    assert out[2] == {"item_id": "z", "model": "4pl", "a": 0.4, "b": -1.0, "c": 0.1, "d": 0.9}
    np.testing.assert_allclose(result.transform_theta([0.0, 1.0]), [1.0, 3.0])
    theta, se = result.transform_theta([0.0], [0.3])
    np.testing.assert_allclose([theta[0], se[0]], [1.0, 0.6])


def test_transform_turns_rasch_and_pcm_items_into_1pl_and_gpcm_when_a_is_not_1():
    bank = ItemBank.from_records(
        [
            {"item_id": "r", "model": "rasch", "b": 0.5},
            {"item_id": "p", "model": "pcm", "thresholds": [0.0, 1.0]},
        ]
    )
    out = LinkingResult("mean-sigma", 2.0, 0.0, ("r", "p")).transform(bank).to_records()
    assert [r["model"] for r in out] == ["1pl", "gpcm"]
    assert [r["a"] for r in out] == [0.5, 0.5]
    same = LinkingResult("mean-sigma", 1.0, 0.5, ("r", "p")).transform(bank)
    assert list(same.models) == ["rasch", "pcm"]
    assert same.b[0] == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_rasch_common_items_fix_the_unit(method):
    ref = ItemBank.from_records(
        [
            {"item_id": f"r{j}", "model": "rasch", "b": b}
            for j, b in enumerate([-1.5, -0.2, 0.4, 1.8])
        ]
        + [{"item_id": "p", "model": "pcm", "thresholds": [-0.5, 0.7]}]
    )
    shift = 0.75
    new = ItemBank.from_records(
        [
            {"item_id": r["item_id"], "model": r["model"], "b": r["b"] - shift}
            if "b" in r
            else {**r, "thresholds": [t - shift for t in r["thresholds"]]}
            for r in ref.to_records()
        ]
    )
    result = link(new, ref, method)
    assert result.A == 1.0
    assert _close(result.B, shift, abs=1e-6)
    assert list(result.transform(new).models) == list(ref.models)


def test_only_the_named_common_items_are_used(new, reference):
    common = list(reference.item_ids[:6])
    result = link(new, reference, "haebara", common=common)
    assert result.common_items == tuple(common)
    assert _close(result.A, A_TRUE, abs=1e-6)


def test_items_only_in_the_new_calibration_are_transformed_too(reference):
    records = _to_new_scale(_reference_records(), A_TRUE, B_TRUE)
    records.append({"item_id": "fresh", "model": "2pl", "a": 1.3, "b": 1.0})
    new = ItemBank.from_records(records)
    result = link(new, reference, "mean-mean")
    assert "fresh" not in result.common_items
    out = result.transform(new).to_records()[-1]
    assert out["a"] == pytest.approx(1.0)
    assert out["b"] == pytest.approx(A_TRUE * 1.0 + B_TRUE)


# -- errors ----------------------------------------------------------------------------------


def test_fewer_than_two_common_items_is_an_error_naming_them(reference):
    one = ItemBank.from_records(
        [
            {"item_id": "q00", "model": "2pl", "a": 1, "b": 0},
            {"item_id": "other", "model": "2pl", "a": 1, "b": 1},
        ]
    )
    with pytest.raises(CalibrationError, match=r"found 1.*'q00'"):
        link(one, reference)
    none = ItemBank.from_records([{"item_id": "z", "model": "2pl", "a": 1, "b": 0}])
    with pytest.raises(CalibrationError, match="found 0"):
        link(none, reference, "mean-sigma")


def test_unknown_method_is_an_error(new, reference):
    with pytest.raises(CalibrationError, match="unknown linking method 'equipercentile'"):
        link(new, reference, "equipercentile")


def test_model_mismatch_names_the_item(reference):
    records = _to_new_scale(_reference_records(), A_TRUE, B_TRUE)
    records[0] = {**records[0], "model": "3pl", "c": 0.1}  # q00 is 2pl in the reference
    with pytest.raises(CalibrationError, match=r"'q00'.*'3pl'.*'2pl'"):
        link(ItemBank.from_records(records), reference)


def test_category_mismatch_names_the_item(reference):
    records = _to_new_scale(_reference_records(), A_TRUE, B_TRUE)
    records[2] = {**records[2], "thresholds": records[2]["thresholds"] + [5.0]}
    with pytest.raises(CalibrationError, match=r"'q02' has \d categories"):
        link(ItemBank.from_records(records), reference)


def test_bad_common_lists_and_settings_are_errors(new, reference):
    with pytest.raises(CalibrationError, match="not in the new calibration: 'nope'"):
        link(new, reference, common=["q00", "q01", "nope"])
    with pytest.raises(CalibrationError, match="more than once"):
        link(new, reference, common=["q00", "q00", "q01"])
    with pytest.raises(CalibrationError, match="weights"):
        link(new, reference, weights="cauchy")
    with pytest.raises(CalibrationError, match="weights"):
        link(new, reference, weights=np.ones(5))
    with pytest.raises(CalibrationError, match="theta_range"):
        link(new, reference, theta_range=(2, -2))
    with pytest.raises(CalibrationError, match="start"):
        link(new, reference, start=(-1.0, 0.0))
    scaled = ItemBank.from_records(_to_new_scale(_reference_records(), 1, 0), D=1.702)
    with pytest.raises(CalibrationError, match="scaling constants"):
        link(scaled, reference)
