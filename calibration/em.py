"""Marginal maximum likelihood calibration of item parameters by EM (Bock & Aitkin, 1981).

One EM cycle is a few matrix products, whatever the design (complete tests or sparse CAT data).

E-step
    ``C`` is the persons x categories indicator of the responses (one column per category of
    each item; ``scipy.sparse``, or a dense float32 array when the data are dense enough for
    BLAS). With ``logP`` the (categories x Q) table of log category probabilities at the Q
    quadrature nodes, ``C @ logP`` (P x Q) is every person's log-likelihood at every node; adding
    the log latent weights and normalising each row gives the posterior, and ``C.T @ posterior``
    the expected count of every category at every node. No dense persons x items matrix and no
    observations x Q array is built. With complete data each item's most frequent category is
    left out of ``C`` (its counts follow from the totals): half the work for dichotomous tests.
    E-steps run in float32 until parameters change by less than 2e-3, then in float64 (so the
    last cycles, the reported log-likelihood and the standard errors are in double precision).
M-step
    Items are estimated in slope-intercept form, ``z = alpha theta + delta`` with
    ``alpha = D a``, all items of one model at once, by one Fisher-scoring step per cycle with
    step halving on the expected complete-data log-likelihood plus log-priors (a generalised EM:
    every cycle improves it). 1PL items share one slope, solved jointly with their intercepts
    through the Schur complement. 3PL lower asymptotes are estimated as ``logit c``, with a Beta
    prior by default (maximum a posteriori, as "EM with priors" in mirt).
Latent distribution
    Normal, on ``quadrature`` equally spaced nodes on [-6, 6] with weights proportional to its
    density. N(0, 1) identifies the scale of free-slope models; Rasch and PCM estimate the sd; with
    anchors (fixed-parameter calibration) mean and sd are re-estimated every cycle from the
    posterior moments on the anchors' scale: Kim's (2006) multiple-weights-updating, multiple-EM-
    cycles (MWU-MEM) method. Moments fixed only for identification are expanded (PX-EM, Liu, Rubin
    & Wu 1998): estimated each cycle, then the items are mapped back onto the identified scale,
    which turns the slow direction of EM (every item shifting or stretching together) from
    hundreds of cycles into a few.
Standard errors
    From the cross-product (XPD, empirical) information: the sum over persons of the outer products
    of their observed-data scores (Fisher's identity: posterior expectations of the complete-data
    scores), plus the curvature of the log-priors; then the delta method from slope-intercept to
    ``a, b, c, thresholds``. The whole matrix is inverted when it has at most 1500 parameters and
    the work is moderate; beyond, item blocks bordered by the shared parameters (common slope,
    latent mean and sd) are inverted through the Schur complement, which ignores covariances
    between items and makes standard errors somewhat small (about 5-10 % for ``b`` in dense
    designs; ``settings["se_method"]`` says which was used). The inverse of the M-step Hessian
    would ignore the information lost to not knowing theta and be far too small.
Convergence
    The largest absolute change of a free slope-intercept parameter (or of the latent mean or sd)
    in one cycle below ``tolerance``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse
from scipy.special import expit, log_expit, logit, logsumexp

from calibration.data import ResponseData
from calibration.errors import CalibrationError
from calibration.result import CalibrationResult
from cat_engine import models as irt
from cat_engine.bank import ItemBank, ItemParameters
from cat_engine.errors import CATError

ESTIMABLE_MODELS = ("rasch", "1pl", "2pl", "3pl", "grm", "gpcm", "pcm")
GIRTH_MODELS = ("rasch", "1pl", "2pl", "grm", "gpcm")
BACKENDS = ("em", "girth")
DICHOTOMOUS = frozenset({"rasch", "1pl", "2pl", "3pl"})
FIXED_SLOPE = frozenset({"rasch", "pcm"})
FREE_SLOPE = frozenset({"2pl", "3pl", "grm", "gpcm"})
DEFAULT_PRIORS: dict[str, tuple] = {"c": ("beta", 5.0, 17.0)}
PRIOR_KINDS = {"a": ("lognormal", "normal"), "b": ("normal",), "c": ("beta",)}
QUADRATURE_RANGE = (-6.0, 6.0)
MIN_RESPONSES = 10
#: Upper bounds on what a caller may ask for: quadrature nodes (49 by default) and EM cycles.
MAX_QUADRATURE = 201
MAX_ITERATIONS = 10_000

_SHOWN = 8
_DENSE_BYTES = 2**27  # largest float32 indicator matrix kept dense for BLAS (128 MB)
_DENSE_DENSITY = 0.15  # ... and the smallest fraction of non-zeros for it
_FULL_XPD_PARAMS = 1500  # invert the whole cross-product information up to this many parameters
_FULL_XPD_BYTES = 2**28
_FULL_XPD_WORK = 2e9  # sum over persons of (parameters informed)^2 for the full cross-product
_CHUNK = 1 << 16
_DOUBLE_BELOW = 2e-3  # E-steps run in float64 once parameters change by less than this
_GAMMA_BOUND = 15.0  # |logit c| (c between 3e-7 and 1 - 3e-7)


def calibrate(
    data: ResponseData,
    model: str | Mapping[str, str] = "2pl",
    *,
    fixed: ItemBank | None = None,
    estimate_latent: bool | None = None,
    priors: Mapping | None = None,
    quadrature: int = 49,
    max_iterations: int = 500,
    tolerance: float = 1e-4,
    backend: str = "em",
    D: float = 1.0,
    progress: Callable[[int, float], None] | None = None,
    min_responses: int = MIN_RESPONSES,
    fit: bool = False,
) -> CalibrationResult:
    """Estimate item parameters by marginal maximum likelihood (EM), on sparse or dense data.

    Parameters
    ----------
    data : ResponseData
        The responses (categories 0..m; 0/1 for dichotomous items).
    model : str or mapping of item id to str
        ``rasch``, ``1pl``, ``2pl``, ``3pl``, ``grm``, ``gpcm`` or ``pcm`` for every item, or one
        per item (mixed models in one run; anchors take their model from ``fixed``).
    fixed : ItemBank, optional
        Anchor items: those of the data whose id is in this bank keep its parameters exactly; the
        others (pretest items) are estimated on the anchors' scale. Bank items absent from the data
        are ignored. The bank's ``D`` must equal ``D``.
    estimate_latent : bool, optional
        Re-estimate the latent distribution each cycle. Default: mean and sd with anchors; without
        anchors the sd when some item has a fixed slope (Rasch, PCM; the mean stays 0), else nothing
        (N(0, 1) identifies the scale). ``False`` keeps N(0, 1); ``True`` without anchors estimates
        the sd and needs a fixed-slope item.
    priors : mapping, optional
        Penalties of the M-step (maximum a posteriori, as "EM with priors" in mirt):
        ``{"a": ("lognormal", mu, sigma) or ("normal", mean, sd), "b": ("normal", mean, sd),
        "c": ("beta", alpha, beta)}``; ``None`` as a value removes a prior. Default: ``c`` of 3PL
        items ~ Beta(5, 17). ``a`` applies to estimated slopes (a 1PL common slope too), ``b`` to
        dichotomous difficulties, ``c`` to 3PL asymptotes.
    quadrature : int
        Number of equally spaced nodes on [-6, 6].
    max_iterations, tolerance : int, float
        EM stops when the largest change of a free (slope-intercept) parameter is below
        ``tolerance``, or after ``max_iterations`` cycles (then ``converged`` is False).
    backend : str
        ``"em"`` (this module) or ``"girth"`` (girth's marginal ML for rasch, 1pl, 2pl, grm and
        gpcm on the dense matrix; no anchors, priors or standard errors).
    D : float
        Scaling constant multiplying ``a``.
    progress : callable, optional
        Called as ``progress(iteration, log_likelihood)`` after every E-step.
    min_responses : int
        Fewest responses an estimated item may have.
    fit : bool
        Also compute item fit (S-X2 on complete data, infit and outfit) at the estimates, into
        ``result.fit``. Off by default: it costs about as much as the calibration itself.

    Raises
    ------
    CalibrationError
        Unknown models or settings, or items that cannot be estimated, naming them: a category above
        1 for a dichotomous model, an unobserved category inside a polytomous item's range, no
        variance, too few responses, an estimated slope that is not positive.
    """
    started = time.perf_counter()
    if backend not in BACKENDS:
        raise CalibrationError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if not (isinstance(quadrature, int | np.integer) and 5 <= quadrature <= MAX_QUADRATURE):
        raise CalibrationError(f"quadrature must be an integer from 5 to {MAX_QUADRATURE}, got "
                               f"{quadrature!r}")
    if not (isinstance(max_iterations, int | np.integer)
            and 1 <= max_iterations <= MAX_ITERATIONS):
        raise CalibrationError(f"max_iterations must be an integer from 1 to {MAX_ITERATIONS:,}, "
                               f"got {max_iterations!r}")
    if not (tolerance > 0):
        raise CalibrationError(f"tolerance must be positive, got {tolerance!r}")
    if not (math.isfinite(D) and D > 0):
        raise CalibrationError(f"D must be a positive number, got {D!r}")
    problem = _Problem.build(data, model, fixed, D, min_responses)
    latent_mode = _latent_mode(problem, estimate_latent)
    settings = {
        "model": model if isinstance(model, str) else dict(model),
        "backend": backend,
        "D": float(D),
        "quadrature": {"nodes": int(quadrature), "range": list(QUADRATURE_RANGE),
                       "rule": "equally spaced, weights proportional to the normal density"},
        "max_iterations": int(max_iterations),
        "tolerance": float(tolerance),
        "convergence": "largest absolute change of a free slope-intercept parameter "
                       "(alpha = D a, intercepts, logit c) or of the latent mean/sd",
        "estimate_latent": latent_mode,
        "min_responses": int(min_responses),
        "n_fixed": int(problem.fixed_mask.sum()),
    }
    if backend == "girth":
        result = _girth(problem, priors, latent_mode, quadrature, max_iterations, settings,
                        started)
    else:
        prior = _Priors.build(priors)
        settings["priors"] = prior.describe()
        result = _run_em(problem, prior, latent_mode, quadrature, max_iterations, tolerance,
                         progress, settings, started)
    if not fit:
        return result
    from calibration.fit import item_fit, n_item_parameters

    n_parameters = n_item_parameters(result.bank, np.arange(len(result.bank)))
    n_parameters[result.fixed] = 0  # anchors' parameters were not estimated from these data
    statistics = item_fit(data, result.bank, latent=(result.latent_mean, result.latent_sd),
                          quadrature=quadrature, n_parameters=n_parameters,
                          estimated_latent=latent_mode)
    return replace(result, fit=tuple(statistics), settings={**result.settings, "fit": True})


# -- the problem: items, models, columns, validation --------------------------------------------


@dataclass
class _Problem:
    data: ResponseData
    D: float
    models: np.ndarray  # (J,) model name of every item (anchors: the bank's)
    n_cat: np.ndarray  # (J,) categories of every item (anchors: the bank's)
    fixed_mask: np.ndarray  # (J,) bool
    fixed_bank: ItemBank | None
    fixed_index: np.ndarray  # (J,) position in fixed_bank, -1 for estimated items
    offsets: np.ndarray  # (J + 1,) first flat category column of each item
    counts: np.ndarray  # (J,) responses per item
    person: np.ndarray  # (n_obs,) active-person index of each observation
    n_persons: int  # persons with at least one response

    @property
    def n_items(self) -> int:
        return self.models.size

    @property
    def n_cols(self) -> int:
        return int(self.offsets[-1])

    @property
    def columns(self) -> np.ndarray:
        """(n_obs,) flat category column of each observation."""
        return self.offsets[self.data.item] + self.data.response

    @classmethod
    def build(cls, data: ResponseData, model, fixed: ItemBank | None, D: float,
              min_responses: int) -> _Problem:
        if not isinstance(data, ResponseData):
            raise CalibrationError("data must be a ResponseData (see calibration.data)")
        if data.n_obs == 0:
            raise CalibrationError("no responses: the data are empty")
        item_ids = data.item_ids
        n_items = len(item_ids)
        fixed_index = np.full(n_items, -1, dtype=np.intp)
        if fixed is not None:
            if not isinstance(fixed, ItemBank):
                raise CalibrationError("fixed must be an ItemBank of anchor items")
            if not math.isclose(fixed.D, D):
                raise CalibrationError(
                    f"the anchor bank uses D = {fixed.D:g} but the calibration D = {D:g}: "
                    "calibrate with the bank's D"
                )
            for j, item_id in enumerate(item_ids):
                fixed_index[j] = fixed._index.get(item_id, -1)
        fixed_mask = fixed_index >= 0
        models = _item_models(model, item_ids, fixed_mask)
        if fixed is not None:
            models[fixed_mask] = fixed.models[fixed_index[fixed_mask]]
        counts = data.counts_per_item()
        top = data.n_categories - 1  # highest observed category (0 for unanswered items)
        width = int(top.max()) + 1
        per_category = np.bincount(data.item * width + data.response,
                                   minlength=n_items * width).reshape(n_items, width)
        problems: list[str] = []
        free = ~fixed_mask
        few = np.flatnonzero(free & (counts < min_responses))
        if few.size:
            problems.append(
                f"fewer than {min_responses} responses (needed to estimate an item): "
                + _names([f"{item_ids[j]!r} ({counts[j]})" for j in few])
            )
        dich = np.isin(models, list(DICHOTOMOUS)) & free
        above = np.flatnonzero(dich & (top > 1))
        if above.size:
            problems.append(
                "categories above 1 for a dichotomous model (responses must be 0/1): "
                + _names([f"{item_ids[j]!r} (category {top[j]})" for j in above])
            )
        gaps = []
        varied = per_category.max(1) < counts
        for j in np.flatnonzero(free & (counts >= 1) & varied):
            missing = np.flatnonzero(per_category[j, : top[j] + 1] == 0)
            if missing.size and not (dich[j] and top[j] > 1):
                shown = ", ".join(str(k) for k in missing)
                gaps.append(f"{item_ids[j]!r} (category {shown} of 0..{top[j]})")
        if gaps:
            problems.append(
                "categories never observed inside an item's range (merge or recode them): "
                + _names(gaps)
            )
        constant = np.flatnonzero(free & (counts >= 1) & (per_category.max(1) == counts))
        if constant.size:
            problems.append(
                "no variance (every response in the same category): "
                + _names([f"{item_ids[j]!r} (all {int(per_category[j].argmax())})"
                          for j in constant])
            )
        n_cat = np.where(dich, 2, np.maximum(top + 1, 2))
        if fixed is not None:
            bank_cat = fixed.n_categories[fixed_index[fixed_mask]]
            n_cat[fixed_mask] = bank_cat
            over = np.flatnonzero(fixed_mask)[top[fixed_mask] > bank_cat - 1]
            if over.size:
                problems.append(
                    "responses above the anchor's categories: " + _names(
                        [f"{item_ids[j]!r} (category {top[j]}, the bank has "
                         f"0..{fixed.n_categories[fixed_index[j]] - 1})" for j in over])
                )
        if problems:
            raise CalibrationError("cannot calibrate: " + "; ".join(problems))
        offsets = np.concatenate([[0], np.cumsum(n_cat)]).astype(np.intp)
        answered = np.zeros(data.n_persons, dtype=bool)
        answered[data.person] = True
        active = np.cumsum(answered) - 1
        return cls(data=data, D=float(D), models=models, n_cat=n_cat.astype(np.intp),
                   fixed_mask=fixed_mask, fixed_bank=fixed, fixed_index=fixed_index,
                   offsets=offsets, counts=counts, person=active[data.person].astype(np.intp),
                   n_persons=int(answered.sum()))


def _item_models(model, item_ids: tuple[str, ...], fixed_mask: np.ndarray) -> np.ndarray:
    if isinstance(model, str):
        name = model.strip().lower()
        if name not in ESTIMABLE_MODELS:
            raise CalibrationError(
                f"unknown model {model!r}: use one of {', '.join(ESTIMABLE_MODELS)}"
            )
        return np.array([name] * len(item_ids), dtype=object)
    if not isinstance(model, Mapping):
        raise CalibrationError("model must be a model name or a mapping of item id to model name")
    names = {str(k): str(v).strip().lower() for k, v in model.items()}
    unknown = sorted({(k, v) for k, v in names.items() if v not in ESTIMABLE_MODELS})
    if unknown:
        raise CalibrationError(
            f"unknown model(s) {_names([f'{v!r} (item {k!r})' for k, v in unknown])}: use one of "
            + ", ".join(ESTIMABLE_MODELS)
        )
    missing = [i for j, i in enumerate(item_ids) if i not in names and not fixed_mask[j]]
    if missing:
        raise CalibrationError(f"no model given for item(s) {_names([repr(i) for i in missing])}")
    return np.array([names.get(i, "") for i in item_ids], dtype=object)


def _latent_mode(problem: _Problem, estimate: bool | None) -> str:
    """``"none"`` (N(0, 1)), ``"sd"`` (mean 0) or ``"mean_sd"``."""
    anchored = bool(problem.fixed_mask.any())
    free_models = set(problem.models[~problem.fixed_mask])
    slope_fixed = bool(free_models & FIXED_SLOPE)
    if estimate is None:
        return "mean_sd" if anchored else ("sd" if slope_fixed else "none")
    if not estimate:
        return "none"
    if anchored:
        return "mean_sd"
    if not slope_fixed:
        raise CalibrationError(
            "the latent distribution cannot be estimated without anchor items (fixed=...) or an "
            "item with a fixed slope (rasch, pcm): the scale would not be identified"
        )
    return "sd"


def _names(things: list[str]) -> str:
    shown = ", ".join(things[:_SHOWN])
    return shown + (f" and {len(things) - _SHOWN} more" if len(things) > _SHOWN else "")


# -- priors ---------------------------------------------------------------------------------


@dataclass
class _Priors:
    a: tuple | None
    b: tuple | None
    c: tuple | None

    @classmethod
    def build(cls, priors: Mapping | None) -> _Priors:
        merged: dict[str, tuple | None] = dict(DEFAULT_PRIORS)
        if priors is not None:
            if not isinstance(priors, Mapping):
                raise CalibrationError("priors must be a mapping such as {'c': ('beta', 5, 17)}")
            for key, value in priors.items():
                if key not in PRIOR_KINDS:
                    raise CalibrationError(
                        f"unknown prior {key!r}: priors may be set on {', '.join(PRIOR_KINDS)}"
                    )
                merged[key] = None if value is None else _prior_spec(key, value)
        return cls(merged.get("a"), merged.get("b"), merged.get("c"))

    def describe(self) -> dict:
        return {k: (None if v is None else list(v)) for k, v in
                (("a", self.a), ("b", self.b), ("c", self.c))}

    @property
    def active(self) -> bool:
        return any(p is not None for p in (self.a, self.b, self.c))

    def terms(self, model: str, params: np.ndarray, D: float):
        """Log-prior, its gradient and a negative (semi)definite curvature in the internal
        parameters ``[alpha, intercepts..., gamma]`` of items of ``model`` (shape (J, p))."""
        j, p = params.shape
        value = np.zeros(j)
        grad = np.zeros((j, p))
        hess = np.zeros((j, p, p))
        alpha = params[:, 0]
        if self.a is not None and model in FREE_SLOPE | {"1pl"}:
            kind, m, s = self.a
            a = alpha / D
            # 1PL items share one slope: its prior counts once, spread over the items
            share = 1.0 / max(j, 1) if model == "1pl" else 1.0
            if kind == "lognormal":
                safe = np.maximum(a, 1e-12)
                la = np.log(safe)
                value += share * (-la - (la - m) ** 2 / (2 * s * s))
                grad[:, 0] += share * (-1.0 - (la - m) / (s * s)) / np.maximum(alpha, 1e-12)
                hess[:, 0, 0] += -share / (s * s * np.maximum(alpha, 1e-12) ** 2)
            else:
                value += -share * ((a - m) ** 2) / (2 * s * s)
                grad[:, 0] += -share * (a - m) / (s * s * D)
                hess[:, 0, 0] += -share / (s * s * D * D)
        if self.b is not None and model in DICHOTOMOUS:
            _, m, s = self.b
            b = -params[:, 1] / alpha
            gb = -(b - m) / (s * s)
            db = np.stack([-b / alpha, -1.0 / alpha], axis=1)  # d b / d (alpha, delta)
            value += -((b - m) ** 2) / (2 * s * s)
            grad[:, :2] += gb[:, None] * db
            hess[:, :2, :2] += -(db[:, :, None] * db[:, None, :]) / (s * s)
        if self.c is not None and model == "3pl":
            _, alpha_c, beta_c = self.c
            gamma = params[:, 2]
            c = expit(gamma)
            value += (alpha_c - 1) * log_expit(gamma) + (beta_c - 1) * log_expit(-gamma)
            grad[:, 2] += (alpha_c - 1) * (1 - c) - (beta_c - 1) * c
            hess[:, 2, 2] += -(alpha_c + beta_c - 2) * c * (1 - c)
        return value, grad, hess


def _prior_spec(key: str, value) -> tuple:
    try:
        kind, p1, p2 = value
        kind = str(kind).lower()
        p1, p2 = float(p1), float(p2)
    except (TypeError, ValueError):
        raise CalibrationError(
            f"prior on {key!r} must be (kind, parameter, parameter), got {value!r}"
        ) from None
    if kind not in PRIOR_KINDS[key]:
        raise CalibrationError(
            f"prior on {key!r} must be one of {', '.join(PRIOR_KINDS[key])}, got {kind!r}"
        )
    if kind == "beta" and not (p1 >= 1 and p2 >= 1):
        raise CalibrationError(f"beta prior on {key!r} needs both shapes >= 1, got {value!r}")
    if kind in ("normal", "lognormal") and not (p2 > 0 and math.isfinite(p1)):
        raise CalibrationError(f"{kind} prior on {key!r} needs a positive sd, got {value!r}")
    return (kind, p1, p2)


# -- models in slope-intercept form ----------------------------------------------------------


def _terms(model: str, params: np.ndarray, nodes: np.ndarray, derivatives: bool = True):
    """log P (J, K, Q) and, optionally, d log P / d params (J, K, p, Q).

    ``params`` (J, p): ``[alpha, delta]`` (+ ``gamma = logit c`` for 3PL) for dichotomous items,
    ``[alpha, delta_1..delta_m]`` with ``P*_k = expit(alpha theta + delta_k)`` for the GRM,
    ``[alpha, d_1..d_m]`` with ``z_k = k alpha theta + d_k`` for the (G)PCM.
    """
    alpha = params[:, :1]
    if model in DICHOTOMOUS:
        z = alpha * nodes + params[:, 1:2]
        if model == "3pl":
            gamma = params[:, 2:3]
            log_c, log_1mc = log_expit(gamma), log_expit(-gamma)
            log_p1 = np.logaddexp(log_c, log_1mc + log_expit(z))
            log_p0 = log_1mc + log_expit(-z)
        else:
            log_p1, log_p0 = log_expit(z), log_expit(-z)
        log_p = np.stack([log_p0, log_p1], axis=1)
        if not derivatives:
            return log_p, None
        psi = expit(z)
        dlog = np.zeros((*log_p.shape[:2], params.shape[1], nodes.size))
        if model == "3pl":
            c = expit(gamma)
            p1 = np.exp(log_p1)
            dz1 = (1 - c) * psi * (1 - psi) / p1
            dlog[:, 1, 2] = (1 - psi) * c * (1 - c) / p1
            dlog[:, 0, 2] = -c
        else:
            dz1 = 1 - psi
        dz0 = -psi
        dlog[:, 1, 0], dlog[:, 1, 1] = dz1 * nodes, dz1
        dlog[:, 0, 0], dlog[:, 0, 1] = dz0 * nodes, dz0
        return log_p, dlog
    if model == "grm":
        j, m = params.shape[0], params.shape[1] - 1
        z = alpha[:, :, None] * nodes + params[:, 1:, None]  # (J, m, Q)
        inf = np.full((j, 1, nodes.size), np.inf)
        zp = np.concatenate([inf, z, -inf], axis=1)  # (J, m + 2, Q)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_p = (log_expit(zp[:, :-1]) + log_expit(-zp[:, 1:])
                     + np.log(-np.expm1(zp[:, 1:] - zp[:, :-1])))
        if not derivatives:
            return log_p, None
        star = expit(zp)
        w = star * (1 - star)  # (J, m + 2, Q), 0 at both ends
        p = np.exp(log_p)
        dp = np.zeros((j, m + 1, m + 1, nodes.size))
        dp[:, :, 0] = nodes * (w[:, :-1] - w[:, 1:])
        h = np.arange(1, m + 1)
        dp[:, h, h] = w[:, h]
        dp[:, h - 1, h] = -w[:, h]
        with np.errstate(invalid="ignore", divide="ignore"):
            dlog = np.where(p[:, :, None] > 1e-300, dp / p[:, :, None], 0.0)
        return log_p, dlog
    # gpcm / pcm
    m = params.shape[1] - 1
    k = np.arange(m + 1, dtype=float)
    d = np.concatenate([np.zeros((params.shape[0], 1)), params[:, 1:]], axis=1)
    z = k[None, :, None] * (alpha[:, :, None] * nodes) + d[:, :, None]  # (J, K, Q)
    log_p = z - logsumexp(z, axis=1, keepdims=True)
    if not derivatives:
        return log_p, None
    p = np.exp(log_p)
    mean = (p * k[None, :, None]).sum(1)  # (J, Q)
    dlog = np.empty((*log_p.shape[:2], m + 1, nodes.size))
    dlog[:, :, 0] = nodes * (k[None, :, None] - mean[:, None, :])
    dlog[:, :, 1:] = (np.eye(m + 1)[None, :, 1:, None] - p[:, None, 1:, :])
    return log_p, dlog


def _free_columns(model: str, p: int) -> np.ndarray:
    """Internal parameters estimated per item (1PL's slope is shared, handled apart)."""
    if model in FIXED_SLOPE or model == "1pl":
        return np.arange(1, p)
    return np.arange(p)


@dataclass
class _Group:
    model: str
    items: np.ndarray  # (J_g,) data item positions
    cols: np.ndarray  # (J_g, K) flat category columns
    params: np.ndarray  # (J_g, p) internal parameters
    free: np.ndarray  # per-item free columns of params

    @property
    def shared_slope(self) -> bool:
        return self.model == "1pl"


def _initial_groups(problem: _Problem, prior: _Priors) -> list[_Group]:
    data, D = problem.data, problem.D
    width = int(problem.n_cat.max())
    per_category = np.bincount(data.item * width + data.response,
                               minlength=problem.n_items * width).reshape(-1, width).astype(float)
    groups = []
    free_items = np.flatnonzero(~problem.fixed_mask)
    keys = sorted({(problem.models[j], int(problem.n_cat[j])) for j in free_items})
    for model, k in keys:
        items = free_items[(problem.models[free_items] == model)
                           & (problem.n_cat[free_items] == k)]
        cnt = per_category[items, :k] + 0.5
        total = cnt.sum(1, keepdims=True)
        alpha0 = D
        spread = math.sqrt(1 + alpha0 * alpha0 / 2.9)  # marginal logit -> conditional intercept
        if model in DICHOTOMOUS:
            p1 = cnt[:, 1] / total[:, 0]
            cols = [np.full(items.size, alpha0)]
            if model == "3pl":
                c0 = _prior_mean_c(prior)
                p1 = np.clip((p1 - c0) / (1 - c0), 0.05, 0.95)
                cols += [logit(p1) * spread, np.full(items.size, logit(c0))]
            else:
                cols += [logit(p1) * spread]
            params = np.stack(cols, axis=1)
        elif model == "grm":
            above = cnt[:, ::-1].cumsum(1)[:, ::-1][:, 1:] / total  # P(X >= k), k = 1..m
            params = np.concatenate([np.full((items.size, 1), alpha0),
                                     logit(above) * spread], axis=1)
        else:
            steps = np.log(cnt[:, 1:] / cnt[:, :-1]) * spread
            params = np.concatenate([np.full((items.size, 1), alpha0),
                                     np.cumsum(steps, axis=1)], axis=1)
        cols = problem.offsets[items][:, None] + np.arange(k)
        groups.append(_Group(model, items, cols, params, _free_columns(model, params.shape[1])))
    return groups


def _prior_mean_c(prior: _Priors) -> float:
    if prior.c is None:
        return 0.2
    _, a, b = prior.c
    return min(max(a / (a + b), 0.01), 0.5)


# -- E-step ----------------------------------------------------------------------------------


class _EStep:
    """Persons x categories indicator and the two products of an E-step."""

    def __init__(self, problem: _Problem) -> None:
        cols = problem.columns
        person = problem.person
        n_p, n_items = problem.n_persons, problem.n_items
        self.n_cols = problem.n_cols
        self.complete = problem.data.n_obs == n_p * n_items
        if self.complete:
            # leave out each item's most frequent category: its counts are total - the others
            freq = np.bincount(cols, minlength=self.n_cols)
            item_of_col = np.repeat(np.arange(n_items), problem.n_cat)
            order = np.lexsort((-freq, item_of_col))
            first = np.r_[True, item_of_col[order][1:] != item_of_col[order][:-1]]
            self.base = np.sort(order[first])  # (J,) base column of each item, item order
            kept = np.ones(self.n_cols, dtype=bool)
            kept[self.base] = False
            self.used = np.flatnonzero(kept)
            self.base_of_used = self.base[item_of_col[self.used]]
            self.item_of_used = item_of_col[self.used]
        else:
            self.used = np.arange(self.n_cols)
        position = np.full(self.n_cols, -1, dtype=np.intp)
        position[self.used] = np.arange(self.used.size)
        keep = position[cols] >= 0
        rows, columns = person[keep], position[cols[keep]]
        shape = (n_p, self.used.size)
        density = rows.size / max(shape[0] * shape[1], 1)
        self.dense = shape[0] * shape[1] * 4 <= _DENSE_BYTES and density >= _DENSE_DENSITY
        if self.dense:
            self.matrix = np.zeros(shape, dtype=np.float32)
            self.matrix[rows, columns] = 1.0
        else:
            self.matrix = sparse.csr_matrix(
                (np.ones(rows.size, dtype=np.float32), (rows, columns)), shape=shape
            )
        self.n_items = n_items
        self._matrix64 = None

    def run(self, log_p: np.ndarray, log_w: np.ndarray, dtype=np.float32):
        """Posterior (P, Q), marginal log-likelihood and expected counts (n_cols, Q)."""
        table = log_p[self.used]
        if self.complete:
            table = table - log_p[self.base_of_used]
            shift = log_p[self.base].sum(0) + log_w
        else:
            shift = log_w
        if dtype == np.float32:
            matrix = self.matrix
        else:
            if self._matrix64 is None:
                self._matrix64 = self.matrix.astype(np.float64)
            matrix = self._matrix64
        post = matrix @ table.astype(dtype)
        post += shift.astype(dtype)
        top = post.max(axis=1, keepdims=True)
        post -= top
        np.exp(post, out=post)
        total = post.sum(axis=1, keepdims=True)
        post /= total
        loglik = float(np.sum(top, dtype=float) + np.sum(np.log(total), dtype=float))
        used = np.asarray(matrix.T @ post, dtype=float)
        counts = np.zeros((self.n_cols, log_p.shape[1]))
        counts[self.used] = used
        if self.complete:
            others = np.zeros((self.n_items, log_p.shape[1]))
            np.add.at(others, self.item_of_used, used)
            counts[self.base] = post.sum(0, dtype=float)[None, :] - others
            np.maximum(counts, 0.0, out=counts)
        return post, loglik, counts


# -- the EM loop -----------------------------------------------------------------------------


def _nodes(n: int) -> np.ndarray:
    return np.linspace(*QUADRATURE_RANGE, n)


def _log_weights(nodes: np.ndarray, mean: float, sd: float) -> np.ndarray:
    log_w = -0.5 * ((nodes - mean) / sd) ** 2
    return log_w - logsumexp(log_w)


def _log_table(problem: _Problem, groups: list[_Group], anchor_table: np.ndarray | None,
               nodes: np.ndarray) -> np.ndarray:
    table = np.zeros((problem.n_cols, nodes.size)) if anchor_table is None else anchor_table.copy()
    for g in groups:
        log_p, _ = _terms(g.model, g.params, nodes, derivatives=False)
        table[g.cols] = np.maximum(log_p, -1e4)
    return table


def _anchor_table(problem: _Problem, nodes: np.ndarray) -> np.ndarray | None:
    if not problem.fixed_mask.any():
        return None
    table = np.zeros((problem.n_cols, nodes.size))
    items = np.flatnonzero(problem.fixed_mask)
    bank = problem.fixed_bank
    positions = problem.fixed_index[items]
    for k in range(int(problem.n_cat[items].max())):
        has = problem.n_cat[items] > k
        rows = problem.offsets[items[has]] + k
        table[rows] = irt.response_log_probability(
            bank, positions[has][:, None], nodes[None, :], k
        )
    return table


def _run_em(problem: _Problem, prior: _Priors, latent_mode: str, quadrature: int,
            max_iterations: int, tolerance: float, progress, settings: dict,
            started: float) -> CalibrationResult:
    nodes = _nodes(quadrature)
    groups = _initial_groups(problem, prior)
    anchors = _anchor_table(problem, nodes)
    estep = _EStep(problem)
    mean, sd = 0.0, 1.0
    px_mean, px_sd = _expansion(problem, groups, latent_mode, prior)
    converged = False
    iteration = 0
    precision = np.float32
    for iteration in range(1, max_iterations + 1):
        table = _log_table(problem, groups, anchors, nodes)
        post, loglik, counts = estep.run(table, _log_weights(nodes, mean, sd), precision)
        if progress is not None:
            progress(iteration, loglik)
        change = 0.0
        moments = _latent_moments(post, nodes, None)
        del post
        if latent_mode == "mean_sd":
            new_mean, new_sd = moments
        elif latent_mode == "sd":
            new_mean, new_sd = mean, (moments[1] if px_mean else _sd_about(moments, mean))
        else:
            new_mean, new_sd = mean, sd
        change = max(abs(new_mean - mean), abs(new_sd - sd))
        mean, sd = new_mean, new_sd
        before = [g.params.copy() for g in groups]
        for g in groups:
            _m_step(g, counts, nodes, prior, problem.D)
        if px_mean or px_sd:
            _reduce(groups, moments[0] - mean if px_mean else 0.0,
                    moments[1] / sd if px_sd else 1.0, mean)
        for g, old in zip(groups, before, strict=True):
            if old.size:
                change = max(change, float(np.abs(g.params - old).max()))
        if change < tolerance and precision == np.float64:
            converged = True
            break
        if change < _DOUBLE_BELOW:  # near the end, float32 rounding would be felt: switch
            precision = np.float64
    settings["estep"] = "dense" if estep.dense else "sparse"
    settings["parameter_expansion"] = {"mean": px_mean, "sd": px_sd}
    settings["estep_complete_data_base_category"] = bool(estep.complete)
    settings["mstep"] = "Fisher scoring, one step per cycle with step halving"
    table = _log_table(problem, groups, anchors, nodes)
    post, loglik, _ = estep.run(table, _log_weights(nodes, mean, sd), dtype=np.float64)
    del estep
    _check_slopes(problem, groups)
    se_internal, se_method = _standard_errors(problem, groups, prior, latent_mode, post, nodes,
                                              mean, sd)
    settings["se_method"] = se_method
    return _result(problem, groups, se_internal, loglik, latent_mode, mean, sd, iteration,
                   converged, settings, started)


def _latent_moments(post: np.ndarray, nodes: np.ndarray, fixed_mean: float | None):
    weight = np.asarray(post.sum(0), dtype=float)
    weight /= weight.sum()
    mean = float(weight @ nodes) if fixed_mean is None else fixed_mean
    sd = float(math.sqrt(max(weight @ (nodes - mean) ** 2, 1e-6)))
    return mean, sd


def _sd_about(moments: tuple[float, float], centre: float) -> float:
    """Root mean square of theta about ``centre``, from the posterior mean and sd."""
    mean, sd = moments
    return math.sqrt(sd * sd + (mean - centre) ** 2)


def _expansion(problem: _Problem, groups: list[_Group], latent_mode: str,
               prior: _Priors) -> tuple[bool, bool]:
    """Which latent moments fixed for identification are expanded (PX-EM, Liu, Rubin & Wu 1998).

    Without anchors the mean (and, when every slope is free, the sd) only fix the scale: they are
    estimated from the posterior every cycle like free parameters and the items are then
    transformed back onto the identified scale. The model is invariant under that transformation,
    so the fixed point is the same, but the slow direction of EM (all items shifting or stretching
    together) converges in a few cycles instead of hundreds.
    """
    if problem.fixed_mask.any():
        return False, False
    # a prior on b or a is not invariant under the transformation: with one, the fixed point of
    # the expanded iteration would not be the maximum a posteriori (the c prior is invariant)
    prior_b = prior.b is not None and any(g.model in DICHOTOMOUS for g in groups)
    prior_a = prior.a is not None and any(g.model in FREE_SLOPE | {"1pl"} for g in groups)
    slopes_free = all(g.model not in FIXED_SLOPE for g in groups)
    return not prior_b, latent_mode == "none" and slopes_free and not (prior_a or prior_b)


def _reduce(groups: list[_Group], shift: float, scale: float, mean: float) -> None:
    """Map items estimated for theta ~ N(mean + shift, (scale sd)^2) back to N(mean, sd^2).

    With ``theta = mean + shift + scale (theta' - mean)``: ``alpha' = scale alpha`` and the
    intercept of category k gains ``k alpha (shift + mean - scale mean)`` (GPCM) or
    ``alpha (shift + mean - scale mean)`` (dichotomous, GRM).
    """
    offset = shift + mean - scale * mean
    for g in groups:
        alpha = g.params[:, 0].copy()
        if g.model in ("gpcm", "pcm"):
            k = np.arange(1, g.params.shape[1])
            g.params[:, 1:] += k[None, :] * (alpha * offset)[:, None]
        else:
            g.params[:, 1:1 + (g.params.shape[1] - 1 - (1 if g.model == "3pl" else 0))] += (
                alpha * offset)[:, None]
        g.params[:, 0] = alpha * scale


def _objective(model, params, r, nodes, prior: _Priors, D) -> np.ndarray:
    log_p, _ = _terms(model, params, nodes, derivatives=False)
    with np.errstate(invalid="ignore"):
        value = np.einsum("jkq,jkq->j", r, np.maximum(log_p, -1e4))
    bad = ~np.isfinite(log_p).all(axis=(1, 2)) | ~np.isfinite(value)
    value = np.where(bad, -np.inf, value)
    if prior.active:
        value = value + prior.terms(model, params, D)[0]
    if model == "3pl":
        value = np.where(np.abs(params[:, 2]) > _GAMMA_BOUND, -np.inf, value)
    return value


def _m_step(g: _Group, counts: np.ndarray, nodes: np.ndarray, prior: _Priors, D: float) -> float:
    """One Fisher-scoring step for every item of the group; returns the largest change."""
    r = counts[g.cols]  # (J, K, Q)
    log_p, dlog = _terms(g.model, g.params, nodes)
    grad = np.einsum("jkq,jkpq->jp", r, dlog)
    n = r.sum(1)  # (J, Q)
    weighted = dlog * (np.exp(log_p) * n[:, None, :])[:, :, None, :]
    info = np.einsum("jkpq,jkrq->jpr", weighted, dlog, optimize=True)
    if prior.active:
        _, pg, ph = prior.terms(g.model, g.params, D)
        grad, info = grad + pg, info - ph
    old = _objective(g.model, g.params, r, nodes, prior, D)
    step = np.zeros_like(g.params)
    free = g.free
    h = info[:, free][:, :, free]
    ridge = 1e-9 * (np.abs(np.diagonal(h, axis1=1, axis2=2)).sum(1) + 1.0)
    h = h + ridge[:, None, None] * np.eye(free.size)
    if g.shared_slope:
        # [alpha (shared), delta_j]: arrow-shaped system solved through the Schur complement
        h_aa, h_ad, h_dd = info[:, 0, 0], info[:, 0, 1], info[:, 1, 1] + ridge
        g_a, g_d = grad[:, 0].sum(), grad[:, 1]
        schur = h_aa.sum() - (h_ad * h_ad / h_dd).sum()
        d_alpha = (g_a - (h_ad * g_d / h_dd).sum()) / schur
        step[:, 0] = d_alpha
        step[:, 1] = (g_d - h_ad * d_alpha) / h_dd
        old_total = old.sum()
        for _ in range(12):
            new = g.params + step
            if _objective(g.model, new, r, nodes, prior, D).sum() >= old_total - 1e-9 * abs(
                    old_total):
                break
            step *= 0.5
        else:
            step[:] = 0.0
        g.params = g.params + step
        return float(np.abs(step).max())
    try:
        step[:, free] = np.linalg.solve(h, grad[:, free][:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        step[:, free] = grad[:, free] / np.maximum(np.diagonal(h, axis1=1, axis2=2), 1e-8)
    # keep a single step from wandering off (probabilities far outside the data)
    np.clip(step, -2.0, 2.0, out=step)
    pending = np.ones(g.params.shape[0], dtype=bool)
    new = g.params.copy()
    for _ in range(12):
        trial = g.params[pending] + step[pending]
        value = _objective(g.model, trial, r[pending], nodes, prior, D)
        ok = value >= old[pending] - 1e-9 * np.abs(old[pending])
        idx = np.flatnonzero(pending)
        new[idx[ok]] = trial[ok]
        pending[idx[ok]] = False
        if not pending.any():
            break
        step[pending] *= 0.5
    step[pending] = 0.0
    change = float(np.abs(new - g.params).max()) if new.size else 0.0
    g.params = new
    return change


def _check_slopes(problem: _Problem, groups: list[_Group]) -> None:
    bad = []
    for g in groups:
        if g.model in FIXED_SLOPE:
            continue
        for j, alpha in zip(g.items, g.params[:, 0], strict=True):
            if not alpha > 0:
                bad.append(f"{problem.data.item_ids[j]!r} (a = {alpha / problem.D:.3g})")
    if bad:
        raise CalibrationError(
            "estimated discrimination is not positive (check the scoring key, or leave the item "
            f"out): {_names(bad)}"
        )


# -- standard errors (cross-product information) -----------------------------------------------


def _standard_errors(problem: _Problem, groups: list[_Group], prior: _Priors, latent_mode: str,
                     post: np.ndarray, nodes: np.ndarray, mean: float, sd: float):
    """Covariance of every group's internal parameters: list of (J_g, p, p), NaN if singular."""
    n_p = problem.n_persons
    # global numbering: free item parameters, then shared ones
    start = 0
    index = []
    for g in groups:
        index.append(start + np.arange(g.items.size * g.free.size).reshape(g.items.size, -1))
        start += g.items.size * g.free.size
    n_item_params = start
    shared_names = []
    if any(g.shared_slope for g in groups):
        shared_names.append("slope")
    if latent_mode == "mean_sd":
        shared_names += ["mean", "sd"]
    elif latent_mode == "sd":
        shared_names += ["sd"]
    n_shared = len(shared_names)
    n_params = n_item_params + n_shared
    shared_scores = np.zeros((n_p, n_shared))
    # per-person scores of the latent parameters
    if "mean" in shared_names:
        shared_scores[:, shared_names.index("mean")] = post @ ((nodes - mean) / sd**2)
    if "sd" in shared_names:
        shared_scores[:, shared_names.index("sd")] = post @ (
            ((nodes - mean) ** 2 - sd * sd) / sd**3)
    # dense data: the persons x parameters score matrix directly, by BLAS products
    density = problem.data.n_obs / max(n_p * problem.n_items, 1)
    widest = max((g.cols.size for g in groups), default=0)
    if (n_params <= _FULL_XPD_PARAMS and density >= 0.25
            and n_p * max(n_params, widest) * 8 <= _FULL_XPD_BYTES
            and n_p * n_params**2 <= _FULL_XPD_WORK):
        scores = np.zeros((n_p, n_params))
        slope = shared_scores[:, 0] if "slope" in shared_names else None
        for gi, g in enumerate(groups):
            _dense_scores(problem, g, post, nodes, scores, index[gi], slope)
        scores[:, n_item_params:] = shared_scores
        info = scores.T @ scores
        del scores
        return _full_solution(info, groups, index, prior, problem.D, n_item_params, shared_names)
    # otherwise per-observation scores of the items' parameters, by group
    obs_scores = [_observation_scores(problem, g, post, nodes) for g in groups]
    for g, (obs, scores) in zip(groups, obs_scores, strict=True):
        if g.shared_slope:
            shared_scores[:, 0] += np.bincount(problem.person[obs], scores[:, 0], minlength=n_p)
    obs_scores = [(obs, scores[:, g.free]) for g, (obs, scores) in zip(groups, obs_scores,
                                                                        strict=True)]
    # work of the full cross-product: sum over persons of (parameters they inform)^2
    per_person = np.bincount(problem.person, minlength=n_p).astype(float)
    width = max((g.free.size for g in groups), default=1)
    work = float(((per_person * width + n_shared) ** 2).sum())
    if n_params <= _FULL_XPD_PARAMS and work <= _FULL_XPD_WORK:
        info = _full_xpd(problem, groups, index, obs_scores, shared_scores, n_params)
        return _full_solution(info, groups, index, prior, problem.D, n_item_params, shared_names)
    covs = _block_xpd(problem, groups, obs_scores, shared_scores, prior, shared_names)
    return covs, "cross-product (XPD) information, item blocks bordered by shared parameters"


def _full_solution(info, groups, index, prior, D, n_item_params, shared_names):
    _add_prior_curvature(info, groups, index, prior, D, None)
    if prior.active and "slope" in shared_names:
        s = n_item_params + shared_names.index("slope")
        for gi, g in enumerate(groups):
            if g.shared_slope:
                _, _, ph = prior.terms(g.model, g.params, D)
                info[s, s] -= ph[:, 0, 0].sum()
                info[s, index[gi][:, 0]] -= ph[:, 0, 1]
                info[index[gi][:, 0], s] -= ph[:, 0, 1]
    cov = _inverse(info)
    covs = [_group_cov(g, cov, index[gi], n_item_params, shared_names)
            for gi, g in enumerate(groups)]
    return covs, "cross-product (XPD) information, full inverse"


def _dense_scores(problem: _Problem, g: _Group, post: np.ndarray, nodes: np.ndarray,
                  out: np.ndarray, index: np.ndarray, slope: np.ndarray | None) -> None:
    """Fill the group's columns of the persons x parameters score matrix (dense data).

    For parameter m, ``post @ dlog_m.T`` is every person's expected complete-data score for every
    category of every item of the group; a one-hot mask picks each person's own categories. The
    1PL items' slope scores are summed into ``slope`` (the shared parameter).
    """
    data = problem.data
    n_p = post.shape[0]
    j, k = g.cols.shape
    local = np.full(problem.n_items, -1, dtype=np.intp)
    local[g.items] = np.arange(j)
    keep = local[data.item] >= 0
    responses = np.full((n_p, j), -1, dtype=np.int16)
    responses[problem.person[keep], local[data.item[keep]]] = data.response[keep]
    onehot = responses[:, :, None] == np.arange(k)
    _, dlog = _terms(g.model, g.params, nodes)
    p = g.params.shape[1]
    flat = np.ascontiguousarray(dlog.transpose(2, 0, 1, 3)).reshape(p, -1, nodes.size)
    for column, m in enumerate(g.free):
        expected = (post @ flat[m].T).reshape(n_p, j, k)
        out[:, index[:, column]] = np.where(onehot, expected, 0.0).sum(-1)
    if g.shared_slope and slope is not None:
        expected = (post @ flat[0].T).reshape(n_p, j, k)
        slope += np.where(onehot, expected, 0.0).sum((1, 2))


def _observation_scores(problem: _Problem, g: _Group, post: np.ndarray, nodes: np.ndarray):
    """Observations of the group's items and their observed-data scores (n, p).

    Fisher's identity: the score of one response is the posterior expectation of the complete-data
    score ``d log P(x | theta) / d params``. Dense-ish data: one (P x Q) @ (Q x J_g K) product per
    parameter; sparse data: gathered posterior rows, in chunks.
    """
    data = problem.data
    obs = np.flatnonzero(np.isin(data.item, g.items)) if g.items.size < problem.n_items else \
        np.arange(data.n_obs)
    local = np.full(problem.n_items, -1, dtype=np.intp)
    local[g.items] = np.arange(g.items.size)
    _, dlog = _terms(g.model, g.params, nodes)
    p, k = g.params.shape[1], g.cols.shape[1]
    flat = np.ascontiguousarray(dlog.transpose(2, 0, 1, 3)).reshape(p, -1, nodes.size)
    rows = local[data.item[obs]] * k + data.response[obs]
    persons = problem.person[obs]
    scores = np.empty((obs.size, p))
    n_p = post.shape[0]
    if n_p * flat.shape[1] <= 4 * max(obs.size, 1) and n_p * flat.shape[1] * 8 <= _FULL_XPD_BYTES:
        for m in range(p):
            scores[:, m] = (post @ flat[m].T)[persons, rows]
        return obs, scores
    for s in range(0, obs.size, _CHUNK):
        part = slice(s, s + _CHUNK)
        weights = post[persons[part]]
        for m in range(p):  # one (n, Q) product per parameter: far faster than one einsum
            scores[part, m] = np.einsum("nq,nq->n", weights, flat[m][rows[part]])
    return obs, scores


def _full_xpd(problem, groups, index, obs_scores, shared_scores, n_params) -> np.ndarray:
    """Sum over persons of the outer products of their score vectors (n_params x n_params)."""
    n_p = problem.n_persons
    rows, cols, values = [], [], []
    for gi, (obs, s) in enumerate(obs_scores):
        g = groups[gi]
        idx = index[gi][_local(problem, g, obs)]  # (n_obs_g, n_free)
        rows.append(np.repeat(problem.person[obs], s.shape[1]))
        cols.append(idx.ravel())
        values.append(s.ravel())
    n_shared = shared_scores.shape[1]
    for t in range(n_shared):
        rows.append(np.arange(n_p))
        cols.append(np.full(n_p, n_params - n_shared + t))
        values.append(shared_scores[:, t])
    rows, cols, values = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
    if rows.size > 0.25 * n_p * n_params and n_p * n_params * 8 <= _FULL_XPD_BYTES:
        scores = np.zeros((n_p, n_params))
        scores[rows, cols] = values  # (person, parameter) pairs are unique
        return scores.T @ scores
    matrix = sparse.csr_matrix((values, (rows, cols)), shape=(n_p, n_params))
    return (matrix.T @ matrix).toarray()


def _local(problem: _Problem, g: _Group, obs: np.ndarray) -> np.ndarray:
    local = np.full(problem.n_items, -1, dtype=np.intp)
    local[g.items] = np.arange(g.items.size)
    return local[problem.data.item[obs]]


def _add_prior_curvature(info, groups, index, prior, D, blocks) -> None:
    if not prior.active:
        return
    for gi, g in enumerate(groups):
        _, _, ph = prior.terms(g.model, g.params, D)
        own = -ph[:, g.free][:, :, g.free]
        if blocks is None:
            idx = index[gi]
            info[idx[:, :, None], idx[:, None, :]] += own
        else:
            blocks[gi] += own


def _inverse(matrix: np.ndarray) -> np.ndarray:
    try:
        inv = np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        return np.full_like(matrix, np.nan)
    if not np.isfinite(inv).all():
        return np.full_like(matrix, np.nan)
    return inv


def _group_cov(g: _Group, cov: np.ndarray, idx: np.ndarray, n_item_params: int,
               shared_names: list[str]) -> np.ndarray:
    """(J_g, p, p) covariance of each item's internal parameters (shared slope included)."""
    j, p = g.params.shape
    out = np.zeros((j, p, p))
    free = g.free
    out[:, free[:, None], free[None, :]] = cov[idx[:, :, None], idx[:, None, :]]
    if g.shared_slope:
        s = n_item_params + shared_names.index("slope")
        out[:, 0, 0] = cov[s, s]
        out[:, 0, free] = cov[s, idx]
        out[:, free, 0] = cov[idx, s]
    return out


def _block_xpd(problem, groups, obs_scores, shared_scores, prior, shared_names):
    """Item blocks bordered by the shared parameters, inverted through the Schur complement."""
    n_shared = shared_scores.shape[1]
    blocks, borders = [], []
    for (obs, s), g in zip(obs_scores, groups, strict=True):
        local = _local(problem, g, obs)
        f = s.shape[1]
        n_g = g.items.size
        block = np.empty((n_g, f, f))
        for u in range(f):
            for v in range(u, f):
                block[:, u, v] = block[:, v, u] = np.bincount(local, s[:, u] * s[:, v], n_g)
        border = np.zeros((n_g, f, n_shared))
        for t in range(n_shared):
            other = shared_scores[problem.person[obs], t]
            for u in range(f):
                border[:, u, t] = np.bincount(local, s[:, u] * other, n_g)
        blocks.append(block)
        borders.append(border)
    _add_prior_curvature(None, groups, None, prior, problem.D, blocks)
    slope_curvature = 0.0
    if prior.active and "slope" in shared_names:
        t = shared_names.index("slope")
        for g, border in zip(groups, borders, strict=True):
            if g.shared_slope:
                _, _, ph = prior.terms(g.model, g.params, problem.D)
                slope_curvature -= ph[:, 0, 0].sum()
                border[:, 0, t] -= ph[:, 1, 0]
    inverses = []
    for block in blocks:
        try:
            inverses.append(np.linalg.inv(block))
        except np.linalg.LinAlgError:
            inverses.append(np.full_like(block, np.nan))
    if n_shared:
        schur = shared_scores.T @ shared_scores
        if slope_curvature:
            t = shared_names.index("slope")
            schur[t, t] += slope_curvature
        for inv, border in zip(inverses, borders, strict=True):
            schur -= np.einsum("jfs,jfg,jgt->st", border, inv, border)
        v = _inverse(schur)
    covs = []
    for gi, g in enumerate(groups):
        inv, border = inverses[gi], borders[gi]
        j, p = g.params.shape
        free = g.free
        out = np.zeros((j, p, p))
        own = inv
        if n_shared:
            ab = np.einsum("jfg,jgs->jfs", inv, border)  # A^-1 B
            own = inv + np.einsum("jfs,st,jgt->jfg", ab, v, ab)
            if g.shared_slope:
                s = shared_names.index("slope")
                cross = -np.einsum("jfs,s->jf", ab, v[:, s])
                out[:, 0, 0] = v[s, s]
                out[:, 0, free] = cross
                out[:, free, 0] = cross
        out[:, free[:, None], free[None, :]] = own
        covs.append(out)
    return covs


# -- results ---------------------------------------------------------------------------------


def _reported(g: _Group, D: float):
    """Reported parameters ``[a, b_1..b_m, (c)]`` (J, r) and their Jacobian (J, r, p)."""
    params = g.params
    j, p = params.shape
    alpha = params[:, 0]
    if g.model in DICHOTOMOUS:
        m = 1
        b = -params[:, 1:2] / alpha[:, None]
        inter_diff = params[:, 1:2]
    elif g.model == "grm":
        m = p - 1
        b = -params[:, 1:] / alpha[:, None]
        inter_diff = params[:, 1:]
    else:
        m = p - 1
        d = np.concatenate([np.zeros((j, 1)), params[:, 1:]], axis=1)
        inter_diff = np.diff(d, axis=1)
        b = -inter_diff / alpha[:, None]
    r = 1 + m + (1 if g.model == "3pl" else 0)
    jac = np.zeros((j, r, p))
    jac[:, 0, 0] = 1.0 / D
    jac[:, 1:1 + m, 0] = inter_diff / alpha[:, None] ** 2
    for k in range(m):
        jac[:, 1 + k, 1 + k] = -1.0 / alpha
        if g.model in ("gpcm", "pcm") and k > 0:
            jac[:, 1 + k, k] = 1.0 / alpha
    values = [alpha[:, None] / D, b]
    if g.model == "3pl":
        c = expit(params[:, 2])
        jac[:, -1, 2] = c * (1 - c)
        values.append(c[:, None])
    return np.concatenate(values, axis=1), jac


def _result(problem: _Problem, groups: list[_Group], covs, loglik: float, latent_mode: str,
            mean: float, sd: float, iterations: int, converged: bool, settings: dict,
            started: float) -> CalibrationResult:
    n_items = problem.n_items
    k_max = int(problem.n_cat.max())
    se = {key: np.full(n_items, np.nan) for key in ("a", "b", "c", "d")}
    se["thresholds"] = np.full((n_items, max(k_max - 1, 1)), np.nan)
    estimated: dict[int, ItemParameters] = {}
    n_free = 0
    ids = problem.data.item_ids
    for g, cov in zip(groups, covs, strict=True):
        values, jac = _reported(g, problem.D)
        var = np.einsum("jrp,jps,jrs->jr", jac, cov, jac) if cov is not None else None
        err = np.sqrt(np.where(var >= 0, var, np.nan)) if var is not None else None
        n_free += g.items.size * g.free.size
        m = values.shape[1] - 1 - (1 if g.model == "3pl" else 0)
        for row, j in enumerate(g.items):
            a = float(values[row, 0]) if g.model not in FIXED_SLOPE else 1.0
            if g.model in DICHOTOMOUS:
                c = float(values[row, 2]) if g.model == "3pl" else 0.0
                estimated[j] = ItemParameters(ids[j], g.model, a=a, b=float(values[row, 1]), c=c)
            else:
                estimated[j] = ItemParameters(
                    ids[j], g.model, a=a, thresholds=tuple(float(v) for v in values[row, 1:1 + m])
                )
        if err is not None:
            if g.model not in FIXED_SLOPE:
                se["a"][g.items] = err[:, 0]
            se["thresholds"][g.items, :m] = err[:, 1:1 + m]
            if g.model in DICHOTOMOUS:
                se["b"][g.items] = err[:, 1]
            if g.model == "3pl":
                se["c"][g.items] = err[:, 2]
    n_free += 1 if any(g.shared_slope for g in groups) else 0
    n_free += {"none": 0, "sd": 1, "mean_sd": 2}[latent_mode]
    items = []
    records = problem.fixed_bank.to_records() if problem.fixed_bank is not None else []
    for j in range(n_items):
        if problem.fixed_mask[j]:
            items.append(_item_from_record(records[problem.fixed_index[j]]))
        else:
            items.append(estimated[j])
    try:
        bank = ItemBank.from_items(items, D=problem.D)
    except CATError as error:  # pragma: no cover - estimates are kept valid by construction
        raise CalibrationError(f"estimates do not form a valid item bank: {error}") from None
    n_persons = problem.n_persons
    aic = -2.0 * loglik + 2.0 * n_free
    bic = -2.0 * loglik + n_free * math.log(max(n_persons, 1))
    return CalibrationResult(
        bank=bank, se=se, fixed=problem.fixed_mask.copy(), n_responses=problem.counts.copy(),
        log_likelihood=float(loglik), n_parameters=int(n_free), aic=float(aic), bic=float(bic),
        iterations=int(iterations), converged=bool(converged), latent_mean=float(mean),
        latent_sd=float(sd), settings=settings, seconds=time.perf_counter() - started,
        n_persons=int(n_persons),
    )


def _item_from_record(record: dict) -> ItemParameters:
    return ItemParameters(
        item_id=record["item_id"], model=record["model"], a=record.get("a", 1.0),
        b=record.get("b", math.nan), c=record.get("c", 0.0), d=record.get("d", 1.0),
        thresholds=tuple(record.get("thresholds", ())), content=tuple(record.get("content", ())),
    )


def marginal_log_likelihood(data: ResponseData, bank: ItemBank, mean: float = 0.0,
                            sd: float = 1.0, quadrature: int = 49) -> float:
    """Marginal log-likelihood of ``data`` under ``bank`` (every item of the data must be in it)
    and a N(mean, sd) latent distribution, on the quadrature of :func:`calibrate`."""
    missing = [i for i in data.item_ids if i not in bank._index]
    if missing:
        raise CalibrationError(f"item(s) not in the bank: {_names([repr(i) for i in missing])}")
    problem = _Problem.build(data, "2pl", bank, bank.D, 0)
    nodes = _nodes(quadrature)
    table = _anchor_table(problem, nodes)
    _, loglik, _ = _EStep(problem).run(table, _log_weights(nodes, mean, sd), dtype=np.float64)
    return loglik


# -- girth as a second backend ---------------------------------------------------------------


def _girth(problem: _Problem, priors, latent_mode: str, quadrature: int, max_iterations: int,
           settings: dict, started: float) -> CalibrationResult:
    """Run girth's marginal ML on the dense items x persons matrix and convert its estimates.

    girth (0.8) codes missing responses as ``INVALID_RESPONSE`` and uses a N(0, 1) latent
    distribution. ``rasch`` runs ``onepl_mml`` (a common slope with N(0, 1)), converted exactly to
    a = 1 and an estimated latent sd, the Rasch identification used here (``rasch_mml`` with
    ``estimate_latent=False``); ``1pl`` runs ``onepl_mml``; ``2pl`` runs ``twopl_mml``; ``grm``
    and mixes of 2pl with grm run ``grm_mml`` (a dichotomous item is a two-category graded item);
    ``gpcm`` runs ``pcm_mml``, which
    estimates a slope per item (girth has no partial credit model with a = 1). girth's 2PL and GRM
    solve the difficulties from marginal proportions (with a look-up table) and stop when slopes
    change by less than 1e-3: an approximation of marginal ML, close to it but not equal.
    """
    import girth

    if problem.fixed_mask.any():
        raise CalibrationError("the girth backend cannot hold anchor items fixed: use backend='em'")
    if priors:
        raise CalibrationError("the girth backend takes no priors: use backend='em'")
    models = set(problem.models)
    unsupported = sorted(models - set(GIRTH_MODELS))
    if unsupported:
        ids = problem.data.item_ids
        named = [f"{ids[j]!r} ({problem.models[j]})" for j in
                 np.flatnonzero(np.isin(problem.models, unsupported))]
        hint = " (girth's pcm_mml estimates a slope per item: use 'gpcm')" if "pcm" in \
            unsupported else ""
        raise CalibrationError(
            f"the girth backend does not estimate {', '.join(unsupported)}{hint}; it supports "
            f"{', '.join(GIRTH_MODELS)}: item(s) {_names(named)}"
        )
    if len(models) > 1 and not models <= {"2pl", "grm"}:
        raise CalibrationError(
            f"the girth backend cannot mix the models {', '.join(sorted(models))} in one run "
            "(only 2pl with grm): use backend='em'"
        )
    if latent_mode == "mean_sd" or (latent_mode == "sd" and models != {"rasch"}):
        raise CalibrationError("the girth backend cannot estimate the latent distribution here")
    data, D = problem.data, problem.D
    matrix = np.full((problem.n_items, problem.n_persons), girth.INVALID_RESPONSE, dtype=int)
    matrix[data.item, problem.person] = data.response
    options = {"quadrature_n": int(quadrature), "quadrature_bounds": QUADRATURE_RANGE,
               "max_iteration": int(max_iterations)}
    mean, sd = 0.0, 1.0
    model = next(iter(models)) if len(models) == 1 else "grm"
    ids = data.item_ids
    items: list[ItemParameters] = []
    if model in ("rasch", "1pl"):
        if model == "rasch" and latent_mode == "none":
            out = girth.rasch_mml(matrix, discrimination=D, options=options)
            slope, function = D, "rasch_mml"
        else:
            out = girth.onepl_mml(matrix, options=options)
            slope, function = float(out["Discrimination"]), "onepl_mml"
        b = np.asarray(out["Difficulty"], dtype=float)
        if model == "rasch" and latent_mode == "sd":
            sd = slope / D
            b = b * sd
            a = 1.0
        else:
            a = slope / D
        items = [ItemParameters(ids[j], model, a=a, b=float(b[j])) for j in range(len(ids))]
    elif model == "gpcm":
        out = girth.pcm_mml(matrix, options=options)
        a = np.asarray(out["Discrimination"], dtype=float) / D
        b = np.asarray(out["Difficulty"], dtype=float)
        items = [ItemParameters(ids[j], "gpcm", a=float(a[j]), thresholds=tuple(
            float(v) for v in b[j, : problem.n_cat[j] - 1])) for j in range(len(ids))]
        function = "pcm_mml"
    else:
        function = "twopl_mml" if models == {"2pl"} else "grm_mml"
        out = getattr(girth, function)(matrix, options=options)
        a = np.asarray(out["Discrimination"], dtype=float) / D
        b = np.asarray(out["Difficulty"], dtype=float).reshape(len(ids), -1)
        for j in range(len(ids)):
            if problem.models[j] == "2pl":
                items.append(ItemParameters(ids[j], "2pl", a=float(a[j]), b=float(b[j, 0])))
            else:
                items.append(ItemParameters(ids[j], "grm", a=float(a[j]), thresholds=tuple(
                    float(v) for v in b[j, : problem.n_cat[j] - 1])))
    try:
        bank = ItemBank.from_items(items, D=D)
    except CATError as error:
        raise CalibrationError(f"girth's estimates are not a valid item bank: {error}") from None
    loglik = marginal_log_likelihood(data, bank, mean, sd, quadrature)
    n_free = sum(1 + (problem.n_cat[j] - 1) for j in range(len(ids)))
    if model in ("rasch", "1pl"):
        n_free = len(ids) + (1 if model == "1pl" or latent_mode == "sd" else 0)
    nan = np.full(len(ids), np.nan)
    se = {"a": nan.copy(), "b": nan.copy(), "c": nan.copy(), "d": nan.copy(),
          "thresholds": np.full((len(ids), max(bank.max_categories - 1, 1)), np.nan)}
    settings |= {
        "girth_function": function,
        "girth_version": getattr(girth, "__version__", "0.8"),
        "girth_options": {"quadrature_n": int(quadrature),
                          "quadrature_bounds": list(QUADRATURE_RANGE),
                          "max_iteration": int(max_iterations)},
        "se_method": "none (girth reports no standard errors)",
        "iterations_reported": False,
        "note": "girth stops when slopes change by less than 1e-3 and reports no iteration count",
    }
    return CalibrationResult(
        bank=bank, se=se, fixed=problem.fixed_mask.copy(), n_responses=problem.counts.copy(),
        log_likelihood=float(loglik), n_parameters=int(n_free),
        aic=float(-2 * loglik + 2 * n_free),
        bic=float(-2 * loglik + n_free * math.log(max(problem.n_persons, 1))),
        iterations=0, converged=True, latent_mean=mean, latent_sd=float(sd), settings=settings,
        seconds=time.perf_counter() - started, n_persons=problem.n_persons,
    )
