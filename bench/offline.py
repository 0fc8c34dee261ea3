"""What a dropped connection costs: the fallback module's precision, and a test on a 2G line.

``python -m bench.offline`` runs two measurements (``--only precision`` or ``--only wire`` for
one of them).

**precision**: simulated students take the demo test's configuration (content balancing over six
skills, progressive exposure, EAP) on a 320-item 3PL bank, once wholly online and once with the
connection down for a span of items. While it is down they answer the item shown when it dropped
and then the fallback module the page kept (:meth:`cat_engine.CATSession.fallback_module`: what
the selector would choose at the estimate of the last contact, which does not move until the
server is back); afterwards the test goes on adaptively. Every student answers the same item the
same way in every scenario (one fixed uniform number per student and item), so the differences
come from which items were given. Reported per scenario: RMSE and bias of the final estimate,
mean SE, and, with the SE stopping rule, the mean test length.

**wire**: the demo served on loopback to Debian's Chromium throttled to 2G (Chromium's network
emulation: 250 kbit/s each way, 300 ms latency). A student signs in and takes a 30-item test;
reported: the bytes on the wire for the first item page (with the shell: styles, scripts, the
service worker) and for the whole test, each item page's bytes, and the time from pressing
Submit to the next item shown (median and p95), with and without compression.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cat_engine import CATSession, ItemBank
from cat_engine.models import p_correct

SKILLS = ("algebra", "geometry", "number", "statistics", "probability", "measurement")
N_ITEMS = 320
MODULE = 6
THROTTLE = {"offline": False, "latency": 300, "downloadThroughput": 250_000 / 8,
            "uploadThroughput": 250_000 / 8}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# -- precision -----------------------------------------------------------------------------------


def make_bank(seed: int = 20261204) -> ItemBank:
    """A 320-item 3PL bank with six skills in turn (as cat_sim's bank, plus content tags)."""
    rng = np.random.default_rng(seed)
    a = np.clip(rng.lognormal(0.0, 0.25, N_ITEMS), 0.5, 2.5)
    b = rng.normal(0.0, 1.0, N_ITEMS)
    c = rng.uniform(0.1, 0.25, N_ITEMS)
    return ItemBank.from_records([
        {"item_id": f"i{j}", "model": "3pl", "a": float(a[j]), "b": float(b[j]),
         "c": float(c[j]), "content": [SKILLS[j % len(SKILLS)]]} for j in range(N_ITEMS)])


def test_config(fixed_length: int | None) -> dict[str, Any]:
    """The demo test's configuration; ``fixed_length`` items exactly, or its SE rule."""
    from api.demo import demo_test_config

    config = demo_test_config(dict.fromkeys(SKILLS, N_ITEMS // len(SKILLS)))
    config["constraints"]["content"] = [{"tag": s, "min": 2, "max": 8} for s in SKILLS]
    if fixed_length is not None:
        config["stopping"] = {"max_items": fixed_length, "min_items": fixed_length}
    else:
        config["stopping"] = {"se": 0.35, "max_items": 30, "min_items": 12}
    return config


@dataclass(frozen=True)
class Scenario:
    """The connection drops after ``after`` answers and stays down for ``span`` answers."""

    name: str
    after: int | None = None
    span: int = 0


SCENARIOS = (
    Scenario("online"),
    Scenario("down after item 3 for 5 items", 3, 5),
    Scenario("down after item 3 for 7 items (a whole module)", 3, 1 + MODULE),
    Scenario("down after item 10 for 7 items", 10, 1 + MODULE),
)


def take(bank: ItemBank, config: dict, theta: float, uniform: np.ndarray, seed: int,
         scenario: Scenario) -> tuple[float, float, int, int]:
    """One student's test; returns (estimate, SE, items given, items answered offline)."""
    session = CATSession(bank, config, seed=seed)
    offline = 0
    module: list[str] = []
    while not session.finished:
        answered = len(session.history)
        item = session.next_item()
        if scenario.after is not None and answered == scenario.after:
            module = session.fallback_module(MODULE)  # the page of the last contact
        if module and scenario.after < answered < scenario.after + scenario.span:
            if answered - scenario.after - 1 >= len(module):
                break  # nothing left to show: the student waits for the connection
            item = module[answered - scenario.after - 1]
            session.present(item)
            offline += 1
        elif scenario.after is not None and answered == scenario.after:
            offline += 1  # the item shown when it dropped
        j = bank.index_of(item)
        session.answer(item, int(uniform[j] < float(p_correct(bank, j, theta))))
    result = session.result()
    return result.theta, result.se, result.n_given, offline


def precision(n_students: int, seed: int = 1) -> list[dict[str, Any]]:
    """Every scenario on the same students, fixed length (20) and with the SE rule."""
    bank = make_bank()
    rng = np.random.default_rng(seed)
    thetas = rng.normal(0.0, 1.0, n_students)
    uniforms = rng.random((n_students, len(bank)))
    rows = []
    for stopping, config in (("20 items", test_config(20)), ("SE 0.35", test_config(None))):
        for scenario in SCENARIOS:
            started = time.perf_counter()
            outcomes = np.array([take(bank, config, thetas[i], uniforms[i], 1000 + i, scenario)
                                 for i in range(n_students)])
            error = outcomes[:, 0] - thetas
            rows.append({
                "stopping": stopping, "scenario": scenario.name, "n": n_students,
                "rmse": float(np.sqrt(np.mean(error**2))), "bias": float(error.mean()),
                "mean_se": float(outcomes[:, 1].mean()),
                "mean_length": float(outcomes[:, 2].mean()),
                "offline_items": float(outcomes[:, 3].mean()),
                "seconds": time.perf_counter() - started,
            })
    return rows


def precision_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| stopping | scenario | n | RMSE | x online | bias | mean SE | mean length | "
             "offline items |", "|---|---|---|---|---|---|---|---|---|"]
    online = {r["stopping"]: r for r in rows if r["scenario"] == "online"}
    for r in rows:
        base = online[r["stopping"]]
        lines.append(
            f"| {r['stopping']} | {r['scenario']} | {r['n']} | {r['rmse']:.3f} | "
            f"{r['rmse'] / base['rmse']:.3f} | {r['bias']:+.3f} | {r['mean_se']:.3f} | "
            f"{r['mean_length']:.1f} | {r['offline_items']:.1f} |")
    return "\n".join(lines)


# -- on the wire ---------------------------------------------------------------------------------


def _demo_app(directory: Path, compress: bool):
    """The demo on SQLite with its test made 30 items long, and the app serving it."""
    from sqlalchemy import select, update

    from api.app import create_app
    from api.demo import build_demo
    from item_bank.models import AdaptiveTest
    from storage import make_engine, session_factory, session_scope

    url = f"sqlite:///{directory / 'wire.db'}"
    engine = make_engine(url)
    build_demo(engine, n_items=N_ITEMS)
    with session_scope(session_factory(engine)) as session:
        test = session.scalar(select(AdaptiveTest).order_by(AdaptiveTest.id))
        config = dict(test.config)
        config["stopping"] = {"max_items": 30, "min_items": 30}
        session.execute(update(AdaptiveTest).where(AdaptiveTest.id == test.id)
                        .values(config=config, version=test.version + 1))
        test_id = test.id
    engine.dispose()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-offline", "COMPRESS": compress,
                      "SIGN_IN_RATE_LIMIT": "1000 per minute"})
    return app, test_id


class _Server:
    def __init__(self, app) -> None:
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._server.shutdown()


_WATCH = """() => {
    window.__shown = [];
    const main = document.getElementById('main');
    new MutationObserver(() => {
        const h = document.querySelector('h1');
        if (h && h.textContent !== window.__last) {
            window.__last = h.textContent;
            window.__shown.push([h.textContent.trim(), performance.now()]);
        }
    }).observe(main, {childList: true, subtree: true});
    window.__last = document.querySelector('h1').textContent;
}"""


def wire(compress: bool, chromium: str) -> dict[str, Any]:
    """One student's 30-item test over an emulated 2G connection."""
    from playwright.sync_api import sync_playwright

    from api.demo import DEMO_PASSWORD

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        app, test_id = _demo_app(Path(tmp), compress)
        with _Server(app) as server:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                 args=CHROMIUM_ARGS)
            context = browser.new_context()
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", THROTTLE)
            received: list[int] = [0]
            cdp.on("Network.loadingFinished",
                   lambda event: received.__setitem__(0, received[0] + event["encodedDataLength"]))
            page.goto(server.url + "/")
            page.fill("#username", "student1")
            page.fill("#password", DEMO_PASSWORD)
            with page.expect_navigation():
                page.click("form[action='/sign-in'] button")
            before = received[0]
            with page.expect_navigation():
                page.click(f"form[action='/tests/{test_id}/start'] button")
            page.wait_for_load_state("networkidle")
            first_page = received[0] - before
            latencies, item_bytes = [], []
            page.evaluate(_WATCH)
            while "/result" not in page.url:
                heading = page.locator("h1").inner_text().strip()
                if not heading.startswith("Question"):
                    break
                page.get_by_role("radio").first.check()
                count = len(page.evaluate("window.__shown"))
                start_bytes = received[0]
                pressed = page.evaluate("performance.now()")
                page.get_by_role("button", name="Submit answer").click()
                deadline = time.monotonic() + 30
                while len(page.evaluate("window.__shown || []")) <= count:
                    if "/result" in page.url or time.monotonic() > deadline:
                        break
                    page.wait_for_timeout(5)
                shown = page.evaluate("window.__shown || []")
                if len(shown) > count:
                    latencies.append(shown[count][1] - pressed)
                    item_bytes.append(received[0] - start_bytes)
                else:
                    page.wait_for_load_state("load")
            total = received[0] - before
            browser.close()
    ordered = sorted(latencies)
    return {
        "compress": compress, "items": len(latencies),
        "first_page_bytes": first_page, "test_bytes": total,
        "item_page_bytes_median": statistics.median(item_bytes[:-1] or item_bytes),
        "item_page_bytes_max": max(item_bytes[:-1] or item_bytes),
        "submit_to_next_ms_median": statistics.median(ordered),
        "submit_to_next_ms_p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
    }


def wire_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| compression | items | first page (bytes, with shell) | whole test (bytes) | "
             "item page median / max (bytes) | Submit to next item, median / p95 (ms) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {'gzip' if r['compress'] else 'none'} | {r['items']} | {r['first_page_bytes']:,} | "
            f"{r['test_bytes']:,} | {r['item_page_bytes_median']:,.0f} / "
            f"{r['item_page_bytes_max']:,} | {r['submit_to_next_ms_median']:.0f} / "
            f"{r['submit_to_next_ms_p95']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("precision", "wire"))
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if args.only in (None, "precision"):
        result["precision"] = precision(args.students)
        print(precision_table(result["precision"]), flush=True)
    if args.only in (None, "wire"):
        result["wire"] = [wire(True, args.chromium), wire(False, args.chromium)]
        print(wire_table(result["wire"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
