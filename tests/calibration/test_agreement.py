"""calibration.agreement against published worked examples, independent libraries and brute force.

Published figures matched here:

- Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: Uses in assessing rater
  reliability. Psychological Bulletin, 86, 420-428: Table 1, four judges rating six targets, and
  Table 2, its ANOVA (BMS 11.24, WMS 6.26, JMS 32.49, EMS 1.02) and the ICCs in the text:
  ICC(1,1) = .17, ICC(2,1) = .29, ICC(3,1) = .71.
- Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability (Annenberg School for
  Communication, https://repository.upenn.edu/asc_papers/43), section "C. Nominal data, any number
  of observers, missing data" and following: 4 observers x 12 units with missing values; its
  coincidence matrix (o_11 = 7, o_12 = 4/3, ...; n = 40 pairable values) and alpha nominal .743,
  ordinal .815, interval .849. The same data are the "C" data of R's irr::kripp.alpha example and
  the ordinal test of the Python krippendorff package (0.815).
- Quadratic weighted kappa: the worked examples of Maplesoft's help page for
  EssayTools[QuadraticWeightedKappa] (Maple 2015 and later), which prints 0.758620689655172 for
  ([9, 7, 8, 7, 6, 8, 3, 5, 10], [8, 8, 6, 6, 7, 6, 1, 4, 8]) and 0.438095238095238 for
  ([9, 7, 8, 7, 6, 8, 3, 5, 10], [3, 5, 6, 6, 7, 6, 1, 4, 8]), scale from the data's minimum to
  its maximum (22/29 and 46/105 exactly).
"""

from __future__ import annotations

import itertools
import math

import krippendorff  # GPL-3.0, test extra only: a cross-check, never imported by the product
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa

from calibration.agreement import (
    AgreementError,
    coincidence_matrix,
    exact_adjacent_agreement,
    intraclass_correlations,
    krippendorff_alpha,
    pairwise_agreement,
    quadratic_weighted_kappa,
    rater_agreement,
    rating_pairs,
)
from calibration.raters import Ratings

# Shrout & Fleiss (1979), Table 1: rows targets, columns judges 1-4.
SHROUT_FLEISS = np.array([
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
])

# Krippendorff (2011): rows observers A-D, columns units 1-12, nan = not coded.
nan = np.nan
KRIPPENDORFF = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
])


def long_form(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit, rater, score) of a raters x units matrix with nan for missing."""
    rater, unit = np.nonzero(~np.isnan(matrix))
    return unit, rater, matrix[rater, unit].astype(int)


def sparse_design(rng, n_units: int, n_raters: int, per_unit: int = 2):
    """Each unit rated by ``per_unit`` distinct raters drawn at random."""
    keys = rng.random((n_units, n_raters))
    raters = np.argsort(keys, axis=1)[:, :per_unit]
    unit = np.repeat(np.arange(n_units), per_unit)
    return unit, raters.ravel()


# ---------------------------------------------------------------------------------------------
# ICCs
# ---------------------------------------------------------------------------------------------


def shrout_fleiss_anova(x: np.ndarray) -> dict[str, float]:
    """The textbook two-way ANOVA on a complete n x k matrix (Shrout & Fleiss' Table 2)."""
    n, k = x.shape
    grand = x.mean()
    ss_b = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_j = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_w = np.sum((x - x.mean(axis=1, keepdims=True)) ** 2)
    ss_e = ss_w - ss_j
    return {"BMS": ss_b / (n - 1), "JMS": ss_j / (k - 1), "WMS": ss_w / (n * (k - 1)),
            "EMS": ss_e / ((n - 1) * (k - 1)), "n": n, "k": k}


def shrout_fleiss_iccs(x: np.ndarray) -> tuple[float, float, float]:
    a = shrout_fleiss_anova(x)
    bms, jms, wms, ems, n, k = a["BMS"], a["JMS"], a["WMS"], a["EMS"], a["n"], a["k"]
    icc1 = (bms - wms) / (bms + (k - 1) * wms)
    icc2 = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    icc3 = (bms - ems) / (bms + (k - 1) * ems)
    return icc1, icc2, icc3


def complete(x: np.ndarray):
    unit, rater = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    return unit.ravel(), rater.ravel(), x.ravel()


def test_shrout_fleiss_published_table() -> None:
    result = intraclass_correlations(*complete(SHROUT_FLEISS))
    assert round(result.icc1_1, 2) == 0.17
    assert round(result.icc2_1, 2) == 0.29
    assert round(result.icc3_1, 2) == 0.71
    # Table 2's mean squares
    assert round(result.ms_units, 2) == 11.24
    assert round(result.ms_within, 2) == 6.26
    assert round(result.ms_raters, 2) == 32.49
    assert round(result.ms_error, 2) == 1.02
    assert (result.n_units, result.n_raters, result.n_ratings, result.n_components) == (6, 4, 24, 1)


def test_complete_data_reproduce_the_anova_formulas_exactly() -> None:
    rng = np.random.default_rng(7)
    for n, k in [(6, 4), (30, 3), (12, 7)]:
        x = rng.normal(size=(n, 1)) + rng.normal(size=(1, k)) * 0.5 + rng.normal(size=(n, k))
        # the function takes any real scores
        result = intraclass_correlations(*complete(x))
        anova = shrout_fleiss_anova(x)
        assert result.ms_units == pytest.approx(anova["BMS"], rel=1e-12)
        assert result.ms_raters == pytest.approx(anova["JMS"], rel=1e-12)
        assert result.ms_error == pytest.approx(anova["EMS"], rel=1e-12)
        assert result.ms_within == pytest.approx(anova["WMS"], rel=1e-12)
        expected = shrout_fleiss_iccs(x)
        got = (result.icc1_1, result.icc2_1, result.icc3_1)
        assert got == pytest.approx(expected, rel=1e-10)


def dense_reductions(unit, rater, y) -> tuple[float, float, float]:
    """SSE, R(b|mu,a) and R(a|mu,b) from explicit least-squares fits with dummy matrices."""
    n_u, n_r = unit.max() + 1, rater.max() + 1
    units = np.eye(n_u)[unit]
    raters = np.eye(n_r)[rater]
    ones = np.ones((y.size, 1))

    def fitted_ss(design: np.ndarray) -> float:
        beta = np.linalg.lstsq(design, y, rcond=None)[0]
        return float(np.sum((design @ beta) ** 2))

    full = fitted_ss(np.hstack([ones, units, raters]))
    sse = float(np.sum(y**2)) - full
    r_raters = full - fitted_ss(np.hstack([ones, units]))
    r_units = full - fitted_ss(np.hstack([ones, raters]))
    return sse, r_raters, r_units


def test_sparse_design_reductions_match_a_dense_least_squares_fit() -> None:
    rng = np.random.default_rng(11)
    unit, rater = sparse_design(rng, 60, 8)
    y = rng.normal(size=60)[unit] + rng.normal(size=8)[rater] * 0.7 + rng.normal(size=unit.size)
    result = intraclass_correlations(unit, rater, y)
    sse, r_raters, r_units = dense_reductions(unit, rater, y)
    n_u, n_r, total = 60, 8, unit.size
    assert result.n_components == 1
    assert result.ms_error == pytest.approx(sse / (total - n_u - n_r + 1), rel=1e-9)
    assert result.ms_raters == pytest.approx(r_raters / (n_r - 1), rel=1e-9)
    assert result.ms_units == pytest.approx(r_units / (n_u - 1), rel=1e-9)
    # and the variance components are the Henderson III solution of those equations
    assert result.var_rater == pytest.approx(
        (r_raters - (n_r - 1) * result.var_error) / (total - n_u), rel=1e-9
    )
    assert result.var_unit == pytest.approx(
        (r_units - (n_u - 1) * result.var_error) / (total - n_r), rel=1e-9
    )


def test_sparse_design_recovers_known_variance_components() -> None:
    """Each unit scored by 2 of 20 raters: the estimates land on the generating components."""
    rng = np.random.default_rng(2026)
    var_unit, var_rater, var_error = 1.0, 0.3, 0.5
    estimates = []
    for _ in range(5):
        unit, rater = sparse_design(rng, 3000, 20)
        y = (rng.normal(0, math.sqrt(var_unit), 3000)[unit]
             + rng.normal(0, math.sqrt(var_rater), 20)[rater]
             + rng.normal(0, math.sqrt(var_error), unit.size))
        result = intraclass_correlations(unit, rater, y)
        estimates.append((result.var_unit, result.var_rater, result.var_error,
                          result.icc2_1, result.icc3_1))
    mean = np.mean(estimates, axis=0)
    assert mean[0] == pytest.approx(var_unit, abs=0.06)
    assert mean[1] == pytest.approx(var_rater, abs=0.12)  # 20 raters: the noisiest component
    assert mean[2] == pytest.approx(var_error, abs=0.03)
    assert mean[3] == pytest.approx(var_unit / (var_unit + var_rater + var_error), abs=0.05)
    assert mean[4] == pytest.approx(var_unit / (var_unit + var_error), abs=0.03)


def test_rater_severity_lowers_icc2_but_not_icc3() -> None:
    rng = np.random.default_rng(5)
    unit, rater = sparse_design(rng, 2000, 10)
    base = rng.normal(size=2000)[unit] + rng.normal(0, 0.5, unit.size)
    severity = np.linspace(-1.5, 1.5, 10)
    plain = intraclass_correlations(unit, rater, base)
    shifted = intraclass_correlations(unit, rater, base + severity[rater])
    assert shifted.icc3_1 == pytest.approx(plain.icc3_1, abs=1e-9)  # rater effects are removed
    assert shifted.icc2_1 < plain.icc2_1 - 0.2


def test_icc_is_nan_without_two_raters_or_two_units() -> None:
    result = intraclass_correlations([0, 0, 1], [0, 1, 0], [1, 2, 3])  # unit 1 rated once
    assert math.isnan(result.icc2_1) and result.n_units == 1


# ---------------------------------------------------------------------------------------------
# Krippendorff's alpha
# ---------------------------------------------------------------------------------------------


def test_krippendorff_published_example() -> None:
    unit, _, score = long_form(KRIPPENDORFF)
    score = score - 1  # values 1..5 as categories 0..4
    assert round(krippendorff_alpha(unit, score, "nominal"), 3) == 0.743
    assert round(krippendorff_alpha(unit, score, "ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(unit, score, "interval"), 3) == 0.849
    o = coincidence_matrix(unit, score)
    third = 1 / 3
    published = np.array([
        [7, 4 * third, third, third, 0],
        [4 * third, 10, 4 * third, third, 0],
        [third, 4 * third, 8, third, 0],
        [third, third, third, 4, 0],
        [0, 0, 0, 0, 3],
    ])
    np.testing.assert_allclose(o, published, atol=1e-12)
    assert o.sum() == pytest.approx(40)  # n: unit 12 (one value) is not pairable


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_krippendorff_alpha_matches_the_krippendorff_package_on_random_sparse_data(level) -> None:
    rng = np.random.default_rng(["nominal", "ordinal", "interval"].index(level))
    for _ in range(5):
        n_raters, n_units = 6, 80
        truth = rng.integers(0, 5, n_units)
        matrix = np.clip(truth + rng.integers(-1, 2, (n_raters, n_units)), 0, 4).astype(float)
        matrix[rng.random(matrix.shape) < 0.6] = np.nan  # most ratings missing
        unit, _, score = long_form(matrix)
        ours = krippendorff_alpha(unit, score, level, n_categories=5)
        theirs = krippendorff.alpha(matrix, level_of_measurement=level,
                                    value_domain=[0, 1, 2, 3, 4])
        assert ours == pytest.approx(theirs, rel=1e-9)


def test_alpha_ignores_unused_categories_and_single_values() -> None:
    unit = np.array([0, 0, 1, 1, 2, 2, 3])
    score = np.array([0, 1, 2, 2, 1, 1, 3])
    base = krippendorff_alpha(unit, score, "ordinal")
    assert krippendorff_alpha(unit, score, "ordinal", n_categories=9) == pytest.approx(base)
    assert krippendorff_alpha(unit[:-1], score[:-1], "ordinal") == pytest.approx(base)
    assert math.isnan(krippendorff_alpha([0, 1], [1, 2]))  # nothing pairable
    assert math.isnan(krippendorff_alpha([0, 0, 1, 1], [2, 2, 2, 2]))  # no variation at all
    with pytest.raises(AgreementError, match="level"):
        krippendorff_alpha(unit, score, "ratio")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# quadratic weighted kappa
# ---------------------------------------------------------------------------------------------


def test_quadratic_weighted_kappa_published_examples() -> None:
    a = [9, 7, 8, 7, 6, 8, 3, 5, 10]
    assert quadratic_weighted_kappa(a, [8, 8, 6, 6, 7, 6, 1, 4, 8]) == pytest.approx(
        0.758620689655172, abs=1e-14)
    assert quadratic_weighted_kappa(a, [3, 5, 6, 6, 7, 6, 1, 4, 8]) == pytest.approx(
        0.438095238095238, abs=1e-14)


def test_quadratic_weighted_kappa_matches_sklearn_and_statsmodels_on_the_full_scale() -> None:
    rng = np.random.default_rng(3)
    for k in (3, 4, 6):
        for n in (5, 40, 300):
            x = rng.integers(0, k, n)
            y = np.clip(x + rng.integers(-2, 3, n), 0, k - 1)
            ours = quadratic_weighted_kappa(x, y, n_categories=k)
            sk = cohen_kappa_score(x, y, weights="quadratic", labels=list(range(k)))
            table = np.zeros((k, k))
            np.add.at(table, (x, y), 1)
            sm = cohens_kappa(table, wt="quadratic", return_results=False)
            assert ours == pytest.approx(sk, abs=1e-12)
            assert ours == pytest.approx(sm, abs=1e-12)


def test_the_full_scale_matters_when_a_middle_level_is_unused() -> None:
    """Nobody used level 1 of 0..3: sklearn without ``labels`` treats 0, 2, 3 as equally spaced."""
    x = np.array([0, 0, 2, 2, 3, 3, 0, 3])
    y = np.array([0, 2, 2, 3, 3, 2, 0, 3])
    ours = quadratic_weighted_kappa(x, y, n_categories=4)
    assert ours == pytest.approx(cohen_kappa_score(x, y, weights="quadratic", labels=[0, 1, 2, 3]))
    assert ours != pytest.approx(cohen_kappa_score(x, y, weights="quadratic"))


def test_quadratic_weighted_kappa_edge_cases() -> None:
    assert quadratic_weighted_kappa([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    assert math.isnan(quadratic_weighted_kappa([1, 1], [1, 1], n_categories=3))
    with pytest.raises(AgreementError, match=r"score\[1\]: 3 is outside the scale 0..2"):
        quadratic_weighted_kappa([0, 3], [0, 1], n_categories=3)
    with pytest.raises(AgreementError, match="differ in length"):
        quadratic_weighted_kappa([0, 1], [0])


def test_pairwise_agreement_matches_per_pair_computations() -> None:
    rng = np.random.default_rng(17)
    unit, rater = sparse_design(rng, 400, 6, per_unit=3)
    score = np.clip(rng.integers(0, 4, 400)[unit] + rng.integers(-1, 2, unit.size), 0, 3)
    result = pairwise_agreement(unit, rater, score)
    assert result.rater_a.size == 15  # every pair of 6 raters shares units here
    for a, b, n, exact, adjacent, qwk in zip(result.rater_a, result.rater_b, result.n,
                                              result.exact, result.adjacent, result.qwk,
                                              strict=True):
        assert a < b
        by_a = dict(zip(unit[rater == a], score[rater == a], strict=True))
        by_b = dict(zip(unit[rater == b], score[rater == b], strict=True))
        shared = sorted(set(by_a) & set(by_b))
        x = np.array([by_a[u] for u in shared])
        y = np.array([by_b[u] for u in shared])
        assert n == len(shared)
        assert exact == pytest.approx(np.mean(x == y))
        assert adjacent == pytest.approx(np.mean(np.abs(x - y) <= 1))
        assert qwk == pytest.approx(quadratic_weighted_kappa(x, y, n_categories=4), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# exact and adjacent agreement
# ---------------------------------------------------------------------------------------------


def test_exact_adjacent_by_hand() -> None:
    # unit 0 scored 1, 1, 2: pairs (1,1) (1,2) (1,2); unit 1 scored 0, 3; unit 2 scored once
    rates = exact_adjacent_agreement([0, 0, 0, 1, 1, 2], [1, 1, 2, 0, 3, 4])
    assert (rates.n_pairs, rates.n_units) == (4, 2)
    assert rates.exact == pytest.approx(1 / 4)
    assert rates.adjacent == pytest.approx(3 / 4)
    empty = exact_adjacent_agreement([0, 1], [0, 0])
    assert empty.n_pairs == 0 and math.isnan(empty.exact)


def test_exact_adjacent_match_brute_force() -> None:
    rng = np.random.default_rng(23)
    unit = rng.integers(0, 50, 200)
    score = rng.integers(0, 5, 200)
    pairs = [(score[i], score[j]) for i, j in itertools.combinations(range(200), 2)
             if unit[i] == unit[j]]
    differences = np.abs(np.diff(np.array(pairs), axis=1))
    rates = exact_adjacent_agreement(unit, score)
    assert rates.n_pairs == len(pairs)
    assert rates.exact == pytest.approx(np.mean(differences == 0))
    assert rates.adjacent == pytest.approx(np.mean(differences <= 1))


def test_rating_pairs_and_bad_input() -> None:
    a, b, x, y = rating_pairs([5, 5, 5, 9], [2, 0, 1, 0], [3, 1, 2, 0])
    assert sorted(zip(a.tolist(), b.tolist(), x.tolist(), y.tolist(), strict=True)) == [
        (0, 1, 1, 2), (0, 2, 1, 3), (1, 2, 2, 3)]
    with pytest.raises(AgreementError, match="ratings 0 and 2 are both by rater 1 on unit 4"):
        rating_pairs([4, 4, 4], [1, 2, 1], [0, 1, 2])
    with pytest.raises(AgreementError, match=r"score\[1\]: 1.5 is not an integer"):
        exact_adjacent_agreement([0, 0], [1, 1.5])
    with pytest.raises(AgreementError, match=r"score\[0\]: -1 is negative"):
        exact_adjacent_agreement([0, 0], [-1, 1])
    with pytest.raises(AgreementError, match="differ in length"):
        exact_adjacent_agreement([0, 0, 1], [1, 1])


# ---------------------------------------------------------------------------------------------
# rater_agreement on a Ratings-like object
# ---------------------------------------------------------------------------------------------


def ratings_object(student, criterion, rater, score, n_categories=(4, 3)) -> Ratings:
    n_criteria = max(criterion) + 1
    return Ratings(
        student_ids=tuple(f"s{i}" for i in range(max(student) + 1)),
        criterion_ids=("ARG", "DEL")[:n_criteria],
        rater_ids=("Ana", "Ben", "Cai")[: max(rater) + 1],
        student=np.asarray(student), criterion=np.asarray(criterion),
        rater=np.asarray(rater), score=np.asarray(score),
        n_categories=np.asarray(n_categories[:n_criteria]),
        min_score=np.ones(n_criteria, dtype=int),
    )


def test_rater_agreement_report() -> None:
    rng = np.random.default_rng(31)
    student = np.repeat(np.arange(40), 4)  # each student: 2 criteria x 2 raters
    criterion = np.tile([0, 0, 1, 1], 40)
    pair = rng.integers(0, 3, 40)  # which pair of the three raters scored the student
    firsts, seconds = np.array([0, 0, 1])[pair], np.array([1, 2, 2])[pair]
    rater = np.stack([firsts, seconds, firsts, seconds], axis=1).ravel()
    truth = np.stack([rng.integers(0, 4, 40), rng.integers(0, 3, 40)], axis=1)
    score = np.clip(truth[student, criterion] + rng.integers(-1, 2, 160), 0,
                    np.array([3, 2])[criterion])
    ratings = ratings_object(student, criterion, rater, score)
    report = rater_agreement(ratings)
    unit = student * 2 + criterion
    assert report["n_ratings"] == 160 and report["n_units"] == 80 and report["n_pairs"] == 80
    assert report["exact"] == pytest.approx(exact_adjacent_agreement(unit, score).exact)
    assert report["krippendorff_alpha_ordinal"] == pytest.approx(
        krippendorff_alpha(unit, score, "ordinal"))
    assert report["icc2_1"] == pytest.approx(intraclass_correlations(unit, rater, score).icc2_1)
    assert {tuple(p["raters"]) for p in report["pairs"]} <= {
        ("Ana", "Ben"), ("Ana", "Cai"), ("Ben", "Cai")}
    assert sum(p["n"] for p in report["pairs"]) == 80
    assert [c["criterion"] for c in report["criteria"]] == ["ARG", "DEL"]
    arg = criterion == 0
    assert report["criteria"][0]["krippendorff_alpha_interval"] == pytest.approx(
        krippendorff_alpha(unit[arg], score[arg], "interval"))
    assert "Henderson" in report["icc_method"]
    for key in ("exact", "adjacent", "krippendorff_alpha_ordinal", "krippendorff_alpha_interval",
                "icc2_1", "icc3_1", "pairs"):
        assert key in report


def test_rater_agreement_undefined_figures_are_none_and_bad_ratings_are_named() -> None:
    lonely = ratings_object([0, 1], [0, 0], [0, 1], [1, 2])  # no unit scored twice
    report = rater_agreement(lonely)
    assert report["n_units"] == 0 and report["exact"] is None and report["pairs"] == []
    assert report["icc2_1"] is None
    twice = ratings_object([0, 0, 0], [0, 0, 0], [1, 1, 0], [1, 2, 1])
    with pytest.raises(AgreementError, match="rater Ben scored student s0 twice on criterion ARG"):
        rater_agreement(twice)
    outside = ratings_object([0, 0], [1, 1], [0, 1], [1, 3])
    with pytest.raises(AgreementError, match=r"score 3 is outside criterion DEL's scale 0\.\.2"):
        rater_agreement(outside)


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------


@st.composite
def sparse_ratings(draw):
    """Units each rated by 2-4 distinct raters of 6, scores on 0..4."""
    n_units = draw(st.integers(3, 25))
    rows = []
    for u in range(n_units):
        raters = draw(st.lists(st.integers(0, 5), min_size=2, max_size=4, unique=True))
        rows += [(u, r, draw(st.integers(0, 4))) for r in raters]
    unit, rater, score = (np.array(x) for x in zip(*rows, strict=True))
    return unit, rater, score


@settings(max_examples=60, deadline=None)
@given(sparse_ratings(), st.randoms(use_true_random=False))
def test_figures_do_not_depend_on_the_order_or_codes_of_units(data, random) -> None:
    unit, rater, score = data
    order = np.array(random.sample(range(unit.size), unit.size))
    codes = np.array(random.sample(range(1000), int(unit.max()) + 1))
    for level in ("nominal", "ordinal", "interval"):
        a = krippendorff_alpha(unit, score, level)
        b = krippendorff_alpha(codes[unit][order], score[order], level)
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)
    first = pairwise_agreement(unit, rater, score, n_raters=6)
    again = pairwise_agreement(codes[unit][order], rater[order], score[order], n_raters=6)
    np.testing.assert_array_equal(first.n, again.n)
    np.testing.assert_allclose(first.qwk, again.qwk, equal_nan=True)
    rates = exact_adjacent_agreement(unit, score)
    assert 0 <= rates.exact <= rates.adjacent <= 1


@settings(max_examples=60, deadline=None)
@given(sparse_ratings())
def test_iccs_are_invariant_to_a_linear_change_of_scale(data) -> None:
    unit, rater, score = data
    base = intraclass_correlations(unit, rater, score)
    moved = intraclass_correlations(unit, rater, 2.5 * score + 7)
    for name in ("icc1_1", "icc2_1", "icc3_1"):
        a, b = getattr(base, name), getattr(moved, name)
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_kappa_is_symmetric_and_one_for_identical_varied_scores(pairs) -> None:
    x, y = (np.array(v) for v in zip(*pairs, strict=True))
    k_xy = quadratic_weighted_kappa(x, y, 4)
    k_yx = quadratic_weighted_kappa(y, x, 4)
    assert (math.isnan(k_xy) and math.isnan(k_yx)) or k_xy == pytest.approx(k_yx)
    if np.unique(x).size > 1:
        assert quadratic_weighted_kappa(x, x, 4) == pytest.approx(1.0)
