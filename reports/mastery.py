"""The mastery model: a posterior for theta per skill from every piece of evidence, pure numpy.

No database here: arrays in, small dataclasses out, so that the model can be checked against an
independent computation and benchmarked alone (:mod:`reports.report` gathers the evidence).

The model (stated in every report, see docs/decisions.md):

- Each skill ``s`` of a student has an ability ``theta_s = theta_g + delta_s`` on the bank's
  scale: a general ability ``theta_g ~ N(mu0, sd0^2)`` (the bank's scale: N(0, 1)) and a skill
  deviation ``delta_s ~ N(0, tau_s^2)``, ``tau_s`` the between-skill spread estimated from the
  population (:func:`skill_spreads`).
- A piece of evidence (an answer through its item's parameters; a rubric score through its
  criterion's published parameters shifted by its rater's severity) gives a log-likelihood of
  ``theta_s``, raised to its *decay* ``0.5 ** (age / half_life)``: older evidence counts less,
  because students learn (a power likelihood; decay 1 is the usual likelihood).
- The prior of ``theta_s`` is the posterior of ``theta_g`` from the student's *other* skills'
  evidence, spread by ``tau_s`` (empirical Bayes, as augmented subscores borrow strength from the
  total; leaving the skill's own evidence out of its prior counts nothing twice). With no other
  evidence it is ``N(mu0, sd0^2 + tau_s^2)``.
- Everything is computed on one grid of theta (:data:`GRID`): posterior mean (the estimate),
  posterior sd (se), the equal-tailed 95% credible interval, and P(theta_s > cut) with the
  posterior read as a histogram on the grid (bins of the grid step centred on its points).
- A piece's *weight* is its share of the information at the estimate (its decay times its Fisher
  information there); the prior's share is its precision (1 / its variance); the shares sum to 1.
  A piece's *shift* is the estimate with it minus the estimate without it (the same prior).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cat_engine.bank import ItemBank
from cat_engine.models import information, response_log_probability

#: The theta grid every posterior lives on (logits): step 0.05 from -6 to 6.
GRID: np.ndarray = np.linspace(-6.0, 6.0, 241)
#: z of a two-sided 95% interval.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Block:
    """Pieces of evidence that share one item bank: ``bank``'s items ``items`` answered
    ``responses`` (0-based categories), each counted with its ``decay`` in (0, 1]."""

    bank: ItemBank
    items: np.ndarray
    responses: np.ndarray
    decay: np.ndarray


@dataclass(frozen=True)
class Pieces:
    """Evidence on the grid: one row per piece.

    Attributes
    ----------
    loglik : ndarray, shape (n, Q)
        Each piece's log-likelihood at each grid point (not yet decayed).
    info : ndarray, shape (n, Q)
        Each piece's Fisher information at each grid point (not yet decayed).
    decay : ndarray, shape (n,)
    """

    loglik: np.ndarray
    info: np.ndarray
    decay: np.ndarray

    def __len__(self) -> int:
        return int(self.decay.shape[0])

    def weighted(self) -> np.ndarray:
        """The summed decayed log-likelihood, shape (Q,)."""
        return self.decay @ self.loglik if len(self) else np.zeros(self.loglik.shape[1])


def pieces(blocks: Sequence[Block], grid: np.ndarray = GRID) -> Pieces:
    """The evidence of ``blocks`` on ``grid``, in the blocks' order."""
    loglik, info, decay = [], [], []
    for block in blocks:
        items = np.asarray(block.items, dtype=np.intp)
        if items.size == 0:
            continue
        responses = np.asarray(block.responses, dtype=np.intp)
        loglik.append(response_log_probability(block.bank, items[:, None], grid[None, :],
                                               responses[:, None]))
        info.append(information(block.bank, items[:, None], grid[None, :]))
        decay.append(np.asarray(block.decay, dtype=float))
    if not loglik:
        empty = np.zeros((0, grid.shape[0]))
        return Pieces(empty, empty.copy(), np.zeros(0))
    return Pieces(np.vstack(loglik), np.vstack(info), np.concatenate(decay))


def decay_weights(age_days: np.ndarray, half_life_days: float | None) -> np.ndarray:
    """``0.5 ** (age / half_life)`` (ages below 0 count as 0; no half-life: all 1)."""
    age = np.maximum(np.asarray(age_days, dtype=float), 0.0)
    if half_life_days is None or not np.isfinite(half_life_days):
        return np.ones_like(age)
    return np.power(0.5, age / float(half_life_days))


# -- reading a posterior on the grid -------------------------------------------------------------


def _normalise(log_post: np.ndarray) -> np.ndarray:
    """Posterior weights on the grid (rows sum to 1) from log-posteriors (last axis = grid)."""
    weights = np.exp(log_post - log_post.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def _mean_sd(weights: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = weights @ grid
    var = weights @ (grid**2) - mean**2
    return mean, np.sqrt(np.maximum(var, 0.0))


def _edges(grid: np.ndarray) -> np.ndarray:
    step = grid[1] - grid[0]
    return np.concatenate([grid - step / 2, grid[-1:] + step / 2])


def prob_above(weights: np.ndarray, grid: np.ndarray, cut: float) -> float:
    """P(theta > cut) of a posterior given as weights on ``grid`` (a histogram of the grid's
    bins)."""
    step = grid[1] - grid[0]
    frac = np.clip((grid + step / 2 - cut) / step, 0.0, 1.0)
    return float(np.clip(weights @ frac, 0.0, 1.0))


def quantiles(weights: np.ndarray, grid: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """Quantiles of a posterior given as weights on ``grid`` (piecewise-linear CDF)."""
    cdf = np.concatenate([[0.0], np.cumsum(weights)])
    cdf /= cdf[-1]
    return np.interp(np.asarray(probs, dtype=float), cdf, _edges(grid))


# -- the empirical-Bayes prior -------------------------------------------------------------------


@functools.lru_cache(maxsize=32)  # 32 kernels of 241 x 241: about 15 MB
def _kernel_of(tau: float, lo: float, hi: float, n: int) -> np.ndarray:
    """N(t; g, tau^2) * step on the grid ``linspace(lo, hi, n)``: shape (g, t), read-only.
    Cached: a skill's tau changes only when the population figures are read again."""
    grid = np.linspace(lo, hi, n)
    step = grid[1] - grid[0]
    diff = grid[None, :] - grid[:, None]
    kernel = np.exp(-0.5 * (diff / tau) ** 2) * step / (tau * np.sqrt(2 * np.pi))
    kernel.setflags(write=False)
    return kernel


def _kernels(grid: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """N(t; g, tau_s^2) * step for each skill s, general g and skill t: shape (S, Q, Q)."""
    key = (float(grid[0]), float(grid[-1]), int(grid.shape[0]))
    return np.stack([_kernel_of(float(t), *key) for t in np.asarray(tau, dtype=float)])


@dataclass(frozen=True)
class Priors:
    """The general ability's posterior and every skill's empirical-Bayes prior, on the grid.

    Attributes
    ----------
    general : ndarray, shape (Q,)
        Posterior weights of theta_g given all the evidence.
    skill_log_prior : ndarray, shape (S, Q)
        Log-prior of each skill's theta (from the other skills' evidence, spread by tau_s).
    """

    general: np.ndarray
    skill_log_prior: np.ndarray


def skill_priors(skill_loglik: np.ndarray, tau: np.ndarray, *, mu0: float = 0.0,
                 sd0: float = 1.0, grid: np.ndarray = GRID) -> Priors:
    """Empirical-Bayes priors of S skills from their summed, decayed log-likelihoods.

    Parameters
    ----------
    skill_loglik : ndarray, shape (S, Q)
        Each skill's evidence (see :meth:`Pieces.weighted`).
    tau : ndarray, shape (S,)
        Each skill's spread about the general ability (logits, > 0).
    mu0, sd0 : float
        The population prior of the general ability.
    """
    skill_loglik = np.atleast_2d(np.asarray(skill_loglik, dtype=float))
    kernel = _kernels(grid, tau)                                       # (S, g, t)
    # What each skill's evidence says about theta_g: its likelihood averaged over delta_s
    # (in linear space, scaled by each row's maximum, so the averaging is a matrix product).
    top = skill_loglik.max(axis=1, keepdims=True)
    lik = np.exp(skill_loglik - top)                                    # (S, t)
    marginal = np.log(np.maximum(np.einsum("sgt,st->sg", kernel, lik), 1e-300)) + top
    log_g = -0.5 * ((grid - mu0) / sd0) ** 2
    total = log_g + marginal.sum(axis=0)
    others = total[None, :] - marginal                                 # leave each skill out
    others = _normalise(others)                                        # (S, g)
    log_prior = np.log(np.maximum(np.einsum("sg,sgt->st", others, kernel), 1e-300))
    return Priors(general=_normalise(total), skill_log_prior=log_prior)


# -- one skill's posterior -----------------------------------------------------------------------


@dataclass(frozen=True)
class SkillPosterior:
    """A skill's posterior and what each piece of its evidence did to it.

    Attributes
    ----------
    theta, se : float
        Posterior mean and sd.
    interval95 : tuple of float
        Equal-tailed 95% credible interval.
    mastery_probability : float or None
        P(theta > cut), None without a cut score.
    weights : ndarray, shape (n,)
        Each piece's share of the information at ``theta``.
    prior_weight : float
        The prior's share; ``weights.sum() + prior_weight == 1``.
    shifts : ndarray, shape (n,)
        ``theta`` minus the estimate without that piece.
    prior_mean, prior_sd : float
        Moments of the prior.
    posterior : ndarray, shape (Q,)
        The posterior's weights on the grid.
    """

    theta: float
    se: float
    interval95: tuple[float, float]
    mastery_probability: float | None
    weights: np.ndarray
    prior_weight: float
    shifts: np.ndarray
    prior_mean: float
    prior_sd: float
    posterior: np.ndarray = field(repr=False)


def _at(values: np.ndarray, grid: np.ndarray, theta: float) -> np.ndarray:
    """Rows of ``values`` (n, Q) linearly interpolated at ``theta``."""
    pos = np.clip((theta - grid[0]) / (grid[1] - grid[0]), 0, grid.shape[0] - 1 - 1e-9)
    lo = int(np.floor(pos))
    frac = pos - lo
    return values[:, lo] * (1 - frac) + values[:, lo + 1] * frac


def skill_posterior(evidence: Pieces, log_prior: np.ndarray, *, cut: float | None = None,
                    grid: np.ndarray = GRID) -> SkillPosterior:
    """The posterior of one skill's theta from its evidence and its prior (log, on ``grid``)."""
    prior = _normalise(log_prior)
    prior_mean, prior_sd = _mean_sd(prior, grid)
    scaled = evidence.decay[:, None] * evidence.loglik                 # (n, Q)
    log_post = log_prior + scaled.sum(axis=0)
    post = _normalise(log_post)
    theta, se = (float(v) for v in _mean_sd(post, grid))
    lo, hi = quantiles(post, grid, (0.025, 0.975))
    # Each piece left out in turn: one row per piece, all at once.
    without = _normalise(log_post[None, :] - scaled)
    theta_without, _ = _mean_sd(without, grid)
    info = evidence.decay * _at(evidence.info, grid, theta) if len(evidence) else np.zeros(0)
    prior_info = 1.0 / max(float(prior_sd) ** 2, 1e-12)
    total = info.sum() + prior_info
    return SkillPosterior(
        theta=theta, se=se, interval95=(float(lo), float(hi)),
        mastery_probability=None if cut is None else prob_above(post, grid, cut),
        weights=info / total, prior_weight=float(prior_info / total),
        shifts=theta - theta_without, prior_mean=float(prior_mean), prior_sd=float(prior_sd),
        posterior=post)


def suggest(probability: float | None, mastered_at: float, not_mastered_at: float) -> str:
    """The decision a probability of mastery suggests: ``mastered`` at or above
    ``mastered_at``, ``not_mastered`` at or below ``not_mastered_at``, else (or without a
    probability) ``needs_evidence``."""
    if probability is None:
        return "needs_evidence"
    if probability >= mastered_at:
        return "mastered"
    if probability <= not_mastered_at:
        return "not_mastered"
    return "needs_evidence"


# -- population figures: the spread of skills and whether a skill adds value --------------------


@dataclass(frozen=True)
class SkillSpread:
    """A skill's spread about the overall ability, and Haberman's PRMSE comparison.

    Attributes
    ----------
    tau : float
        Between-skill spread (logits) used in the prior.
    estimated : bool
        False when there were too few students and ``tau`` is the stated default.
    n_students : int
    prmse_subscore, prmse_total : float or None
        Proportional reduction in mean squared error of the true skill ability predicted from
        the skill's own estimate and from the overall estimate; None with too few students.
    """

    tau: float
    estimated: bool
    n_students: int
    prmse_subscore: float | None = None
    prmse_total: float | None = None

    @property
    def adds_value(self) -> bool | None:
        """Haberman's criterion: the skill's own score predicts its true value better than the
        overall score does."""
        if self.prmse_subscore is None or self.prmse_total is None:
            return None
        return self.prmse_subscore > self.prmse_total


def skill_spreads(theta_s: np.ndarray, se_s: np.ndarray, theta: np.ndarray, se: np.ndarray, *,
                  bayesian: bool, prior_var: float = 1.0, min_students: int = 30,
                  default_tau: float = 0.5, tau_bounds: tuple[float, float] = (0.1, 1.5)
                  ) -> list[SkillSpread]:
    """Each skill's spread about the general ability and Haberman's PRMSEs, from one test's
    per-student estimates.

    Parameters
    ----------
    theta_s, se_s : ndarray, shape (N, S)
        Each student's estimate of each skill from that skill's items alone, and its se
        (NaN where the student has none).
    theta, se : ndarray, shape (N,)
        Each student's overall estimate and se.
    bayesian : bool
        Whether the estimates are EAP/MAP under a prior of variance ``prior_var`` (shrunk:
        ``estimate ~ lambda * (truth + error)`` with ``lambda = 1 - mean(se^2) / prior_var``)
        or ML-type (``lambda = 1``, error uncorrelated with the truth).

    Notes
    -----
    - The general ability's variance comes from the covariances *between* skills, which their
      errors do not share: ``var(theta_g) = mean over pairs of cov(s, s') / (lambda_s
      lambda_s')`` (with one skill only, from the overall estimate).
    - A skill's true variance is ``var(estimate) / lambda`` (Bayesian) or ``var(estimate) -
      mean(se^2)`` (ML-type); ``tau^2`` is that less ``var(theta_g)``, clipped to
      ``tau_bounds``.
    - PRMSE (Haberman 2008, on the theta scale as Sinharay 2010): the subscore's is its
      reliability (for Bayesian estimates ``var(estimate) / (var(estimate) + mean(se^2))``,
      which holds whatever the prior); the total's is ``cov(true_s, overall)^2 / (var_true(s)
      var(overall))`` with ``cov(true_s, overall) = cov(s, overall) / lambda_s -
      mean(se_overall^2)`` (the skill's error is part of the overall's).
    - Fewer than ``min_students`` students with an estimate of a skill: the stated default
      ``tau``, no PRMSE.
    """
    ts = np.atleast_2d(np.asarray(theta_s, dtype=float))
    ss = np.atleast_2d(np.asarray(se_s, dtype=float))
    to, so = np.asarray(theta, dtype=float), np.asarray(se, dtype=float)
    ok_o = np.isfinite(to) & np.isfinite(so)
    ok = np.isfinite(ts) & np.isfinite(ss) & ok_o[:, None]
    n = ok.sum(axis=0)
    n_skills = ts.shape[1]

    def shrink(values: np.ndarray) -> float:
        if not bayesian:
            return 1.0
        return float(np.clip(1.0 - np.mean(values**2) / prior_var, 0.05, 1.0))

    lam = np.array([shrink(ss[ok[:, k], k]) if n[k] else 1.0 for k in range(n_skills)])
    pairs = []
    for k in range(n_skills):
        for j in range(k + 1, n_skills):
            both = ok[:, k] & ok[:, j]
            if both.sum() >= min_students:
                cov = float(np.cov(ts[both, k], ts[both, j], ddof=1)[0, 1])
                pairs.append(cov / (lam[k] * lam[j]))
    if pairs:
        var_g = float(np.mean(pairs))
    elif ok_o.sum() >= 2:
        var_o = float(np.var(to[ok_o], ddof=1))
        var_g = var_o / shrink(so[ok_o]) if bayesian else var_o - float(np.mean(so[ok_o]**2))
    else:
        var_g = 1.0
    out = []
    for k in range(n_skills):
        rows = ok[:, k]
        if n[k] < min_students:
            out.append(SkillSpread(tau=default_tau, estimated=False, n_students=int(n[k])))
            continue
        t, e, o, eo = ts[rows, k], ss[rows, k], to[rows], so[rows]
        var_s, var_o = float(np.var(t, ddof=1)), float(np.var(o, ddof=1))
        true_s = var_s / lam[k] if bayesian else var_s - float(np.mean(e**2))
        tau = float(np.clip(np.sqrt(max(true_s - var_g, 0.0)), *tau_bounds))
        if true_s <= 0 or var_s <= 0 or var_o <= 0:
            out.append(SkillSpread(tau=tau, estimated=True, n_students=int(n[k])))
            continue
        reliability = (var_s / (var_s + float(np.mean(e**2))) if bayesian
                       else true_s / var_s)
        cov = float(np.cov(t, o, ddof=1)[0, 1]) / lam[k] - float(np.mean(eo**2))
        out.append(SkillSpread(tau=tau, estimated=True, n_students=int(n[k]),
                               prmse_subscore=float(np.clip(reliability, 0.0, 1.0)),
                               prmse_total=float(np.clip(cov**2 / (true_s * var_o), 0.0, 1.0))))
    return out


def pool_spreads(parts: Sequence[SkillSpread], default_tau: float = 0.5) -> SkillSpread:
    """One skill's spreads from several tests put together: tau^2 and the PRMSEs averaged with
    each test's number of students as its weight (tests with estimated figures only)."""
    estimated = [p for p in parts if p.estimated and p.n_students > 0]
    total = sum(p.n_students for p in parts)
    if not estimated:
        return SkillSpread(tau=default_tau, estimated=False, n_students=total)
    w = np.array([p.n_students for p in estimated], dtype=float)
    tau = float(np.sqrt(np.average([p.tau**2 for p in estimated], weights=w)))
    with_prmse = [p for p in estimated if p.prmse_subscore is not None]
    if not with_prmse:
        return SkillSpread(tau=tau, estimated=True, n_students=total)
    wp = np.array([p.n_students for p in with_prmse], dtype=float)
    return SkillSpread(
        tau=tau, estimated=True, n_students=total,
        prmse_subscore=float(np.average([p.prmse_subscore for p in with_prmse], weights=wp)),
        prmse_total=float(np.average([p.prmse_total for p in with_prmse], weights=wp)))


# -- all skills of a student ---------------------------------------------------------------------


@dataclass(frozen=True)
class StudentPosterior:
    """Every skill's posterior and the general ability of one student.

    Attributes
    ----------
    skills : dict of str to SkillPosterior
    overall_theta, overall_se : float
        Posterior mean and sd of the general ability given all the evidence.
    overall_interval95 : tuple of float
    """

    skills: dict[str, SkillPosterior]
    overall_theta: float
    overall_se: float
    overall_interval95: tuple[float, float]


def student_posterior(evidence: Mapping[str, Pieces], tau: Mapping[str, float],
                      cuts: Mapping[str, float | None], *, mu0: float = 0.0, sd0: float = 1.0,
                      grid: np.ndarray = GRID) -> StudentPosterior:
    """Every skill's posterior from the student's evidence per skill (see the module's model).

    Parameters
    ----------
    evidence : mapping of skill to Pieces
        Skills with at least one piece of evidence.
    tau : mapping of skill to float
        Each skill's spread about the general ability.
    cuts : mapping of skill to float or None
        Each skill's cut score.
    """
    names = sorted(evidence)
    if not names:
        raise ValueError("no evidence: a posterior needs at least one skill with evidence")
    summed = np.vstack([evidence[s].weighted() for s in names])
    priors = skill_priors(summed, np.array([tau[s] for s in names]), mu0=mu0, sd0=sd0,
                          grid=grid)
    skills = {s: skill_posterior(evidence[s], priors.skill_log_prior[k], cut=cuts.get(s),
                                 grid=grid) for k, s in enumerate(names)}
    mean, sd = _mean_sd(priors.general, grid)
    lo, hi = quantiles(priors.general, grid, (0.025, 0.975))
    return StudentPosterior(skills=skills, overall_theta=float(mean), overall_se=float(sd),
                            overall_interval95=(float(lo), float(hi)))
