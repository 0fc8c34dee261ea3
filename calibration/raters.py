"""Rater measurement: the many-facet Rasch model (Linacre), students x criteria x raters.

Model (adjacent-category logits, in logits)::

    log P(X = k) / P(X = k - 1) = theta_n - delta_i - s_r - tau_k      (rating scale, Andrich)
    log P(X = k) / P(X = k - 1) = theta_n - delta_i - s_r - tau_ik     (partial credit)

``theta_n`` the student's measure, ``delta_i`` the criterion's difficulty, ``s_r`` the rater's
severity (a harsh rater has a positive severity: lower scores at the same theta), ``tau`` the
thresholds, ``k = 1..m`` the 0-based categories (a rubric score minus the criterion's lowest level).

Estimation is marginal maximum likelihood over students, as TAM's ``tam.mml.mfr``: students are a
random effect, ``theta ~ N(0, sigma^2)`` with ``sigma`` estimated. The marginal log-likelihood is
maximised directly (L-BFGS on its exact gradient, Fisher's identity). Every (criterion, rater,
category) triple has one log-probability per quadrature node, so one evaluation is a small table
plus two sparse products over the ratings (students x triples count matrix times the table, and
its transpose times the posterior): no loop over students or ratings.

Identification (stated in ``MFRMResult.identification``): the students' mean is 0, raters are
centred (``sum s_r = 0``), thresholds sum to 0 (over steps; per criterion for partial credit).

Standard errors come from the observed information of the marginal log-likelihood at the
optimum: exact, by Louis' identity (expected complete-data information minus the posterior
variance of each student's complete-data score), or, when there are many parameters and few
ratings a student (where that costs more), by forward differences of the exact gradient; inverted,
then carried to the centred (dependent) parameters by the linear map from the free ones.
``settings["se_method"]`` says which.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, sparse
from scipy.sparse.csgraph import connected_components
from scipy.special import logsumexp, softmax

from calibration.data import read_csv
from calibration.errors import CalibrationError

COLUMNS = ("student_id", "criterion", "rater", "score")
MODELS = ("rating-scale", "partial-credit")
QUADRATURE_RANGE = (-6.0, 6.0)
MAX_QUADRATURE = 201
_SHOWN = 8
_GROUP_SHOWN = 12


class RatingsError(CalibrationError):
    """Rating data that cannot be used: names the rows, fields, criteria or raters at fault."""


class DisconnectedDesignError(RatingsError):
    """Raters fall into groups that share no student: severities cannot be compared."""

    def __init__(self, message: str, groups: Sequence[Sequence[str]]) -> None:
        super().__init__(message)
        self.groups = tuple(tuple(g) for g in groups)


# -- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Ratings:
    """Rubric scores in long form: one entry per (student, criterion, rater) rating.

    Attributes
    ----------
    student_ids, criterion_ids, rater_ids : tuple of str
        Labels, in order of first appearance; the index arrays point into them.
    student, criterion, rater : ndarray of int, shape (n,)
        Who was rated, on what, by whom.
    score : ndarray of int, shape (n,)
        The 0-based category: the rubric score minus ``min_score`` of its criterion.
    n_categories : ndarray of int, shape (I,)
        Categories of each criterion (``0 .. n_categories - 1``).
    min_score : ndarray of int, shape (I,)
        The rubric score that is category 0 of each criterion (subtracted from the scores).
    rows : ndarray of int, shape (n,), optional
        Where each rating came from (file line or record number), for messages.
    """

    student_ids: tuple[str, ...]
    criterion_ids: tuple[str, ...]
    rater_ids: tuple[str, ...]
    student: np.ndarray
    criterion: np.ndarray
    rater: np.ndarray
    score: np.ndarray
    n_categories: np.ndarray
    min_score: np.ndarray
    rows: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of ratings."""
        return int(self.score.size)

    @property
    def n_students(self) -> int:
        return len(self.student_ids)

    @property
    def n_criteria(self) -> int:
        return len(self.criterion_ids)

    @property
    def n_raters(self) -> int:
        return len(self.rater_ids)

    @property
    def raw_score(self) -> np.ndarray:
        """(n,) the scores in the rubric's own units (``score + min_score`` of the criterion)."""
        return self.score + self.min_score[self.criterion]


def ratings_from_records(
    records: Iterable[Mapping[str, Any]],
    min_score: int | Mapping[str, int] | None = None,
    *,
    rows: Sequence[int] | None = None,
) -> Ratings:
    """Build :class:`Ratings` from records with ``student_id, criterion, rater, score``.

    Parameters
    ----------
    records : iterable of mapping
        One rating each; other keys are ignored.
    min_score : int or mapping of criterion to int, optional
        The rubric score that is category 0 (of every criterion, or per criterion). By default
        the lowest score observed on each criterion.
    rows : sequence of int, optional
        The number of each record in error messages (file lines); by default 1, 2, ...

    Raises
    ------
    RatingsError
        Naming row and field: missing fields, blank labels, non-integer scores, a score below
        ``min_score``, duplicate (student, criterion, rater) ratings (both rows named), no
        ratings, one rater only, a criterion with a single observed level.
    """
    records = list(records)
    numbers = list(range(1, len(records) + 1)) if rows is None else list(rows)
    if not records:
        raise RatingsError("no ratings: the data are empty")
    values: dict[str, list] = {name: [] for name in COLUMNS}
    for number, record in zip(numbers, records, strict=True):
        for name in COLUMNS:
            value = record.get(name)
            if name == "score":
                score = _integer(value)
                if score is None:
                    shown = "nothing" if value is None or str(value).strip() == "" else repr(
                        value.strip() if isinstance(value, str) else value)
                    raise RatingsError(f"row {number}, score: {shown} is not an integer")
                values[name].append(score)
            else:
                label = "" if value is None else str(value).strip()
                if not label:
                    raise RatingsError(f"row {number}, {name}: empty")
                values[name].append(label)
    students, student = _factorize(values["student_id"])
    criteria, criterion = _factorize(values["criterion"])
    raters, rater = _factorize(values["rater"])
    raw = np.asarray(values["score"], dtype=np.int64)
    row_numbers = np.asarray(numbers, dtype=np.int64)
    _refuse_duplicates(student, criterion, rater, row_numbers, students, criteria, raters)
    if len(raters) < 2:
        raise RatingsError(f"one rater only ({raters[0]!r}): rater measurement needs at least "
                           "two raters who share students")
    lowest = np.full(len(criteria), np.iinfo(np.int64).max)
    np.minimum.at(lowest, criterion, raw)
    if min_score is not None:
        if isinstance(min_score, Mapping):
            unknown = sorted(set(min_score) - set(criteria))
            if unknown:
                raise RatingsError(f"min_score names criteria with no ratings: {_list(unknown)}")
            base = np.array([_min_score(min_score.get(c, lowest[i]), c)
                             for i, c in enumerate(criteria)], dtype=np.int64)
        else:
            base = np.full(len(criteria), _min_score(min_score, None), dtype=np.int64)
        below = np.flatnonzero(raw < base[criterion])
        if below.size:
            o = below[0]
            raise RatingsError(f"row {row_numbers[o]}, score: {raw[o]} is below the lowest level "
                               f"{base[criterion[o]]} of criterion {criteria[criterion[o]]!r}")
    else:
        base = lowest
    score = raw - base[criterion]
    top = np.zeros(len(criteria), dtype=np.int64)
    np.maximum.at(top, criterion, score)
    levels = np.zeros(len(criteria), dtype=np.int64)
    distinct = np.unique(criterion.astype(np.int64) * (int(score.max()) + 1) + score)
    np.add.at(levels, distinct // (int(score.max()) + 1), 1)
    single = [criteria[i] for i in np.flatnonzero(levels < 2)]
    if single:
        detail = ", ".join(f"{c!r} (only {int(base[criteria.index(c)] + top[criteria.index(c)])})"
                           for c in single[:_SHOWN])
        raise RatingsError(f"criteria with a single observed level cannot be measured: {detail}")
    return Ratings(
        student_ids=tuple(students), criterion_ids=tuple(criteria), rater_ids=tuple(raters),
        student=student, criterion=criterion, rater=rater, score=score.astype(np.intp),
        n_categories=(top + 1).astype(np.intp), min_score=base, rows=row_numbers,
    )


def read_ratings(path: str | Path, min_score: int | Mapping[str, int] | None = None) -> Ratings:
    """Read the long CSV ``student_id,criterion,rater,score`` (other columns ignored).

    Rows are numbered as lines of the file (the header is row 1). Blank lines are skipped.

    Raises
    ------
    RatingsError
        With the file name: an empty file, missing columns (named), a row with missing fields,
        and everything :func:`ratings_from_records` refuses.
    """
    path = Path(path)
    header, lines = read_csv(path, RatingsError)
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise RatingsError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(missing)} (expected {','.join(COLUMNS)})")
    col = {name: header.index(name) for name in COLUMNS}
    records, numbers = [], []
    for number, line in enumerate(lines, 2):
        if not any(cell.strip() for cell in line):
            continue
        if len(line) <= max(col.values()):
            absent = [name for name in COLUMNS if col[name] >= len(line)]
            raise RatingsError(f"{path}: row {number}, {absent[0]}: missing")
        records.append({name: line[col[name]] for name in COLUMNS})
        numbers.append(number)
    if not records:
        raise RatingsError(f"{path}: no ratings (only a header)")
    try:
        return ratings_from_records(records, min_score, rows=numbers)
    except RatingsError as error:
        raise RatingsError(f"{path}: {error}") from None


def rater_groups(ratings: Ratings) -> list[tuple[str, ...]]:
    """Raters linked through shared students: the connected components of the rater-student graph.

    Returns
    -------
    list of tuple of str
        Rater labels of each group, largest group first; one group when the design is connected.
    """
    n_r, n_s = ratings.n_raters, ratings.n_students
    graph = sparse.coo_matrix(
        (np.ones(ratings.n), (ratings.rater, n_r + ratings.student)), shape=(n_r + n_s,) * 2
    )
    _, label = connected_components(graph, directed=False)
    rater_label = label[:n_r]
    groups = [tuple(ratings.rater_ids[r] for r in np.flatnonzero(rater_label == g))
              for g in np.unique(rater_label)]
    return sorted(groups, key=lambda g: (-len(g), g))


def check_connected(ratings: Ratings) -> None:
    """Raise :class:`DisconnectedDesignError` naming the groups when raters share no student."""
    groups = rater_groups(ratings)
    if len(groups) < 2:
        return
    shown = [_braces(g) for g in groups[:_SHOWN]]
    listed = ", ".join(shown[:-1]) + " and " + shown[-1]
    if len(groups) > _SHOWN:
        listed = ", ".join(shown) + f" and {len(groups) - _SHOWN} more"
    raise DisconnectedDesignError(
        f"raters form {len(groups)} groups that share no student: {listed}; severities of "
        "different groups cannot be compared", groups)


# -- result -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MFRMResult:
    """A many-facet Rasch model fitted by marginal maximum likelihood.

    Measures are in logits on the students' scale (mean 0, sd ``sigma``).

    Attributes
    ----------
    model : str
        ``"rating-scale"`` or ``"partial-credit"``.
    raters : list of dict
        ``rater, severity, se, infit, outfit, infit_z, outfit_z, n`` per rater (severity:
        positive is harsh).
    criteria : list of dict
        ``criterion, difficulty, se, infit, outfit, infit_z, outfit_z, n`` per criterion.
    thresholds : list of dict
        Rating scale: ``step, tau, se`` per step ``1..m``; partial credit: ``criterion, step,
        tau, se`` per criterion and step. ``tau`` is relative to the criterion's difficulty.
    students : list of dict
        ``student_id, measure, se, fair_average, n``: EAP measure and posterior sd; the fair
        average is the expected rubric score for an average rater (see :func:`fit_mfrm`).
    sigma, sigma_se : float
        Estimated sd of the students' measures, and its standard error.
    log_likelihood : float
        Marginal log-likelihood at the estimates.
    n_parameters : int
        Free parameters (difficulties, severities minus one, free thresholds, sigma).
    converged : bool
    iterations : int
    identification : str
    fit_method : str
        How infit and outfit were computed.
    settings : dict
    seconds : float
    """

    model: str
    raters: list[dict]
    criteria: list[dict]
    thresholds: list[dict]
    students: list[dict]
    sigma: float
    sigma_se: float
    log_likelihood: float
    n_parameters: int
    converged: bool
    iterations: int
    identification: str
    fit_method: str
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def severity(self) -> np.ndarray:
        """(R,) rater severities, in the data's rater order."""
        return np.array([r["severity"] for r in self.raters])

    @property
    def severity_se(self) -> np.ndarray:
        return np.array([r["se"] for r in self.raters])

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (NaN and infinities become ``None``)."""
        return _clean({
            "model": self.model,
            "raters": self.raters,
            "criteria": self.criteria,
            "thresholds": self.thresholds,
            "students": self.students,
            "sigma": self.sigma,
            "sigma_se": self.sigma_se,
            "log_likelihood": self.log_likelihood,
            "n_parameters": self.n_parameters,
            "converged": self.converged,
            "iterations": self.iterations,
            "identification": self.identification,
            "fit_method": self.fit_method,
            "settings": self.settings,
        })


# -- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Design:
    """Ratings reduced to distinct (criterion, rater, category) cells and the maps of the model."""

    n_criteria: int
    n_raters: int
    n_cat: np.ndarray          # (I,) categories per criterion
    k_max: int                 # largest number of categories
    cell_criterion: np.ndarray  # (C,)
    cell_rater: np.ndarray      # (C,)
    cell_score: np.ndarray      # (C,)
    counts: sparse.csr_matrix   # students x cells
    counts_t: sparse.csr_matrix  # cells x students
    tau_index: np.ndarray       # (I, k_max - 1) index of tau_ik in the full vector, -1 if none
    n_tau: int
    expand: np.ndarray          # full parameters = expand @ free
    names: tuple[str, ...]      # names of the full parameters


def _design(ratings: Ratings, model: str) -> _Design:
    n_i, n_r = ratings.n_criteria, ratings.n_raters
    n_cat = np.asarray(ratings.n_categories, dtype=np.intp)
    k_max = int(n_cat.max())
    cell = (ratings.criterion.astype(np.int64) * n_r + ratings.rater) * k_max + ratings.score
    cells, inverse = np.unique(cell, return_inverse=True)
    counts = sparse.csr_matrix(
        (np.ones(ratings.n), (ratings.student, inverse)), shape=(ratings.n_students, cells.size))
    counts.sum_duplicates()
    tau_index = np.full((n_i, max(k_max - 1, 0)), -1, dtype=np.intp)
    if model == "rating-scale":
        tau_index[:, :] = np.arange(k_max - 1)[None, :]
        n_tau = k_max - 1
        tau_groups = [list(range(n_tau))]
    else:
        n_tau, tau_groups = 0, []
        for i in range(n_i):
            m = int(n_cat[i]) - 1
            tau_index[i, :m] = n_tau + np.arange(m)
            tau_groups.append(list(range(n_tau, n_tau + m)))
            n_tau += m
    n_full = n_i + n_r + n_tau + 1
    columns: list[np.ndarray] = []

    def unit(position: int, minus: int | None = None) -> np.ndarray:
        v = np.zeros(n_full)
        v[position] = 1.0
        if minus is not None:
            v[minus] = -1.0
        return v

    columns += [unit(i) for i in range(n_i)]
    columns += [unit(n_i + r, n_i + n_r - 1) for r in range(n_r - 1)]
    for group in tau_groups:
        columns += [unit(n_i + n_r + t, n_i + n_r + group[-1]) for t in group[:-1]]
    columns.append(unit(n_full - 1))
    names = ([f"delta[{c}]" for c in ratings.criterion_ids]
             + [f"s[{r}]" for r in ratings.rater_ids]
             + [f"tau[{t}]" for t in range(n_tau)] + ["log_sigma"])
    return _Design(
        n_criteria=n_i, n_raters=n_r, n_cat=n_cat, k_max=k_max,
        cell_criterion=(cells // k_max // n_r).astype(np.intp),
        cell_rater=(cells // k_max % n_r).astype(np.intp),
        cell_score=(cells % k_max).astype(np.intp), counts=counts, counts_t=counts.T.tocsr(),
        tau_index=tau_index, n_tau=n_tau, expand=np.column_stack(columns), names=tuple(names),
    )


def _unpack(design: _Design, full: np.ndarray):
    n_i, n_r = design.n_criteria, design.n_raters
    delta = full[:n_i]
    severity = full[n_i:n_i + n_r]
    tau = full[n_i + n_r:n_i + n_r + design.n_tau]
    return delta, severity, tau, float(np.exp(full[-1]))


def _steps(design: _Design, tau: np.ndarray) -> np.ndarray:
    """(I, k_max) cumulative thresholds C_ik = sum_{v<=k} tau_iv (C_i0 = 0); +inf where none."""
    k_max = design.k_max
    step = np.where(design.tau_index >= 0, tau[np.maximum(design.tau_index, 0)], np.inf)
    cumulative = np.zeros((design.n_criteria, k_max))
    cumulative[:, 1:] = np.cumsum(step, axis=1)
    return cumulative


def _category_logits(design: _Design, full: np.ndarray, z: np.ndarray, criterion, rater):
    """(k_max, n, Q) eta_k = k (sigma z - delta_i - s_r) - C_ik for the given (i, r) pairs.

    Categories come first so that sums over them are element-wise operations on contiguous
    (n, Q) slices (a reduction over a short trailing axis is several times slower).
    """
    delta, severity, tau, sigma = _unpack(design, full)
    cumulative = _steps(design, tau)
    k = np.arange(design.k_max, dtype=float)
    shift = sigma * z[None, :] - (delta[criterion] + severity[rater])[:, None]
    return k[:, None, None] * shift[None] - cumulative[criterion].T[:, :, None]


def _category_probabilities(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over the leading (category) axis, and its log normaliser."""
    peak = eta.max(axis=0)
    prob = np.exp(eta - peak)
    total = prob.sum(axis=0)
    prob /= total
    return prob, np.log(total) + peak


def _objective(design: _Design, full: np.ndarray, z: np.ndarray, log_w: np.ndarray,
               gradient: bool = True):
    """Marginal log-likelihood, its gradient with respect to the full parameters, the posterior."""
    eta = _category_logits(design, full, z, design.cell_criterion, design.cell_rater)
    prob, log_norm = _category_probabilities(eta)                                    # (K, C, Q)
    score = design.cell_score
    cells = np.arange(score.size)
    log_p = eta[score, cells] - log_norm                                             # (C, Q)
    joint = design.counts @ log_p + log_w[None, :]                                   # (N, Q)
    peak = joint.max(axis=1, keepdims=True)
    posterior = np.exp(joint - peak)
    total = posterior.sum(axis=1, keepdims=True)
    posterior /= total
    loglik = float((np.log(total) + peak).sum())
    if not gradient:
        return loglik, None, posterior
    weight = design.counts_t @ posterior                                             # (C, Q)
    k = np.arange(design.k_max, dtype=float)
    residual = score[:, None] - np.tensordot(k, prob, axes=1)                        # (C, Q)
    weighted = weight * residual
    n_i, n_r = design.n_criteria, design.n_raters
    grad = np.zeros(n_i + n_r + design.n_tau + 1)
    by_cell = -weighted.sum(axis=1)
    grad[:n_i] = np.bincount(design.cell_criterion, by_cell, minlength=n_i)
    grad[n_i:n_i + n_r] = np.bincount(design.cell_rater, by_cell, minlength=n_r)
    sigma = float(np.exp(full[-1]))
    grad[-1] = sigma * float(weighted.sum(axis=0) @ z)
    # d/dC_ik = -(1[x = k] - P_k); d/dtau_iv = sum over k >= v of d/dC_ik.
    d_cumulative = np.einsum("cq,kcq->ck", weight, prob)                             # (C, K)
    d_cumulative[cells, score] -= weight.sum(axis=1)
    per_criterion = np.zeros((n_i, design.k_max))
    np.add.at(per_criterion, design.cell_criterion, d_cumulative)
    d_tau = np.cumsum(per_criterion[:, ::-1], axis=1)[:, ::-1][:, 1:]                # (I, K-1)
    valid = design.tau_index >= 0
    grad[n_i + n_r:n_i + n_r + design.n_tau] = np.bincount(
        design.tau_index[valid], d_tau[valid], minlength=design.n_tau)
    return loglik, grad, posterior


def fit_mfrm(
    ratings: Ratings,
    model: str = "rating-scale",
    *,
    quadrature: int = 31,
    max_iterations: int = 500,
    tolerance: float = 1e-6,
    progress: Callable[[int, float], None] | None = None,
) -> MFRMResult:
    """Fit the many-facet Rasch model by marginal maximum likelihood over students.

    Parameters
    ----------
    ratings : Ratings
        The ratings (see :func:`read_ratings`). Raters must be connected through shared students.
    model : str
        ``"rating-scale"`` (Andrich: one set of thresholds; every criterion must have the same
        number of categories) or ``"partial-credit"`` (thresholds per criterion).
    quadrature : int
        Equally spaced nodes on [-6, 6] standard deviations of the students' distribution.
    max_iterations : int
        Most L-BFGS iterations.
    tolerance : float
        Convergence: the largest absolute gradient of the marginal log-likelihood per student
        (free parameters) below this (``converged`` is also True when the optimizer stops on a
        failed line search with that gradient below ten times ``tolerance``).
    progress : callable, optional
        Called as ``progress(iteration, log_likelihood)`` after every iteration.

    Returns
    -------
    MFRMResult
        Severities, difficulties and thresholds with standard errors from the observed
        information; infit and outfit mean squares with their Wilson-Hilferty standardised forms
        (squared residuals expected over each student's posterior); per student the EAP measure, its
        posterior sd and the fair average: the expected rubric score (in the rubric's own units,
        ``min_score`` added back) of that measure for an average rater (``s = 0``), averaged over
        the criteria, as FACETS' fair average.

    Raises
    ------
    RatingsError
        An unknown model, a rating scale over criteria with different numbers of levels, a level
        never observed within a criterion's range (partial credit) or on any criterion (rating
        scale), a rater who gave only the lowest (or only the highest) level, or bad settings.
    DisconnectedDesignError
        Raters in groups that share no student (the message names the groups).
    """
    started = time.perf_counter()
    if model not in MODELS:
        raise RatingsError(f"unknown model {model!r}: use one of {', '.join(MODELS)}")
    if not (isinstance(quadrature, int | np.integer) and 5 <= quadrature <= MAX_QUADRATURE):
        raise RatingsError(f"quadrature must be an integer from 5 to {MAX_QUADRATURE}, got "
                           f"{quadrature!r}")
    if not (isinstance(max_iterations, int | np.integer) and max_iterations >= 1):
        raise RatingsError(f"max_iterations must be a positive integer, got {max_iterations!r}")
    if not tolerance > 0:
        raise RatingsError(f"tolerance must be positive, got {tolerance!r}")
    _check_levels(ratings, model)
    check_connected(ratings)
    _check_extreme_raters(ratings)
    design = _design(ratings, model)
    z = np.linspace(*QUADRATURE_RANGE, quadrature)
    log_w = -0.5 * z**2
    log_w -= logsumexp(log_w)
    expand = design.expand
    n_students = ratings.n_students
    start = _start_values(ratings, design)
    free0 = np.linalg.lstsq(expand, start, rcond=None)[0]

    last = [-math.inf]

    def negative(free: np.ndarray) -> tuple[float, np.ndarray]:
        loglik, grad, _ = _objective(design, expand @ free, z, log_w)
        last[0] = loglik
        return -loglik / n_students, -(expand.T @ grad) / n_students

    iterations = 0

    def callback(_: np.ndarray) -> None:
        nonlocal iterations
        iterations += 1
        if progress is not None:
            progress(iterations, last[0])

    solution = optimize.minimize(
        negative, free0, jac=True, method="L-BFGS-B", callback=callback,
        options={"maxiter": int(max_iterations), "gtol": float(tolerance), "ftol": 1e-15,
                 "maxcor": 30},
    )
    free = solution.x
    full = expand @ free
    loglik, grad, posterior = _objective(design, full, z, log_w)
    worst = float(np.abs(expand.T @ grad).max()) / n_students
    converged = bool(solution.success or worst <= 10 * tolerance)
    if n_students * expand.shape[1] <= _LOUIS_RATIO * ratings.n:
        se_method = "observed information of the marginal likelihood (Louis' identity)"
        information = _information(design, full, z, posterior)
    else:
        se_method = ("observed information of the marginal likelihood: forward differences of "
                     "its exact gradient")
        information = _information_by_differences(design, free, z, log_w, expand.T @ grad)
    covariance = _inverse(information)
    se_full = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", expand, covariance, expand), 0, None))
    delta, severity, tau, sigma = _unpack(design, full)
    theta = sigma * z
    measure = posterior @ theta
    measure_sd = np.sqrt(np.clip(posterior @ theta**2 - measure**2, 0, None))
    fit = _fit_statistics(design, full, z, posterior)
    n_i, n_r = design.n_criteria, design.n_raters
    se_delta, se_s = se_full[:n_i], se_full[n_i:n_i + n_r]
    se_tau = se_full[n_i + n_r:n_i + n_r + design.n_tau]
    raters = [
        {"rater": ratings.rater_ids[r], "severity": float(severity[r]), "se": float(se_s[r]),
         **fit["rater"][r]} for r in range(n_r)
    ]
    criteria = [
        {"criterion": ratings.criterion_ids[i], "difficulty": float(delta[i]),
         "se": float(se_delta[i]), **fit["criterion"][i]} for i in range(n_i)
    ]
    if model == "rating-scale":
        thresholds = [{"step": v + 1, "tau": float(tau[v]), "se": float(se_tau[v])}
                      for v in range(design.n_tau)]
    else:
        thresholds = [
            {"criterion": ratings.criterion_ids[i], "step": v + 1,
             "tau": float(tau[design.tau_index[i, v]]),
             "se": float(se_tau[design.tau_index[i, v]])}
            for i in range(n_i) for v in range(int(design.n_cat[i]) - 1)
        ]
    fair = _fair_average(ratings, design, full, measure)
    counts = np.bincount(ratings.student, minlength=n_students)
    students = [
        {"student_id": ratings.student_ids[n], "measure": float(measure[n]),
         "se": float(measure_sd[n]), "fair_average": float(fair[n]), "n": int(counts[n])}
        for n in range(n_students)
    ]
    settings = {
        "model": model, "quadrature": {"nodes": int(quadrature), "range": list(QUADRATURE_RANGE),
                                       "unit": "student sd", "rule": "equally spaced, weights "
                                       "proportional to the normal density"},
        "max_iterations": int(max_iterations), "tolerance": float(tolerance),
        "optimizer": "L-BFGS-B on the marginal log-likelihood (exact gradient)",
        "se_method": se_method,
        "n_ratings": ratings.n, "n_students": n_students,
    }
    return MFRMResult(
        model=model, raters=raters, criteria=criteria, thresholds=thresholds, students=students,
        sigma=sigma, sigma_se=float(sigma * se_full[-1]), log_likelihood=loglik,
        n_parameters=int(expand.shape[1]), converged=converged, iterations=int(solution.nit),
        identification="students ~ N(0, sigma^2) (student mean 0); rater severities centred "
                       "(sum of severities = 0); thresholds sum to 0"
                       + (" per criterion" if model == "partial-credit" else ""),
        fit_method="infit and outfit mean squares with every squared residual expected over "
                   "the student's posterior (not at a point estimate); standardised (infit_z, "
                   "outfit_z) by the Wilson-Hilferty cube root with the model variance of the "
                   "mean square (Wright and Masters)",
        settings=settings, seconds=time.perf_counter() - started,
    )


def _fair_average(ratings: Ratings, design: _Design, full: np.ndarray,
                  measure: np.ndarray) -> np.ndarray:
    """(N,) expected rubric score at each measure for an average rater (s = 0), mean over criteria.

    In the rubric's own units (each criterion's ``min_score`` added back), as FACETS' fair
    average: the score a student of that measure would get from a rater of average severity,
    averaged over every criterion of the rubric (not only the ones the student was rated on).
    """
    delta, _, tau, _ = _unpack(design, full)
    cumulative = _steps(design, tau)
    k = np.arange(design.k_max)
    eta = (measure[:, None, None] - delta[None, :, None]) * k - cumulative[None, :, :]  # N,I,K
    expected = softmax(eta, axis=2) @ k + ratings.min_score[None, :]
    return expected.mean(axis=1)


_STUDENT_BLOCK = 2048
#: Louis' identity for the standard errors when students x free parameters is at most this many
#: times the number of ratings, else differences of the gradient (the cheaper of the two).
_LOUIS_RATIO = 4


def _information(design: _Design, full: np.ndarray, z: np.ndarray,
                 posterior: np.ndarray) -> np.ndarray:
    """Observed information of the marginal log-likelihood (free parameters), by Louis' identity.

    ``I = sum_n E_post[-d2 l_n] - sum_n Var_post[d l_n]``: the expected complete-data
    information (per (criterion, rater, category) cell and node, weighted by the expected counts)
    minus the posterior variance of each student's complete-data score (students in blocks).
    Each cell's log-probability depends on its local parameters ``(delta_i, s_r, tau_i1..,
    log sigma)``; ``d eta_j`` with respect to them is ``(-j, -j, -1[j >= 1], .., j sigma z)``.
    """
    k_max, n_i, n_r = design.k_max, design.n_criteria, design.n_raters
    expand = design.expand
    n_full, n_free = expand.shape
    eta = _category_logits(design, full, z, design.cell_criterion, design.cell_rater)
    prob, _ = _category_probabilities(eta)                                    # (K, C, Q)
    sigma = float(np.exp(full[-1]))
    n_cells, n_nodes = design.cell_score.size, z.size
    n_local = k_max + 2
    j = np.arange(k_max, dtype=float)
    # local derivatives u[j, c, q, :] of eta_j, and the full index of each local parameter
    u = np.zeros((k_max, n_cells, n_nodes, n_local))
    u[:, :, :, 0] = -j[:, None, None]
    u[:, :, :, 1] = -j[:, None, None]
    for v in range(1, k_max):
        u[:, :, :, 1 + v] = -(j >= v).astype(float)[:, None, None]
    u[:, :, :, -1] = j[:, None, None] * sigma * z[None, None, :]
    index = np.zeros((n_cells, n_local), dtype=np.intp)
    index[:, 0] = design.cell_criterion
    index[:, 1] = n_i + design.cell_rater
    tau_index = design.tau_index[design.cell_criterion]                      # (C, K-1)
    valid = np.ones((n_cells, n_local), dtype=bool)
    valid[:, 2:-1] = tau_index >= 0
    index[:, 2:-1] = n_i + n_r + np.maximum(tau_index, 0)
    index[:, -1] = n_full - 1
    mean_u = np.einsum("kcq,kcql->cql", prob, u)
    deviation = u - mean_u[None]
    weight = design.counts_t @ posterior                                      # (C, Q)
    complete = np.einsum("cq,kcq,kcql,kcqm->clm", weight, prob, deviation, deviation)
    residual = design.cell_score[:, None] - np.tensordot(j, prob, axes=1)    # (C, Q)
    complete[:, -1, -1] -= (weight * residual * sigma * z[None, :]).sum(axis=1)
    complete *= valid[:, :, None] & valid[:, None, :]
    info_full = np.zeros((n_full, n_full))
    np.add.at(info_full, (index[:, :, None], index[:, None, :]), complete)
    information = expand.T @ info_full @ expand
    # each cell-node's complete-data score in free parameters: (u_observed - mean u) mapped
    local_to_free = expand[index] * valid[:, :, None]                       # (C, L, P)
    observed_u = u[design.cell_score, np.arange(n_cells)]                     # (C, Q, L)
    score = np.einsum("cql,clp->cqp", observed_u - mean_u, local_to_free)
    score = score.reshape(n_cells, n_nodes * n_free)
    for start in range(0, posterior.shape[0], _STUDENT_BLOCK):
        block = slice(start, start + _STUDENT_BLOCK)
        h = posterior[block]
        g = (design.counts[block] @ score).reshape(-1, n_nodes, n_free)      # (n, Q, P)
        scaled = (np.sqrt(h)[:, :, None] * g).reshape(-1, n_free)
        mean_g = np.einsum("nq,nqp->np", h, g)
        information -= scaled.T @ scaled - mean_g.T @ mean_g
    return 0.5 * (information + information.T)


def _information_by_differences(design: _Design, free: np.ndarray, z: np.ndarray,
                                log_w: np.ndarray, gradient_at_free: np.ndarray) -> np.ndarray:
    """Observed information by forward differences of the exact gradient (free parameters).

    One gradient evaluation per free parameter: cheaper than Louis' identity, whose cost grows as
    students x nodes x parameters^2, when there are many parameters and few ratings a student.
    The truncation error, of the order of the step (1e-5), is far below the sampling error.
    """
    expand = design.expand
    n_free = free.size
    hessian = np.empty((n_free, n_free))
    step = 1e-5 * np.maximum(1.0, np.abs(free))
    for j in range(n_free):  # each evaluation vectorised over students and nodes
        moved = free.copy()
        moved[j] += step[j]
        hessian[:, j] = (expand.T @ _objective(design, expand @ moved, z, log_w)[1]
                         - gradient_at_free) / step[j]
    return -0.5 * (hessian + hessian.T)


def _inverse(information: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(information)


def _fit_statistics(design: _Design, full: np.ndarray, z: np.ndarray,
                    posterior: np.ndarray) -> dict[str, list[dict]]:
    """Infit and outfit of raters and criteria, each squared residual expected over the posterior.

    For a rating ``x`` at ``theta`` with model mean ``E`` and variance ``V``, the outfit mean
    square averages ``(x - E)^2 / V`` and the infit is ``sum (x - E)^2 / sum V``; here every term
    is averaged over the student's posterior (the quadrature weights), which keeps both near 1
    under the model even when each student has few ratings (at a point estimate they are biased
    low, the estimate having been fitted to the same ratings). Standardised by the
    Wilson-Hilferty cube root with the model variance of the mean square (Wright and Masters).
    """
    eta = _category_logits(design, full, z, design.cell_criterion, design.cell_rater)
    prob, _ = _category_probabilities(eta)                                   # (K, C, Q)
    k = np.arange(design.k_max, dtype=float)
    expected = np.tensordot(k, prob, axes=1)
    deviation = k[:, None, None] - expected[None]
    variance = np.maximum((prob * deviation**2).sum(axis=0), 1e-12)
    fourth = (prob * deviation**4).sum(axis=0)
    residual2 = (design.cell_score[:, None] - expected) ** 2
    weight = design.counts_t @ posterior                                    # (C, Q)
    terms = {
        "n": weight.sum(axis=1),
        "z2": (weight * residual2 / variance).sum(axis=1),
        "r2": (weight * residual2).sum(axis=1),
        "v": (weight * variance).sum(axis=1),
        "c4v2": (weight * fourth / variance**2).sum(axis=1),
        "c4mv2": (weight * (fourth - variance**2)).sum(axis=1),
    }
    out: dict[str, list[dict]] = {}
    for name, index, size in (("rater", design.cell_rater, design.n_raters),
                              ("criterion", design.cell_criterion, design.n_criteria)):
        total = {key: np.bincount(index, value, minlength=size) for key, value in terms.items()}
        n = total["n"]
        outfit = total["z2"] / n
        infit = total["r2"] / total["v"]
        q_out = np.sqrt(np.maximum(total["c4v2"] / n**2 - 1.0 / n, 1e-12))
        q_in = np.sqrt(np.maximum(total["c4mv2"] / total["v"] ** 2, 1e-12))
        out[name] = [
            {"infit": float(infit[j]), "outfit": float(outfit[j]),
             "infit_z": _wilson_hilferty(infit[j], q_in[j]),
             "outfit_z": _wilson_hilferty(outfit[j], q_out[j]), "n": int(np.rint(n[j]))}
            for j in range(size)
        ]
    return out


def _wilson_hilferty(mean_square: float, q: float) -> float:
    """Standardised mean square: (MS^(1/3) - 1)(3/q) + q/3 (Wright and Masters, 1982)."""
    return float((np.cbrt(mean_square) - 1.0) * (3.0 / q) + q / 3.0)


def _start_values(ratings: Ratings, design: _Design) -> np.ndarray:
    """Full parameter vector to start from: logits of mean scores, zero severities, sigma 1."""
    n_i = design.n_criteria
    mean = np.bincount(ratings.criterion, ratings.score, minlength=n_i) / np.bincount(
        ratings.criterion, minlength=n_i)
    top = design.n_cat - 1
    p = np.clip(mean / top, 0.05, 0.95)
    full = np.zeros(n_i + design.n_raters + design.n_tau + 1)
    full[:n_i] = -np.log(p / (1 - p))
    return full


def _check_extreme_raters(ratings: Ratings) -> None:
    """Refuse raters whose every rating is the lowest (or every one the highest) level."""
    top = (np.asarray(ratings.n_categories) - 1)[ratings.criterion]
    n = np.bincount(ratings.rater, minlength=ratings.n_raters)
    lowest = np.bincount(ratings.rater, ratings.score == 0, ratings.n_raters) == n
    highest = np.bincount(ratings.rater, ratings.score == top, ratings.n_raters) == n
    problems = [f"{ratings.rater_ids[r]!r} ({'lowest' if lowest[r] else 'highest'})"
                for r in np.flatnonzero(lowest | highest)]
    if problems:
        raise RatingsError("raters who gave only the lowest or only the highest level have no "
                           f"finite severity: {_list(problems)}")


def _check_levels(ratings: Ratings, model: str) -> None:
    """Refuse thresholds the data cannot inform: unobserved levels inside a criterion's range."""
    n_cat = np.asarray(ratings.n_categories, dtype=np.intp)
    k_max = int(n_cat.max())
    seen = np.zeros((ratings.n_criteria, k_max), dtype=bool)
    seen[ratings.criterion, ratings.score] = True
    if model == "rating-scale":
        if np.unique(n_cat).size > 1:
            detail = ", ".join(f"{c!r} {int(m)}" for c, m in zip(ratings.criterion_ids, n_cat,
                                                                 strict=True))
            raise RatingsError("the rating-scale model needs the same number of levels on every "
                               f"criterion (levels: {detail}); use partial-credit")
        never = np.flatnonzero(~seen.any(axis=0))
        if never.size:
            # In the rubric's own scores (what a teacher reads), not 0-based categories.
            low = np.unique(np.asarray(ratings.min_score, dtype=np.int64))
            if low.size == 1:
                named = ", ".join(f"score {int(k + low[0])}" for k in never)
            else:
                named = "; ".join(
                    f"level {int(k) + 1} (scores "
                    + ", ".join(f"{int(k + m)} of {c!r}" for c, m in zip(
                        ratings.criterion_ids, ratings.min_score, strict=True)) + ")"
                    for k in never)
            raise RatingsError(f"levels never used on any criterion: {named}; every level needs "
                               "a rating for its threshold to be estimated")
        return
    problems = []
    for i in range(ratings.n_criteria):
        for k in np.flatnonzero(~seen[i, :n_cat[i]]):
            problems.append(f"{ratings.criterion_ids[i]!r} level "
                            f"{int(k + ratings.min_score[i])}")
    if problems:
        raise RatingsError("partial-credit thresholds need every level of a criterion observed; "
                           f"never used: {_list(problems)}")


# -- helpers ------------------------------------------------------------------------------------


def _refuse_duplicates(student, criterion, rater, rows, students, criteria, raters) -> None:
    key = (student.astype(np.int64) * len(criteria) + criterion) * len(raters) + rater
    order = np.argsort(key, kind="stable")
    same = np.flatnonzero(np.diff(key[order]) == 0)
    if same.size:
        first, second = order[same[0]], order[same[0] + 1]
        raise RatingsError(
            f"row {rows[second]}: a second score by rater {raters[rater[first]]!r} for student "
            f"{students[student[first]]!r} on criterion {criteria[criterion[first]]!r} (first "
            f"in row {rows[first]})" + (f"; {same.size - 1} more duplicates" if same.size > 1
                                        else ""))


def _factorize(labels: Sequence[str]) -> tuple[list[str], np.ndarray]:
    seen: dict[str, int] = {}
    codes = np.fromiter((seen.setdefault(v, len(seen)) for v in labels), dtype=np.intp,
                        count=len(labels))
    return list(seen), codes


def _integer(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _min_score(value, criterion: str | None) -> int:
    number = _integer(value)
    if number is None:
        where = f" of criterion {criterion!r}" if criterion is not None else ""
        raise RatingsError(f"min_score{where}: {value!r} is not an integer")
    return number


def _braces(group: Sequence[str]) -> str:
    shown = ", ".join(group[:_GROUP_SHOWN])
    more = f", ... ({len(group) - _GROUP_SHOWN} more)" if len(group) > _GROUP_SHOWN else ""
    return "{" + shown + more + "}"


def _list(things: Sequence[str]) -> str:
    things = list(things)
    shown = ", ".join(str(t) for t in things[:_SHOWN])
    return shown + (f" and {len(things) - _SHOWN} more" if len(things) > _SHOWN else "")


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def simulate_ratings(
    theta: np.ndarray,
    difficulty: np.ndarray,
    severity: np.ndarray,
    thresholds: np.ndarray,
    raters_per_student: int = 2,
    seed: int | np.random.Generator | None = None,
) -> Ratings:
    """Ratings drawn from the many-facet Rasch model (for tests, benchmarks and design studies).

    Each student is rated on every criterion by ``raters_per_student`` raters drawn at random
    without replacement (so with many students the design is connected).

    Parameters
    ----------
    theta : ndarray, shape (N,)
        True student measures (logits).
    difficulty : ndarray, shape (I,)
    severity : ndarray, shape (R,)
    thresholds : ndarray, shape (m,) or (I, m)
        Rating-scale steps ``tau_k``, or partial-credit steps per criterion.
    raters_per_student : int
    seed : int or Generator, optional

    Returns
    -------
    Ratings
        Labels ``S0001.., C1.., R01..``; categories 0..m, ``min_score`` 0.
    """
    rng = np.random.default_rng(seed)
    theta, difficulty, severity = (np.asarray(x, dtype=float)
                                   for x in (theta, difficulty, severity))
    n_s, n_i, n_r = theta.size, difficulty.size, severity.size
    steps = np.broadcast_to(np.asarray(thresholds, dtype=float), (n_i, np.shape(thresholds)[-1]))
    chosen = np.argsort(rng.random((n_s, n_r)), axis=1)[:, :raters_per_student]   # (N, J)
    student = np.repeat(np.arange(n_s), n_i * raters_per_student)
    criterion = np.tile(np.repeat(np.arange(n_i), raters_per_student), n_s)
    rater = chosen[student, np.tile(np.arange(raters_per_student), n_s * n_i)]
    k = np.arange(steps.shape[1] + 1)
    cumulative = np.concatenate([np.zeros((n_i, 1)), np.cumsum(steps, axis=1)], axis=1)
    eta = (theta[student] - difficulty[criterion] - severity[rater])[:, None] * k - cumulative[
        criterion]
    prob = softmax(eta, axis=1)
    score = (rng.random(student.size)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    score = np.minimum(score, k[-1])
    width = len(str(n_s))
    return Ratings(
        student_ids=tuple(f"S{n + 1:0{width}d}" for n in range(n_s)),
        criterion_ids=tuple(f"C{i + 1}" for i in range(n_i)),
        rater_ids=tuple(f"R{r + 1:02d}" for r in range(n_r)),
        student=student.astype(np.intp), criterion=criterion.astype(np.intp),
        rater=rater.astype(np.intp), score=score.astype(np.intp),
        n_categories=np.full(n_i, k.size, dtype=np.intp), min_score=np.zeros(n_i, dtype=np.int64),
    )
