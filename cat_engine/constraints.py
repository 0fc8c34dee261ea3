"""Content constraints: restricting which items may come next so every test meets its blueprint.

A content control takes the selector's (N, J) scores (higher is better, ``-inf`` where an item is
not available) and returns them with ``-inf`` wherever an item may not come next; exposure control
(:mod:`cat_engine.exposure`) then picks among the finite scores. Every row that had a finite score
keeps at least one: when a blueprint cannot be met any more, a control relaxes it for that row
rather than leave the test taker without an item.

Controls
--------
:class:`ShadowTest`
    van der Linden's shadow test: one 0-1 program per test taker and step, solved with
    :func:`scipy.optimize.milp` (HiGHS).
:class:`KingsburyZara`
    The constrained CAT of Kingsbury and Zara (1989): the next item comes from the content area
    furthest below its target share. Vectorised over rows.
:class:`EnemyExclusion`
    Enemy sets only: an item whose enemy was given is never offered.

Build one from a test configuration with :func:`make_constraints`. Error messages name the setting
as it appears in a test configuration (``constraints.content[2].max``), also when the classes are
built directly.

Conventions: ``ctx.seen`` holds the items that count toward the test (its length and its
blueprint); an item counts toward every rule whose tag it carries.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from cat_engine.bank import ItemBank
from cat_engine.errors import ConfigError, UnknownItemError
from cat_engine.limits import MAX_CONTENT_RULES, at_most

METHODS = ("shadow", "kingsbury-zara")
_METHOD_ALIASES = {
    "shadow": "shadow",
    "shadow-test": "shadow",
    "kingsbury-zara": "kingsbury-zara",
    "kz": "kingsbury-zara",
}


@dataclass
class ContentContext:
    """What a content control may look at for N test takers."""

    bank: ItemBank
    seen: np.ndarray  # (N, J) bool: items already given (scored)
    available: np.ndarray  # (N, J) bool: items that may still be given
    n_scored: np.ndarray  # (N,)
    max_items: int


class ContentControl(ABC):
    """Restricts the selector's scores to items that keep the test on its blueprint."""

    name: str = ""

    @abstractmethod
    def restrict(self, scores: np.ndarray, ctx: ContentContext) -> np.ndarray:
        """(N, J) scores with ``-inf`` wherever an item may not come next."""

    def settings(self) -> dict:
        """The control's settings as plain JSON (the spec :func:`make_constraints` reads)."""
        return {"method": self.name}


@dataclass(frozen=True)
class ContentRule:
    """One line of a test blueprint: how many items carrying ``tag`` a test has.

    Attributes
    ----------
    tag : str
        A content tag of the bank (:attr:`ItemBank.content`).
    min, max : int
        Least and most items with the tag in a complete test (``max`` None: no upper limit).
    proportion : float, optional
        Target share of the test's items with the tag, in [0, 1]. :class:`KingsburyZara` steers
        toward it; :class:`ShadowTest` reads it as the bounds ``floor(p L) .. ceil(p L)`` for a
        test of ``L`` items, on top of ``min`` and ``max``.
    """

    tag: str
    min: int = 0
    max: int | None = None
    proportion: float | None = None

    def settings(self) -> dict:
        """The rule as plain JSON, leaving out unset fields."""
        out: dict[str, Any] = {"tag": self.tag}
        if self.min:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.proportion is not None:
            out["proportion"] = self.proportion
        return out


# -- rules and enemies resolved against a bank ---------------------------------------------------


def _check_rules(rules: Sequence[ContentRule], bank: ItemBank) -> None:
    seen_tags: dict[str, int] = {}
    bank_tags = set(bank.content_tags)
    for i, rule in enumerate(rules):
        where = f"constraints.content[{i}]"
        if not isinstance(rule.tag, str) or not rule.tag.strip():
            raise ConfigError(f"{where}.tag must be a non-empty string, got {rule.tag!r}")
        if rule.tag in seen_tags:
            raise ConfigError(
                f"{where}.tag: {rule.tag!r} already has a rule (constraints.content"
                f"[{seen_tags[rule.tag]}]); give each tag one rule"
            )
        seen_tags[rule.tag] = i
        if rule.min < 0:
            raise ConfigError(f"{where}.min must be >= 0, got {rule.min} (tag {rule.tag!r})")
        if rule.max is not None and rule.max < rule.min:
            raise ConfigError(
                f"{where}.max must be >= min ({rule.min}), got {rule.max} (tag {rule.tag!r})"
            )
        if rule.proportion is not None and not 0 <= rule.proportion <= 1:
            raise ConfigError(
                f"{where}.proportion must be in [0, 1], got {rule.proportion} (tag {rule.tag!r})"
            )
        if rule.tag not in bank_tags and rule.min > 0:
            raise ConfigError(
                f"{where}.tag: no item in the bank has tag {rule.tag!r}, so min={rule.min} "
                "cannot be met"
            )
        if rule.min > 0:
            n_tagged = sum(rule.tag in tags for tags in bank.content)
            if n_tagged < rule.min:
                raise ConfigError(
                    f"{where}.min ({rule.min}) is more than the {n_tagged} item(s) of the bank "
                    f"with tag {rule.tag!r}"
                )


def _check_min_total(rules: Sequence[ContentRule], tag_matrix: np.ndarray, max_items: int) -> None:
    """A test of ``max_items`` cannot hold more than ``max_items`` items of any tag, nor (when no
    item carries two rule tags) more than ``max_items`` items over all the rule tags."""
    for i, rule in enumerate(rules):
        if rule.min > max_items:
            raise ConfigError(
                f"constraints.content[{i}].min ({rule.min}) is more than the test length "
                f"max_items={max_items} (tag {rule.tag!r})"
            )
    total = sum(rule.min for rule in rules)
    disjoint = tag_matrix.size == 0 or int(tag_matrix.sum(axis=0).max()) <= 1
    if disjoint and total > max_items:
        raise ConfigError(
            f"constraints.content: the mins add up to {total}, more than the test length "
            f"max_items={max_items}"
        )


def _enemy_groups(enemies: Iterable[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    """The enemy sets as tuples of item ids, checking their shape."""
    if isinstance(enemies, (str, Mapping)) or not isinstance(enemies, Iterable):
        raise ConfigError(
            f"constraints.enemies must be a list of lists of item ids, got {enemies!r}"
        )
    groups = []
    for s, group in enumerate(enemies):
        if isinstance(group, (str, Mapping)) or not isinstance(group, Iterable):
            raise ConfigError(f"constraints.enemies[{s}] must be a list of item ids, got {group!r}")
        groups.append(tuple(group))
    return tuple(groups)


def _resolve_enemies(enemies: Sequence[Sequence[str]], bank: ItemBank) -> sparse.csr_array:
    """Incidence (S, J) of the enemy sets: 1 where item j is in set s."""
    rows, cols = [], []
    for s, group in enumerate(enemies):
        where = f"constraints.enemies[{s}]"
        members = []
        for k, item_id in enumerate(group):
            try:
                members.append(bank.index_of(item_id))
            except (UnknownItemError, TypeError):
                raise ConfigError(
                    f"{where}[{k}]: unknown item {item_id!r}: not in the item bank"
                ) from None
        members = sorted(set(members))
        if len(members) < 2:
            raise ConfigError(f"{where} must name at least two different items, got {list(group)}")
        rows += [s] * len(members)
        cols += members
    n_sets = max(rows, default=-1) + 1
    return sparse.csr_array(
        (np.ones(len(rows)), (np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp))),
        shape=(n_sets, len(bank)),
    )


@dataclass(frozen=True, eq=False)
class _Blueprint:
    """Rules and enemy sets resolved to arrays over one bank's items (built once, reused)."""

    bank: ItemBank
    tags: np.ndarray  # (R, J) bool: item j carries rule r's tag
    enemies: sparse.csr_array  # (S, J) incidence of the enemy sets
    groups: np.ndarray  # (J,) int: items in one group are interchangeable in every constraint

    @classmethod
    def build(
        cls, rules: Sequence[ContentRule], enemies: Sequence[Sequence[str]], bank: ItemBank
    ) -> _Blueprint:
        _check_rules(rules, bank)
        tags = bank.content_matrix([rule.tag for rule in rules])
        incidence = _resolve_enemies(enemies, bank)
        # Group items by their rule tags; an item in an enemy set is a group of its own.
        _, groups = np.unique(tags.T, axis=0, return_inverse=True)
        groups = groups.ravel().astype(np.intp)
        in_set = np.flatnonzero(np.asarray(incidence.sum(axis=0)).ravel() > 0)
        groups[in_set] = groups.max(initial=-1) + 1 + np.arange(in_set.size)
        for array in (tags, groups):
            array.setflags(write=False)
        return cls(bank=bank, tags=tags, enemies=incidence, groups=groups)

    def seen_per_set(self, seen: np.ndarray) -> np.ndarray:
        """(N, S): how many items of each enemy set each row has seen."""
        if self.enemies.shape[0] == 0:
            return np.zeros((seen.shape[0], 0))
        return np.asarray((self.enemies @ seen.T.astype(float)).T)

    def blocked(self, seen: np.ndarray) -> np.ndarray:
        """(N, J) bool: items sharing an enemy set with a seen item (seen items included)."""
        if self.enemies.shape[0] == 0:
            return np.zeros(seen.shape, dtype=bool)
        hit = (self.seen_per_set(seen) > 0).astype(float)
        return np.asarray(hit @ self.enemies) > 0


class _BankCompiled:
    """Mixin: per-bank arrays built in the constructor, rebuilt for a context with another bank
    object (a reloaded copy of the bank)."""

    _blueprint: _Blueprint
    rules: tuple[ContentRule, ...]
    enemies: tuple[tuple[str, ...], ...]

    def _blueprint_for(self, bank: ItemBank) -> _Blueprint:
        if bank is not self._blueprint.bank:
            self._blueprint = _Blueprint.build(self.rules, self.enemies, bank)
            self._on_new_blueprint()
        return self._blueprint

    def _on_new_blueprint(self) -> None:
        """Drop whatever was derived from the previous blueprint."""


def _keep_rows(out: np.ndarray, scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``scores`` where ``allowed``; rows that would lose every finite score keep ``out``."""
    restricted = np.where(allowed, scores, -np.inf)
    ok = np.isfinite(restricted).any(axis=1)
    return np.where(ok[:, None], restricted, out)


def _enemy_filtered(
    scores: np.ndarray, seen: np.ndarray, blueprint: _Blueprint
) -> tuple[np.ndarray, np.ndarray]:
    """Scores without enemies of seen items, and which rows had to keep them (only enemies left).

    Rows with no finite score left after removing enemies keep their scores: the contract that
    every row with a finite score keeps one outranks the enemy sets.
    """
    blocked = blueprint.blocked(seen)
    had = np.isfinite(scores).any(axis=1)
    out = _keep_rows(scores, scores, ~blocked)
    kept_enemies = had & (np.isfinite(out) & blocked).any(axis=1)
    return out, kept_enemies


# -- enemies only --------------------------------------------------------------------------------


class EnemyExclusion(_BankCompiled, ContentControl):
    """Enemy sets only: once an item of a set is given, the others in the set are never offered.

    Parameters
    ----------
    enemies : list of list of str
        Sets of item ids of which a test holds at most one (items that give each other away).
    bank : ItemBank

    Attributes
    ----------
    infeasible_steps : int
        Rows (test taker and step) whose only remaining items were enemies of given items; they
        kept their scores, so the test could go on.
    """

    name = "enemies"

    def __init__(self, enemies: Iterable[Sequence[str]], *, bank: ItemBank) -> None:
        self.rules = ()
        self.enemies = _enemy_groups(enemies)
        self._blueprint = _Blueprint.build(self.rules, self.enemies, bank)
        self.infeasible_steps = 0

    def restrict(self, scores: np.ndarray, ctx: ContentContext) -> np.ndarray:
        blueprint = self._blueprint_for(ctx.bank)
        out, kept = _enemy_filtered(np.asarray(scores, dtype=float), ctx.seen, blueprint)
        self.infeasible_steps += int(kept.sum())
        return out

    def settings(self) -> dict:
        return {"enemies": [list(group) for group in self.enemies]}


# -- shadow test ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _ShadowModel:
    """The constant parts of the shadow-test programs for one bank, rule set and test length.

    Rows of both programs, over the J items (columns are taken per test taker): ``[length;
    rules; enemy sets]`` for the strict program, ``[length; rule minimums; rule maximums; enemy
    sets]`` for the relaxed one, whose minimum rows also hold one shortfall variable each.
    """

    max_items: int
    lo: np.ndarray  # (R,) effective rule minimums
    hi: np.ndarray  # (R,) effective rule maximums (inf: none)
    strict: sparse.csc_array  # (1 + R + S, J)
    strict_lb: np.ndarray
    strict_ub: np.ndarray
    relaxed: sparse.csc_array  # (1 + R_min + R_max + S, J)
    shortfall: sparse.csc_array  # (1 + R_min + R_max + S, R_min): the shortfall variables
    min_rows: np.ndarray  # (R_min,) indices of the rules with lo > 0
    max_rows: np.ndarray  # (R_max,) indices of the rules with a finite hi

    @classmethod
    def build(
        cls, rules: Sequence[ContentRule], blueprint: _Blueprint, max_items: int
    ) -> _ShadowModel:
        _check_min_total(rules, blueprint.tags, max_items)
        j = blueprint.tags.shape[1]
        lo = np.array([rule.min for rule in rules], dtype=float)
        hi = np.array([math.inf if rule.max is None else rule.max for rule in rules], dtype=float)
        for k, rule in enumerate(rules):
            if rule.proportion is not None:
                lo[k] = max(lo[k], math.floor(rule.proportion * max_items + 1e-9))
                hi[k] = min(hi[k], math.ceil(rule.proportion * max_items - 1e-9))
                if lo[k] > hi[k]:
                    raise ConfigError(
                        f"constraints.content[{k}].proportion {rule.proportion:g} of a test of "
                        f"{max_items} items does not fit min {rule.min} .. max {rule.max} "
                        f"(tag {rule.tag!r})"
                    )
        hi = np.minimum(hi, max_items)
        tags = sparse.csr_array(blueprint.tags.astype(float))
        enemies = blueprint.enemies
        n_sets = enemies.shape[0]
        ones = sparse.csr_array(np.ones((1, j)))
        strict = sparse.vstack([ones, tags, enemies], format="csc")
        strict_lb = np.concatenate([[max_items], lo, np.full(n_sets, -np.inf)])
        strict_ub = np.concatenate([[max_items], hi, np.ones(n_sets)])

        min_rows = np.flatnonzero(lo > 0)
        max_rows = np.flatnonzero(np.isfinite(hi))
        relaxed = sparse.vstack([ones, tags[min_rows], tags[max_rows], enemies], format="csc")
        n_s = min_rows.size
        shortfall = sparse.csc_array(
            (np.ones(n_s), (1 + np.arange(n_s), np.arange(n_s))), shape=(relaxed.shape[0], n_s)
        )
        for array in (lo, hi, strict_lb, strict_ub, min_rows, max_rows):
            array.setflags(write=False)
        return cls(
            max_items=max_items,
            lo=lo,
            hi=hi,
            strict=strict,
            strict_lb=strict_lb,
            strict_ub=strict_ub,
            relaxed=relaxed,
            shortfall=shortfall,
            min_rows=min_rows,
            max_rows=max_rows,
        )


def _best_per_group(
    scores: np.ndarray, eligible: np.ndarray, groups: np.ndarray, k: int
) -> np.ndarray:
    """Positions of the eligible items that rank among the ``k`` best of their group.

    Items of one group (same rule tags, in no enemy set) are interchangeable in every constraint,
    so a shadow test with ``k`` new items never needs more than the ``k`` best of a group.
    """
    idx = np.flatnonzero(eligible)
    group = groups[idx]
    order = np.lexsort((-scores[idx], group))
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    sizes = np.diff(np.r_[starts, order.size])
    rank = np.arange(order.size) - np.repeat(starts, sizes)
    return np.sort(idx[order[rank < k]])


class ShadowTest(_BankCompiled, ContentControl):
    """Shadow-test content control (van der Linden and Reese, 1998; van der Linden, 2005).

    Before each item, every test taker gets a shadow test: the full-length test that contains
    the items already given, meets the blueprint and the enemy sets, and has the largest total
    score. It is the 0-1 program, over ``x_j`` (item j in the shadow test)::

        maximise    sum_j score_j x_j
        subject to  sum_j x_j = max_items
                    x_j = 1                          for items already given
                    x_j = 0                          for items neither given nor available
                    min_r <= sum_{j has tag r} x_j <= max_r      for each rule r
                    sum_{j in e} x_j <= 1            for each enemy set e

    solved with :func:`scipy.optimize.milp` (HiGHS), one program per row. Only the shadow test's
    items not given yet keep their scores, so whichever of them exposure control picks, the rest
    of the test can still meet the blueprint.

    Each program is solved exactly but kept small: the items given are fixed, so they leave the
    program (their counts move into its bounds), and of items that are interchangeable in every
    constraint (the same rule tags, in no enemy set) only the ``k`` best-scoring can be among the
    ``k`` items still to choose. The LP relaxation is solved first; when its optimum is integral
    (as it is for a blueprint of disjoint tags without enemy sets) it is the shadow test, and
    otherwise the 0-1 program is solved by branch and bound.

    When the program is infeasible for a row (the blueprint cannot be met any more, or too few
    items are left for a full-length test), the row is counted in ``infeasible_steps`` and a
    relaxed program is solved instead: the longest shadow test (at least one more item) that
    keeps the maximums and enemy sets and falls short of the minimums by as few items as
    possible. Should even that be infeasible (every remaining item would break a maximum or an
    enemy set), the row keeps its unconstrained scores, without enemies of given items where any
    other item is left, and is counted in ``unconstrained_steps`` too.

    Parameters
    ----------
    rules : list of ContentRule
    enemies : list of list of str
        Sets of item ids of which a test holds at most one. An item whose enemy was given is
        never offered (while any other item is left).
    bank : ItemBank
        The bank whose items the rules and enemy sets are resolved against, once.
    max_items : int, optional
        The test length, to check the rules against now; otherwise they are checked on first
        use with each ``ctx.max_items``.
    mip_rel_gap : float
        HiGHS's relative optimality gap for the 0-1 programs.
    time_limit : float, optional
        Seconds HiGHS may spend on one program; when reached, its best shadow test is used.

    Attributes
    ----------
    infeasible_steps : int
        How many rows (test taker and step) found the shadow-test program infeasible and were
        served from the relaxed program or the unconstrained scores. Counted over the instance's
        lifetime; reset it by assigning 0.
    unconstrained_steps : int
        How many of those rows fell back to the unconstrained scores.

    Raises
    ------
    ConfigError
        An enemy set naming an item not in the bank; a rule with ``min > max``, ``min < 0``, a
        proportion outside [0, 1], a duplicated tag, or a tag no item has with ``min > 0``; mins
        that a test of ``max_items`` cannot hold (here or at :meth:`restrict`).
    """

    name = "shadow"

    def __init__(
        self,
        rules: Iterable[ContentRule],
        enemies: Iterable[Sequence[str]] = (),
        *,
        bank: ItemBank,
        max_items: int | None = None,
        mip_rel_gap: float = 1e-6,
        time_limit: float | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.enemies = _enemy_groups(enemies)
        self.mip_rel_gap = mip_rel_gap
        self.time_limit = time_limit
        self.infeasible_steps = 0
        self.unconstrained_steps = 0
        self._blueprint = _Blueprint.build(self.rules, self.enemies, bank)
        self._models: dict[int, _ShadowModel] = {}
        if max_items is not None:
            self._model(int(max_items))

    def _on_new_blueprint(self) -> None:
        self._models = {}

    def _model(self, max_items: int) -> _ShadowModel:
        model = self._models.get(max_items)
        if model is None:
            model = self._models[max_items] = _ShadowModel.build(
                self.rules, self._blueprint, max_items
            )
        return model

    def restrict(self, scores: np.ndarray, ctx: ContentContext) -> np.ndarray:
        """(N, J) scores, finite only on the items of each row's shadow test not yet given."""
        scores = np.asarray(scores, dtype=float)
        blueprint = self._blueprint_for(ctx.bank)
        model = self._model(int(ctx.max_items))
        seen = np.asarray(ctx.seen, dtype=bool)
        candidates = np.isfinite(scores) & np.asarray(ctx.available, dtype=bool) & ~seen
        eligible = candidates & ~blueprint.blocked(seen)
        # Rows with no eligible item keep the items only enemies block, or (inconsistent input:
        # finite scores only on items given or unavailable) their scores.
        has_candidate = candidates.any(axis=1, keepdims=True)
        has_eligible = eligible.any(axis=1, keepdims=True)
        out = np.where(
            has_eligible,
            np.where(eligible, scores, -np.inf),
            np.where(has_candidate, np.where(candidates, scores, -np.inf), scores),
        )
        stuck = int((has_candidate & ~has_eligible).sum())
        self.infeasible_steps += stuck
        self.unconstrained_steps += stuck

        rows = np.flatnonzero(has_eligible[:, 0])
        if rows.size == 0:
            return out
        seen_rows = seen[rows].astype(float)
        used_strict = (model.strict @ seen_rows.T).T  # (n, rows of the strict program)
        used_relaxed = (model.relaxed @ seen_rows.T).T
        n_seen = seen_rows.sum(axis=1).astype(int)
        for k, i in enumerate(rows):
            shadow = None
            if n_seen[k] < model.max_items:
                shadow = self._solve_strict(model, scores[i], eligible[i], used_strict[k])
            if shadow is None:
                self.infeasible_steps += 1
                shadow = self._solve_relaxed(
                    model, scores[i], eligible[i], n_seen[k], used_relaxed[k]
                )
            if shadow is None:
                self.unconstrained_steps += 1
            else:
                out[i] = np.where(shadow, scores[i], -np.inf)
        return out

    def _solve(
        self,
        c: np.ndarray,
        n_int: int,
        upper: np.ndarray,
        a: sparse.sparray,
        lb: np.ndarray,
        ub: np.ndarray,
    ) -> np.ndarray | None:
        """Solve ``min c x`` with the first ``n_int`` variables 0-1; None when infeasible."""
        bounds = Bounds(np.zeros(c.size), upper)
        constraints = LinearConstraint(a, lb, ub)
        options: dict[str, Any] = {"presolve": False}
        relaxation = milp(c, bounds=bounds, constraints=constraints, options=options)
        if relaxation.status == 2:  # infeasible
            return None
        x = relaxation.x
        if x is None or np.abs(x[:n_int] - np.round(x[:n_int])).max(initial=0.0) > 1e-7:
            options["mip_rel_gap"] = self.mip_rel_gap
            if self.time_limit is not None:
                options["time_limit"] = self.time_limit
            integrality = np.r_[np.ones(n_int), np.zeros(c.size - n_int)]
            result = milp(
                c,
                integrality=integrality,
                bounds=bounds,
                constraints=constraints,
                options=options,
            )
            x = result.x
        if x is None:
            return None
        return x[:n_int] > 0.5

    def _solve_strict(
        self, model: _ShadowModel, scores: np.ndarray, eligible: np.ndarray, used: np.ndarray
    ) -> np.ndarray | None:
        k = model.max_items - round(float(used[0]))
        cols = _best_per_group(scores, eligible, self._blueprint.groups, k)
        x = self._solve(
            -scores[cols],
            cols.size,
            np.ones(cols.size),
            model.strict[:, cols],
            model.strict_lb - used,
            model.strict_ub - used,
        )
        if x is None:
            return None
        shadow = np.zeros(scores.size, dtype=bool)
        shadow[cols[x]] = True
        return shadow

    def _solve_relaxed(
        self,
        model: _ShadowModel,
        scores: np.ndarray,
        eligible: np.ndarray,
        n_seen: int,
        used: np.ndarray,
    ) -> np.ndarray | None:
        # Lexicographic by weights: every item in the test and every item of a minimum's
        # shortfall is worth ``bonus``, more than any difference in total score between two
        # shadow tests; so the test is as long as the maximums allow, then as close to the
        # minimums as it can be, then of the largest total score.
        room = max(model.max_items, n_seen + 1) - n_seen
        cols = _best_per_group(scores, eligible, self._blueprint.groups, room)
        n_min, n_max = model.min_rows.size, model.max_rows.size
        used_min = used[1 : 1 + n_min]
        used_max = used[1 + n_min : 1 + n_min + n_max]
        used_sets = used[1 + n_min + n_max :]
        need = np.maximum(model.lo[model.min_rows] - used_min, 0.0)
        bonus = 1.0 + 2.0 * room * float(np.abs(scores[cols]).max())
        c = np.r_[-(scores[cols] + bonus), np.full(n_min, bonus)]
        lb = np.r_[1.0, need, np.full(n_max + used_sets.size, -np.inf)]
        ub = np.r_[
            room,
            np.full(n_min, np.inf),
            np.maximum(model.hi[model.max_rows] - used_max, 0.0),
            np.maximum(1.0 - used_sets, 0.0),
        ]
        a = sparse.hstack([model.relaxed[:, cols], model.shortfall], format="csr")
        x = self._solve(c, cols.size, np.r_[np.ones(cols.size), need], a, lb, ub)
        if x is None:
            return None
        shadow = np.zeros(scores.size, dtype=bool)
        shadow[cols[x]] = True
        return shadow

    def settings(self) -> dict:
        out: dict[str, Any] = {"method": self.name, "content": [r.settings() for r in self.rules]}
        if self.enemies:
            out["enemies"] = [list(group) for group in self.enemies]
        return out


# -- Kingsbury-Zara ------------------------------------------------------------------------------


class KingsburyZara(_BankCompiled, ContentControl):
    """Constrained CAT (Kingsbury and Zara, 1989): the next item comes from the content area
    furthest below its target share.

    Each rule's tag is a content area with a target proportion; the areas must not overlap (an
    item carrying two rule tags is refused with a :class:`ConfigError` that points to the
    shadow test: choosing one area at a time cannot plan for an item that counts toward two,
    and the method's targets and deficits assume a partition). After n items, the area with the
    largest deficit ``target - count / n`` (the largest target when n = 0) that still has an
    available item is chosen, and only its items keep their scores. Vectorised over rows.

    Targets: a rule's ``proportion``; else, for a rule with ``min`` or ``max``, the midpoint of
    ``min..max`` (``min`` when there is no ``max``) divided by the test length; rules with
    neither share what is left equally. Targets adding up to more than 1 are scaled down to 1.
    Items with none of the rule tags form one more area, "other", whose target is what is left
    (with no such items, the targets are scaled up to add up to 1).

    Counts: an area at its ``max`` is closed (its items are no longer offered); and when the
    items the rules' ``min`` still need fill every remaining place of the test, the area furthest
    below its ``min`` is chosen instead of the one furthest below its share.

    Rows where the chosen restriction would leave no finite score keep their scores (enemies and
    closed areas are then relaxed for the row and counted in ``infeasible_steps``).

    Parameters
    ----------
    rules : list of ContentRule
    enemies : list of list of str
        Sets of item ids of which a test holds at most one.
    bank : ItemBank

    Attributes
    ----------
    infeasible_steps : int
        Rows (test taker and step) that could only be served by offering an item of a closed
        area or an enemy of a given item.
    """

    name = "kingsbury-zara"

    def __init__(
        self,
        rules: Iterable[ContentRule],
        enemies: Iterable[Sequence[str]] = (),
        *,
        bank: ItemBank,
    ) -> None:
        self.rules = tuple(rules)
        self.enemies = _enemy_groups(enemies)
        self.infeasible_steps = 0
        self._blueprint = _Blueprint.build(self.rules, self.enemies, bank)
        given = [r.proportion for r in self.rules if r.proportion is not None]
        if sum(given) > 1 + 1e-9:
            raise ConfigError(
                f"constraints.content: the proportions add up to {sum(given):g}, more than 1"
            )
        self._on_new_blueprint()

    def _on_new_blueprint(self) -> None:
        self._targets: dict[int, np.ndarray] = {}
        tags = self._blueprint.tags
        overlapping = np.flatnonzero(tags.sum(axis=0) > 1)
        if overlapping.size:
            j = int(overlapping[0])
            names = ", ".join(repr(self.rules[r].tag) for r in np.flatnonzero(tags[:, j]))
            raise ConfigError(
                f"constraints.content: item {self._blueprint.bank.item_ids[j]!r} carries "
                f"several rule tags ({names}; {overlapping.size} item(s) in all); Kingsbury-Zara "
                "chooses one content area at a time and needs areas that do not overlap: use "
                '"method": "shadow", which meets overlapping rules'
            )
        other = ~tags.any(axis=0)
        # (A, J) bool: the rule tags, plus "other" when some item carries none of them.
        self._areas = np.vstack([tags, other[None, :]]) if other.any() else tags
        n_other = len(self._areas) - len(self.rules)
        self._area_lo = np.array([r.min for r in self.rules] + [0] * n_other, dtype=float)
        self._area_hi = np.array(
            [math.inf if r.max is None else r.max for r in self.rules] + [math.inf] * n_other
        )

    def targets(self, max_items: int) -> np.ndarray:
        """Target share of each area (the rules in order, then "other" if present)."""
        cached = self._targets.get(max_items)
        if cached is not None:
            return cached
        share = np.full(len(self.rules), np.nan)
        for k, rule in enumerate(self.rules):
            if rule.proportion is not None:
                share[k] = rule.proportion
            elif rule.min > 0 or rule.max is not None:
                high = rule.min if rule.max is None else rule.max
                share[k] = (rule.min + high) / 2 / max(max_items, 1)
        rest = np.isnan(share)
        if rest.any():
            share[rest] = max(0.0, 1.0 - float(np.nansum(share))) / rest.sum()
        total = float(share.sum())
        has_other = len(self._areas) > len(self.rules)
        if total > 1 or (not has_other and total > 0):
            share = share / total
        if has_other:
            share = np.append(share, max(0.0, 1.0 - float(share.sum())))
        share.setflags(write=False)
        self._targets[max_items] = share
        return share

    def restrict(self, scores: np.ndarray, ctx: ContentContext) -> np.ndarray:
        """(N, J) scores, finite only on items of the chosen area of each row."""
        scores = np.asarray(scores, dtype=float)
        blueprint = self._blueprint_for(ctx.bank)
        seen = np.asarray(ctx.seen, dtype=bool)
        areas = self._areas  # (A, J)
        area_f = areas.T.astype(float)  # (J, A)
        counts = seen.astype(float) @ area_f  # (N, A)
        n = seen.sum(axis=1)

        # Items that may come at all: not enemies of given items, no closed tag.
        closed = counts >= self._area_hi  # (N, A)
        closed_items = (closed.astype(float) @ areas.astype(float)) > 0  # (N, J)
        blocked = blueprint.blocked(seen)
        available = np.asarray(ctx.available, dtype=bool)
        allowed = np.where(seen | ~available | blocked | closed_items, -np.inf, scores)
        open_scores = _keep_rows(scores, scores, np.isfinite(allowed))
        relaxed = np.isfinite(scores).any(axis=1) & ~np.isfinite(allowed).any(axis=1)
        self.infeasible_steps += int(relaxed.sum())

        # The area with the largest deficit that has an item left; the largest min shortfall
        # when the mins need every remaining place.
        has_item = (np.isfinite(open_scores).astype(float) @ area_f) > 0  # (N, A)
        observed = counts / np.maximum(n, 1)[:, None]
        deficit = self.targets(int(ctx.max_items))[None, :] - observed
        key = np.where(has_item & ~closed, deficit, -np.inf)
        shortfall = np.maximum(self._area_lo[None, :] - counts, 0.0)
        urgent = shortfall.sum(axis=1) >= np.asarray(ctx.max_items) - n
        urgent_key = np.where(has_item & (shortfall > 0), shortfall, -np.inf)
        use_urgent = urgent & np.isfinite(urgent_key).any(axis=1)
        key = np.where(use_urgent[:, None], urgent_key, key)
        chosen = key.argmax(axis=1)
        restricted = np.isfinite(key).any(axis=1)
        in_area = areas[chosen]  # (N, J)
        return np.where(restricted[:, None] & ~in_area, -np.inf, open_scores)

    def settings(self) -> dict:
        out: dict[str, Any] = {"method": self.name, "content": [r.settings() for r in self.rules]}
        if self.enemies:
            out["enemies"] = [list(group) for group in self.enemies]
        return out


# -- from a test configuration -------------------------------------------------------------------


def _integer(value: Any, where: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    return int(value)


def _parse_rule(raw: Any, i: int) -> ContentRule:
    where = f"constraints.content[{i}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be an object with a tag, got {raw!r}")
    unknown = set(raw) - {"tag", "min", "max", "proportion"}
    if unknown:
        raise ConfigError(
            f"{where}.{sorted(unknown)[0]} is not a setting (tag, min, max, proportion)"
        )
    if "tag" not in raw:
        raise ConfigError(f"{where}.tag is missing")
    tag = raw["tag"]
    if not isinstance(tag, str) or not tag.strip():
        raise ConfigError(f"{where}.tag must be a non-empty string, got {tag!r}")
    minimum = _integer(raw.get("min", 0), f"{where}.min")
    maximum = raw.get("max")
    maximum = None if maximum is None else _integer(maximum, f"{where}.max")
    proportion = raw.get("proportion")
    if proportion is not None:
        if isinstance(proportion, bool) or not isinstance(proportion, (int, float)):
            raise ConfigError(f"{where}.proportion must be a number, got {proportion!r}")
        proportion = float(proportion)
    return ContentRule(tag=tag.strip(), min=minimum, max=maximum, proportion=proportion)


def make_constraints(
    spec: Mapping[str, Any] | None, bank: ItemBank, max_items: int | None = None
) -> ContentControl | None:
    """Build a content control from the ``constraints`` settings of a test configuration.

    ``{"method": "shadow" | "kingsbury-zara", "content": [{"tag": "fractions", "min": 2,
    "max": 5}, {"tag": "ratios", "proportion": 0.3}], "enemies": [["i1", "i2"], ...]}``.
    ``method`` may be left out when there are only ``enemies`` (an :class:`EnemyExclusion`).

    Parameters
    ----------
    spec : dict or None
        The settings; None or ``{}`` means no content control.
    bank : ItemBank
        The bank the tags and item ids are resolved against.
    max_items : int, optional
        The test length, to check the mins against now (a shadow test otherwise checks them on
        first use).

    Returns
    -------
    ContentControl or None

    Raises
    ------
    ConfigError
        Naming the setting, e.g. ``constraints.content[2].max must be >= min (3), got 1``.
    """
    if not spec:
        return None
    if not isinstance(spec, Mapping):
        raise ConfigError(f"constraints must be an object, got {spec!r}")
    unknown = set(spec) - {"method", "content", "enemies"}
    if unknown:
        raise ConfigError(
            f"constraints.{sorted(unknown)[0]} is not a setting (method, content, enemies)"
        )
    content = spec.get("content") or []
    if not isinstance(content, Sequence) or isinstance(content, str):
        raise ConfigError(f"constraints.content must be a list of rules, got {content!r}")
    at_most(len(content), MAX_CONTENT_RULES, "constraints.content (the number of rules)")
    rules = [_parse_rule(raw, i) for i, raw in enumerate(content)]
    raw_enemies = spec.get("enemies") or []
    if isinstance(raw_enemies, Sequence):
        at_most(len(raw_enemies), MAX_CONTENT_RULES, "constraints.enemies (the number of sets)")
    enemies = _enemy_groups(raw_enemies)
    method = spec.get("method")
    if method is None:
        if rules:
            raise ConfigError(
                "constraints.method is required with constraints.content: one of "
                + ", ".join(METHODS)
            )
        return EnemyExclusion(enemies, bank=bank) if enemies else None
    key = _METHOD_ALIASES.get(str(method).strip().lower())
    if key is None:
        raise ConfigError(f"constraints.method: {method!r} is not one of {', '.join(METHODS)}")
    if key == "shadow":
        return ShadowTest(rules, enemies, bank=bank, max_items=max_items)
    control = KingsburyZara(rules, enemies, bank=bank)
    if max_items is not None:
        _check_min_total(control.rules, control._blueprint.tags, int(max_items))
    return control
