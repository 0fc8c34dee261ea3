"""Upper bounds on every size a test configuration or a simulation may ask for.

Each bound is far above any sensible design and far below what would exhaust a server: an
estimator grid of 10,000,000 points took 842 MB for one started attempt before these existed.
A value beyond a bound is a :class:`~cat_engine.errors.ConfigError` naming the setting and the
bound (the API answers 422).
"""

from __future__ import annotations

from cat_engine.errors import ConfigError

#: ``estimator.grid.points``: quadrature points of the ability grid (default 61; 0.01 logits
#: apart over -5..5 is 1,001).
MAX_GRID_POINTS = 1001
#: ``stopping.max_items`` (and ``min_items``): the longest test.
MAX_TEST_LENGTH = 500
#: ``exposure.n`` of randomesque selection: how many best items to draw from.
MAX_RANDOMESQUE_N = 100
#: ``selection.strata`` of a-stratified selection.
MAX_STRATA = 100
#: ``exposure.theta_cuts`` of Sympson-Hetter: ability strata, each with its own ``k`` row.
MAX_THETA_CUTS = 50
#: ``pretest.items`` and ``pretest.positions``.
MAX_PRETEST_ITEMS = 100
#: ``constraints.content`` rules and ``constraints.enemies`` sets.
MAX_CONTENT_RULES = 500
#: Simulated test takers in one simulation.
MAX_SIMULEES = 200_000
#: Cohorts of one simulation (exposure statistics are updated between cohorts).
MAX_COHORTS = 1000


def at_most(value: int, bound: int, name: str) -> int:
    """``value`` when it is at most ``bound``.

    Raises
    ------
    ConfigError
        Naming ``name`` and the bound.
    """
    if value > bound:
        raise ConfigError(f"{name} must be at most {bound:,}, got {value:,}")
    return value
