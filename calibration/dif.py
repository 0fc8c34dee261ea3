"""Differential item functioning (DIF): Mantel-Haenszel for dichotomous items, the standardized
mean difference (SMD) with Mantel's test for polytomous ones, and ETS's A/B/C classification.

Reference and focal persons are matched on a score, split into strata, and compared within each
stratum; an item shows DIF when persons of equal standing answer it differently by group.

Matching
--------
``matching="total"`` (default)
    Strata are the distinct values of the total score on *all* items of the data, the studied item
    included, as in Holland & Thayer (1988): leaving it out biases MH towards DIF when there is
    none. Every person of the two groups must have answered every item (a number-correct score is
    not comparable otherwise); for a subset of items, ``data.subset_items(...)`` first.
``matching="theta"``
    For sparse or CAT data, where persons answered different items: strata are the ``n_strata``
    quantile groups (deciles by default) of an ability estimate given as ``ability`` (shape
    ``(P,)``, one value per person of ``data``, finite for everyone in the two groups). The
    estimate should come from the operational (non-studied) items, e.g. the CAT's own theta.

Strata in which only one group answered the item carry no information and contribute nothing.
Everything is computed from count arrays (items x strata x group x outcome) built by one
``np.bincount`` over the observations: there is no loop over persons, items or strata.

Purification (``purify=True``, total matching only): after a first pass, the items classified C
are removed from the matching score and every item is analysed again, once. The studied item
always stays in its own matching score (Holland & Thayer 1988; Zwick 2012).

Sign convention: negative ``delta_mh`` and negative ``smd`` favour the reference group.

References
----------
- Holland, P. W., & Thayer, D. T. (1988). Differential item performance and the Mantel-Haenszel
  procedure. In H. Wainer & H. I. Braun (Eds.), *Test validity* (pp. 129-145). Erlbaum.
- Robins, J., Breslow, N., & Greenland, S. (1986). Estimators of the Mantel-Haenszel variance
  consistent in both sparse data and large-strata limiting models. *Biometrics*, 42, 311-323.
- Dorans, N. J., & Holland, P. W. (1993). DIF detection and description: Mantel-Haenszel and
  standardization. In P. W. Holland & H. Wainer (Eds.), *Differential item functioning*
  (pp. 35-66). Erlbaum.
- Dorans, N. J., & Schmitt, A. P. (1991/1993). Constructed response and differential item
  functioning: A pragmatic approach. ETS RR-91-47.
- Mantel, N. (1963). Chi-square tests with one degree of freedom: Extensions of the
  Mantel-Haenszel procedure. *JASA*, 58, 690-700.
- Zwick, R., Thayer, D. T., & Mazzeo, J. (1997). Descriptive and inferential procedures for
  assessing differential item functioning in polytomous items. *Applied Measurement in
  Education*, 10, 321-344.
- Zwick, R. (2012). A review of ETS differential item functioning assessment procedures: Flagging
  rules, minimum sample size requirements, and criterion refinement. ETS RR-12-08.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import stats

from calibration.data import ResponseData
from calibration.errors import CalibrationError

MATCHING = ("total", "theta")
DELTA_SCALE = 2.35
ALPHA = 0.05
Z_ONE_SIDED = 1.645
SMD_A_MAX = 0.17
SMD_C_MIN = 0.25
_SHOWN = 5


@dataclass(frozen=True)
class MantelHaenszelResult:
    """Mantel-Haenszel DIF statistics of one dichotomous item.

    ``n_reference`` and ``n_focal`` count the item's respondents in each group; ``n_strata`` the
    strata in which both groups answered it (the informative ones). An item whose strata carry no
    information (e.g. everyone answered it correctly) has ``alpha_mh`` NaN, ``chi_square`` 0,
    ``p_value`` 1 and category A: no evidence of DIF, which the NaN and ``n_strata`` make visible.
    """

    item_id: str
    n_reference: int
    n_focal: int
    alpha_mh: float
    delta_mh: float
    se_delta: float
    chi_square: float
    p_value: float
    category: str
    favours: str | None
    n_strata: int = 0


@dataclass(frozen=True)
class SMDResult:
    """Standardized mean difference of one (polytomous) item.

    ``smd`` is focal minus reference mean item score, averaged over the strata with focal-group
    weights; ``effect_size`` is ``smd / item_sd`` (the item's standard deviation in the two groups
    together); ``chi_square`` and ``p_value`` are Mantel's (1963) 1-df test for ordered responses.
    """

    item_id: str
    n_reference: int
    n_focal: int
    smd: float
    effect_size: float
    item_sd: float
    chi_square: float
    p_value: float
    category: str
    favours: str | None
    n_strata: int = 0


def ets_category(delta_mh, se_delta, p_value) -> np.ndarray | str:
    """ETS A/B/C category of MH D-DIF values (arrays or scalars), exactly as in Zwick (2012)
    and Dorans & Holland (1993):

    - A (negligible): ``|D| < 1``, or D not significantly different from 0 (MH chi-square
      ``p >= .05``);
    - C (large): ``|D| >= 1.5`` and ``|D|`` significantly greater than 1 at alpha .05, one-sided:
      ``|D| - 1 > 1.645 SE(D)``;
    - B (moderate): otherwise.

    NaN deltas (no information) are A. An infinite delta (no B_k C_k or no A_k D_k in any
    stratum: the odds ratio has no finite estimate and its SE none at all) that is significant
    is C: it exceeds 1 by more than any multiple of a finite SE.
    """
    delta = np.abs(np.asarray(delta_mh, dtype=float))
    se = np.asarray(se_delta, dtype=float)
    p = np.asarray(p_value, dtype=float)
    with np.errstate(invalid="ignore"):
        a = ~(delta >= 1) | ~(p < ALPHA)
        c = (delta >= 1.5) & ((delta - 1 > Z_ONE_SIDED * se) | np.isposinf(delta))
    out = np.where(a, "A", np.where(c, "C", "B"))
    return str(out) if out.ndim == 0 else out


def polytomous_category(effect_size, p_value) -> np.ndarray | str:
    """ETS category of polytomous items from SMD/SD (Zwick, Thayer & Mazzeo 1997; Zwick 2012):

    - A: Mantel chi-square ``p >= .05`` or ``|SMD/SD| <= .17``;
    - C: ``p < .05`` and ``|SMD/SD| > .25``;
    - B: otherwise.

    NaN effect sizes (an item without variance or information) are A.
    """
    size = np.abs(np.asarray(effect_size, dtype=float))
    p = np.asarray(p_value, dtype=float)
    with np.errstate(invalid="ignore"):
        a = ~(size > SMD_A_MAX) | ~(p < ALPHA)
        c = size > SMD_C_MIN
    out = np.where(a, "A", np.where(c, "C", "B"))
    return str(out) if out.ndim == 0 else out


def mantel_haenszel(
    data: ResponseData,
    reference: str,
    focal: str,
    *,
    matching: str = "total",
    items: Sequence[str] | None = None,
    purify: bool = False,
    ability: np.ndarray | None = None,
    n_strata: int = 10,
) -> list[MantelHaenszelResult]:
    """Mantel-Haenszel DIF of dichotomous items (by default every item scored 0/1 only).

    For each item and stratum k with reference counts A_k (right), B_k (wrong) and focal counts
    C_k (right), D_k (wrong), N_k in all:

    - ``alpha_mh = sum(A_k D_k / N_k) / sum(B_k C_k / N_k)``, ``delta_mh = -2.35 ln(alpha_mh)``;
    - ``se_delta = 2.35 sqrt(Var(ln alpha_mh))``, with the Robins-Breslow-Greenland (1986)
      variance;
    - ``chi_square = (|sum A_k - sum E(A_k)| - 1/2)^2 / sum Var(A_k)`` (Holland & Thayer 1988),
      ``E(A_k) = n_Rk m_1k / N_k``, ``Var(A_k) = n_Rk n_Fk m_1k m_0k / (N_k^2 (N_k - 1))``; the
      continuity correction never exceeds the difference itself (as scipy's Yates correction);
    - ``category`` by :func:`ets_category`; ``favours`` the reference group when delta < 0, the
      focal group when delta > 0, None for A.

    See the module docstring for ``matching``, ``ability``, ``n_strata`` and ``purify``.

    Raises
    ------
    CalibrationError
        Data without groups, unknown group labels (the message lists those present), unknown or
        polytomous items, an item with no responses in one group, incomplete data with total
        matching, a bad ``ability``.
    """
    setup = _Setup(data, reference, focal, matching, ability, n_strata, purify)
    mh_index = setup.items(items, "mh")
    mh, _, _ = setup.run(mh_index, np.zeros(0, dtype=np.intp))
    return mh


def standardized_mean_difference(
    data: ResponseData,
    reference: str,
    focal: str,
    *,
    matching: str = "total",
    items: Sequence[str] | None = None,
    purify: bool = False,
    ability: np.ndarray | None = None,
    n_strata: int = 10,
) -> list[SMDResult]:
    """Standardized mean difference (Dorans & Schmitt 1991; Zwick, Thayer & Mazzeo 1997) of
    polytomous items (by default those with a category above 1; dichotomous ones may be named,
    for which SMD is the standardization STD P-DIF of Dorans & Kulick).

    ``smd = sum_k w_k (mean_Fk - mean_Rk)`` with focal weights ``w_k = n_Fk / sum n_Fk`` over the
    strata both groups answered in; ``effect_size = smd / item_sd``; Mantel's (1963) chi-square
    (1 df, no continuity correction) for the significance; ``category`` by
    :func:`polytomous_category`. Matching, purification and errors as in :func:`mantel_haenszel`.
    """
    setup = _Setup(data, reference, focal, matching, ability, n_strata, purify)
    smd_index = setup.items(items, "smd")
    _, smd, _ = setup.run(np.zeros(0, dtype=np.intp), smd_index)
    return smd


def dif_report(
    data: ResponseData,
    reference: str,
    focal: str,
    *,
    matching: str = "total",
    items: Sequence[str] | None = None,
    purify: bool = False,
    ability: np.ndarray | None = None,
    n_strata: int = 10,
) -> dict:
    """Both analyses as plain JSON (``json.dumps(..., allow_nan=False)`` works; NaN and infinite
    numbers become None): MH for the dichotomous items, SMD for the polytomous ones (of ``items``
    when given), with one joint purification step when ``purify``.
    """
    setup = _Setup(data, reference, focal, matching, ability, n_strata, purify)
    mh_index = setup.items(items, "dichotomous")
    smd_index = setup.items(items, "polytomous")
    mh, smd, removed = setup.run(mh_index, smd_index)
    categories = [r.category for r in mh] + [r.category for r in smd]
    return {
        "reference": reference,
        "focal": focal,
        "n_reference": int((setup.code == 0).sum()),
        "n_focal": int((setup.code == 1).sum()),
        "matching": matching,
        "n_strata": n_strata if matching == "theta" else None,
        "purified": bool(purify),
        "removed_from_matching": removed,
        "summary": {c: categories.count(c) for c in ("A", "B", "C")},
        "flagged": [r.item_id for r in (*mh, *smd) if r.category != "A"],
        "mantel_haenszel": [_plain(asdict(r)) for r in mh],
        "standardized_mean_difference": [_plain(asdict(r)) for r in smd],
        "rules": {
            "dichotomous": "ETS (Zwick 2012): A if |D| < 1 or MH p >= .05; C if |D| >= 1.5 and "
            "|D| - 1 > 1.645 SE(D); B otherwise. D < 0 favours the reference group.",
            "polytomous": "ETS (Zwick, Thayer & Mazzeo 1997): A if Mantel p >= .05 or |SMD/SD| "
            "<= .17; C if p < .05 and |SMD/SD| > .25; B otherwise. SMD < 0 "
            "favours the reference group.",
        },
    }


class _Setup:
    """Validated inputs and the per-observation arrays shared by both analyses."""

    def __init__(self, data, reference, focal, matching, ability, n_strata, purify):
        if not isinstance(data, ResponseData):
            raise CalibrationError("DIF needs a ResponseData (see calibration.data)")
        if matching not in MATCHING:
            raise CalibrationError(f"matching must be one of {MATCHING}, not {matching!r}")
        if data.group is None:
            raise CalibrationError(
                "the response data have no group labels: DIF needs a group per person "
                "(a 'group' column in the response file)"
            )
        present = sorted({str(g) for g in np.unique(data.group)})
        unknown = [g for g in (reference, focal) if g not in present]
        if unknown:
            raise CalibrationError(
                f"unknown group label(s) {_list(repr(g) for g in unknown)}; "
                f"the data have: {_list(repr(g) for g in present)}"
            )
        if reference == focal:
            raise CalibrationError(f"reference and focal groups are both {reference!r}")
        self.data = data
        self.reference, self.focal = reference, focal
        self.matching = matching
        self.purify = purify
        code = np.full(data.n_persons, -1, dtype=np.intp)
        code[data.group == reference] = 0
        code[data.group == focal] = 1
        self.code = code
        keep = code[data.person] >= 0
        self.person = data.person[keep]
        self.item = data.item[keep]
        self.response = data.response[keep]
        self.obs_group = code[self.person]
        self.top = data.n_categories - 1
        if matching == "total":
            self._check_complete()
            self.person_stratum = None
        else:
            if purify:
                raise CalibrationError(
                    "purify applies to matching='total' only; with matching='theta', estimate "
                    "the ability without the flagged items instead"
                )
            self.person_stratum = self._theta_strata(ability, n_strata)

    def _check_complete(self) -> None:
        answered = np.bincount(self.person, minlength=self.data.n_persons)
        short = np.flatnonzero((self.code >= 0) & (answered < self.data.n_items))
        if short.size:
            in_groups = int((self.code >= 0).sum())
            raise CalibrationError(
                f"matching='total' needs every person to answer every item, but {short.size} of "
                f"{in_groups} persons in groups {self.reference!r} and {self.focal!r} did not "
                f"(e.g. {_list(repr(self.data.person_ids[p]) for p in short)}); pass "
                "matching='theta' with an ability estimate, or subset the items"
            )

    def _theta_strata(self, ability, n_strata) -> np.ndarray:
        if ability is None:
            raise CalibrationError("matching='theta' needs ability= (one estimate per person)")
        theta = np.asarray(ability, dtype=float)
        if theta.shape != (self.data.n_persons,):
            raise CalibrationError(
                f"ability must have shape ({self.data.n_persons},), one value per person of the "
                f"data, not {theta.shape}"
            )
        if not isinstance(n_strata, (int, np.integer)) or n_strata < 1:
            raise CalibrationError(f"n_strata must be a positive integer, not {n_strata!r}")
        in_groups = self.code >= 0
        bad = np.flatnonzero(in_groups & ~np.isfinite(theta))
        if bad.size:
            raise CalibrationError(
                f"ability must be finite for every person in the two groups; it is not for "
                f"{bad.size} (e.g. {_list(repr(self.data.person_ids[p]) for p in bad)})"
            )
        edges = np.unique(np.quantile(theta[in_groups], np.linspace(0, 1, n_strata + 1)[1:-1]))
        return np.searchsorted(edges, theta, side="right")

    def items(self, items: Sequence[str] | None, kind: str) -> np.ndarray:
        """Indices of the items to study: ``kind`` 'mh' (named items must be 0/1), 'smd' (named
        items of any kind, polytomous by default), or the 'dichotomous'/'polytomous' part of
        ``items`` for the combined report."""
        data = self.data
        dichotomous = self.top <= 1
        if items is None:
            chosen = np.flatnonzero(dichotomous if kind in ("mh", "dichotomous") else ~dichotomous)
        else:
            if isinstance(items, str):
                items = [items]
            index = {item: j for j, item in enumerate(data.item_ids)}
            unknown = [i for i in items if i not in index]
            if unknown:
                raise CalibrationError(f"unknown item(s): {_list(repr(i) for i in unknown)}")
            chosen = np.array([index[i] for i in dict.fromkeys(items)], dtype=np.intp)
            if kind == "mh":
                poly = chosen[~dichotomous[chosen]]
                if poly.size:
                    raise CalibrationError(
                        "Mantel-Haenszel needs dichotomous (0/1) items; polytomous: "
                        f"{_list(repr(data.item_ids[j]) for j in poly)} (use "
                        "standardized_mean_difference)"
                    )
            elif kind == "dichotomous":
                chosen = chosen[dichotomous[chosen]]
            elif kind == "polytomous":
                chosen = chosen[~dichotomous[chosen]]
        self._check_coverage(chosen)
        return chosen.astype(np.intp)

    def _check_coverage(self, chosen: np.ndarray) -> None:
        counts = np.zeros((self.data.n_items, 2), dtype=np.int64)
        np.add.at(counts, (self.item, self.obs_group), 1)
        for g, label in ((0, self.reference), (1, self.focal)):
            empty = chosen[counts[chosen, g] == 0]
            if empty.size:
                raise CalibrationError(
                    f"item(s) with no responses in group {label!r}: "
                    f"{_list(repr(self.data.item_ids[j]) for j in empty)}"
                )

    def strata(self, excluded: np.ndarray) -> tuple[np.ndarray, int]:
        """(n_obs,) stratum of each kept observation, and the number of strata. With total
        matching, ``excluded`` items leave the score except when they are the studied item."""
        if self.person_stratum is not None:
            stratum = self.person_stratum[self.person]
            return stratum, int(self.person_stratum.max()) + 1
        out = excluded[self.item]
        base = np.bincount(
            self.person, weights=np.where(out, 0, self.response), minlength=self.data.n_persons
        )
        score = np.rint(base[self.person]).astype(np.int64) + np.where(out, self.response, 0)
        levels, stratum = np.unique(score, return_inverse=True)
        return stratum.ravel(), int(levels.size)

    def run(self, mh_index, smd_index):
        excluded = np.zeros(self.data.n_items, dtype=bool)
        mh, smd = self._pass(mh_index, smd_index, excluded)
        removed: list[str] = []
        if self.purify:
            for index, results in ((mh_index, mh), (smd_index, smd)):
                flagged = [r.category == "C" for r in results]
                excluded[index[np.asarray(flagged, dtype=bool)]] = True
            if excluded.any():
                removed = [self.data.item_ids[j] for j in np.flatnonzero(excluded)]
                mh, smd = self._pass(mh_index, smd_index, excluded)
        return mh, smd, removed

    def _pass(self, mh_index, smd_index, excluded):
        stratum, n_strata = self.strata(excluded)
        mh = self._mh(mh_index, stratum, n_strata) if len(mh_index) else []
        smd = self._smd(smd_index, stratum, n_strata) if len(smd_index) else []
        return mh, smd

    def _cells(self, index: np.ndarray, stratum: np.ndarray, n_strata: int):
        """Flat (item, stratum, group) cell of each observation of the ``index`` items, and
        which observations those are."""
        position = np.full(self.data.n_items, -1, dtype=np.intp)
        position[index] = np.arange(index.size)
        pos = position[self.item]
        sel = pos >= 0
        return (pos[sel] * n_strata + stratum[sel]) * 2 + self.obs_group[sel], sel

    def _results(self, cls, index, stats_, category, favours) -> list:
        """One result per item from the vectorised statistics (fields named as in ``cls``)."""
        names = [f.name for f in fields(cls) if f.name not in ("item_id", "category", "favours")]
        return [
            cls(
                item_id=self.data.item_ids[j],
                category=str(category[k]),
                favours=favours[k],
                **{n: (int if n.startswith("n_") else float)(stats_[n][k]) for n in names},
            )
            for k, j in enumerate(index)
        ]

    def _mh(self, index, stratum, n_strata) -> list[MantelHaenszelResult]:
        cell, sel = self._cells(index, stratum, n_strata)
        tables = np.bincount(cell * 2 + self.response[sel], minlength=index.size * n_strata * 4)
        stats_ = mh_statistics(tables.reshape(index.size, n_strata, 2, 2).astype(float))
        category = np.atleast_1d(
            ets_category(stats_["delta_mh"], stats_["se_delta"], stats_["p_value"])
        )
        return self._results(MantelHaenszelResult, index, stats_, category,
                             _favours(stats_["delta_mh"], category))

    def _smd(self, index, stratum, n_strata) -> list[SMDResult]:
        cell, sel = self._cells(index, stratum, n_strata)
        size = index.size * n_strata * 2
        y = self.response[sel].astype(float)
        shape = (index.size, n_strata, 2)
        n = np.bincount(cell, minlength=size).reshape(shape).astype(float)
        s1 = np.bincount(cell, weights=y, minlength=size).reshape(shape)
        s2 = np.bincount(cell, weights=y * y, minlength=size).reshape(shape)
        stats_ = smd_statistics(n, s1, s2)
        category = np.atleast_1d(polytomous_category(stats_["effect_size"], stats_["p_value"]))
        return self._results(SMDResult, index, stats_, category,
                             _favours(stats_["smd"], category))


def mh_statistics(tables: np.ndarray) -> dict[str, np.ndarray]:
    """Mantel-Haenszel statistics from counts of shape (..., strata, 2, 2), vectorised.

    ``tables[..., k, g, y]``: stratum k, group g (0 reference, 1 focal), outcome y (0 wrong,
    1 right). Returns arrays over the leading axes: alpha_mh, delta_mh, se_delta, chi_square,
    p_value, n_reference, n_focal, n_strata (see :func:`mantel_haenszel` for the formulas).
    """
    t = np.asarray(tables, dtype=float)
    a, b = t[..., 0, 1], t[..., 0, 0]
    c, d = t[..., 1, 1], t[..., 1, 0]
    n_ref, n_foc = a + b, c + d
    n = n_ref + n_foc
    m1, m0 = a + c, b + d
    both = (n_ref > 0) & (n_foc > 0)
    safe_n = np.where(both, n, 1.0)
    r = np.where(both, a * d / safe_n, 0.0)
    s = np.where(both, b * c / safe_n, 0.0)
    p = np.where(both, (a + d) / safe_n, 0.0)
    q = np.where(both, (b + c) / safe_n, 0.0)
    sum_r, sum_s = r.sum(-1), s.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = sum_r / sum_s
        log_alpha = np.log(alpha)
        var_log = (
            (p * r).sum(-1) / (2 * sum_r**2)
            + (p * s + q * r).sum(-1) / (2 * sum_r * sum_s)
            + (q * s).sum(-1) / (2 * sum_s**2)
        )
    delta = -DELTA_SCALE * log_alpha
    se = DELTA_SCALE * np.sqrt(var_log)
    # An empty off-diagonal (sum_s = 0) or diagonal (sum_r = 0) leaves alpha at +inf or 0:
    # Var(ln alpha) is unbounded there (its 0/0 terms are NaN), not undefined.
    se = np.where(np.isinf(delta), np.inf, se)
    expected = np.where(both, n_ref * m1 / safe_n, 0.0)
    var_a = np.where(
        both & (n > 1), n_ref * n_foc * m1 * m0 / (safe_n**2 * np.where(n > 1, n - 1, 1.0)), 0.0
    )
    observed = np.where(both, a, 0.0)
    diff = np.abs(observed.sum(-1) - expected.sum(-1))
    total_var = var_a.sum(-1)
    informative = total_var > 0
    corrected = np.maximum(diff - 0.5, 0.0)
    chi = np.where(informative, corrected**2 / np.where(informative, total_var, 1.0), 0.0)
    return {
        "alpha_mh": alpha,
        "delta_mh": delta,
        "se_delta": se,
        "chi_square": chi,
        "p_value": stats.chi2.sf(chi, 1),
        "n_reference": n_ref.sum(-1),
        "n_focal": n_foc.sum(-1),
        "n_strata": both.sum(-1),
    }


def smd_statistics(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> dict[str, np.ndarray]:
    """SMD and Mantel's test from per-stratum sums of shape (..., strata, 2) (group 0 reference,
    1 focal): ``n`` respondents, ``s1`` sum of item scores, ``s2`` sum of squared item scores.

    Mantel (1963): with T_k the focal sum of scores in stratum k,
    ``E(T_k) = n_Fk S1_k / N_k``, ``Var(T_k) = n_Rk n_Fk (N_k S2_k - S1_k^2) / (N_k^2 (N_k - 1))``
    and ``chi_square = (sum T_k - sum E(T_k))^2 / sum Var(T_k)``.
    """
    n, s1, s2 = (np.asarray(x, dtype=float) for x in (n, s1, s2))
    n_ref, n_foc = n[..., 0], n[..., 1]
    both = (n_ref > 0) & (n_foc > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_ref = np.where(both, s1[..., 0] / np.where(both, n_ref, 1.0), 0.0)
        mean_foc = np.where(both, s1[..., 1] / np.where(both, n_foc, 1.0), 0.0)
        weight = np.where(both, n_foc, 0.0)
        smd = (weight * (mean_foc - mean_ref)).sum(-1) / weight.sum(-1)
        total_n = n.sum((-1, -2))
        total_s1 = s1.sum((-1, -2))
        total_s2 = s2.sum((-1, -2))
        sd = np.sqrt(np.maximum(total_s2 - total_s1**2 / total_n, 0.0) / (total_n - 1))
        effect = np.where(sd > 0, smd / sd, np.nan)
    n_k = n_ref + n_foc
    sum_k, sq_k = s1.sum(-1), s2.sum(-1)
    safe_n = np.where(both, n_k, 1.0)
    expected = np.where(both, n_foc * sum_k / safe_n, 0.0)
    var_t = np.where(
        both & (n_k > 1),
        n_ref * n_foc * (n_k * sq_k - sum_k**2) / (safe_n**2 * np.where(n_k > 1, n_k - 1, 1.0)),
        0.0,
    )
    observed = np.where(both, s1[..., 1], 0.0)
    diff = observed.sum(-1) - expected.sum(-1)
    total_var = var_t.sum(-1)
    informative = total_var > 0
    chi = np.where(informative, diff**2 / np.where(informative, total_var, 1.0), 0.0)
    return {
        "smd": smd,
        "effect_size": effect,
        "item_sd": sd,
        "chi_square": chi,
        "p_value": stats.chi2.sf(chi, 1),
        "n_reference": n_ref.sum(-1),
        "n_focal": n_foc.sum(-1),
        "n_strata": both.sum(-1),
    }


def _favours(effect: np.ndarray, category: np.ndarray) -> list[str | None]:
    return [
        None if cat == "A" else ("reference" if value < 0 else "focal")
        for value, cat in zip(np.atleast_1d(effect).tolist(), category.tolist(), strict=True)
    ]


def _plain(record: dict) -> dict:
    return {
        key: (None if isinstance(value, float) and not math.isfinite(value) else value)
        for key, value in record.items()
    }


def _list(things) -> str:
    things = list(things)
    shown = ", ".join(str(t) for t in things[:_SHOWN])
    return shown + (f" and {len(things) - _SHOWN} more" if len(things) > _SHOWN else "")
