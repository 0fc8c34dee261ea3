"""A test's engine configuration: plain JSON in, engine components out.

The same JSON always rebuilds the same engine, so a test definition stored in a database, a
simulation's settings and a live session's configuration are one and the same thing::

    {
      "start":       {"theta": 0.0} | {"random": [-1, 1]} | {"item": "ITEM-ID"},
      "estimator":   {"method": "eap" | "map" | "mle" | "wle", "prior": {"mean": 0, "sd": 1},
                      "grid": {"lo": -4, "hi": 4, "points": 61}, "bounds": [-4, 4]},
      "selection":   {"method": "mfi" | "kl" | "mpwi" | "mepv" | "astrat" | "random"},
      "exposure":    {"method": "none" | "randomesque" | "progressive" | "eligibility" |
                      "sympson-hetter", ...},
      "constraints": {"method": "shadow" | "kingsbury-zara", "content": [...], "enemies": [...]},
      "stopping":    {"se": 0.3, "max_items": 40, "min_items": 5, ...},
      "pretest":     {"items": ["P1", "P2"], "positions": [5, 10]}
    }
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from cat_engine.bank import ItemBank
from cat_engine.constraints import ContentControl
from cat_engine.errors import ConfigError
from cat_engine.estimation import Estimator, QuadratureGrid, make_estimator
from cat_engine.exposure import ExposureControl, make_exposure
from cat_engine.limits import MAX_PRETEST_ITEMS, at_most
from cat_engine.selection import Selector, make_selector
from cat_engine.stopping import StoppingPolicy, make_stopping

SECTIONS = ("start", "estimator", "selection", "exposure", "constraints", "stopping", "pretest")


@dataclass(frozen=True)
class StartRule:
    """How the first item is chosen: at a fixed or random theta, or a fixed item."""

    theta: float = 0.0
    random_range: tuple[float, float] | None = None
    item: str | None = None

    def initial_theta(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Theta used to choose the first item, for ``n`` test takers."""
        if self.random_range is not None:
            return rng.uniform(*self.random_range, size=n)
        return np.full(n, self.theta)


@dataclass(frozen=True)
class PretestPlan:
    """Unscored pretest items, given at fixed 1-based positions of the test."""

    items: tuple[str, ...] = ()
    positions: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class CATConfig:
    """Engine components built from a JSON configuration (kept in ``settings``)."""

    settings: dict[str, Any]
    start: StartRule
    estimator: Estimator
    grid: QuadratureGrid
    selector: Selector
    exposure: ExposureControl
    constraints: ContentControl | None
    stopping: StoppingPolicy
    pretest: PretestPlan
    _bank: ItemBank

    @cached_property
    def prior_estimate(self) -> tuple[float, float]:
        """Theta and SE before any response (the estimator on the prior alone), computed once."""
        log_posterior = self.grid.initial_log_posterior(1)
        empty = np.full((1, 1), -1, dtype=np.intp)
        theta, se = self.estimator.estimate(self._bank, empty, empty, log_posterior, self.grid)
        return float(theta[0]), float(se[0])

    @classmethod
    def from_dict(cls, settings: dict[str, Any] | None, bank: ItemBank) -> CATConfig:
        """Validate ``settings`` against ``bank`` and build the components.

        Raises
        ------
        ConfigError
            Naming the setting that is wrong (``selection.method``, ``stopping.se``...).
        """
        from cat_engine.constraints import make_constraints

        settings = copy.deepcopy(settings or {})
        if not isinstance(settings, dict):
            raise ConfigError("the configuration must be a JSON object")
        unknown = set(settings) - set(SECTIONS)
        if unknown:
            raise ConfigError(f"unknown configuration section(s): {', '.join(sorted(unknown))}")
        for section in SECTIONS:
            if not isinstance(settings.get(section) or {}, dict):
                raise ConfigError(f"{section} must be a JSON object")
        estimator, grid = make_estimator(settings.get("estimator") or {})
        stopping = make_stopping(settings.get("stopping") or {})
        return cls(
            settings=settings,
            start=_start(settings.get("start") or {}, bank),
            estimator=estimator,
            grid=grid,
            selector=make_selector(settings.get("selection") or {}),
            exposure=make_exposure(settings.get("exposure") or {}, len(bank)),
            constraints=make_constraints(
                settings.get("constraints") or None, bank, max_items=stopping.max_items
            ),
            stopping=stopping,
            pretest=_pretest(settings.get("pretest") or {}),
            _bank=bank,
        )


#: Starting abilities beyond this many logits are mistakes (a bank's items sit within about 4).
START_LIMIT = 10.0


def _start(spec: dict, bank: ItemBank) -> StartRule:
    if "item" in spec:
        bank.index_of(str(spec["item"]))  # raises UnknownItemError naming it
        return StartRule(item=str(spec["item"]))
    if "random" in spec:
        try:
            lo, hi = (float(x) for x in spec["random"])
        except (TypeError, ValueError):
            raise ConfigError("start.random must be [low, high]") from None
        if not lo < hi:
            raise ConfigError(f"start.random must have low < high, got [{lo}, {hi}]")
        if not -START_LIMIT <= lo < hi <= START_LIMIT:
            raise ConfigError(f"start.random must lie within [-{START_LIMIT:g}, "
                              f"{START_LIMIT:g}] logits, got [{lo}, {hi}]")
        return StartRule(random_range=(lo, hi))
    try:
        theta = float(spec.get("theta", 0.0))
    except (TypeError, ValueError):
        raise ConfigError(f"start.theta must be a number, got {spec.get('theta')!r}") from None
    if not -START_LIMIT <= theta <= START_LIMIT:  # also refuses nan and inf
        raise ConfigError(f"start.theta must lie within [-{START_LIMIT:g}, {START_LIMIT:g}] "
                          f"logits, got {theta!r}")
    return StartRule(theta=theta)


def _pretest(spec: dict) -> PretestPlan:
    if not isinstance(spec, dict):
        raise ConfigError(f"pretest must be an object with items and positions, got {spec!r}")
    raw_items, raw_positions = spec.get("items", ()), spec.get("positions", ())
    if not isinstance(raw_items, list | tuple) or not all(isinstance(i, str) for i in raw_items):
        raise ConfigError(f"pretest.items must be a list of item ids, got {raw_items!r}")
    if not isinstance(raw_positions, list | tuple) or not all(
            isinstance(p, int) and not isinstance(p, bool) for p in raw_positions):
        raise ConfigError(f"pretest.positions must be a list of whole numbers, got "
                          f"{raw_positions!r}")
    at_most(len(raw_items), MAX_PRETEST_ITEMS, "pretest.items (the number of items)")
    at_most(len(raw_positions), MAX_PRETEST_ITEMS, "pretest.positions (the number of positions)")
    items = tuple(raw_items)
    positions = tuple(sorted(raw_positions))
    if len(set(items)) != len(items):
        raise ConfigError("pretest.items lists an item more than once")
    if any(p < 1 for p in positions):
        raise ConfigError("pretest.positions are 1-based positions in the test")
    if len(set(positions)) != len(positions):
        raise ConfigError("pretest.positions lists a position more than once")
    if positions and not items:
        raise ConfigError("pretest.positions given but pretest.items is empty")
    return PretestPlan(items=items, positions=positions)
