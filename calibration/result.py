"""The outcome of a calibration run: estimated item parameters with their standard errors and fit.

A :class:`CalibrationResult` is immutable. It carries everything needed to review and record the
run: the estimated bank (anchors included, unchanged), standard errors, which items were held fixed,
the marginal log-likelihood with AIC and BIC, convergence, the latent distribution, and every
setting used. Publishing the parameters to the item bank is a separate step taken elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cat_engine.bank import FAMILY_DICHOTOMOUS, ItemBank


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """Item parameters estimated from response data, with their precision and the model's fit.

    Attributes
    ----------
    bank : ItemBank
        Estimated (and fixed) item parameters; item ids are the data's items, in the data's order.
    se : dict of str to ndarray
        Standard errors: ``"a"``, ``"b"``, ``"c"``, ``"d"`` of shape (J,) and ``"thresholds"`` of
        shape (J, K - 1) (column 0 holds ``b`` for dichotomous items, as in the bank). NaN where
        a parameter is not estimated (fixed items, ``a`` of Rasch and PCM items, ``c`` of non-3PL
        items, ``d`` always) or not applicable.
    fixed : ndarray of bool, shape (J,)
        Items whose parameters were held fixed (anchors).
    n_responses : ndarray of int, shape (J,)
        Responses to each item.
    log_likelihood : float
        Marginal log-likelihood of the data at the estimates (priors not included).
    n_parameters : int
        Free parameters, including a common slope and the latent mean and sd when estimated.
    aic, bic : float
        ``-2 logL + 2 k`` and ``-2 logL + k log(N)`` with ``N`` the number of persons.
    iterations : int
        EM cycles run (0 when the backend does not report them).
    converged : bool
    latent_mean, latent_sd : float
        The latent (ability) distribution, normal, on the scale of the result.
    settings : dict
        Every setting used: model, priors, tolerance, quadrature, backend, standard-error method...
    seconds : float
        Wall-clock time of the run.
    n_persons : int
        Persons with at least one response (the ``N`` of BIC).
    fit : tuple of dict, or None
        Item fit per item (S-X2, infit, outfit, flags; see :func:`calibration.fit.item_fit`),
        when requested with ``calibrate(..., fit=True)``.
    """

    bank: ItemBank
    se: dict[str, np.ndarray]
    fixed: np.ndarray
    n_responses: np.ndarray
    log_likelihood: float
    n_parameters: int
    aic: float
    bic: float
    iterations: int
    converged: bool
    latent_mean: float
    latent_sd: float
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    n_persons: int = 0
    fit: tuple[dict, ...] | None = None

    def to_records(self) -> list[dict[str, Any]]:
        """One flat record per item, for ``PARAMS.csv``.

        Keys, the same in every record: ``item_id, model, a, b, c, d, b1..bk, se_a, se_b, se_c,
        se_b1..se_bk, fixed, n_responses``. Values that do not apply (``b, c, d`` of polytomous
        items, ``b1..bk`` of dichotomous ones, standard errors of fixed parameters) are ``None``,
        so that the records load back with :meth:`ItemBank.from_records`.
        """
        bank = self.bank
        n_thresholds = bank.max_categories - 1
        polytomous = bank.family != FAMILY_DICHOTOMOUS
        records = []
        for j, item_id in enumerate(bank.item_ids):
            poly = bool(polytomous[j])
            record: dict[str, Any] = {"item_id": item_id, "model": str(bank.models[j])}
            record["a"] = float(bank.a[j])
            for key in ("b", "c", "d"):
                record[key] = None if poly else float(getattr(bank, key)[j])
            for k in range(n_thresholds):
                value = bank.thresholds[j, k] if poly else math.nan
                record[f"b{k + 1}"] = _number(value)
            record["se_a"] = _number(self.se["a"][j])
            record["se_b"] = None if poly else _number(self.se["b"][j])
            record["se_c"] = None if poly else _number(self.se["c"][j])
            for k in range(n_thresholds):
                value = self.se["thresholds"][j, k] if poly and k < self.se[
                    "thresholds"].shape[1] else math.nan
                record[f"se_b{k + 1}"] = _number(value)
            record["fixed"] = bool(self.fixed[j])
            record["n_responses"] = int(self.n_responses[j])
            records.append(record)
        return records

    def summary(self) -> dict[str, Any]:
        """The run in a few numbers: fit, convergence, time, latent distribution and size."""
        return {
            "log_likelihood": float(self.log_likelihood),
            "aic": float(self.aic),
            "bic": float(self.bic),
            "n_parameters": int(self.n_parameters),
            "iterations": int(self.iterations),
            "converged": bool(self.converged),
            "seconds": float(self.seconds),
            "latent_mean": float(self.latent_mean),
            "latent_sd": float(self.latent_sd),
            "n_items": len(self.bank),
            "n_fixed": int(np.count_nonzero(self.fixed)),
            "n_persons": int(self.n_persons),
        }


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
