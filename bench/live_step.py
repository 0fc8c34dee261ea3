"""One live CAT step, as the web tier runs it: rebuild a stored session and choose its next item.

``python -m bench.live_step`` builds a 500-item 3PL bank, runs sessions to 20 answered items,
stores them as JSON, and times ``CATSession.from_json(...).next_item()`` (the configuration is
built once per test, as the service caches it per bank version). Reports the median and the 95th
percentile in milliseconds, for a few selection and exposure settings.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.cat_sim import make_bank
from cat_engine import CATConfig, CATSession, ItemBank

SETTINGS = {
    "mfi": {"selection": {"method": "mfi"}, "stopping": {"se": 0.3, "max_items": 40}},
    "mfi+randomesque:5": {
        "selection": {"method": "mfi"}, "exposure": {"method": "randomesque", "n": 5},
        "stopping": {"se": 0.3, "max_items": 40},
    },
    "mpwi": {"selection": {"method": "mpwi"}, "stopping": {"se": 0.3, "max_items": 40}},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--answered", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args(argv)
    a, b, c = make_bank()
    bank = ItemBank.from_records(
        [{"item_id": f"i{j}", "model": "3pl", "a": a[j], "b": b[j], "c": c[j]}
         for j in range(a.size)]
    )
    rng = np.random.default_rng(5)
    results = {}
    for name, settings in SETTINGS.items():
        config = CATConfig.from_dict(settings, bank)
        session = CATSession(bank, config, seed=11)
        for _ in range(args.answered):
            item = session.next_item()
            session.answer(item, int(rng.random() < 0.5))
        stored = json.loads(json.dumps(session.to_json()))
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            CATSession.from_json(bank, stored, config=config).next_item()
            times.append(time.perf_counter() - started)
        ms = np.array(times[100:]) * 1000
        results[name] = {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95))}
        print(f"{name:20s} median {results[name]['median_ms']:.3f} ms   "
              f"p95 {results[name]['p95_ms']:.3f} ms   ({bank.a.size} items, "
              f"{args.answered} answered)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
