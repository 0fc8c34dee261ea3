"""Agreement between raters: exact and adjacent agreement, quadratic weighted kappa per pair of
raters, the intraclass correlations of Shrout & Fleiss, and Krippendorff's alpha.

Arrays in, numbers out. A rating is one ``(unit, rater, score)`` triple; a *unit* is what is rated
(for a rubric, one student on one criterion); scores are 0-based integer categories
(``0 .. n_categories - 1``: a rubric level's ``score - levels[0].score``). Every unit is rated at
most once by each rater (a second rating of the same unit by the same rater is refused). Units
rated by fewer than two raters carry no information about agreement and are left out of every
figure here. Everything is computed from ``np.bincount`` / ``np.add.at`` over ratings and from
small matrices over raters and categories: there is no Python loop over units or ratings.

Exact and adjacent agreement (:func:`exact_adjacent_agreement`)
    Over all pairs of ratings of the same unit (``m (m - 1) / 2`` pairs for a unit rated ``m``
    times): the share of pairs whose scores are equal, and whose scores differ by at most one.

Quadratic weighted kappa (:func:`quadratic_weighted_kappa`, :func:`pairwise_agreement`)
    Cohen's (1968) weighted kappa with Fleiss-Cohen weights ``(i - j)^2 / (K - 1)^2`` on the full
    scale ``0 .. K - 1``: ``1 - sum(w * O) / sum(w * E)`` with ``O`` the observed and ``E`` the
    chance-expected (product of the margins) joint distribution of the two raters' scores. Because
    the scale is the full one, categories nobody used change nothing and a category skipped in the
    middle keeps its distance (scikit-learn's ``cohen_kappa_score`` needs ``labels=`` for this).
    Per pair of raters, over the units both rated, the same number comes from moments:
    ``1 - mean((x - y)^2) / (mean(x^2) + mean(y^2) - 2 mean(x) mean(y))``.

Intraclass correlations (:func:`intraclass_correlations`)
    Shrout & Fleiss (1979): ICC(1,1) from the one-way model ``y = mu + a_unit + e``; ICC(2,1)
    (raters random, absolute agreement) and ICC(3,1) (raters fixed, consistency) from the two-way
    crossed model without interaction ``y = mu + a_unit + b_rater + e``, as
    ``s2_unit / (s2_unit + s2_rater + s2_error)`` and ``s2_unit / (s2_unit + s2_error)``.
    The variance components are estimated by Henderson's method III (fitting constants), which
    needs no complete unit x rater matrix, so it serves sparse designs (each unit scored by 2 of
    20 raters) as well as complete ones:

    - ``R(b | mu, a) = q' C^+ q`` is the reduction in sum of squares due to raters after units,
      with the unit effects absorbed: ``C = diag(n_r) - N' diag(1/m_u) N`` (``N`` the unit x rater
      incidence counts) and ``q = T_r - N' ybar_u`` (rater totals adjusted for the unit means);
      the algebra is in the rater dimension only (a raters x raters system);
    - ``SSE = sum y^2 - sum_u T_u^2 / m_u - R(b | mu, a)`` on ``N - n_units - n_raters + c``
      degrees of freedom (``c`` connected components of the design, 1 when connected);
    - ``R(a | mu, b) = sum_u T_u^2 / m_u + R(b | mu, a) - sum_r T_r^2 / n_r`` on
      ``n_units - c`` degrees of freedom;
    - expectations ``E[R(b|mu,a)] = (n_raters - c) s2_e + h_b s2_rater`` with
      ``h_b = tr C = N - sum_u sum_r n_ur^2 / m_u``, and ``E[R(a|mu,b)] = (n_units - c) s2_e +
      h_a s2_unit`` with ``h_a = N - sum_r sum_u n_ur^2 / n_r``; solved for the components.

    With complete data (every rater rates every unit once) ``R(a|mu,b)`` and ``R(b|mu,a)`` are the
    between-targets and between-judges sums of squares of the two-way ANOVA, and the three ICCs are
    exactly Shrout and Fleiss' mean-square formulas. Components are not truncated at 0 (as in
    Shrout and Fleiss), so an ICC can be negative.

Krippendorff's alpha (:func:`krippendorff_alpha`)
    ``alpha = 1 - (n - 1) sum_ck o_ck d2_ck / sum_ck n_c n_k d2_ck`` (Krippendorff 2011), with the
    coincidence matrix ``o_ck = sum_u (n_uc n_uk - [c = k] n_uc) / (m_u - 1)`` over units with
    ``m_u >= 2`` values (missing ratings are simply absent), ``n_c = sum_k o_ck`` and
    ``n = sum_c n_c``. Difference functions: nominal ``[c != k]``, interval ``(c - k)^2``, ordinal
    ``(sum_{g=c..k} n_g - (n_c + n_k) / 2)^2``, i.e. the squared distance between the categories'
    mid-ranks in the pooled values.

Figures that are undefined (no pair of ratings, no variance) are ``nan`` in the array functions
and ``None`` in :func:`rater_agreement`'s JSON-ready dict.

References
----------
- Cohen, J. (1968). Weighted kappa: Nominal scale agreement with provision for scaled disagreement
  or partial credit. *Psychological Bulletin*, 70, 213-220.
- Fleiss, J. L., & Cohen, J. (1973). The equivalence of weighted kappa and the intraclass
  correlation coefficient as measures of reliability. *Educ. Psychol. Meas.*, 33, 613-619.
- Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: Uses in assessing rater
  reliability. *Psychological Bulletin*, 86, 420-428.
- Henderson, C. R. (1953). Estimation of variance and covariance components. *Biometrics*, 9,
  226-252; Searle, S. R., Casella, G., & McCulloch, C. E. (1992). *Variance Components*, ch. 5.
- Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School for
  Communication, University of Pennsylvania, https://repository.upenn.edu/asc_papers/43
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from calibration.errors import CalibrationError

Level = Literal["nominal", "ordinal", "interval"]

#: How the ICCs are estimated, stated in :func:`rater_agreement`'s output.
ICC_METHOD = (
    "Shrout & Fleiss (1979) ICC(1,1), ICC(2,1), ICC(3,1); variance components of the two-way "
    "crossed unit x rater model (no interaction) by Henderson's method III with the unit effects "
    "absorbed; equals the Shrout-Fleiss ANOVA with complete data"
)


class AgreementError(CalibrationError):
    """Ratings that agreement cannot be computed from: names the position or labels at fault."""


# ---------------------------------------------------------------------------------------------
# input
# ---------------------------------------------------------------------------------------------


def _integers(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise AgreementError(f"{name}: expected a one-dimensional array, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        as_float = array.astype(float)
        bad = ~np.isfinite(as_float) | (as_float != np.round(as_float))
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            raise AgreementError(
                f"{name}[{position}]: {array[position].item()!r} is not an integer"
            )
        array = as_float
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        position = int(np.flatnonzero(array < 0)[0])
        raise AgreementError(f"{name}[{position}]: {array[position]} is negative")
    return array


def _ratings(unit, score, rater=None) -> tuple[np.ndarray, ...]:
    unit = _integers("unit", unit)
    score = _integers("score", score)
    arrays = [unit, score]
    if rater is not None:
        arrays.append(_integers("rater", rater))
    lengths = {a.size for a in arrays}
    if len(lengths) != 1:
        names = ["unit", "score", "rater"][: len(arrays)]
        sizes = ", ".join(f"{n} {a.size}" for n, a in zip(names, arrays, strict=True))
        raise AgreementError(f"the arrays differ in length ({sizes})")
    return tuple(arrays)


def _multi_rated(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep mask of ratings whose unit has at least two ratings, dense unit index, unit count."""
    _, inverse, counts = np.unique(unit, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= 2
    _, dense = np.unique(inverse[keep], return_inverse=True)
    return keep, dense, int(np.count_nonzero(counts >= 2))


def _check_no_repeats(unit: np.ndarray, rater: np.ndarray) -> None:
    order = np.lexsort((rater, unit))
    same = (np.diff(unit[order]) == 0) & (np.diff(rater[order]) == 0)
    if same.any():
        first = int(np.flatnonzero(same)[0])
        a, b = sorted((int(order[first]), int(order[first + 1])))
        raise AgreementError(
            f"ratings {a} and {b} are both by rater {rater[a]} on unit {unit[a]}: a rater rates a"
            " unit at most once"
        )


def _n_categories(score: np.ndarray, n_categories: int | None) -> int:
    top = int(score.max()) + 1 if score.size else 1
    if n_categories is None:
        return top
    if n_categories < 1:
        raise AgreementError(f"n_categories: {n_categories} is not a positive number")
    if top > n_categories:
        position = int(np.flatnonzero(score >= n_categories)[0])
        raise AgreementError(
            f"score[{position}]: {score[position]} is outside the scale 0..{n_categories - 1}"
        )
    return int(n_categories)


def _category_counts(dense_unit: np.ndarray, score: np.ndarray, n_units: int, k: int):
    counts = np.zeros((n_units, k))
    np.add.at(counts, (dense_unit, score), 1.0)
    return counts


# ---------------------------------------------------------------------------------------------
# exact and adjacent agreement
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementRates:
    """Exact and adjacent agreement over all pairs of ratings of the same unit.

    Attributes
    ----------
    exact, adjacent : float
        Share of pairs with equal scores, and with scores at most one category apart (``nan``
        when there is no pair).
    n_pairs : int
        Pairs of ratings of the same unit.
    n_units : int
        Units rated at least twice.
    """

    exact: float
    adjacent: float
    n_pairs: int
    n_units: int


def exact_adjacent_agreement(unit, score) -> AgreementRates:
    """Exact and adjacent agreement over all pairs of ratings of the same unit.

    Parameters
    ----------
    unit : array_like of int, shape (N,)
        The unit each rating is of (any non-negative integer codes).
    score : array_like of int, shape (N,)
        The 0-based score of each rating.

    Returns
    -------
    AgreementRates
        A unit rated ``m`` times gives ``m (m - 1) / 2`` pairs; the rates are over all pairs of
        all units (so units rated more often weigh more).
    """
    unit, score = _ratings(unit, score)
    keep, dense, n_units = _multi_rated(unit)
    score = score[keep]
    if n_units == 0:
        return AgreementRates(math.nan, math.nan, 0, 0)
    counts = _category_counts(dense, score, n_units, int(score.max()) + 2)
    m = counts.sum(axis=1)
    pairs = float(np.sum(m * (m - 1) / 2))
    equal = float(np.sum(counts * (counts - 1) / 2))
    neighbours = float(np.sum(counts[:, :-1] * counts[:, 1:]))
    return AgreementRates(equal / pairs, (equal + neighbours) / pairs, int(pairs), n_units)


# ---------------------------------------------------------------------------------------------
# quadratic weighted kappa
# ---------------------------------------------------------------------------------------------


def quadratic_weighted_kappa(score_a, score_b, n_categories: int | None = None) -> float:
    """Cohen's weighted kappa with quadratic (Fleiss-Cohen) weights, for two raters.

    Parameters
    ----------
    score_a, score_b : array_like of int, shape (n,)
        The two raters' 0-based scores of the same ``n`` units (``score_a[i]`` and ``score_b[i]``
        rate unit ``i``).
    n_categories : int, optional
        The full scale ``0 .. n_categories - 1``; by default the highest score seen plus one.
        Categories nobody used do not change kappa, but a score outside the scale is refused.

    Returns
    -------
    float
        ``1 - sum(w O) / sum(w E)`` with ``w_ij = (i - j)^2 / (K - 1)^2``, ``O`` the observed and
        ``E`` the chance-expected joint distribution; ``nan`` when ``sum(w E) == 0`` (both raters
        gave one and the same score throughout) or there are no units.
    """
    score_a = _integers("score_a", score_a)
    score_b = _integers("score_b", score_b)
    if score_a.size != score_b.size:
        raise AgreementError(
            f"score_a and score_b differ in length ({score_a.size} and {score_b.size})"
        )
    k = _n_categories(np.concatenate([score_a, score_b]), n_categories)
    if score_a.size == 0 or k < 2:
        return math.nan
    observed = np.zeros((k, k))
    np.add.at(observed, (score_a, score_b), 1.0)
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    index = np.arange(k)
    weights = (index[:, None] - index[None, :]) ** 2 / (k - 1) ** 2
    chance = float(np.sum(weights * expected))
    if chance <= 0:
        return math.nan
    return 1.0 - float(np.sum(weights * observed)) / chance


@dataclass(frozen=True)
class PairwiseAgreement:
    """Agreement of each pair of raters over the units both rated (one row per pair that shares
    at least one unit; ``rater_a < rater_b``).

    Attributes
    ----------
    rater_a, rater_b : ndarray of int
        The pair's rater indices.
    n : ndarray of int
        Units both rated.
    exact, adjacent : ndarray of float
        Share of those units scored equally, and at most one category apart.
    qwk : ndarray of float
        Quadratic weighted kappa on the full scale (``nan`` when undefined).
    """

    rater_a: np.ndarray
    rater_b: np.ndarray
    n: np.ndarray
    exact: np.ndarray
    adjacent: np.ndarray
    qwk: np.ndarray


def rating_pairs(unit, rater, score) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of ratings of the same unit by two raters.

    Parameters
    ----------
    unit, rater, score : array_like of int, shape (N,)
        One rating each; a rater rates a unit at most once.

    Returns
    -------
    rater_a, rater_b, score_a, score_b : ndarray
        One entry per pair, ordered so that ``rater_a < rater_b``.

    Notes
    -----
    Ratings are sorted by unit and paired with the ones ``d`` places further on for
    ``d = 1 .. (most ratings of one unit) - 1``: the loop is over that small number, not over
    units.
    """
    unit, score, rater = _ratings(unit, score, rater)
    _check_no_repeats(unit, rater)
    order = np.lexsort((rater, unit))
    unit, rater, score = unit[order], rater[order], score[order]
    most = int(np.unique(unit, return_counts=True)[1].max()) if unit.size else 0
    parts = []
    for d in range(1, most):
        same = unit[:-d] == unit[d:]
        i = np.flatnonzero(same)
        parts.append((rater[i], rater[i + d], score[i], score[i + d]))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    # sorted by rater within a unit, so the first of each pair has the lower rater index
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))  # type: ignore[return-value]


def pairwise_agreement(unit, rater, score, n_raters: int | None = None) -> PairwiseAgreement:
    """Exact and adjacent agreement and quadratic weighted kappa for every pair of raters.

    Parameters
    ----------
    unit, rater, score : array_like of int, shape (N,)
        One rating each (0-based scores); a rater rates a unit at most once.
    n_raters : int, optional
        Number of raters (rater indices are ``0 .. n_raters - 1``); by default the highest
        index plus one.

    Returns
    -------
    PairwiseAgreement
        Pairs that share no unit are left out. Kappa is computed from the pair's moments over the
        units both rated, which equals :func:`quadratic_weighted_kappa` on the full scale.
    """
    rater_a, rater_b, x, y = rating_pairs(unit, rater, score)
    top = int(max(rater_a.max(initial=-1), rater_b.max(initial=-1))) + 1
    n_raters = top if n_raters is None else int(n_raters)
    if top > n_raters:
        raise AgreementError(f"rater index {top - 1} is outside 0..{n_raters - 1}")
    key = rater_a * n_raters + rater_b
    pairs, slot = np.unique(key, return_inverse=True)
    size = pairs.size

    def total(weights=None) -> np.ndarray:
        return np.bincount(slot, weights=weights, minlength=size).astype(float)

    x = x.astype(float)
    y = y.astype(float)
    n = total()
    difference = np.abs(x - y)
    exact = total(difference == 0) / np.maximum(n, 1)
    adjacent = total(difference <= 1) / np.maximum(n, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_x, mean_y = total(x) / n, total(y) / n
        chance = total(x * x) / n + total(y * y) / n - 2 * mean_x * mean_y
        observed = total(difference**2) / n
        qwk = np.where(chance > 1e-12, 1.0 - observed / np.where(chance > 0, chance, 1), np.nan)
    return PairwiseAgreement(
        rater_a=pairs // n_raters,
        rater_b=pairs % n_raters,
        n=n.astype(np.int64),
        exact=exact,
        adjacent=adjacent,
        qwk=qwk,
    )


# ---------------------------------------------------------------------------------------------
# intraclass correlations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntraclassCorrelations:
    """Shrout-Fleiss ICCs and the variance components and mean squares behind them.

    Attributes
    ----------
    icc1_1, icc2_1, icc3_1 : float
        ICC(1,1), ICC(2,1) and ICC(3,1) (``nan`` when undefined).
    var_unit, var_rater, var_error : float
        Variance components of the two-way model (Henderson III), in squared score units.
    ms_units, ms_raters, ms_error, ms_within : float
        ``R(a|mu,b) / (n_units - c)``, ``R(b|mu,a) / (n_raters - c)``, the residual mean square of
        the two-way model and the within-unit mean square of the one-way model: with complete data,
        Shrout and Fleiss' BMS, JMS, EMS and WMS.
    n_units, n_raters, n_ratings, n_components : int
        Units rated at least twice, raters and ratings among them, connected parts of the design.
    """

    icc1_1: float
    icc2_1: float
    icc3_1: float
    var_unit: float
    var_rater: float
    var_error: float
    ms_units: float
    ms_raters: float
    ms_error: float
    ms_within: float
    n_units: int
    n_raters: int
    n_ratings: int
    n_components: int


def _ratio(numerator: float, denominator: float) -> float:
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return math.nan
    return numerator / denominator


def intraclass_correlations(unit, rater, score) -> IntraclassCorrelations:
    """ICC(1,1), ICC(2,1) and ICC(3,1) of Shrout & Fleiss (1979), complete or sparse designs.

    Parameters
    ----------
    unit, rater, score : array_like of int (``score`` may be any real numbers), shape (N,)
        One rating each; a rater rates a unit at most once. Units rated once are left out.

    Returns
    -------
    IntraclassCorrelations
        See the module docstring for the estimator (Henderson's method III with the unit effects
        absorbed, so only a raters x raters system is solved).
    """
    unit = _integers("unit", unit)
    rater = _integers("rater", rater)
    y = np.asarray(score, dtype=float)
    if not (unit.size == rater.size == y.size):
        raise AgreementError(
            f"the arrays differ in length (unit {unit.size}, rater {rater.size}, score {y.size})"
        )
    if y.ndim != 1 or not np.all(np.isfinite(y)):
        raise AgreementError("score: expected finite numbers in a one-dimensional array")
    _check_no_repeats(unit, rater)
    keep, u, n_u = _multi_rated(unit)
    y = y[keep]
    _, r = np.unique(rater[keep], return_inverse=True)
    n_r = int(r.max()) + 1 if r.size else 0
    total_n = y.size
    nan = math.nan
    if n_u < 2 or n_r < 2:
        return IntraclassCorrelations(nan, nan, nan, nan, nan, nan, nan, nan, nan, nan,
                                      n_u, n_r, total_n, 0)

    m_u = np.bincount(u, minlength=n_u).astype(float)
    n_per_rater = np.bincount(r, minlength=n_r).astype(float)
    t_u = np.bincount(u, weights=y, minlength=n_u)
    t_r = np.bincount(r, weights=y, minlength=n_r)
    incidence = sparse.csr_matrix((np.ones(total_n), (u, r)), shape=(n_u, n_r))
    components, _ = connected_components(
        sparse.bmat([[None, incidence], [incidence.T, None]]), directed=False
    )

    # two-way model with the unit effects absorbed: a raters x raters system
    reduced = np.diag(n_per_rater) - (incidence.T @ sparse.diags(1.0 / m_u) @ incidence).toarray()
    adjusted = t_r - np.bincount(r, weights=(t_u / m_u)[u], minlength=n_r)
    solution = np.linalg.lstsq(reduced, adjusted, rcond=None)[0]
    r_raters = float(adjusted @ solution)  # R(b | mu, a)
    ss_units = float(np.sum(t_u**2 / m_u))
    ss_raters = float(np.sum(t_r**2 / n_per_rater))
    ss_total = float(np.sum(y**2))
    sse = max(ss_total - ss_units - r_raters, 0.0)
    r_units = ss_units + r_raters - ss_raters  # R(a | mu, b)
    df_error = total_n - n_u - n_r + components
    df_units = n_u - components
    df_raters = n_r - components
    # h_a = N - sum_r sum_u n_ur^2 / n_r and h_b = N - sum_u sum_r n_ur^2 / m_u; every n_ur is 0
    # or 1, so sum_u n_ur^2 = n_r and sum_r n_ur^2 = m_u
    h_units = float(total_n - n_r)
    h_raters = float(total_n - n_u)
    var_error = _ratio(sse, df_error)
    var_unit = _ratio(r_units - df_units * var_error, h_units)
    var_rater = _ratio(r_raters - df_raters * var_error, h_raters)
    icc2 = _ratio(var_unit, var_unit + var_rater + var_error)
    icc3 = _ratio(var_unit, var_unit + var_error)

    # one-way model
    ss_mean = float(y.sum() ** 2 / total_n)
    ms_within = _ratio(ss_total - ss_units, total_n - n_u)
    h_one_way = total_n - float(np.sum(m_u**2)) / total_n
    var_unit_one_way = _ratio(ss_units - ss_mean - (n_u - 1) * ms_within, h_one_way)
    icc1 = _ratio(var_unit_one_way, var_unit_one_way + ms_within)
    return IntraclassCorrelations(
        icc1_1=icc1,
        icc2_1=icc2,
        icc3_1=icc3,
        var_unit=var_unit,
        var_rater=var_rater,
        var_error=var_error,
        ms_units=_ratio(r_units, df_units),
        ms_raters=_ratio(r_raters, df_raters),
        ms_error=var_error,
        ms_within=ms_within,
        n_units=n_u,
        n_raters=n_r,
        n_ratings=total_n,
        n_components=int(components),
    )


# ---------------------------------------------------------------------------------------------
# Krippendorff's alpha
# ---------------------------------------------------------------------------------------------


def coincidence_matrix(unit, score, n_categories: int | None = None) -> np.ndarray:
    """Krippendorff's coincidence matrix of the pairable values (units with two or more values).

    Parameters
    ----------
    unit, score : array_like of int, shape (N,)
        The unit and 0-based category of each value; missing values are simply absent.
    n_categories : int, optional
        Size of the scale (rows and columns of the result); default the highest score plus one.

    Returns
    -------
    ndarray, shape (K, K)
        ``o_ck = sum_u (n_uc n_uk - [c = k] n_uc) / (m_u - 1)``; its total is the number of
        pairable values.
    """
    unit, score = _ratings(unit, score)
    k = _n_categories(score, n_categories)
    keep, dense, n_units = _multi_rated(unit)
    counts = _category_counts(dense, score[keep], n_units, k)
    m = counts.sum(axis=1)
    scaled = counts / (m - 1)[:, None]
    return scaled.T @ counts - np.diag(scaled.sum(axis=0))


def krippendorff_alpha(
    unit, score, level: Level = "interval", n_categories: int | None = None
) -> float:
    """Krippendorff's alpha for any number of raters with missing ratings.

    Parameters
    ----------
    unit, score : array_like of int, shape (N,)
        The unit and 0-based category of each rating (who rated does not enter alpha).
    level : {"nominal", "ordinal", "interval"}
        Level of measurement: the difference function ``d2_ck``.
    n_categories : int, optional
        Size of the scale; categories nobody used change nothing.

    Returns
    -------
    float
        ``1 - D_o / D_e``; ``nan`` when no unit has two values or all pairable values are equal.
    """
    if level not in ("nominal", "ordinal", "interval"):
        raise AgreementError(f"level: {level!r} is not nominal, ordinal or interval")
    o = coincidence_matrix(unit, score, n_categories)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n < 2:
        return math.nan
    index = np.arange(o.shape[0], dtype=float)
    if level == "nominal":
        d2 = 1.0 - np.eye(o.shape[0])
    elif level == "interval":
        d2 = (index[:, None] - index[None, :]) ** 2
    else:
        mid_rank = np.cumsum(n_c) - n_c / 2
        d2 = (mid_rank[:, None] - mid_rank[None, :]) ** 2
    expected = float(n_c @ d2 @ n_c)
    if expected <= 0:
        return math.nan
    return 1.0 - (n - 1) * float(np.sum(o * d2)) / expected


# ---------------------------------------------------------------------------------------------
# the whole report for a Ratings object
# ---------------------------------------------------------------------------------------------


def _plain(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _summary(unit, rater, score) -> dict[str, Any]:
    rates = exact_adjacent_agreement(unit, score)
    iccs = intraclass_correlations(unit, rater, score)
    return {
        "n_units": rates.n_units,
        "n_pairs": rates.n_pairs,
        "exact": _plain(rates.exact),
        "adjacent": _plain(rates.adjacent),
        "krippendorff_alpha_nominal": _plain(krippendorff_alpha(unit, score, "nominal")),
        "krippendorff_alpha_ordinal": _plain(krippendorff_alpha(unit, score, "ordinal")),
        "krippendorff_alpha_interval": _plain(krippendorff_alpha(unit, score, "interval")),
        "icc1_1": _plain(iccs.icc1_1),
        "icc2_1": _plain(iccs.icc2_1),
        "icc3_1": _plain(iccs.icc3_1),
    }


def rater_agreement(ratings) -> dict[str, Any]:
    """Every agreement figure for a set of rubric ratings, as a JSON-ready dict.

    Parameters
    ----------
    ratings : calibration.raters.Ratings
        Int arrays ``student``, ``criterion``, ``rater`` and 0-based ``score`` (one entry per
        rating), the labels ``student_ids``, ``criterion_ids``, ``rater_ids`` and
        ``n_categories`` per criterion. A unit is one student on one criterion.

    Returns
    -------
    dict
        ``exact``, ``adjacent`` (over all pairs of ratings of the same unit),
        ``krippendorff_alpha_nominal``, ``krippendorff_alpha_ordinal``,
        ``krippendorff_alpha_interval``, ``icc1_1``, ``icc2_1``, ``icc3_1`` (pooled over all
        criteria, each unit's 0-based scores), ``n_units`` (units rated at least twice),
        ``n_ratings``, ``n_pairs``, ``icc_method``; ``pairs``: one entry per pair of raters that
        share a unit, ``{"raters": [label_a, label_b], "n", "exact", "adjacent", "qwk"}``, with
        kappa on each criterion's full scale (pooled over criteria); ``criteria``: the same
        summary figures per criterion. Undefined figures are ``None``.
    """
    student = _integers("student", ratings.student)
    criterion = _integers("criterion", ratings.criterion)
    rater = _integers("rater", ratings.rater)
    score = _integers("score", ratings.score)
    criteria = [str(label) for label in ratings.criterion_ids]
    raters = [str(label) for label in ratings.rater_ids]
    n_criteria = len(criteria)
    n_categories = np.asarray(ratings.n_categories, dtype=np.int64)
    if score.size:
        top = n_categories[criterion]
        if np.any(score >= top):
            i = int(np.flatnonzero(score >= top)[0])
            raise AgreementError(
                f"rating {i}: score {score[i]} is outside criterion {criteria[criterion[i]]}'s"
                f" scale 0..{top[i] - 1}"
            )
    unit = student * max(n_criteria, 1) + criterion
    order = np.lexsort((rater, unit))
    repeated = (np.diff(unit[order]) == 0) & (np.diff(rater[order]) == 0)
    if repeated.any():
        i = int(order[np.flatnonzero(repeated)[0]])
        raise AgreementError(
            f"rater {raters[rater[i]]} scored student {ratings.student_ids[student[i]]} twice on"
            f" criterion {criteria[criterion[i]]}"
        )

    result: dict[str, Any] = {"n_ratings": int(score.size), **_summary(unit, rater, score)}
    result["icc_method"] = ICC_METHOD
    pairs = pairwise_agreement(unit, rater, score, n_raters=len(raters))
    result["pairs"] = [
        {
            "raters": [raters[a], raters[b]],
            "n": int(n),
            "exact": _plain(exact),
            "adjacent": _plain(adjacent),
            "qwk": _plain(qwk),
        }
        for a, b, n, exact, adjacent, qwk in zip(
            pairs.rater_a, pairs.rater_b, pairs.n, pairs.exact, pairs.adjacent, pairs.qwk,
            strict=True,
        )
    ]
    per_criterion = []
    for c in range(n_criteria):  # a handful of criteria, not a loop over ratings
        mine = criterion == c
        per_criterion.append(
            {"criterion": criteria[c], **_summary(unit[mine], rater[mine], score[mine])}
        )
    result["criteria"] = per_criterion
    return result
