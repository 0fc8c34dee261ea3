"""Rubric criteria on the bank's theta scale: fixed-parameter calibration with rater severity.

A rubric criterion is a polytomous item on the bank's scale, and a rater's severity shifts every
threshold of every criterion they score (as in many-facet Rasch measurement). The bank's items are
anchors: their parameters never change, and the criteria, the severities and the latent
distribution are estimated from students who have both answers to bank items and rubric ratings.

Model
    A rating ``k`` (0-based category) of criterion ``i`` by rater ``r`` of a student with ability
    ``theta`` is a generalized partial credit response (cat_engine's parameterization)::

        P_k = exp(z_k) / sum_h exp(z_h),   z_k = sum_{v <= k} D a_i (theta - b_iv - s_r),  z_0 = 0

    with ``D`` the bank's constant, ``a_i = 1`` under ``model="pcm"``, and ``s_r`` the rater's
    severity (a harsher rater has a larger ``s_r``: every threshold is harder to pass).
Identification
    theta is the bank's scale (the anchors fix its origin and unit); severities are centred at 0
    (their plain mean over the raters of the calibration is 0), so thresholds are those of the
    average rater. Without the centring, ``b_iv + c`` and ``s_r - c`` give the same likelihood.
Estimation
    Marginal maximum likelihood by EM over equally spaced quadrature nodes on [-6, 6]. The item
    part of each student's log-likelihood at the nodes is computed once (cat_engine.models); each
    cycle adds the rubric part (students x nodes), normalises into posteriors, and accumulates the
    expected count of each (criterion, rater, category) at each node with one sparse product. The
    M-step maximises the expected complete-data log-likelihood over every criterion slope (as
    ``log a``), threshold and severity jointly: a few steps of scipy's trust-region Newton
    method with the analytic gradient and the analytic expected information (Fisher scoring in
    a trust region; a generalised EM, every cycle improves); the latent mean
    and sd are re-estimated from the posterior moments on the anchors' scale every cycle (Kim's
    2006 MWU-MEM, as :mod:`calibration.em` does for pretest items).
Standard errors
    Observed information: minus the Hessian of the marginal log-likelihood (slopes, thresholds,
    free severities, latent mean and log sd), by central differences of its analytic gradient
    (Fisher's identity), then the delta method to ``a`` and to all severities (the last rater's is
    minus the sum of the others).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, sparse
from scipy.special import logsumexp

from calibration.data import ResponseData
from calibration.errors import CalibrationError
from cat_engine import models as irt
from cat_engine.bank import ItemBank, ItemParameters

MODELS = ("gpcm", "pcm")
QUADRATURE_RANGE = (-6.0, 6.0)
MIN_RATER_RATINGS = 10
MAX_QUADRATURE = 201
MAX_ITERATIONS = 10_000
IDENTIFICATION = (
    "theta on the bank's scale (its operational items held fixed); rater severities centred at 0 "
    "(their mean over the calibration's raters), so thresholds are those of the average rater; "
    "a rater the calibration never saw is given severity 0, the average rater"
)
_M_STEPS = 5  # Newton steps per M-step (a generalised EM: each cycle improves)
_LOG_A_BOUNDS = (math.log(0.05), math.log(20.0))
_SHOWN = 5


class RubricScaleError(CalibrationError):
    """Ratings or responses that cannot put a rubric on the bank's scale; the message names what."""


@dataclass(frozen=True, eq=False)
class RubricScaleResult:
    """Criteria and rater severities on the bank's theta scale, with their precision.

    Attributes
    ----------
    model : str
        ``"gpcm"`` or ``"pcm"`` (slopes fixed at 1).
    D : float
        The bank's scaling constant (multiplies ``a``).
    criterion_names, rater_names : tuple of str
        Labels of criterion ``i`` and rater ``r`` (the indices of the input).
    n_categories : ndarray of int, shape (I,)
    a : ndarray, shape (I,)
        Criterion slopes (1 under PCM).
    thresholds : ndarray, shape (I, K - 1)
        Step difficulties ``b_iv`` for the average rater (severity 0), theta metric, NaN-padded.
    severity : ndarray, shape (R,)
        Rater severities on the theta metric, centred at 0 (a shift of every threshold).
    se : dict of str to ndarray
        ``"a"`` (NaN under PCM), ``"thresholds"`` and ``"severity"`` standard errors.
    n_ratings_rater, n_ratings_criterion : ndarray of int
        Ratings of each rater and of each criterion.
    latent_mean, latent_sd : float
        The students' ability distribution (normal) on the bank's scale.
    log_likelihood : float
        Marginal log-likelihood of the answers and ratings at the estimates.
    iterations : int
    converged : bool
    n_students : int
        Students with at least one rating.
    n_persons, n_ratings, n_responses, n_items : int
        Persons of the response data (all inform the latent distribution), ratings, answers to
        anchor items and anchor items answered.
    identification : str
    settings : dict
    seconds : float
    """

    model: str
    D: float
    criterion_names: tuple[str, ...]
    rater_names: tuple[str, ...]
    n_categories: np.ndarray
    a: np.ndarray
    thresholds: np.ndarray
    severity: np.ndarray
    se: dict[str, np.ndarray]
    n_ratings_rater: np.ndarray
    n_ratings_criterion: np.ndarray
    latent_mean: float
    latent_sd: float
    log_likelihood: float
    iterations: int
    converged: bool
    n_students: int
    n_persons: int
    n_ratings: int
    n_responses: int
    n_items: int
    identification: str = IDENTIFICATION
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def criterion_parameters(self, i: int) -> dict[str, Any]:
        """Criterion ``i`` for the average rater, as :meth:`ItemBank.from_records` reads it.

        Returns ``{"item_id", "model", "a", "thresholds"}`` (``model`` is ``"gpcm"`` or
        ``"pcm"``; thresholds on the theta metric).
        """
        m = int(self.n_categories[i]) - 1
        return {
            "item_id": self.criterion_names[i],
            "model": self.model,
            "a": float(self.a[i]),
            "thresholds": [float(t) for t in self.thresholds[i, :m]],
        }

    def shifted_items(self, criteria: Sequence[int], raters: Sequence[int | None],
                      item_ids: Sequence[str] | None = None) -> ItemBank:
        """Virtual items, one per (criterion, rater) pair: thresholds plus the rater's severity.

        Parameters
        ----------
        criteria : sequence of int
            Criterion indices.
        raters : sequence of int or None
            Rater indices, parallel to ``criteria``; ``None`` (or -1) is a rater the calibration
            never saw, who gets severity 0, the average rater.
        item_ids : sequence of str, optional
            Ids of the virtual items (default ``"<criterion>|<rater>"``).

        Returns
        -------
        ItemBank
            With ``D`` the bank's; ``cat_engine.models.log_likelihood(bank, positions, categories,
            theta)`` is then the rubric likelihood of those ratings.
        """
        if len(criteria) != len(raters):
            raise RubricScaleError("criteria and raters must have the same length")
        records = []
        for n, (i, r) in enumerate(zip(criteria, raters, strict=True)):
            shift = 0.0 if r is None or r < 0 else float(self.severity[r])
            record = self.criterion_parameters(int(i))
            rater = "average" if r is None or r < 0 else self.rater_names[r]
            default = f"{record['item_id']}|{rater}"
            record["item_id"] = item_ids[n] if item_ids is not None else default
            record["thresholds"] = [t + shift for t in record["thresholds"]]
            records.append(record)
        return shifted_bank(records, D=self.D)


def shifted_bank(records: Sequence[dict[str, Any]], D: float = 1.0) -> ItemBank:
    """An :class:`ItemBank` of GPCM/PCM records ``{"item_id", "model", "a", "thresholds"}``."""
    return ItemBank.from_items(
        [ItemParameters(item_id=r["item_id"], model=r["model"], a=float(r["a"]),
                        thresholds=tuple(float(t) for t in r["thresholds"])) for r in records],
        D=D,
    )


# -- the calibration --------------------------------------------------------------------------


def calibrate_rubric(
    bank: ItemBank,
    responses: ResponseData,
    student,
    criterion,
    rater,
    score,
    n_categories,
    *,
    model: str = "gpcm",
    quadrature: int = 49,
    max_iterations: int = 500,
    tolerance: float = 1e-4,
    min_rater_ratings: int = MIN_RATER_RATINGS,
    criterion_names: Sequence[str] | None = None,
    rater_names: Sequence[str] | None = None,
    progress: Callable[[int, float], None] | None = None,
    standard_errors: bool = True,
) -> RubricScaleResult:
    """Put rubric criteria and rater severities on the bank's theta scale (anchors fixed).

    Parameters
    ----------
    bank : ItemBank
        The operational items, held fixed (anchors); every item of ``responses`` must be in it.
    responses : ResponseData
        Students' answers to bank items; ``responses.person_ids`` index the students.
    student, criterion, rater, score : array_like of int, shape (N,)
        The ratings as parallel arrays: student index into ``responses.person_ids``, criterion
        index, rater index, and the 0-based category given.
    n_categories : int or array_like of int
        Categories of each criterion (one number for all, or one per criterion).
    model : str
        ``"gpcm"`` (a slope per criterion) or ``"pcm"`` (slopes fixed at 1).
    quadrature : int
        Equally spaced nodes on [-6, 6].
    max_iterations, tolerance : int, float
        EM stops when no parameter (slope as ``log a``, threshold, severity, latent mean or sd)
        changes by more than ``tolerance`` in a cycle, or after ``max_iterations``.
    min_rater_ratings : int
        Fewest ratings a rater may have (a severity from fewer would be noise).
    criterion_names, rater_names : sequence of str, optional
        Labels used in messages and in the result (default: the indices).
    progress : callable, optional
        ``progress(iteration, log_likelihood)`` after every E-step.
    standard_errors : bool
        Compute standard errors (observed information); NaN otherwise.

    Raises
    ------
    RubricScaleError
        A student index out of range, a score outside its criterion's categories, a category of a
        criterion that no rating used (named: its threshold would not be identified; the rubric is
        refused rather than collapsed, since the published parameters must keep the rubric's
        levels), a rater with fewer than ``min_rater_ratings`` ratings, no ratings, no answers to
        anchor items, an answered item not in the bank, or a bad setting.
    """
    started = time.perf_counter()
    if model not in MODELS:
        raise RubricScaleError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    if not (isinstance(quadrature, int) and 5 <= quadrature <= MAX_QUADRATURE):
        raise RubricScaleError(f"quadrature must be an integer from 5 to {MAX_QUADRATURE}")
    if not (isinstance(max_iterations, int) and 1 <= max_iterations <= MAX_ITERATIONS):
        raise RubricScaleError(f"max_iterations must be an integer from 1 to {MAX_ITERATIONS}")
    if not (tolerance > 0):
        raise RubricScaleError("tolerance must be positive")
    prob = _Problem.build(bank, responses, student, criterion, rater, score, n_categories,
                          model, criterion_names, rater_names, min_rater_ratings)
    nodes = np.linspace(*QUADRATURE_RANGE, quadrature)
    item_ll = prob.item_log_likelihood(nodes)
    mean, sd = _answers_only(item_ll, nodes)
    params = prob.start(mean, sd)
    converged = False
    iteration = 0
    loglik = -math.inf
    for iteration in range(1, max_iterations + 1):
        post, loglik = prob.e_step(params, item_ll, nodes, mean, sd)
        if progress is not None:
            progress(iteration, loglik)
        counts = prob.counts(post)
        new = prob.m_step(params, counts, nodes)
        new_mean, new_sd = _moments(post, nodes)
        change = max(float(np.max(np.abs(new - params), initial=0.0)),
                     abs(new_mean - mean), abs(math.log(new_sd / sd)))
        params, mean, sd = new, new_mean, new_sd
        if change < tolerance:
            converged = True
            break
    _, loglik = prob.e_step(params, item_ll, nodes, mean, sd)
    if standard_errors:
        cov = prob.covariance(params, item_ll, nodes, mean, sd)
    else:
        cov = np.full((params.size + 2, params.size + 2), np.nan)
    a, thresholds, severity = prob.unpack(params)
    se = prob.reported_se(params, cov, sd)
    return RubricScaleResult(
        model=model, D=prob.D, criterion_names=prob.criterion_names,
        rater_names=prob.rater_names, n_categories=prob.n_cat.copy(), a=a,
        thresholds=thresholds, severity=severity, se=se,
        n_ratings_rater=np.bincount(prob.rater, minlength=prob.n_raters),
        n_ratings_criterion=np.bincount(prob.criterion, minlength=prob.n_criteria),
        latent_mean=float(mean), latent_sd=float(sd), log_likelihood=float(loglik),
        iterations=iteration, converged=converged,
        n_students=int(np.unique(prob.student).size), n_persons=prob.n_persons,
        n_ratings=int(prob.score.size), n_responses=int(responses.n_obs),
        n_items=int(np.unique(responses.item).size),
        settings={"model": model, "quadrature": quadrature, "quadrature_range":
                  list(QUADRATURE_RANGE), "max_iterations": max_iterations,
                  "tolerance": tolerance, "min_rater_ratings": min_rater_ratings, "D": prob.D,
                  "se_method": "observed information (numerical Hessian of the marginal "
                               "log-likelihood from its analytic gradient)"
                  if standard_errors else "none"},
        seconds=time.perf_counter() - started,
    )


def _answers_only(item_ll: np.ndarray, nodes: np.ndarray) -> tuple[float, float]:
    """Latent mean and sd from the answers alone under a N(0, 1) prior (starting values)."""
    post = item_ll + _log_weights(nodes, 0.0, 1.0)
    post = np.exp(post - logsumexp(post, axis=1, keepdims=True))
    return _moments(post, nodes)


def _moments(post: np.ndarray, nodes: np.ndarray) -> tuple[float, float]:
    """Mean and sd of the mixture of the persons' posteriors (persons weigh alike)."""
    marginal = post.mean(axis=0)
    mean = float(marginal @ nodes)
    sd = math.sqrt(max(float(marginal @ (nodes - mean) ** 2), 1e-4))
    return mean, sd


def _log_weights(nodes: np.ndarray, mean: float, sd: float) -> np.ndarray:
    log_w = -0.5 * ((nodes - mean) / sd) ** 2
    return log_w - logsumexp(log_w)


def _names(things: Sequence[str]) -> str:
    shown = ", ".join(str(t) for t in things[:_SHOWN])
    return shown + (f" and {len(things) - _SHOWN} more" if len(things) > _SHOWN else "")


def _int_array(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise RubricScaleError(f"{name} must be a one-dimensional array")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        as_float = np.asarray(array, dtype=float)
        bad = np.flatnonzero(~np.isfinite(as_float) | (as_float != np.round(as_float)))
        if bad.size:
            raise RubricScaleError(f"{name} must hold integers (rating {int(bad[0])} holds "
                                   f"{array[bad[0]]!r})")
        array = as_float
    return array.astype(np.intp)


@dataclass(eq=False)
class _Problem:
    """The validated data and the arrays every cycle reuses."""

    bank: ItemBank
    responses: ResponseData
    model: str
    D: float
    student: np.ndarray
    criterion: np.ndarray
    rater: np.ndarray
    score: np.ndarray
    n_cat: np.ndarray
    criterion_names: tuple[str, ...]
    rater_names: tuple[str, ...]
    n_persons: int
    n_criteria: int
    n_raters: int
    k_max: int
    cells: sparse.csr_matrix  # (I * R * K, P) ratings of each cell by each student
    rated: sparse.csr_matrix  # (P, I * R * K) transpose
    step_mask: np.ndarray  # (I, K - 1) thresholds a criterion has

    @classmethod
    def build(cls, bank, responses, student, criterion, rater, score, n_categories, model,
              criterion_names, rater_names, min_rater_ratings) -> _Problem:
        student = _int_array(student, "student")
        criterion = _int_array(criterion, "criterion")
        rater = _int_array(rater, "rater")
        score = _int_array(score, "score")
        n = student.size
        if not (criterion.size == rater.size == score.size == n):
            raise RubricScaleError(
                f"student, criterion, rater and score must have the same length, got "
                f"{student.size}, {criterion.size}, {rater.size} and {score.size}")
        if n == 0:
            raise RubricScaleError("there are no ratings")
        n_persons = responses.n_persons
        bad = np.flatnonzero((student < 0) | (student >= n_persons))
        if bad.size:
            raise RubricScaleError(
                f"student index out of range (0 to {n_persons - 1}) in rating(s) "
                f"{_names([str(int(b)) for b in bad])}: {int(student[bad[0]])}")
        for name, values in (("criterion", criterion), ("rater", rater), ("score", score)):
            bad = np.flatnonzero(values < 0)
            if bad.size:
                raise RubricScaleError(f"{name} must not be negative (rating {int(bad[0])}: "
                                       f"{int(values[bad[0]])})")
        n_cat_in = np.atleast_1d(np.asarray(n_categories))
        if n_cat_in.size == 1:
            n_criteria = int(criterion.max()) + 1 if criterion_names is None else len(
                criterion_names)
            n_cat = np.full(n_criteria, int(n_cat_in[0]), dtype=np.intp)
        else:
            n_cat = n_cat_in.astype(np.intp)
            n_criteria = n_cat.size
        if (n_cat < 2).any():
            raise RubricScaleError("every criterion needs at least two categories")
        if criterion_names is None:
            criterion_names = [str(i) for i in range(n_criteria)]
        criterion_names = tuple(str(c) for c in criterion_names)
        if len(criterion_names) != n_criteria:
            raise RubricScaleError(f"{len(criterion_names)} criterion names for {n_criteria} "
                                   f"criteria")
        bad = np.flatnonzero(criterion >= n_criteria)
        if bad.size:
            raise RubricScaleError(f"criterion index out of range (0 to {n_criteria - 1}) in "
                                   f"rating {int(bad[0])}: {int(criterion[bad[0]])}")
        n_raters = int(rater.max()) + 1 if rater_names is None else len(rater_names)
        if rater_names is None:
            rater_names = [str(r) for r in range(n_raters)]
        rater_names = tuple(str(r) for r in rater_names)
        bad = np.flatnonzero(rater >= n_raters)
        if bad.size:
            raise RubricScaleError(f"rater index out of range (0 to {n_raters - 1}) in "
                                   f"rating {int(bad[0])}: {int(rater[bad[0]])}")
        bad = np.flatnonzero(score >= n_cat[criterion])
        if bad.size:
            b = int(bad[0])
            raise RubricScaleError(
                f"score {int(score[b])} of rating {b} is outside criterion "
                f"{criterion_names[criterion[b]]}'s categories 0 to {int(n_cat[criterion[b]]) - 1}")
        k_max = int(n_cat.max())
        used = np.zeros((n_criteria, k_max), dtype=bool)
        used[criterion, score] = True
        unused = [(criterion_names[i], k) for i in range(n_criteria) for k in range(n_cat[i])
                  if not used[i, k]]
        if unused:
            described = [f"{c} category {k}" for c, k in unused]
            raise RubricScaleError(
                f"no rating used {_names(described)}: the threshold into (or out of) an unused "
                f"category cannot be estimated; collect more ratings or merge the levels in a new "
                f"rubric version")
        per_rater = np.bincount(rater, minlength=n_raters)
        few = [f"{rater_names[r]} ({int(per_rater[r])})" for r in range(n_raters)
               if per_rater[r] < min_rater_ratings]
        if few:
            raise RubricScaleError(
                f"rater(s) with fewer than {min_rater_ratings} ratings: {_names(few)}; a severity "
                f"from so few ratings would be noise")
        if responses.n_obs == 0:
            raise RubricScaleError("no answers to anchor items: the bank's scale cannot be "
                                   "reached without them")
        missing = [i for i in responses.item_ids if i not in bank._index]
        if missing:
            raise RubricScaleError(f"answered item(s) not in the bank: {_names(missing)}")
        answered = np.zeros(n_persons, dtype=bool)
        answered[responses.person] = True
        if not answered[student].any():
            raise RubricScaleError("no rated student answered an anchor item")
        n_cells = n_criteria * n_raters * k_max
        cell = (criterion * n_raters + rater) * k_max + score
        cells = sparse.csr_matrix((np.ones(n), (cell, student)), shape=(n_cells, n_persons))
        step_mask = np.arange(k_max - 1)[None, :] < (n_cat - 1)[:, None]
        return cls(bank=bank, responses=responses, model=model, D=float(bank.D), student=student,
                   criterion=criterion, rater=rater, score=score, n_cat=n_cat,
                   criterion_names=criterion_names, rater_names=rater_names, n_persons=n_persons,
                   n_criteria=n_criteria, n_raters=n_raters, k_max=k_max, cells=cells,
                   rated=cells.T.tocsr(), step_mask=step_mask)

    # -- parameters: [log a (gpcm only), thresholds (present ones), severities 0..R-2] --------

    @property
    def n_slopes(self) -> int:
        return self.n_criteria if self.model == "gpcm" else 0

    @property
    def n_steps(self) -> int:
        return int(self.step_mask.sum())

    @property
    def n_params(self) -> int:
        return self.n_slopes + self.n_steps + self.n_raters - 1

    def unpack(self, params: np.ndarray):
        """``a`` (I,), thresholds (I, K - 1) NaN-padded, severities (R,) centred at 0."""
        s = self.n_slopes
        a = np.exp(params[:s]) if s else np.ones(self.n_criteria)
        thresholds = np.full(self.step_mask.shape, np.nan)
        thresholds[self.step_mask] = params[s: s + self.n_steps]
        free = params[s + self.n_steps:]
        severity = np.append(free, -free.sum())
        return a, thresholds, severity

    def start(self, mean: float, sd: float) -> np.ndarray:
        """Slopes 1; thresholds from adjacent category frequencies; severities 0."""
        counts = np.zeros((self.n_criteria, self.k_max))
        np.add.at(counts, (self.criterion, self.score), 1.0)
        counts += 0.5
        steps = mean + sd * np.log(counts[:, :-1] / counts[:, 1:]) / (self.D * 1.7)
        return np.concatenate([np.zeros(self.n_slopes), steps[self.step_mask],
                               np.zeros(self.n_raters - 1)])

    # -- likelihood pieces ---------------------------------------------------------------------

    def item_log_likelihood(self, nodes: np.ndarray) -> np.ndarray:
        """(P, Q) log-likelihood of each person's answers at each node (anchors fixed)."""
        data = self.responses
        positions = self.bank.indices_of(list(data.item_ids))
        top = int(data.response.max()) + 1
        columns = data.item * top + data.response
        table = np.zeros((data.n_items * top, nodes.size))
        for k in range(top):
            # categories an item lacks are never indexed; their rows stay 0
            table[np.arange(data.n_items) * top + k] = irt.response_log_probability(
                self.bank, positions[:, None], nodes[None, :], np.minimum(
                    k, self.bank.n_categories[positions][:, None] - 1))
        indicator = sparse.csr_matrix(
            (np.ones(data.n_obs), (data.person, columns)), shape=(self.n_persons, table.shape[0]))
        return np.asarray(indicator @ table)

    def _z(self, params: np.ndarray, nodes: np.ndarray):
        """Cumulative logits z (I, R, Q, K), with -inf for absent categories, and parts."""
        a, thresholds, severity = self.unpack(params)
        da = self.D * a
        b = np.where(self.step_mask, thresholds, 0.0)
        # theta - b_iv - s_r: (I, R, Q, K-1)
        diff = (nodes[None, None, :, None] - b[:, None, None, :]
                - severity[None, :, None, None])
        increments = da[:, None, None, None] * diff
        z = np.concatenate([np.zeros((*increments.shape[:-1], 1)), np.cumsum(increments, -1)], -1)
        absent = np.arange(self.k_max)[None, :] >= self.n_cat[:, None]  # (I, K)
        z = np.where(absent[:, None, None, :], -np.inf, z)
        return z, a, absent

    def log_probabilities(self, params: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """(I * R * K, Q) log category probabilities of every cell at every node."""
        z, _, _ = self._z(params, nodes)
        log_p = z - logsumexp(z, axis=-1, keepdims=True)
        log_p = np.maximum(log_p, -1e4)  # absent categories: never rated, kept finite
        return log_p.transpose(0, 1, 3, 2).reshape(-1, nodes.size)

    def e_step(self, params, item_ll, nodes, mean, sd):
        """Posterior (P, Q) and the marginal log-likelihood."""
        joint = item_ll + np.asarray(self.rated @ self.log_probabilities(params, nodes))
        joint += _log_weights(nodes, mean, sd)
        total = logsumexp(joint, axis=1, keepdims=True)
        return np.exp(joint - total), float(total.sum())

    def counts(self, post: np.ndarray) -> np.ndarray:
        """Expected counts (I, R, Q, K) of each cell at each node."""
        counts = np.asarray(self.cells @ post)
        return counts.reshape(self.n_criteria, self.n_raters, self.k_max, -1).transpose(0, 1, 3, 2)

    def objective(self, params: np.ndarray, counts: np.ndarray, nodes: np.ndarray):
        """Expected complete-data log-likelihood and its gradient (analytic)."""
        z, a, absent = self._z(params, nodes)
        log_norm = logsumexp(z, axis=-1, keepdims=True)
        p = np.exp(z - log_norm)
        log_p = np.where(absent[:, None, None, :], 0.0, z - log_norm)
        value = float((counts * log_p).sum())
        da = self.D * a
        total = counts.sum(-1)  # (I, R, Q)
        k = np.arange(self.k_max, dtype=float)
        # d log P_k / d b_iv = -D a_i ([v <= k] - P(X >= v)), v = 1..K-1
        at_least_obs = np.cumsum(counts[..., ::-1], -1)[..., ::-1][..., 1:]  # (I,R,Q,K-1)
        at_least_p = np.cumsum(p[..., ::-1], -1)[..., ::-1][..., 1:]
        g_b = -da[:, None] * (at_least_obs - total[..., None] * at_least_p).sum((1, 2))
        # d log P_k / d s_r = -D a_i (k - E[X])
        expected = (p * k).sum(-1)
        g_s_all = -(da[:, None, None] * ((counts * k).sum(-1) - total * expected)).sum((0, 2))
        grads = []
        if self.n_slopes:
            # d log P_k / d log a_i = z_k - E[z]
            z_fin = np.where(absent[:, None, None, :], 0.0, z)
            mean_z = (p * z_fin).sum(-1, keepdims=True)
            grads.append((counts * (z_fin - mean_z)).sum((1, 2, 3)))
        grads.append(g_b[self.step_mask])
        grads.append(g_s_all[:-1] - g_s_all[-1])
        return value, np.concatenate(grads)

    def information(self, params: np.ndarray, counts: np.ndarray, nodes: np.ndarray
                    ) -> np.ndarray:
        """Expected information of the complete-data log-likelihood (Fisher scoring's Hessian).

        For each (criterion, rater, node) cell, ``N Cov_P(dz/dphi)`` over the categories (the
        multinomial-logit information), with ``dz_k/dlog a_i = z_k``, ``dz_k/db_iv = -D a_i
        [v <= k]`` and ``dz_k/ds_r = -D a_i k``; summed into the full parameter vector and mapped
        to the free one (slopes under GPCM, present thresholds, all but the last severity).
        """
        z, a, absent = self._z(params, nodes)
        p = np.exp(z - logsumexp(z, axis=-1, keepdims=True))
        z_fin = np.where(absent[:, None, None, :], 0.0, z)
        da = self.D * a
        n_i, n_r, k_max = self.n_criteria, self.n_raters, self.k_max
        k = np.arange(k_max, dtype=float)
        steps = (np.arange(1, k_max)[None, :] <= k[:, None]).astype(float)  # (K, K-1)
        jac = np.concatenate([
            z_fin[..., None],
            np.broadcast_to(-da[:, None, None, None, None] * steps, (*z.shape, k_max - 1)),
            np.broadcast_to(-da[:, None, None, None, None] * k[:, None], (*z.shape, 1)),
        ], axis=-1)  # (I, R, Q, K, L)
        mean = np.einsum("irqk,irqkl->irql", p, jac)
        second = np.einsum("irqk,irqkl,irqkm->irqlm", p, jac, jac)
        total = counts.sum(-1)
        cov = second - mean[..., :, None] * mean[..., None, :]
        local = np.einsum("irq,irqlm->irlm", total, cov)
        n_full = n_i + n_i * (k_max - 1) + n_r
        index = np.concatenate([
            np.broadcast_to(np.arange(n_i)[:, None, None], (n_i, n_r, 1)),
            np.broadcast_to((n_i + np.arange(n_i)[:, None] * (k_max - 1)
                             + np.arange(k_max - 1)[None, :])[:, None, :], (n_i, n_r, k_max - 1)),
            np.broadcast_to(n_i + n_i * (k_max - 1) + np.arange(n_r)[None, :, None],
                            (n_i, n_r, 1)),
        ], axis=-1)  # (I, R, L) position of each local parameter in the full vector
        full = np.zeros((n_full, n_full))
        np.add.at(full, (index[..., :, None], index[..., None, :]), local)
        t = self._free_map
        return t.T @ full @ t

    @property
    def _free_map(self) -> np.ndarray:
        """(full, free) matrix: full = [log a (I), thresholds (I x (K-1)), severities (R)]."""
        n_i, n_r, k_max = self.n_criteria, self.n_raters, self.k_max
        n_full = n_i + n_i * (k_max - 1) + n_r
        t = np.zeros((n_full, self.n_params))
        col = 0
        for i in range(self.n_slopes):
            t[i, col] = 1.0
            col += 1
        for flat in np.flatnonzero(self.step_mask.ravel()):
            t[n_i + flat, col] = 1.0
            col += 1
        base = n_i + n_i * (k_max - 1)
        for r in range(n_r - 1):
            t[base + r, col + r] = 1.0
            t[base + n_r - 1, col + r] = -1.0
        return t

    def m_step(self, params: np.ndarray, counts: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Maximise the expected complete-data log-likelihood: scipy's trust-region Newton
        (``trust-exact``) with the analytic gradient and the expected information as Hessian
        (Fisher scoring with a trust region; a few steps per cycle, a generalised EM)."""
        scale = max(float(counts.sum()), 1.0)

        def negative(x):
            value, grad = self.objective(x, counts, nodes)
            return -value / scale, -grad / scale

        def information(x):
            return self.information(x, counts, nodes) / scale + 1e-9 * np.eye(x.size)

        found = optimize.minimize(negative, params, jac=True, hess=information,
                                  method="trust-exact",
                                  options={"maxiter": _M_STEPS, "gtol": 1e-10})
        x = found.x
        x[: self.n_slopes] = np.clip(x[: self.n_slopes], *_LOG_A_BOUNDS)
        return x

    # -- marginal likelihood, its gradient and the standard errors -----------------------------

    def marginal(self, full: np.ndarray, item_ll, nodes) -> tuple[float, np.ndarray]:
        """Marginal log-likelihood and gradient in (params, latent mean, log sd)."""
        params, mean, sd = full[:-2], full[-2], math.exp(full[-1])
        post, loglik = self.e_step(params, item_ll, nodes, mean, sd)
        _, grad = self.objective(params, self.counts(post), nodes)
        w = np.exp(_log_weights(nodes, mean, sd))
        g_mean = (nodes - mean) / sd**2
        g_log_sd = ((nodes - mean) / sd) ** 2
        n = post.shape[0]
        by_node = post.sum(0)
        grad_mean = by_node @ g_mean - n * (w @ g_mean)
        grad_log_sd = by_node @ g_log_sd - n * (w @ g_log_sd)
        return loglik, np.concatenate([grad, [grad_mean, grad_log_sd]])

    def covariance(self, params, item_ll, nodes, mean, sd) -> np.ndarray:
        """Inverse observed information of (params, mean, log sd), by central differences of
        the analytic gradient (a loop over parameters, each step one E-step)."""
        full = np.concatenate([params, [mean, math.log(sd)]])
        h = 1e-4
        hessian = np.empty((full.size, full.size))
        for j in range(full.size):
            step = np.zeros(full.size)
            step[j] = h
            hessian[:, j] = (self.marginal(full + step, item_ll, nodes)[1]
                             - self.marginal(full - step, item_ll, nodes)[1]) / (2 * h)
        info = -(hessian + hessian.T) / 2
        try:
            return np.linalg.inv(info)
        except np.linalg.LinAlgError:
            return np.linalg.pinv(info)

    def reported_se(self, params: np.ndarray, cov: np.ndarray, sd: float) -> dict[str, np.ndarray]:
        """Delta method: ``a = exp(log a)``; every severity from the free ones."""
        s, t = self.n_slopes, self.n_steps
        diag = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        a_se = np.full(self.n_criteria, np.nan)
        if s:
            a_se = np.exp(params[:s]) * diag[:s]
        thr_se = np.full(self.step_mask.shape, np.nan)
        thr_se[self.step_mask] = diag[s: s + t]
        r = self.n_raters
        jac = np.vstack([np.eye(r - 1), -np.ones((1, r - 1))])  # (R, R-1)
        block = cov[s + t: s + t + r - 1, s + t: s + t + r - 1]
        sev_se = np.sqrt(np.clip(np.diag(jac @ block @ jac.T), 0.0, None)) if r > 1 else (
            np.zeros(1))
        return {"a": a_se, "thresholds": thr_se, "severity": sev_se,
                "latent_mean": np.array(diag[-2]), "latent_sd": np.array(sd * diag[-1])}
