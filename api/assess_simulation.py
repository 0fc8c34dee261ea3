"""Test design by simulation (assessment pages): the test as delivered, or other designs of
item selection, exposure control and stopping, simulated on the same students and compared side
by side.

A GET form: a seeded simulation writes nothing and is a pure function of its inputs, so a report
(or a comparison) can be bookmarked and reloaded. Every design of one request is simulated on the
same true thetas with the same seed (common random numbers), so differences between designs are
the designs', not the draws'.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from flask import Response, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from api import assess_words as words
from api.assess_pages import _render, _tests, bp, staff_only
from api.db import get_session
from api.staff import form_int
from cat_engine import CATError, simulate
from item_bank.models import AdaptiveTest
from item_bank.services import BankError, build_delivery, snapshot_content
from reports import charts
from storage.accounts import User

MAX_SIMULEES = 5000
MAX_TUNED_SIMULEES = 1000
DEFAULT_SIMULEES = 500
#: Designs compared at once (the first is always simulated).
MAX_DESIGNS = 3
DESIGN_LETTERS = ("A", "B", "C")
SERIES = ("series-0", "series-1", "series-3")

SELECTIONS = {
    "mfi": _l("Maximum information"),
    "kl": _l("Kullback-Leibler information"),
    "mepwi": _l("Posterior-weighted information"),
    "astrat": _l("a-stratified"),
    "random": _l("Random (no adaptation)"),
}
EXPOSURES = {
    "none": _l("None"),
    "randomesque": _l("Randomesque (one of the n best items)"),
    "progressive": _l("Progressive"),
    "eligibility": _l("Item eligibility (target rate)"),
    "sympson-hetter": _l("Sympson-Hetter (target rate; tuned by simulation first)"),
}


def _design_defaults(config: dict[str, Any]) -> dict[str, str]:
    """The form values of a design that is the test as delivered."""
    exposure = config.get("exposure") or {}
    stopping = config.get("stopping") or {}
    method = str(exposure.get("method", "none")).lower()
    method = "progressive" if method == "progressive-restricted" else method
    return {
        "selection": str((config.get("selection") or {}).get("method", "mfi")).lower(),
        "exposure": method,
        "r_max": str(exposure.get("r_max", 0.25)),
        "n": str(exposure.get("n", 5)),
        "se": "" if stopping.get("se") is None else str(stopping["se"]),
        "max_items": str(stopping.get("max_items", 40)),
        "min_items": str(stopping.get("min_items", 1)),
    }


def _number(raw: str, low: float, high: float, *, whole: bool = False) -> float | int | None:
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or not low <= value <= high:
        return None
    return value


def design_settings(test_config: dict[str, Any], form: dict[str, str], prefix: str,
                    errors: dict[str, str]) -> dict[str, Any] | None:
    """The engine configuration of one design: the test's own, with the form's item selection,
    exposure control and stopping (SE, most and fewest items) in place of the test's.

    Other sections (start, estimator, content constraints, pretest items) and other stopping
    rules (classification, rule trees) stay the test's. An exposure control set as the test
    has it keeps the test's own settings (such as tuned Sympson-Hetter parameters).
    Problems go to ``errors`` under ``prefix + field``.
    """
    config = dict(test_config)
    if form["selection"] not in SELECTIONS:
        errors[prefix + "selection"] = _("Choose one of the methods offered.")
    else:
        config["selection"] = {**(test_config.get("selection") or {}),
                               "method": form["selection"]}
    exposure = {"method": form["exposure"]}
    if form["exposure"] not in EXPOSURES:
        errors[prefix + "exposure"] = _("Choose one of the methods offered.")
    elif form["exposure"] == "randomesque":
        n = _number(form["n"], 1, 50, whole=True)
        if n is None:
            errors[prefix + "n"] = _("Enter a whole number from %(low)d to %(high)d.", low=1,
                                     high=50)
        exposure["n"] = n
    elif form["exposure"] in ("eligibility", "sympson-hetter", "progressive"):
        r_max = _number(form["r_max"], 0.01, 1.0)
        if r_max is None:
            errors[prefix + "r_max"] = _("Enter a rate from 0.01 to 1.")
        exposure["r_max"] = r_max
    if _design_defaults(test_config)["exposure"] == form["exposure"] and all(
            _design_defaults(test_config)[k] == form[k] for k in ("r_max", "n")):
        exposure = dict(test_config.get("exposure") or {"method": "none"})
    config["exposure"] = exposure
    stopping = {k: v for k, v in (test_config.get("stopping") or {}).items()
                if k not in ("se", "max_items", "min_items")}
    if form["se"].strip():
        se = _number(form["se"], 0.05, 2.0)
        if se is None:
            errors[prefix + "se"] = _("Enter a standard error from 0.05 to 2, or leave it empty.")
        stopping["se"] = se
    max_items = _number(form["max_items"], 1, 500, whole=True)
    if max_items is None:
        errors[prefix + "max_items"] = _("Enter a whole number from %(low)d to %(high)d.",
                                         low=1, high=500)
    min_items = _number(form["min_items"], 0, 500, whole=True)
    if min_items is None:
        errors[prefix + "min_items"] = _("Enter a whole number from %(low)d to %(high)d.",
                                         low=0, high=500)
    elif max_items is not None and min_items > max_items:
        errors[prefix + "min_items"] = _("The fewest items cannot be more than the most items.")
    stopping |= {"max_items": max_items, "min_items": min_items}
    config["stopping"] = stopping
    if any(k.startswith(prefix) for k in errors):
        return None
    return config


def _simulee_limit(config: dict[str, Any]) -> int:
    """At most :data:`MAX_SIMULEES` simulees (about 0.7 s for 5000 on a 320-item bank), and
    :data:`MAX_TUNED_SIMULEES` when Sympson-Hetter parameters must be found by iterated
    simulation first (about 25 s for 5000; 5 s for 1000)."""
    exposure = config.get("exposure") or {}
    if exposure.get("method") == "sympson-hetter" and "k" not in exposure:
        return MAX_TUNED_SIMULEES
    return MAX_SIMULEES


def simulation_report(test: AdaptiveTest, examinees: int, seed: int,
                      config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Simulate ``examinees`` test takers (theta ~ N(0, 1)) on what ``test`` delivers now, with
    ``config`` (an engine configuration; by default the test's own).

    Nothing is stored: the test's current content is built as a snapshot would be, in memory.

    Returns
    -------
    dict
        ``summary`` (:meth:`cat_engine.simulation.SimulationResult.to_dict`), ``exposure``,
        ``rmse`` and ``length`` charts, ``rows`` (conditional figures by decile of true theta),
        ``seconds`` (wall time, including building the bank).
    """
    started = time.perf_counter()
    delivery = build_delivery(snapshot_content(get_session(), test))
    thetas = np.random.default_rng([seed, 7]).normal(0.0, 1.0, examinees)
    result = simulate(delivery.bank, thetas, config or delivery.config, seed=seed,
                      cohorts=max(1, math.ceil(examinees / 1000)))
    summary = result.to_dict()
    rows = summary["conditional"]
    middles = [(r["theta_low"] + r["theta_high"]) / 2 for r in rows]
    rates = list(summary["exposure_rates"].values())
    return {
        "summary": summary, "rows": rows, "middles": middles,
        "exposure": charts.histogram(rates, bins=10, upper=max(max(rates), 0.01)),
        "rmse": charts.line_chart(middles, [{"values": [r["rmse"] for r in rows],
                                             "class": "series-0"},
                                            {"values": [abs(r["bias"]) for r in rows],
                                             "class": "series-2"}]),
        "length": charts.line_chart(middles, [{"values": [r["mean_length"] for r in rows],
                                               "class": "series-1"}], y_digits=0),
        "most_exposed": sorted(summary["exposure_rates"].items(), key=lambda kv: -kv[1])[:10],
        "seconds": time.perf_counter() - started,
    }


def comparison(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision and test length by decile of true theta, one series per design."""
    middles = reports[0]["middles"]
    return {
        "rmse": charts.line_chart(middles, [
            {"values": [r["rmse"] for r in report["rows"]], "class": SERIES[k]}
            for k, report in enumerate(reports)]),
        "length": charts.line_chart(middles, [
            {"values": [r["mean_length"] for r in report["rows"]], "class": SERIES[k]}
            for k, report in enumerate(reports)], y_digits=0),
    }


def _design_forms(defaults: dict[str, str], keep: bool) -> list[dict[str, Any]]:
    """The designs' form values: as sent when ``keep``, else the test as delivered."""
    forms = []
    for k in range(MAX_DESIGNS):
        prefix = f"d{k + 1}_"
        given = keep and any(prefix + name in request.args for name in defaults)
        form = {name: (request.args.get(prefix + name, value) if keep else value or "")
                .strip()[:20] for name, value in defaults.items()}
        form["on"] = k == 0 or (keep and request.args.get(prefix + "on") == "1")
        form["given"] = given
        form["prefix"], form["letter"] = prefix, DESIGN_LETTERS[k]
        forms.append(form)
    return forms


@bp.get("/simulate")
@staff_only
def simulation(user: User) -> Response:
    """Design a test by simulation: the test as delivered, or up to three designs of item
    selection, exposure control and stopping rules, on the same simulated students."""
    db = get_session()
    errors: dict[str, str] = {}
    asked = "test_id" in request.args
    form = {"test_id": request.args.get("test_id", ""),
            "examinees": request.args.get("examinees", str(DEFAULT_SIMULEES)),
            "seed": request.args.get("seed", "1")}
    tests = _tests()
    test = None
    reports: list[dict[str, Any]] = []
    chosen = (db.get(AdaptiveTest, int(form["test_id"])) if form["test_id"].isdecimal()
              and len(form["test_id"]) < 10 else None) or (tests[0] if tests else None)
    defaults = _design_defaults(dict((chosen.config or {}) if chosen else {}))
    # Designs sent for another test than the one chosen now start again from the chosen test.
    designed_for = request.args.get("designed_for")
    keep = designed_for is None or (chosen is not None and designed_for == str(chosen.id))
    designs = _design_forms(defaults, keep)
    reset = not keep and any(k.startswith("d1_") for k in request.args)
    if asked:
        test_id = form_int("test_id", errors, low=1, high=2**31 - 1)
        examinees = form_int("examinees", errors, low=10, high=MAX_SIMULEES)
        seed = form_int("seed", errors, low=0, high=10**6, default=1)
        test = db.get(AdaptiveTest, test_id) if test_id else None
        if test_id and test is None:
            errors["test_id"] = _("Choose one of the tests offered.")
        configs = []
        if test is not None:
            base = dict(test.config or {})
            for design in designs:
                if design["on"]:
                    configs.append((design, design_settings(base, design, design["prefix"],
                                                            errors)))
        limit = min((_simulee_limit(c) for _d, c in configs if c), default=MAX_SIMULEES)
        if test is not None and examinees and examinees > limit:
            errors["examinees"] = _(
                "Sympson-Hetter exposure control is tuned by simulation first, which takes "
                "longer: simulate at most %(n)d students.", n=limit)
        if not errors:
            for design, config in configs:
                try:
                    report = simulation_report(test, examinees, seed, config)
                except (BankError, CATError) as error:
                    errors[design["prefix"] + "selection"] = _(
                        "This design cannot be simulated: %(reason)s", reason=str(error))
                    continue
                reports.append({**report, "design": design})
            if errors:
                reports = []
    compared = comparison(reports) if len(reports) > 1 else None
    return _render("assess/simulate.html", user, 422 if errors else 200, tests=tests,
                   form=form, errors=errors, test=test, reports=reports, compared=compared,
                   report=reports[0] if len(reports) == 1 else None, designs=designs,
                   selections=SELECTIONS, exposures=EXPOSURES, max_simulees=MAX_SIMULEES,
                   stop_words=words.stop_reason_words, series=SERIES,
                   designed_for=chosen.id if chosen else "", reset=reset)
