"""Item and person fit, and EAP scores, for response data and a calibrated bank.

Everything is vectorised over observations, persons, items and quadrature points; the person x
item matrix is never built (sparse data are the normal case).

Quadrature
    Integrals over the latent distribution N(mean, sd) (``latent=(mean, sd)``) use ``quadrature``
    evenly spaced points over ``mean +- 6 sd`` with weights proportional to the normal density,
    normalised to sum to 1.

EAP scores (:func:`eap_scores`)
    The log-likelihood of every person at every point is one sparse product: a persons x
    (item, category) indicator matrix times the table of ``log P_ik(theta_q)``.

Infit and outfit (:func:`item_fit`)
    With ``E = sum_k k P_k(theta)``, ``W = sum_k (k - E)^2 P_k(theta)`` at each person's theta (EAP
    unless given), over the persons who answered the item:
    ``outfit = mean((x - E)^2 / W)`` (unweighted mean square) and
    ``infit = sum (x - E)^2 / sum W`` (information-weighted mean square). Both are near 1 when the
    model holds and theta is the true ability. With EAP theta they come out below 1 (the item's
    own response pulls theta towards it; in simulations infit ~0.9, outfit ~0.85, and outfit
    down to ~0.6 for an item far from most persons), so ``outfit_low`` flags on extreme items
    deserve a second look before anything is done about them.

S-X2 (:func:`item_fit`; Orlando & Thissen 2000, polytomous items as in Kang & Chen 2008)
    Complete data only (every person answered every item). Persons are grouped by summed score
    ``s``; for item ``i`` and category ``k`` the model-expected proportion in group ``s`` is
    ``E_iks = int P_ik(theta) S^(-i)_{s-k}(theta) phi(theta) dtheta / int S_s(theta) phi(theta)
    dtheta``, where ``S_s`` and ``S^(-i)_s`` are the summed-score likelihoods of all items and of
    all items but ``i`` (Lord & Wingersky 1984, :func:`summed_score_likelihoods`). The statistic is
    Pearson's ``sum_s sum_k (O_sk - E_sk)^2 / E_sk`` on counts (for a dichotomous item this is
    ``sum_s N_s (O_s - E_s)^2 / (E_s (1 - E_s))`` on proportions correct). Cells that the summed
    score makes impossible (e.g. a correct answer with score 0) are left out, as are score groups
    nobody has. Score groups with an expected count below ``groups_min_expected`` in any possible
    cell are merged with a neighbour (the first such group, with the only neighbour at either end,
    otherwise with the neighbour holding fewer persons; repeated until none is left, as mirt does).
    ``df = (possible cells) - (score groups) - (item parameters) - (latent parameters)``, i.e.
    score groups minus parameters for a dichotomous item; the number of parameters is the model's
    (Rasch and 1PL 1, 2PL 2, 3PL 3, 4PL 4, GRM and GPCM ``m + 1``, PCM ``m``) unless
    ``n_parameters`` says otherwise (0 when the parameters were not estimated from these data);
    an estimated latent mean and sd count one each (``estimated_latent``), as in mirt.

Flags (:func:`item_fit`)
    ``"s_x2"`` when the S-X2 p-value is below ``alpha`` (0.01); ``"infit_low"``, ``"infit_high"``,
    ``"outfit_low"``, ``"outfit_high"`` when the mean square is outside ``mean_square_range``
    (0.7 to 1.3); and ``"misfit"`` first whenever any of these is raised.

lz (:func:`person_fit`; Drasgow, Levine & Williams 1985)
    ``lz = (l0 - E[l0]) / sqrt(Var[l0])`` with ``l0 = sum_i log P_i,x_i(theta)``,
    ``E[l0] = sum_i sum_k P_ik log P_ik`` and ``Var[l0] = sum_i [sum_k P_ik (log P_ik)^2 -
    (sum_k P_ik log P_ik)^2]``, which covers polytomous items as it stands. Close to standard
    normal when theta is the true ability (a little skewed in finite tests); with EAP theta it is
    shifted up and narrower (about mean 0.2, sd 0.8 for 20 to 40 items), so a cut-off such as
    ``lz < -1.645`` is conservative there. Snijders' (2001) lz* correction for dichotomous items is
    in :mod:`calibration.person_fit`.

M2 (:func:`m2`; Maydeu-Olivares & Joe 2005, 2006)
    The limited-information statistic for dichotomous complete data on the first- and second-order
    margins: ``M2 = N e' C2 e`` with ``e`` the observed minus the model-implied margins,
    ``C2 = Xi^-1 - Xi^-1 Delta (Delta' Xi^-1 Delta)^-1 Delta' Xi^-1`` (``Xi`` the covariance
    matrix of the margins under the model, ``Delta`` their derivatives with respect to the
    estimated item parameters, and the latent mean and sd when estimated) and
    ``df = J + J (J - 1) / 2 - q``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse, stats
from scipy.linalg import null_space
from scipy.special import expit

from calibration.data import ResponseData
from calibration.errors import CalibrationError
from cat_engine.bank import FAMILY_DICHOTOMOUS, ItemBank
from cat_engine.models import category_probabilities, response_log_probability

__all__ = [
    "eap_scores",
    "item_fit",
    "m2",
    "n_item_parameters",
    "person_fit",
    "quadrature_rule",
    "summed_score_likelihoods",
]

_TINY = 1e-300
_SHOWN = 5
_PARAMETERS = {"rasch": 1, "1pl": 1, "2pl": 2, "3pl": 3, "4pl": 4}


# -- quadrature and data -----------------------------------------------------------------------


#: The latent parameters a calibration estimated (``settings["estimate_latent"]``), by mode.
LATENT_ESTIMATES = {"none": (), "sd": ("sd",), "mean_sd": ("mean", "sd")}


def quadrature_rule(latent=(0.0, 1.0), quadrature: int = 49) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights (summing to 1) for integrals over N(mean, sd): ``mean +- 6 sd``."""
    try:
        mean, sd = (float(v) for v in latent)
    except (TypeError, ValueError):
        raise CalibrationError(f"latent must be a pair (mean, sd), got {latent!r}") from None
    if not (math.isfinite(mean) and math.isfinite(sd) and sd > 0):
        raise CalibrationError(f"latent must be a finite mean and a positive sd, got {latent!r}")
    if isinstance(quadrature, bool) or not isinstance(quadrature, (int, np.integer)):
        raise CalibrationError(f"quadrature must be an integer, got {quadrature!r}")
    if quadrature < 5:
        raise CalibrationError(f"quadrature must be at least 5 points, got {quadrature}")
    z = np.linspace(-6.0, 6.0, int(quadrature))
    w = np.exp(-0.5 * z * z)
    return mean + sd * z, w / w.sum()


def _positions(data: ResponseData, bank: ItemBank) -> np.ndarray:
    """Bank position of every item of ``data``; checks that the responses fit their items."""
    known = set(bank.item_ids)
    missing = [i for i in data.item_ids if i not in known]
    if missing:
        raise CalibrationError(f"items in the data but not in the bank: {_names(missing)}")
    pos = bank.indices_of(data.item_ids)
    top = bank.n_categories[pos]
    bad = np.flatnonzero(data.n_categories > top)
    if bad.size:
        shown = [f"{data.item_ids[j]!r} (has {top[j]} categories)" for j in bad]
        raise CalibrationError(f"responses beyond the items' categories: {_names(shown, False)}")
    return pos


def _names(things: Sequence[str], quote: bool = True) -> str:
    things = [repr(t) if quote else str(t) for t in things]
    shown = ", ".join(things[:_SHOWN])
    return shown + (f" and {len(things) - _SHOWN} more" if len(things) > _SHOWN else "")


def _theta(theta, data: ResponseData) -> np.ndarray:
    theta = np.asarray(theta, dtype=float)
    if theta.shape != (data.n_persons,):
        raise CalibrationError(
            f"theta must have one value per person ({data.n_persons}), got shape {theta.shape}"
        )
    if not np.isfinite(theta).all():
        raise CalibrationError("theta must be finite")
    return theta


def _is_complete(data: ResponseData) -> bool:
    # (person, item) pairs are unique in ResponseData, so a full count means a full matrix
    return data.n_obs == data.n_persons * data.n_items


# -- EAP scores -------------------------------------------------------------------------------


def _log_likelihood(data: ResponseData, bank: ItemBank, points: np.ndarray) -> np.ndarray:
    """(P, Q) log-likelihood of every person at every point, by one sparse product."""
    pos = _positions(data, bank)
    n_cat = bank.n_categories[pos]
    offsets = np.concatenate([[0], np.cumsum(n_cat)[:-1]])
    n_cols = int(n_cat.sum())
    col_item = np.repeat(np.arange(pos.size), n_cat)
    col_category = np.arange(n_cols) - offsets[col_item]
    table = response_log_probability(
        bank, pos[col_item][:, None], points[None, :], col_category[:, None]
    )  # (n_cols, Q)
    indicator = sparse.csr_matrix(
        (np.ones(data.n_obs), (data.person, offsets[data.item] + data.response)),
        shape=(data.n_persons, n_cols),
    )
    return np.asarray(indicator @ table)


def eap_scores(
    data: ResponseData, bank: ItemBank, latent=(0.0, 1.0), quadrature: int = 49
) -> tuple[np.ndarray, np.ndarray]:
    """EAP theta and its posterior sd for every person, under a N(mean, sd) prior.

    Returns
    -------
    theta, se : ndarray, shape (P,)
        In the order of ``data.person_ids``; a person with no responses gets the prior mean and
        (nearly) the prior sd.

    Raises
    ------
    CalibrationError
        Items missing from the bank or responses beyond their categories.
    """
    points, w = quadrature_rule(latent, quadrature)
    log_post = _log_likelihood(data, bank, points) + np.log(w)
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    post /= post.sum(axis=1, keepdims=True)
    theta = post @ points
    se = np.sqrt(np.maximum(post @ points**2 - theta**2, 0.0))
    return theta, se


# -- person fit -------------------------------------------------------------------------------


def person_fit(
    data: ResponseData,
    bank: ItemBank,
    theta: np.ndarray | None = None,
    *,
    latent=(0.0, 1.0),
    quadrature: int = 49,
) -> np.ndarray:
    """The lz statistic of every person (Drasgow, Levine & Williams 1985; see the module notes).

    Parameters
    ----------
    theta : ndarray, shape (P,), optional
        Abilities on the bank's scale; EAP scores (``latent``, ``quadrature``) when not given.

    Returns
    -------
    ndarray, shape (P,)
        lz per person (order of ``data.person_ids``); NaN for a person whose ``Var[l0]`` is 0
        (no responses). Large negative values flag unlikely (aberrant) response patterns.
    """
    pos = _positions(data, bank)
    theta = eap_scores(data, bank, latent, quadrature)[0] if theta is None else _theta(theta, data)
    items, at = pos[data.item], theta[data.person]
    p = category_probabilities(bank, items, at)  # (n_obs, K)
    log_p = np.log(np.maximum(p, _TINY))
    p_log_p = np.where(p > 0, p * log_p, 0.0)
    mean = p_log_p.sum(axis=1)
    var = np.maximum(np.where(p > 0, p_log_p * log_p, 0.0).sum(axis=1) - mean * mean, 0.0)
    l0 = response_log_probability(bank, items, at, data.response)
    n = data.n_persons
    l0, mean, var = (np.bincount(data.person, x, minlength=n) for x in (l0, mean, var))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0, (l0 - mean) / np.sqrt(var), np.nan)


# -- summed scores ----------------------------------------------------------------------------


def summed_score_likelihoods(bank: ItemBank, items, theta) -> np.ndarray:
    """``P(S = s | theta)`` of the summed score ``S`` of ``items`` by the Lord-Wingersky recursion.

    Parameters
    ----------
    items : array_like of int, shape (J,)
        Positions in the bank; item ``i`` scores ``0..n_categories[i] - 1``.
    theta : array_like, shape (Q,)

    Returns
    -------
    ndarray, shape (S + 1, Q)
        ``S = sum(n_categories - 1)``; every column sums to 1.
    """
    items = np.atleast_1d(np.asarray(items, dtype=np.intp))
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    p = np.moveaxis(category_probabilities(bank, items[:, None], theta[None, :]), -1, 1)
    top = bank.n_categories[items] - 1
    out = np.zeros((int(top.sum()) + 1, theta.size))
    out[0] = 1.0
    reach = 0
    for j in range(items.size):
        previous = out[: reach + 1].copy()
        out[: reach + 1] = 0.0
        for k in range(top[j] + 1):
            out[k : k + reach + 1] += previous * p[j, k]
        reach += int(top[j])
    return out


def _leave_one_out(p: np.ndarray, top: np.ndarray) -> np.ndarray:
    """(J, S + 1, Q): row ``i`` is the summed-score likelihood of every item but ``i``.

    ``p`` is (J, K, Q), ``top`` the highest score of each item. One pass over the items updates the
    J partial products at once (every row but the item's own).
    """
    n_items, _, n_points = p.shape
    total = int(top.sum())
    out = np.zeros((n_items, total + 1, n_points))
    out[:, 0] = 1.0
    reach = 0
    for j in range(n_items):
        rows = np.arange(n_items) != j
        previous = out[rows, : reach + 1]
        updated = np.zeros((n_items - 1, reach + top[j] + 1, n_points))
        for k in range(top[j] + 1):
            updated[:, k : k + reach + 1] += previous * p[j, k]
        out[rows, : reach + top[j] + 1] = updated
        reach += int(top[j])
    return out


def n_item_parameters(bank: ItemBank, items) -> np.ndarray:
    """Number of free parameters of each item's model (Rasch and 1PL 1, ..., GPCM ``m + 1``)."""
    items = np.atleast_1d(np.asarray(items, dtype=np.intp))
    out = []
    for j in items:
        model = str(bank.models[j])
        m = int(bank.n_categories[j]) - 1
        out.append(_PARAMETERS.get(model, m if model == "pcm" else m + 1))
    return np.array(out, dtype=int)


def _s_x2_tables(data: ResponseData, bank: ItemBank, pos: np.ndarray, latent, quadrature):
    """Observed and expected counts (J, S + 1, K) and the possible cells, for complete data."""
    points, w = quadrature_rule(latent, quadrature)
    top = bank.n_categories[pos] - 1
    n_items, total, k_max = pos.size, int(top.sum()), int(top.max()) + 1
    p = np.moveaxis(category_probabilities(bank, pos[:, None], points[None, :]), -1, 1)[:, :k_max]
    rest = _leave_one_out(p, top)  # (J, S + 1, Q)
    pw = p * w  # (J, K, Q)
    numerator = np.zeros((n_items, total + 1, k_max))
    for k in range(k_max):
        numerator[:, k:, k] = np.einsum("iq,isq->is", pw[:, k], rest[:, : total + 1 - k])
    denominator = numerator.sum(axis=2)  # int S_s phi, the same for every item
    scores = np.bincount(data.person, data.response, minlength=data.n_persons).astype(np.intp)
    n_s = np.bincount(scores, minlength=total + 1)
    expected = n_s[None, :, None] * numerator / np.maximum(denominator, _TINY)[:, :, None]
    flat = (data.item * (total + 1) + scores[data.person]) * k_max + data.response
    observed = np.bincount(flat, minlength=n_items * (total + 1) * k_max).reshape(expected.shape)
    s = np.arange(total + 1)[None, :, None]
    k = np.arange(k_max)[None, None, :]
    rest_top = (total - top)[:, None, None]
    possible = (k <= top[:, None, None]) & (s - k >= 0) & (s - k <= rest_top)
    return observed.astype(float), expected, possible, n_s


def _collapse(observed, expected, possible, n_s, min_expected):
    """Merge score groups (rows) until no possible cell expects fewer than ``min_expected``."""
    keep = n_s > 0
    o, e, ok = observed[keep], expected[keep], possible[keep]
    n = n_s[keep].astype(float)
    while o.shape[0] > 1:
        small = (ok & (e < min_expected)).any(axis=1)
        if not small.any():
            break
        r = int(np.flatnonzero(small)[0])
        if r == 0:
            into = 1
        elif r == o.shape[0] - 1:
            into = r - 1
        else:
            into = r - 1 if n[r - 1] <= n[r + 1] else r + 1
        o[into] += o[r]
        e[into] += e[r]
        ok[into] |= ok[r]
        n[into] += n[r]
        o, e, ok, n = (np.delete(x, r, axis=0) for x in (o, e, ok, n))
    return o, e, ok


def _s_x2(observed, expected, possible, n_s, n_par, min_expected):
    o, e, ok = _collapse(observed, expected, possible, n_s, min_expected)
    cells = ok & (e > 0)
    statistic = float(((o - e) ** 2 / np.where(cells, e, 1.0))[cells].sum())
    df = int(cells.sum() - o.shape[0] - n_par)
    return statistic, df


# -- item fit ---------------------------------------------------------------------------------


def item_fit(
    data: ResponseData,
    bank: ItemBank,
    *,
    theta: np.ndarray | None = None,
    latent=(0.0, 1.0),
    quadrature: int = 49,
    groups_min_expected: float = 1.0,
    n_parameters: int | Sequence[int] | None = None,
    estimated_latent: str = "none",
    alpha: float = 0.01,
    mean_square_range: tuple[float, float] = (0.7, 1.3),
) -> list[dict[str, Any]]:
    """S-X2, infit and outfit of every item of ``data`` (see the module notes for the formulas).

    Parameters
    ----------
    theta : ndarray, shape (P,), optional
        Abilities for the mean squares; EAP scores when not given.
    latent, quadrature
        The latent distribution N(mean, sd) and the number of quadrature points (S-X2 and EAP).
    groups_min_expected : float
        Score groups are merged until every possible cell expects at least this many persons.
    n_parameters : int or sequence of int, optional
        Parameters estimated per item, subtracted from the S-X2 degrees of freedom; by default
        the model's count (:func:`n_item_parameters`); 0 for parameters not estimated from these
        data.
    estimated_latent : str
        Which latent parameters the calibration estimated (its ``settings["estimate_latent"]``:
        ``"none"``, ``"sd"`` or ``"mean_sd"``); each is subtracted from every item's S-X2
        degrees of freedom too, as mirt's ``itemfit`` does with estimated group parameters.
    alpha, mean_square_range
        The flagging rule: S-X2 p-value below ``alpha``, mean squares outside the range.

    Returns
    -------
    list of dict, one per item of ``data`` in its order
        ``item_id``, ``n`` (responses), ``s_x2``, ``df``, ``p_value`` (None when not computed,
        with the reason in ``note``), ``infit``, ``outfit``, ``flags`` (list of str), ``misfit``
        (bool) and ``note`` (str or None).
    """
    pos = _positions(data, bank)
    n_items = pos.size
    if n_parameters is None:
        n_par = n_item_parameters(bank, pos)
    else:
        n_par = np.broadcast_to(np.asarray(n_parameters, dtype=int), (n_items,))
    if estimated_latent not in LATENT_ESTIMATES:
        raise CalibrationError(f"estimated_latent must be one of {', '.join(LATENT_ESTIMATES)}, "
                               f"got {estimated_latent!r}")
    n_par = n_par + len(LATENT_ESTIMATES[estimated_latent])
    lo, hi = mean_square_range

    theta = eap_scores(data, bank, latent, quadrature)[0] if theta is None else _theta(theta, data)
    items = pos[data.item]
    p = category_probabilities(bank, items, theta[data.person])  # (n_obs, K)
    scores = np.arange(p.shape[1], dtype=float)
    expected = p @ scores
    variance = np.maximum(p @ scores**2 - expected**2, _TINY)
    squared = (data.response - expected) ** 2
    n = np.bincount(data.item, minlength=n_items)
    with np.errstate(divide="ignore", invalid="ignore"):
        outfit = np.bincount(data.item, squared / variance, minlength=n_items) / n
        infit = np.bincount(data.item, squared, minlength=n_items) / np.bincount(
            data.item, variance, minlength=n_items
        )

    s_x2: list[tuple[float | None, int | None, float | None, str | None]]
    if not _is_complete(data):
        note = (
            f"S-X2 needs complete data (every person answering every item); these data have "
            f"{data.n_obs} of {data.n_persons * n_items} responses"
        )
        s_x2 = [(None, None, None, note)] * n_items
    elif n_items < 2:
        s_x2 = [(None, None, None, "S-X2 needs at least 2 items")] * n_items
    else:
        tables = _s_x2_tables(data, bank, pos, latent, quadrature)
        observed, expected_counts, possible, n_s = tables
        s_x2 = []
        for j in range(n_items):
            stat, df = _s_x2(
                observed[j], expected_counts[j], possible[j], n_s, n_par[j], groups_min_expected
            )
            if df > 0:
                s_x2.append((stat, df, float(stats.chi2.sf(stat, df)), None))
            else:
                note = f"S-X2 has no degrees of freedom left ({df}) after collapsing score groups"
                s_x2.append((stat, df, None, note))

    out = []
    for j, item_id in enumerate(data.item_ids):
        stat, df, p_value, note = s_x2[j]
        flags = []
        if p_value is not None and p_value < alpha:
            flags.append("s_x2")
        for name, value in (("infit", infit[j]), ("outfit", outfit[j])):
            if np.isfinite(value) and value < lo:
                flags.append(f"{name}_low")
            elif np.isfinite(value) and value > hi:
                flags.append(f"{name}_high")
        if flags:
            flags.insert(0, "misfit")
        out.append(
            {
                "item_id": item_id,
                "n": int(n[j]),
                "s_x2": stat,
                "df": df,
                "p_value": p_value,
                "infit": float(infit[j]) if n[j] else None,
                "outfit": float(outfit[j]) if n[j] else None,
                "flags": flags,
                "misfit": bool(flags),
                "note": note,
            }
        )
    return out


# -- M2 ---------------------------------------------------------------------------------------


def _margins(n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The first- and second-order margins as item pairs: (i, i) for i, then (i, j) for i < j."""
    first = np.arange(n_items)
    upper_i, upper_j = np.triu_indices(n_items, k=1)
    return np.concatenate([first, upper_i]), np.concatenate([first, upper_j])


def _dichotomous_derivatives(bank: ItemBank, pos: np.ndarray, points: np.ndarray):
    """P(1) (J, Q) and dP/d(a, b, c, d) (J, 4, Q) of dichotomous items at ``points``."""
    a, b, c, d = (getattr(bank, name)[pos][:, None] for name in ("a", "b", "c", "d"))
    da = bank.D * a
    psi = expit(da * (points[None, :] - b))
    p = c + (d - c) * psi
    slope = (d - c) * psi * (1.0 - psi)
    derivatives = np.stack(
        [slope * bank.D * (points[None, :] - b), -slope * da, 1.0 - psi, psi], axis=1
    )
    return p, derivatives


_M2_PARAMETERS = {"rasch": (1,), "1pl": (1,), "2pl": (0, 1), "3pl": (0, 1, 2), "4pl": (0, 1, 2, 3)}


def m2(
    data: ResponseData, bank: ItemBank, *, latent=(0.0, 1.0), quadrature: int = 49,
    estimated_latent: str = "none", fixed=None,
) -> dict[str, Any]:
    """The M2 statistic of Maydeu-Olivares & Joe (2005, 2006) for dichotomous complete data.

    The estimated parameters are taken to be every item's free parameters (``a, b`` for the 2PL,
    ``a, b, c`` for the 3PL, ``a, b, c, d`` for the 4PL, ``b`` for Rasch and 1PL items plus one
    slope shared by all 1PL items) and, per ``estimated_latent`` (a calibration's
    ``settings["estimate_latent"]``: ``"none"``, ``"sd"`` or ``"mean_sd"``), the latent sd and
    mean, whose derivatives join ``Delta`` (``d pi / d mean = int d pi / d theta phi``,
    ``d pi / d sd = int z d pi / d theta phi`` with ``theta = mean + sd z``); items marked in
    ``fixed`` (bool per item of ``data``: anchors) contribute no parameters; the statistic
    is chi-square distributed with ``df`` degrees of freedom when they are maximum-likelihood (or
    true) values. ``C2`` is computed as ``Delta_c (Delta_c' Xi Delta_c)^-1 Delta_c'`` with
    ``Delta_c`` an orthonormal basis of the complement of ``Delta``'s columns (the same matrix,
    numerically stabler).

    Returns
    -------
    dict
        ``m2``, ``df`` (margins minus the rank of ``Delta``), ``p_value``, ``rmsea``
        (``sqrt(max(M2 - df, 0) / (N df))``), ``n`` (persons), ``n_parameters``.

    Raises
    ------
    CalibrationError
        Incomplete data, polytomous items, or no degrees of freedom left.
    """
    pos = _positions(data, bank)
    if not _is_complete(data):
        raise CalibrationError(
            f"M2 needs complete data (every person answering every item); these data have "
            f"{data.n_obs} of {data.n_persons * data.n_items} responses"
        )
    polytomous = [data.item_ids[j] for j in np.flatnonzero(bank.family[pos] != FAMILY_DICHOTOMOUS)]
    if polytomous:
        raise CalibrationError(
            f"M2 is implemented for dichotomous items only: {_names(polytomous)}"
        )
    if estimated_latent not in LATENT_ESTIMATES:
        raise CalibrationError(f"estimated_latent must be one of {', '.join(LATENT_ESTIMATES)}, "
                               f"got {estimated_latent!r}")
    n_items, n_persons = pos.size, data.n_persons
    anchors = np.zeros(n_items, bool) if fixed is None else np.asarray(fixed, dtype=bool)
    if anchors.shape != (n_items,):
        raise CalibrationError(f"fixed must have one value per item ({n_items}), got "
                               f"{anchors.size}")
    points, w = quadrature_rule(latent, quadrature)
    p, dp = _dichotomous_derivatives(bank, pos, points)
    mi, mj = _margins(n_items)
    pair = mi != mj

    # observed and model-implied margins
    x = sparse.csr_matrix(
        (data.response.astype(float), (data.person, data.item)), shape=(n_persons, n_items)
    )
    observed_2 = np.asarray((x.T @ x).todense()) / n_persons
    observed = observed_2[mi, mj]
    product = np.where(pair[:, None], p[mi] * p[mj], p[mi])  # (s, Q)
    implied = product @ w

    # Xi = E[m_u m_v] - pi_u pi_v; E[m_u m_v] integrates the product over the union of u and v
    moments = (product * w) @ product.T
    incidence = sparse.csr_matrix(
        (np.ones(2 * mi.size), (np.tile(np.arange(mi.size), 2), np.concatenate([mi, mj]))),
        shape=(mi.size, n_items),
    )
    shared = (incidence @ incidence.T).tocoo()
    rows, cols = shared.row, shared.col
    union = np.sort(np.stack([mi[rows], mj[rows], mi[cols], mj[cols]], axis=1), axis=1)
    first = np.concatenate([np.ones((union.shape[0], 1), bool), np.diff(union, axis=1) > 0], 1)
    for start in range(0, rows.size, 65536):
        block = slice(start, start + 65536)
        factors = np.where(first[block, :, None], p[union[block]], 1.0)
        moments[rows[block], cols[block]] = factors.prod(axis=1) @ w
    xi = moments - np.outer(implied, implied)

    # Delta: derivatives of the margins with respect to the estimated item parameters
    weighted = dp * w  # (J, 4, Q)
    with_other = np.einsum("mgq,nq->mgn", weighted, p)  # int dP_mg P_n phi
    own = weighted.sum(axis=2)  # int dP_mg phi
    columns = []
    shared_slope = np.zeros(mi.size)
    for m in np.flatnonzero(~anchors):
        model = str(bank.models[pos[m]])
        at_m_first, at_m_second = (mi == m), (mj == m)
        for g in range(4):
            column = np.where(pair & at_m_first, with_other[m, g, mj], 0.0)
            column += np.where(pair & at_m_second, with_other[m, g, mi], 0.0)
            column += np.where(~pair & at_m_first, own[m, g], 0.0)
            if g in _M2_PARAMETERS[model]:
                columns.append(column)
            elif g == 0 and model == "1pl":
                shared_slope += column
    if shared_slope.any():
        columns.append(shared_slope)
    if LATENT_ESTIMATES[estimated_latent]:
        # d P / d theta of every item; of a pair's product by the product rule
        a, b, c, d = (getattr(bank, name)[pos][:, None] for name in ("a", "b", "c", "d"))
        psi = expit(bank.D * a * (points[None, :] - b))
        slope = (d - c) * bank.D * a * psi * (1.0 - psi)  # (J, Q)
        d_product = np.where(pair[:, None], slope[mi] * p[mj] + p[mi] * slope[mj], slope[mi])
        z = (points - float(latent[0])) / float(latent[1])
        for name in LATENT_ESTIMATES[estimated_latent]:
            columns.append(d_product @ (w * (z if name == "sd" else 1.0)))
    delta = np.stack(columns, axis=1) if columns else np.zeros((mi.size, 0))
    complement = null_space(delta.T) if columns else np.eye(mi.size)
    df = int(complement.shape[1])
    if df < 1:
        raise CalibrationError(
            f"M2 has no degrees of freedom: {mi.size} margins and {len(columns)} parameters"
        )
    e = complement.T @ (observed - implied)
    statistic = float(n_persons * e @ np.linalg.solve(complement.T @ xi @ complement, e))
    return {
        "m2": statistic,
        "df": df,
        "p_value": float(stats.chi2.sf(statistic, df)),
        "rmsea": math.sqrt(max(statistic - df, 0.0) / (n_persons * df)),
        "n": n_persons,
        "n_parameters": len(columns),  # with the latent mean and sd when estimated
    }
