"""Sympson-Hetter at r_max 0.2 over several seeds: ``python -m bench.sh_seeds [SEED ...]``.

Same bank as :mod:`bench.cat_sim`; each seed draws new simulees, calibrates the exposure
parameters on them and reports the final run's RMSE and maximum exposure.
"""

from __future__ import annotations

import sys

from bench.cat_sim import make_bank, make_thetas
from cat_engine import ItemBank, simulate

CONFIG = {
    "estimator": {"method": "eap"},
    "selection": {"method": "mfi"},
    "exposure": {"method": "sympson-hetter", "r_max": 0.2},
    "stopping": {"se": 0.3, "max_items": 40},
}


def main(argv: list[str] | None = None) -> int:
    seeds = [int(s) for s in (argv if argv is not None else sys.argv[1:])] or [2, 3, 4]
    a, b, c = make_bank()
    bank = ItemBank.from_records(
        [{"item_id": f"i{j}", "model": "3pl", "a": a[j], "b": b[j], "c": c[j]}
         for j in range(a.size)]
    )
    for seed in seeds:
        r = simulate(bank, make_thetas(1000, seed), CONFIG, seed=seed)
        print(f"seed {seed}: rmse {r.rmse:.3f} max exposure {r.max_exposure:.3f} "
              f"mean length {r.mean_length:.1f} calibration {r.calibration.seconds:.1f} s: "
              f"{r.calibration.message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
