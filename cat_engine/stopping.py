"""Stopping rules, vectorised over test takers, composable with any/all.

A :class:`StoppingPolicy` holds what always applies (stop at ``max_items`` scored items or when
no item is left; never stop before ``min_items``) and hands the rest to a criterion: one rule, or
an :class:`AnyOf` / :class:`AllOf` tree of rules. Each rule answers, for N test takers at once,
whether it fires.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from cat_engine.bank import ItemBank
from cat_engine.errors import ConfigError, setting
from cat_engine.limits import MAX_TEST_LENGTH, at_most
from cat_engine.models import response_log_probability


@dataclass
class StopContext:
    """What stopping rules may look at for N test takers."""

    bank: ItemBank
    theta: np.ndarray
    se: np.ndarray
    theta_previous: np.ndarray
    n_scored: np.ndarray
    items: np.ndarray  # (N, L) padded with -1
    responses: np.ndarray  # (N, L)
    available: np.ndarray  # (N, J) bool
    information: Callable[[], np.ndarray]  # (N, J) item information at theta, computed on demand


class Rule(ABC):
    """A stopping criterion; one abstract method."""

    name = "rule"

    @abstractmethod
    def fires(self, ctx: StopContext) -> np.ndarray:
        """(N,) bool: whether the rule says stop."""

    def reason(self, ctx: StopContext, fired: np.ndarray) -> np.ndarray:
        """(N,) reason strings for rows where the rule fired."""
        return np.where(fired, self.name, "")


class StandardError(Rule):
    """Stop once the standard error of theta is at most ``threshold``."""

    def __init__(self, threshold: float) -> None:
        if not threshold > 0:
            raise ConfigError(f"stopping.se must be positive, got {threshold}")
        self.threshold = threshold
        self.name = f"se<={threshold:g}"

    def fires(self, ctx: StopContext) -> np.ndarray:
        return ctx.se <= self.threshold


class MaxItems(Rule):
    """Stop after ``n`` scored items."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.name = f"max_items={n}"

    def fires(self, ctx: StopContext) -> np.ndarray:
        return ctx.n_scored >= self.n


class ClassificationCI(Rule):
    """Stop when the confidence interval ``theta +- z se`` excludes the cut score.

    ``z`` comes from ``alpha`` (two-sided): ``alpha = 0.05`` gives ``z = 1.96``.
    """

    def __init__(self, cut: float, alpha: float = 0.05) -> None:
        if not 0 < alpha < 1:
            raise ConfigError(f"stopping.classification.alpha must be in (0, 1), got {alpha}")
        self.cut, self.alpha = cut, alpha
        self.z = float(norm.ppf(1 - alpha / 2))
        self.name = f"classified(ci, cut={cut:g})"

    def fires(self, ctx: StopContext) -> np.ndarray:
        return np.abs(ctx.theta - self.cut) > self.z * ctx.se


class SPRT(Rule):
    """Sequential probability ratio test around a cut score (Reckase, 1983; Eggen, 1999).

    Compares the likelihood at ``cut + delta`` with that at ``cut - delta`` and stops when the
    log ratio leaves ``(log(beta / (1 - alpha)), log((1 - beta) / alpha))``.
    """

    def __init__(
        self, cut: float, delta: float = 0.3, alpha: float = 0.05, beta: float = 0.05
    ) -> None:
        if not delta > 0:
            raise ConfigError(f"stopping.classification.delta must be positive, got {delta}")
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not 0 < value < 0.5:
                raise ConfigError(
                    f"stopping.classification.{name} must be in (0, 0.5), got {value}"
                )
        self.cut, self.delta, self.alpha, self.beta = cut, delta, alpha, beta
        self.upper = np.log((1 - beta) / alpha)
        self.lower = np.log(beta / (1 - alpha))
        self.name = f"classified(sprt, cut={cut:g})"

    def log_ratio(self, ctx: StopContext) -> np.ndarray:
        """log L(cut + delta) - log L(cut - delta) for each test taker."""
        mask = ctx.items >= 0
        items = np.where(mask, ctx.items, 0)
        responses = np.where(mask, ctx.responses, 0)
        high = response_log_probability(ctx.bank, items, self.cut + self.delta, responses)
        low = response_log_probability(ctx.bank, items, self.cut - self.delta, responses)
        return np.where(mask, high - low, 0.0).sum(axis=1)

    def fires(self, ctx: StopContext) -> np.ndarray:
        ratio = self.log_ratio(ctx)
        return (ratio >= self.upper) | (ratio <= self.lower)


class InformationLeft(Rule):
    """Stop when no available item has information above ``threshold`` at the current theta."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.name = f"information_left<{threshold:g}"

    def fires(self, ctx: StopContext) -> np.ndarray:
        info = np.where(ctx.available, ctx.information(), -np.inf)
        return info.max(axis=1) < self.threshold


class ThetaChange(Rule):
    """Stop when the last response moved theta by less than ``tolerance``."""

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.name = f"theta_change<{tolerance:g}"

    def fires(self, ctx: StopContext) -> np.ndarray:
        change = np.abs(ctx.theta - ctx.theta_previous)
        return np.isfinite(change) & (change < self.tolerance)


class AnyOf(Rule):
    """Fires when any of its rules fires; the reason is the first that did."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.name = "any(" + ", ".join(r.name for r in rules) + ")"

    def fires(self, ctx: StopContext) -> np.ndarray:
        return self._evaluate(ctx)[0]

    def _evaluate(self, ctx):
        fired = np.zeros(ctx.theta.shape, dtype=bool)
        reason = np.full(ctx.theta.shape, "", dtype=object)
        for rule in self.rules:
            now = rule.fires(ctx)
            reason = np.where(~fired & now, rule.reason(ctx, now), reason)
            fired |= now
        return fired, reason

    def reason(self, ctx: StopContext, fired: np.ndarray) -> np.ndarray:
        return np.where(fired, self._evaluate(ctx)[1], "")


class AllOf(Rule):
    """Fires when all of its rules fire."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.name = "all(" + ", ".join(r.name for r in rules) + ")"

    def fires(self, ctx: StopContext) -> np.ndarray:
        fired = np.ones(ctx.theta.shape, dtype=bool)
        for rule in self.rules:
            fired &= rule.fires(ctx)
        return fired


@dataclass
class StoppingPolicy:
    """``max_items`` and an exhausted bank always stop; nothing stops before ``min_items``."""

    criterion: Rule | None
    max_items: int
    min_items: int = 1

    def evaluate(self, ctx: StopContext) -> tuple[np.ndarray, np.ndarray]:
        """(N,) bool whether to stop, and (N,) the reason (empty string where not stopping)."""
        exhausted = ~ctx.available.any(axis=1)
        at_max = ctx.n_scored >= self.max_items
        stop = exhausted | at_max
        reason = np.where(at_max, f"max_items={self.max_items}", "")
        reason = np.where(exhausted & ~at_max, "bank_exhausted", reason).astype(object)
        if self.criterion is not None:
            eligible = ~stop & (ctx.n_scored >= self.min_items)
            if eligible.any():
                fired = self.criterion.fires(ctx) & eligible
                reason = np.where(fired, self.criterion.reason(ctx, fired), reason)
                stop |= fired
        return stop, reason


_RULE_KEYS = ("se", "max_items", "classification", "info_below", "theta_change")


def _rule(key: str, value) -> Rule:
    if key == "se":
        return StandardError(setting({key: value}, key, None, "stopping"))
    if key == "max_items":
        return MaxItems(setting({key: value}, key, None, "stopping", int))
    if key == "info_below":
        return InformationLeft(setting({key: value}, key, None, "stopping"))
    if key == "theta_change":
        return ThetaChange(setting({key: value}, key, None, "stopping"))
    if key == "classification":
        if not isinstance(value, dict) or "cut" not in value:
            raise ConfigError("stopping.classification needs a 'cut' score")
        method = str(value.get("method", "ci")).lower()
        path = "stopping.classification"
        cut = setting(value, "cut", None, path)
        if cut is None:
            raise ConfigError("stopping.classification.cut must be a finite number, got None")
        if method == "ci":
            return ClassificationCI(cut, setting(value, "alpha", 0.05, path))
        if method == "sprt":
            return SPRT(
                cut,
                setting(value, "delta", 0.3, path),
                setting(value, "alpha", 0.05, path),
                setting(value, "beta", 0.05, path),
            )
        raise ConfigError(f"stopping.classification.method: {method!r} is not one of ci, sprt")
    if key in ("any", "all"):
        if not isinstance(value, list) or not value:
            raise ConfigError(f"stopping.{key} needs a non-empty list of rules")
        rules = [_rule(*_single(entry, key)) for entry in value]
        return AnyOf(rules) if key == "any" else AllOf(rules)
    raise ConfigError(f"stopping: unknown rule {key!r}")


def _single(entry, where: str) -> tuple[str, object]:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ConfigError(f"stopping.{where}: each rule is an object with one key, got {entry!r}")
    return next(iter(entry.items()))


def make_stopping(spec: dict) -> StoppingPolicy:
    """Build the stopping policy from JSON settings.

    ``{"se": 0.3, "max_items": 40, "min_items": 5}`` stops at SE 0.3 or 40 items, whichever is
    first; other shorthand keys are ``classification`` (``{"cut": 0.5, "method": "ci" | "sprt",
    "alpha", "beta", "delta"}``), ``info_below`` and ``theta_change``; ``"combine": "all"``
    requires all of the shorthand rules at once. A ``rule`` key takes an explicit tree instead:
    ``{"any": [{"se": 0.3}, {"all": [{"theta_change": 0.02}, {"info_below": 0.1}]}]}``.
    """
    unknown = set(spec) - set(_RULE_KEYS) - {"min_items", "combine", "rule"}
    if unknown:
        raise ConfigError(f"stopping: unknown setting(s) {', '.join(sorted(unknown))}")
    max_items = setting(spec, "max_items", 40, "stopping", int)
    min_items = setting(spec, "min_items", 1, "stopping", int)
    if max_items < 1:
        raise ConfigError(f"stopping.max_items must be at least 1, got {max_items}")
    at_most(max_items, MAX_TEST_LENGTH, "stopping.max_items")
    if not 0 <= min_items <= max_items:
        raise ConfigError(f"stopping.min_items must be in [0, max_items], got {min_items}")
    if "rule" in spec:
        criterion = _rule(*_single(spec["rule"], "rule"))
    else:
        rules = [_rule(k, spec[k]) for k in _RULE_KEYS if k in spec and k != "max_items"]
        combine = str(spec.get("combine", "any")).lower()
        if combine not in ("any", "all"):
            raise ConfigError(f"stopping.combine: {combine!r} is not one of any, all")
        if not rules:
            criterion = None
        elif len(rules) == 1:
            criterion = rules[0]
        else:
            criterion = AnyOf(rules) if combine == "any" else AllOf(rules)
    return StoppingPolicy(criterion=criterion, max_items=max_items, min_items=min_items)
