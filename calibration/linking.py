"""Scale linking: put a separately calibrated form (the "new" form) on the bank's scale.

Two calibrations of the same items differ by a linear change of the theta scale. With the
transformation ``theta_bank = A * theta_new + B`` the new calibration's item parameters become

    a_bank = a_new / A,   b_bank = A * b_new + B,   thresholds_bank = A * thresholds_new + B,

and ``c``, ``d`` are unchanged: every model of :mod:`cat_engine.models` depends on theta only
through ``D a (theta - b_k)``, which this leaves invariant. :func:`link` estimates ``A`` and ``B``
from the items the two banks share (the common items) by one of four methods:

``"mean-sigma"`` (Marco 1977)
    ``A = sd(b_ref) / sd(b_new)``, ``B = mean(b_ref) - A mean(b_new)`` over every location
    parameter of the common items: ``b`` of dichotomous items, every threshold of polytomous ones.
``"mean-mean"`` (Loyd & Hoover 1980)
    ``A = mean(a_new) / mean(a_ref)`` over the common items, ``B`` as for mean-sigma.
``"stocking-lord"`` (Stocking & Lord 1983)
    Minimises ``sum_q w_q [T_ref(theta_q) - T_new*(theta_q)]^2``, where ``T`` is the test
    characteristic curve of the common items (the sum of their expected item scores,
    ``sum_k k P_k``, so polytomous items enter with their expected score curves) and ``T_new*``
    uses the new parameters transformed by (A, B).
``"haebara"`` (Haebara 1980)
    Minimises ``sum_q w_q sum_i sum_k [P_ref,ik(theta_q) - P_new*,ik(theta_q)]^2``: the squared
    differences of every category curve of every common item (for a dichotomous item both
    categories, i.e. twice the squared difference of its ICCs, as in Kim & Lee 2006 for mixed
    formats).

The characteristic-curve criteria are evaluated at ``quadrature`` evenly spaced theta points of
``theta_range`` on the *reference* scale, with weights (normalised to sum to 1) from the N(0, 1)
density (``weights="normal"``), equal (``"uniform"``) or given explicitly. They are minimised
with :func:`scipy.optimize.minimize` (BFGS, analytic gradient, ``A = exp(alpha)`` so that ``A``
stays positive) from the mean-sigma solution. Because ``P*(theta) = P_new((theta - B) / A)`` the
gradient needs only the models' derivatives with respect to theta.

Items whose slope is fixed by the model (Rasch, PCM) cannot take ``a = 1 / A``: when every common
item is Rasch or PCM in both banks the Rasch metric fixes the unit, so ``A = 1`` and only ``B`` is
estimated (by every method). If ``A != 1`` and a bank being transformed still holds Rasch or PCM
items, :meth:`LinkingResult.transform` turns them into 1PL and GPCM items with ``a = 1 / A``, which
are the same response functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from calibration.errors import CalibrationError
from cat_engine.bank import FAMILY_DICHOTOMOUS, ItemBank
from cat_engine.models import category_derivatives, category_probabilities

__all__ = ["METHODS", "LinkingResult", "link"]

METHODS = ("mean-sigma", "mean-mean", "stocking-lord", "haebara")
_FIXED_SLOPE = ("rasch", "pcm")
_UNFIXED = {"rasch": "1pl", "pcm": "gpcm"}
_SHOWN = 10


@dataclass(frozen=True)
class LinkingResult:
    """The linear transformation from the new calibration's scale to the bank's.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    A, B : float
        ``theta_bank = A * theta_new + B``; ``a_bank = a_new / A``, ``b_bank = A * b_new + B``,
        thresholds likewise, ``c`` and ``d`` unchanged.
    common_items : tuple of str
        The items the constants were computed from.
    criterion : float or None
        The minimised loss (weighted mean over the theta points, weights summing to 1) for the
        Stocking-Lord and Haebara methods; ``None`` for the moment methods.
    """

    method: str
    A: float
    B: float
    common_items: tuple[str, ...]
    criterion: float | None = None

    def transform(self, bank: ItemBank) -> ItemBank:
        """Every item of ``bank`` (a calibration on the new scale) on the bank's scale.

        Rasch and PCM items become 1PL and GPCM items with ``a = 1 / A`` when ``A != 1`` (their
        slope cannot be anything but 1); content tags and ``D`` are kept.
        """
        A, B = self.A, self.B
        rescale = A != 1.0
        records = []
        for record in bank.to_records():
            record = dict(record)
            model = record["model"]
            if rescale and model in _UNFIXED:
                record["model"] = _UNFIXED[model]
            record["a"] = record.get("a", 1.0) / A
            if "thresholds" in record:
                record["thresholds"] = [A * t + B for t in record["thresholds"]]
            else:
                record["b"] = A * record["b"] + B
            records.append(record)
        return ItemBank.from_records(records, D=bank.D)

    def transform_theta(self, theta, se=None):
        """Abilities (and optionally their standard errors) from the new scale to the bank's."""
        theta = self.A * np.asarray(theta, dtype=float) + self.B
        if se is None:
            return theta
        return theta, self.A * np.asarray(se, dtype=float)


def link(
    new: ItemBank,
    reference: ItemBank,
    method: str = "stocking-lord",
    *,
    common: Sequence[str] | None = None,
    quadrature: int = 41,
    theta_range: tuple[float, float] = (-4.0, 4.0),
    weights: str | Sequence[float] | np.ndarray = "normal",
    start: tuple[float, float] | None = None,
) -> LinkingResult:
    """Estimate the transformation putting ``new`` on ``reference``'s scale.

    Parameters
    ----------
    new : ItemBank
        A calibration on its own scale (e.g. a new form with anchor items).
    reference : ItemBank
        The bank whose scale is kept.
    method : {"mean-sigma", "mean-mean", "stocking-lord", "haebara"}
    common : sequence of str, optional
        The common (anchor) items; by default every item id in both banks, in ``new``'s order.
    quadrature : int
        Number of evenly spaced theta points for the characteristic-curve methods.
    theta_range : (float, float)
        Their range, on the reference scale.
    weights : "normal", "uniform" or array of shape (quadrature,)
        Weights of the theta points (normalised to sum to 1): the N(0, 1) density, equal, or given.
    start : (A, B), optional
        Starting values of the characteristic-curve methods (default: the mean-sigma solution, or
        mean-mean when the locations do not vary).

    Returns
    -------
    LinkingResult

    Raises
    ------
    CalibrationError
        An unknown method; fewer than 2 common items (naming the count and the ids that match);
        a common item missing from one bank; a common item with a different model or number of
        categories in the two banks (naming it); banks with different ``D``; location parameters
        with no spread (mean-sigma); bad quadrature settings.
    """
    if method not in METHODS:
        raise CalibrationError(
            f"unknown linking method {method!r}: use one of {', '.join(METHODS)}"
        )
    ids = _common_items(new, reference, common)
    if new.D != reference.D:
        raise CalibrationError(
            f"the banks use different scaling constants (D = {new.D} and {reference.D}): put both "
            "on the same metric before linking"
        )
    i_new, i_ref = new.indices_of(ids), reference.indices_of(ids)
    for j, item_id in enumerate(ids):
        m_new, m_ref = str(new.models[i_new[j]]), str(reference.models[i_ref[j]])
        if m_new != m_ref:
            raise CalibrationError(
                f"common item {item_id!r} has model {m_new!r} in the new calibration but "
                f"{m_ref!r} in the reference bank"
            )
        k_new, k_ref = int(new.n_categories[i_new[j]]), int(reference.n_categories[i_ref[j]])
        if k_new != k_ref:
            raise CalibrationError(
                f"common item {item_id!r} has {k_new} categories in the new calibration but "
                f"{k_ref} in the reference bank"
            )
    fixed = all(str(reference.models[i]) in _FIXED_SLOPE for i in i_ref)

    b_new, b_ref = _locations(new, i_new), _locations(reference, i_ref)
    sd_new, sd_ref = b_new.std(), b_ref.std()
    spread = bool(sd_new > 0 and sd_ref > 0)
    if fixed:
        A = 1.0
    elif method == "mean-sigma" or (method != "mean-mean" and spread):
        if not spread:
            raise CalibrationError(
                "the location parameters of the common items do not vary in one of the banks: "
                "mean-sigma cannot be computed (link with mean-mean)"
            )
        A = float(sd_ref / sd_new)
    else:  # mean-mean, and the start of the curve methods when the locations do not vary
        A = float(new.a[i_new].mean() / reference.a[i_ref].mean())
    B = float(b_ref.mean() - A * b_new.mean())
    if method in ("mean-sigma", "mean-mean"):
        return LinkingResult(method, A, B, ids, None)

    if start is not None:
        try:
            A, B = (float(v) for v in start)
        except (TypeError, ValueError):
            raise CalibrationError(f"start must be a pair (A, B), got {start!r}") from None
        if not (math.isfinite(A) and math.isfinite(B) and A > 0):
            raise CalibrationError(f"start must be finite with A > 0, got {start!r}")
        A = 1.0 if fixed else A
    points, w = _points_and_weights(quadrature, theta_range, weights)
    loss = _CurveLoss(new, reference, i_new, i_ref, points, w, haebara=method == "haebara")
    if fixed:
        result = optimize.minimize(
            lambda x: loss(0.0, x[0], slope=False),
            np.array([B]),
            jac=True,
            method="BFGS",
            options={"gtol": 1e-12, "maxiter": 500},
        )
        A, B = 1.0, float(result.x[0])
    else:
        result = optimize.minimize(
            lambda x: loss(x[0], x[1]),
            np.array([math.log(A), B]),
            jac=True,
            method="BFGS",
            options={"gtol": 1e-12, "maxiter": 500},
        )
        A, B = float(math.exp(result.x[0])), float(result.x[1])
    if not (math.isfinite(A) and math.isfinite(B) and A > 0):
        raise CalibrationError(f"{method} linking did not converge: {result.message}")
    criterion = float(loss(math.log(A), B, slope=not fixed)[0])
    return LinkingResult(method, A, B, ids, criterion)


# -- helpers ---------------------------------------------------------------------------------


def _common_items(
    new: ItemBank, reference: ItemBank, common: Sequence[str] | None
) -> tuple[str, ...]:
    in_ref = set(reference.item_ids)
    if common is None:
        ids = tuple(i for i in new.item_ids if i in in_ref)
    else:
        if isinstance(common, str):
            raise CalibrationError("common must be a sequence of item ids, not one string")
        ids = tuple(str(i) for i in common)
        seen: set[str] = set()
        repeated = sorted({i for i in ids if i in seen or seen.add(i)})
        if repeated:
            raise CalibrationError(f"common items listed more than once: {_names(repeated)}")
        in_new = set(new.item_ids)
        for where, present in (("the new calibration", in_new), ("the reference bank", in_ref)):
            missing = [i for i in ids if i not in present]
            if missing:
                raise CalibrationError(f"common items not in {where}: {_names(missing)}")
    if len(ids) < 2:
        which = f": only {_names(ids)} matches" if ids else ": no item id matches"
        raise CalibrationError(
            f"linking needs at least 2 common items, found {len(ids)}{which} "
            f"(new calibration has {len(new)} items, reference bank {len(reference)})"
        )
    return ids


def _names(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:_SHOWN])
    return shown + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


def _locations(bank: ItemBank, items: np.ndarray) -> np.ndarray:
    """Every location parameter of ``items``: b of dichotomous items, thresholds of the rest."""
    thresholds = bank.thresholds[items]
    dichotomous = bank.family[items] == FAMILY_DICHOTOMOUS
    thresholds = np.where(dichotomous[:, None], np.nan, thresholds)
    thresholds[dichotomous, 0] = bank.b[items][dichotomous]
    return thresholds[~np.isnan(thresholds)]


def _points_and_weights(quadrature, theta_range, weights) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(quadrature, bool) or not isinstance(quadrature, (int, np.integer)):
        raise CalibrationError(f"quadrature must be an integer, got {quadrature!r}")
    if quadrature < 2:
        raise CalibrationError(f"quadrature must be at least 2 points, got {quadrature}")
    try:
        lo, hi = (float(v) for v in theta_range)
    except (TypeError, ValueError):
        raise CalibrationError(
            f"theta_range must be a pair (lo, hi), got {theta_range!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise CalibrationError(f"theta_range must be finite with lo < hi, got {theta_range!r}")
    points = np.linspace(lo, hi, int(quadrature))
    if isinstance(weights, str):
        if weights == "normal":
            w = np.exp(-0.5 * points * points)
        elif weights == "uniform":
            w = np.ones_like(points)
        else:
            raise CalibrationError(
                f"weights must be 'normal', 'uniform' or an array, got {weights!r}"
            )
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != points.shape:
            raise CalibrationError(
                f"weights must have one value per quadrature point ({points.size}), got shape "
                f"{w.shape}"
            )
        if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise CalibrationError("weights must be finite, non-negative and not all zero")
    return points, w / w.sum()


class _CurveLoss:
    """Stocking-Lord or Haebara loss and its gradient in (log A, B).

    With ``theta* = (theta - B) / A`` the transformed new curves are the new curves at ``theta*``,
    so ``dP*/dlog A = -P'(theta*) theta*`` and ``dP*/dB = -P'(theta*) / A``.
    """

    def __init__(self, new, reference, i_new, i_ref, points, weights, *, haebara: bool) -> None:
        self.new, self.i_new, self.points, self.w, self.haebara = (
            new,
            i_new,
            points,
            weights,
            haebara,
        )
        p_ref = category_probabilities(reference, i_ref[None, :], points[:, None])  # (Q, n, K)
        self.scores = np.arange(p_ref.shape[-1], dtype=float)
        self.target = p_ref if haebara else p_ref @ self.scores  # (Q, n, K) or (Q, n)
        if not haebara:
            self.target = self.target.sum(axis=-1)  # (Q,)

    def __call__(self, log_a: float, b: float, slope: bool = True):
        A = math.exp(log_a)
        star = (self.points - b) / A
        p, dp = category_derivatives(self.new, self.i_new[None, :], star[:, None], order=1)
        if self.haebara:
            residual = p - self.target  # (Q, n, K)
            value = float(self.w @ (residual * residual).sum(axis=(1, 2)))
            g = 2.0 * (residual * dp).sum(axis=(1, 2))  # dF_q / dtheta*
        else:
            residual = (p @ self.scores).sum(axis=-1) - self.target  # (Q,)
            value = float(self.w @ (residual * residual))
            g = 2.0 * residual * (dp @ self.scores).sum(axis=-1)
        d_b = -float(self.w @ g) / A
        if not slope:
            return value, np.array([d_b])
        d_log_a = -float(self.w @ (g * star))
        return value, np.array([d_log_a, d_b])
