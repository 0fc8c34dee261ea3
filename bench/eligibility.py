"""``python -m bench.eligibility``: how item eligibility settles in simulation.

For a 300-item bank and fixed-length tests of 10 items from theta 0, simulates 2,000 and 10,000
test takers with the default number of cohorts (:func:`cat_engine.simulation.settling_cohorts`)
and with 10 cohorts, and prints the overall maximum exposure beside the steady state (the last
half of the cohorts).
"""

from __future__ import annotations

import time

import numpy as np

from cat_engine import ItemBank, simulate


def _bank(n_items: int = 300, seed: int = 0) -> ItemBank:
    rng = np.random.default_rng(seed)
    return ItemBank.from_records(
        {"item_id": f"i{j}", "model": "3pl" if j % 3 == 0 else "2pl",
         "a": float(rng.lognormal(0.1, 0.3)), "b": float(rng.normal(0, 1.2)),
         "c": 0.15 if j % 3 == 0 else 0.0} for j in range(n_items))


def main(argv: list[str] | None = None) -> int:
    bank = _bank()
    print("r_max  examinees  cohorts  max overall  max steady  seconds")
    for r_max in (0.2, 0.3):
        settings = {"exposure": {"method": "eligibility", "r_max": r_max},
                    "stopping": {"max_items": 10}}
        for n in (2000, 10000):
            thetas = np.random.default_rng(1).normal(size=n)
            for cohorts in (10, None):
                started = time.perf_counter()
                result = simulate(bank, thetas, settings, seed=4, cohorts=cohorts) \
                    if cohorts is None else _fixed(bank, thetas, settings, cohorts)
                seconds = time.perf_counter() - started
                used = result.to_dict()["cohorts"]
                print(f"{r_max:5.1f}  {n:9d}  {used:7d}  {result.max_exposure:11.3f}  "
                      f"{result.steady_max_exposure:10.3f}  {seconds:7.2f}")
    return 0


def _fixed(bank, thetas, settings, cohorts):
    """Exactly ``cohorts`` cohorts (the default would raise them)."""
    import cat_engine.simulation as simulation

    default = simulation.settling_cohorts
    simulation.settling_cohorts = lambda n: cohorts
    try:
        return simulate(bank, thetas, settings, seed=4, cohorts=cohorts)
    finally:
        simulation.settling_cohorts = default


if __name__ == "__main__":
    raise SystemExit(main())
