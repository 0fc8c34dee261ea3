"""IRT models, vectorised: category probabilities, their derivatives, information, likelihood.

Every function takes item positions ``items`` and abilities ``theta`` that broadcast against each
other (e.g. ``theta[:, None]`` with ``items[None, :]`` for every item at every theta, or
``theta`` of shape (N, Q) with ``items[:, None]`` for one item per examinee over a grid) and
returns arrays of the broadcast shape, with a trailing axis of categories where there are several.
Categories an item does not have get probability 0.

Dichotomous items (4PL form, covering Rasch, 1PL, 2PL, 3PL)::

    P1 = c + (d - c) * psi,   psi = 1 / (1 + exp(-D a (theta - b)))

Graded response (Samejima): cumulative ``P*_k = psi(theta - b_k)`` for ``k = 1..m``, with
``P*_0 = 1`` and ``P*_{m+1} = 0``; ``P_k = P*_k - P*_{k+1}``, computed as a product of
logistic terms rather than a difference (accurate far in the tails).

Generalized partial credit (Muraki; PCM has ``a = 1``)::

    P_k = exp(z_k) / sum_h exp(z_h),   z_k = sum_{v <= k} D a (theta - b_v),   z_0 = 0

Fisher information of one item is ``sum_k P'_k ** 2 / P_k``; of a response pattern, the sum over
items (local independence).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit

from cat_engine.bank import FAMILY_DICHOTOMOUS, FAMILY_GPCM, FAMILY_GRM, ItemBank

_TINY = 1e-300


def _broadcast(items, theta) -> tuple[np.ndarray, np.ndarray]:
    items = np.asarray(items, dtype=np.intp)
    theta = np.asarray(theta, dtype=float)
    return np.broadcast_arrays(items, theta)


def p_correct(bank: ItemBank, items, theta) -> np.ndarray:
    """Probability of category 1 (a correct response) to dichotomous items."""
    items, theta = _broadcast(items, theta)
    if bank.all_dichotomous:
        return _dichotomous(bank, items, theta)[0]
    return category_probabilities(bank, items, theta)[..., 1]


def _dichotomous(bank: ItemBank, items, theta, order: int = 0):
    """P(1) and optionally its first and second derivatives for dichotomous items."""
    a, b, c, d = bank.a[items], bank.b[items], bank.c[items], bank.d[items]
    da = bank.D * a
    psi = expit(da * (theta - b))
    p = c + (d - c) * psi
    if order == 0:
        return (p,)
    dpsi = psi * (1.0 - psi)
    dp = (d - c) * da * dpsi
    if order == 1:
        return p, dp
    d2p = (d - c) * da * da * dpsi * (1.0 - 2.0 * psi)
    return p, dp, d2p


def _grm_log_categories(z_upper: np.ndarray, z_lower: np.ndarray) -> np.ndarray:
    """``log(P*_k - P*_{k+1})`` from ``z_k`` and ``z_{k+1}`` (``P* = expit(z)``, ``z_k >=
    z_{k+1}``), without subtracting probabilities:

        P*_k - P*_{k+1} = expit(z_k) expit(-z_{k+1}) (1 - exp(z_{k+1} - z_k)),

    each factor accurate far in the tails (calibration's E-step uses the same form).
    ``z_0 = +inf`` and ``z_{m+1} = -inf`` give the outer categories; ``z_k = -inf`` (a category
    the item lacks) gives ``-inf``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (log_expit(z_upper) + log_expit(-z_lower)
               + np.log(-np.expm1(z_lower - z_upper)))
    return np.where(np.isneginf(z_upper), -np.inf, out)


def _grm_z(bank: ItemBank, items, theta, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """``z_k = D a (theta - b_k)`` for k = 1..k_max - 1, ``-inf`` for boundaries an item lacks,
    and the NaN mask of those boundaries."""
    da = (bank.D * bank.a[items])[..., None]
    boundaries = bank.thresholds[items][..., : k_max - 1]
    missing = np.isnan(boundaries)
    z = np.where(missing, -np.inf, da * (theta[..., None] - np.where(missing, 0.0, boundaries)))
    return z, missing


def _grm(bank: ItemBank, items, theta, k_max: int, order: int):
    da = (bank.D * bank.a[items])[..., None]
    z, missing = _grm_z(bank, items, theta, k_max)
    star = np.where(missing, 0.0, expit(z))
    shape = (*star.shape[:-1], 1)
    z_upper = np.concatenate([np.full(shape, np.inf), z], axis=-1)
    z_lower = np.concatenate([z, np.full(shape, -np.inf)], axis=-1)
    p = np.exp(_grm_log_categories(z_upper, z_lower))
    if order == 0:
        return (p,)
    dstar = da * star * (1.0 - star)
    zero = np.zeros(shape)
    dp = np.concatenate([zero, dstar], axis=-1) - np.concatenate([dstar, zero], axis=-1)
    if order == 1:
        return p, dp
    d2star = da * dstar * (1.0 - 2.0 * star)
    d2p = np.concatenate([zero, d2star], axis=-1) - np.concatenate([d2star, zero], axis=-1)
    return p, dp, d2p


def _gpcm(bank: ItemBank, items, theta, k_max: int, order: int):
    da = (bank.D * bank.a[items])[..., None]
    steps = bank.thresholds[items][..., : k_max - 1]
    missing = np.isnan(steps)
    increments = da * (theta[..., None] - np.where(missing, 0.0, steps))
    z = np.concatenate([np.zeros((*increments.shape[:-1], 1)), np.cumsum(increments, -1)], -1)
    absent = np.concatenate([np.zeros((*missing.shape[:-1], 1), bool), missing], axis=-1)
    z = np.where(absent, -np.inf, z)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=-1, keepdims=True)
    if order == 0:
        return (p,)
    k = np.arange(k_max, dtype=float)
    mean = (p * k).sum(-1, keepdims=True)
    dp = da * p * (k - mean)
    if order == 1:
        return p, dp
    var = (p * (k - mean) ** 2).sum(-1, keepdims=True)
    d2p = da * da * p * ((k - mean) ** 2 - var)
    return p, dp, d2p


def _categories(bank: ItemBank, items, theta, order: int):
    items, theta = _broadcast(items, theta)
    k_max = int(bank.n_categories[items].max()) if items.size else 2
    if bank.all_dichotomous:
        parts = _dichotomous(bank, items, theta, order)
        p1 = parts[0]
        out = [np.stack([1.0 - p1, p1], axis=-1)]
        out += [np.stack([-x, x], axis=-1) for x in parts[1:]]
        return tuple(out)
    family = bank.family[items]
    out = [np.zeros((*items.shape, k_max)) for _ in range(order + 1)]
    for code, fn in ((FAMILY_DICHOTOMOUS, None), (FAMILY_GRM, _grm), (FAMILY_GPCM, _gpcm)):
        mask = family == code
        if not mask.any():
            continue
        sel_items, sel_theta = items[mask], theta[mask]
        if fn is None:
            parts = _dichotomous(bank, sel_items, sel_theta, order)
            parts = [np.stack([(1.0 if i == 0 else 0.0) - x, x], -1) for i, x in enumerate(parts)]
            for target, part in zip(out, parts, strict=True):
                target[mask, :2] = part
        else:
            k = int(bank.n_categories[sel_items].max())
            for target, part in zip(out, fn(bank, sel_items, sel_theta, k, order), strict=True):
                target[mask, :k] = part
    return tuple(out)


def category_probabilities(bank: ItemBank, items, theta) -> np.ndarray:
    """Probability of each response category, shape ``broadcast(items, theta) + (K,)``."""
    return _categories(bank, items, theta, 0)[0]


def category_derivatives(bank: ItemBank, items, theta, order: int = 2) -> tuple[np.ndarray, ...]:
    """Category probabilities and their first (and second) derivatives with respect to theta."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    return _categories(bank, items, theta, order)


def information(bank: ItemBank, items, theta) -> np.ndarray:
    """Fisher information of each item at each theta, shape ``broadcast(items, theta)``.

    Dichotomous items use the closed form
    ``(D a)^2 (P - c)^2 (d - P)^2 / ((d - c)^2 P (1 - P))``; polytomous ones
    ``sum_k P'_k^2 / P_k``.
    """
    items, theta = _broadcast(items, theta)
    if bank.all_dichotomous:
        return _dichotomous_information(bank, items, theta)
    p, dp = _categories(bank, items, theta, 1)
    return _fisher(p, dp)


def _dichotomous_information(bank: ItemBank, items, theta) -> np.ndarray:
    a, b, c, d = bank.a[items], bank.b[items], bank.c[items], bank.d[items]
    da = bank.D * a
    psi = expit(da * (theta - b))
    p = c + (d - c) * psi
    q = 1.0 - p
    # (P - c)(d - P) / (d - c) = (d - c) psi (1 - psi)
    num = (d - c) * psi * (1.0 - psi)
    return da * da * num * num / np.maximum(p * q, _TINY)


def _fisher(p: np.ndarray, dp: np.ndarray) -> np.ndarray:
    safe = np.where(p > _TINY, p, 1.0)
    return np.where(p > _TINY, dp * dp / safe, 0.0).sum(axis=-1)


def response_log_probability(bank: ItemBank, items, theta, responses) -> np.ndarray:
    """``log P(X = response | theta)`` for each (item, theta, response), broadcast together.

    ``responses`` broadcast against ``items``; probabilities are floored at 1e-300 so that the log
    stays finite.
    """
    items = np.asarray(items, dtype=np.intp)
    responses = np.asarray(responses, dtype=np.intp)
    items_b, responses_b = np.broadcast_arrays(items, responses)
    if bank.all_dichotomous:
        theta = np.asarray(theta, dtype=float)
        out = _dichotomous_log_probability(bank, items_b, theta, responses_b)
        return np.broadcast_to(out, np.broadcast_shapes(items_b.shape, theta.shape))
    p = category_probabilities(bank, items_b, theta)
    resp = np.broadcast_to(responses_b, p.shape[:-1])
    chosen = np.log(np.maximum(np.take_along_axis(p, resp[..., None], axis=-1)[..., 0], _TINY))
    # The outer categories are one logistic term each: take their logs directly, so that they
    # stay accurate far in the tails where a difference of probabilities would round to 0.
    items_t = np.broadcast_to(items_b, resp.shape)
    theta_t = np.broadcast_to(np.asarray(theta, dtype=float), resp.shape)
    dich = bank.family[items_t] == FAMILY_DICHOTOMOUS
    if dich.any():
        chosen = np.where(
            dich,
            _dichotomous_log_probability(bank, items_t, theta_t, np.where(dich, resp, 0)),
            chosen,
        )
    grm = bank.family[items_t] == FAMILY_GRM
    if grm.any():
        # Every category from its own two logistic terms (:func:`_grm_log_categories`), so that
        # middle categories stay accurate far in the tails too.
        da = bank.D * bank.a[items_t]
        top = bank.n_categories[items_t] - 1
        k = np.clip(resp, 0, np.maximum(top, 0))
        width = bank.thresholds.shape[1]
        upper_b = bank.thresholds[items_t, np.clip(k - 1, 0, width - 1)]
        lower_b = bank.thresholds[items_t, np.clip(k, 0, width - 1)]
        with np.errstate(invalid="ignore"):
            z_upper = np.where(k == 0, np.inf, da * (theta_t - upper_b))
            z_lower = np.where(k >= top, -np.inf, da * (theta_t - lower_b))
        log_p = np.maximum(_grm_log_categories(z_upper, z_lower), np.log(_TINY))
        chosen = np.where(grm & (resp >= 0) & (resp <= top), log_p, chosen)
    return chosen


def _dichotomous_log_probability(bank: ItemBank, items, theta, responses) -> np.ndarray:
    """log P(response) for dichotomous items, without subtracting probabilities near 1.

    ``P(1) = c + (d - c) expit(z)`` and ``P(0) = (1 - d) + (d - c) expit(-z)``: one logistic
    term each, accurate far into the tails. Parameters are gathered before broadcasting.
    """
    items = np.asarray(items, dtype=np.intp)
    correct = np.asarray(responses) == 1
    a, b, c, d = bank.a[items], bank.b[items], bank.c[items], bank.d[items]
    sign = np.where(correct, 1.0, -1.0)
    base = np.where(correct, c, 1.0 - d)
    p = base + (d - c) * expit(sign * bank.D * a * (theta - b))
    return np.log(np.maximum(p, _TINY))


def log_likelihood(bank: ItemBank, items, responses, theta) -> np.ndarray:
    """Log-likelihood of one response pattern at each theta.

    Parameters
    ----------
    items, responses : array_like of int, shape (L,)
        Item positions and the category answered to each.
    theta : array_like, shape (T,)

    Returns
    -------
    ndarray, shape (T,)
    """
    items = np.asarray(items, dtype=np.intp)
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    if items.size == 0:
        return np.zeros(theta.shape)
    return response_log_probability(bank, items[None, :], theta[:, None], responses).sum(-1)


def test_information(bank: ItemBank, items, theta) -> np.ndarray:
    """Sum of the information of ``items`` (shape (L,)) at each theta (shape (T,))."""
    items = np.asarray(items, dtype=np.intp)
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    if items.size == 0:
        return np.zeros(theta.shape)
    return information(bank, items[None, :], theta[:, None]).sum(-1)


test_information.__test__ = False  # not a pytest test, despite its name


def simulate_responses(bank: ItemBank, items, theta, rng: np.random.Generator) -> np.ndarray:
    """Draw responses to ``items`` at ``theta`` (broadcast together) from the model."""
    p = category_probabilities(bank, items, theta)
    u = rng.random(p.shape[:-1])[..., None]
    top = np.broadcast_to(bank.n_categories[np.asarray(items, dtype=np.intp)] - 1, p.shape[:-1])
    return np.minimum((u > np.cumsum(p, axis=-1)).sum(-1), top)
