"""``cat-engine simulate``: design a test by simulation from a bank file."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

from api.cli_errors import CommandError
from cat_engine.limits import MAX_SIMULEES

EXPOSURE_HELP = (
    "none | randomesque:N | progressive[:R_MAX] | eligibility:R_MAX | sympson-hetter:R_MAX"
)
STOP_HELP = (
    "comma-separated rules, e.g. se:0.3,max:40[,min:5][,cut:0.5][,sprt:0.5][,info:0.1]"
    "[,delta:0.01]"
)


def parse_exposure(text: str) -> dict:
    """``randomesque:5`` -> ``{"method": "randomesque", "n": 5}`` and so on."""
    method, _, value = text.strip().lower().partition(":")
    try:
        if method == "none" and not value:
            return {"method": "none"}
        if method == "randomesque":
            return {"method": method, "n": int(value or 5)}
        if method in ("progressive", "progressive-restricted"):
            return {"method": "progressive", **({"r_max": float(value)} if value else {})}
        if method in ("eligibility", "sympson-hetter"):
            return {"method": method, "r_max": float(value or 0.2)}
    except ValueError:
        pass
    raise CommandError(f"--exposure: {text!r} is not of the form {EXPOSURE_HELP}")


_STOP_KEYS = {"se": "se", "max": "max_items", "min": "min_items", "info": "info_below",
              "delta": "theta_change"}


def parse_stop(text: str) -> dict:
    """``se:0.3,max:40`` -> ``{"se": 0.3, "max_items": 40}``; ``cut:X`` / ``sprt:X`` classify."""
    spec: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition(":")
        try:
            number = float(value)
            if not math.isfinite(number) or (key in ("max", "min") and not number.is_integer()):
                raise ValueError
        except ValueError:
            raise CommandError(f"--stop: {part!r}: expected NAME:NUMBER, a finite number "
                               f"(whole for max and min) ({STOP_HELP})") from None
        if key in ("max", "min"):
            spec[_STOP_KEYS[key]] = int(number)
        elif key in _STOP_KEYS:
            spec[_STOP_KEYS[key]] = number
        elif key in ("cut", "sprt"):
            spec["classification"] = {"cut": number, "method": "ci" if key == "cut" else "sprt"}
        else:
            raise CommandError(f"--stop: unknown rule {key!r} ({STOP_HELP})")
    return spec


def _write_json_atomically(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


@click.command()
@click.option("--bank", "bank_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Item parameters: CSV with item_id,model,a,b,c,d[,b1..bk][,content].")
@click.option("--examinees", default=1000, show_default=True,
              type=click.IntRange(min=1, max=MAX_SIMULEES),
              help="Number of simulees.")
@click.option("--theta", "theta_dist", default="normal:0,1", show_default=True,
              help="True-theta distribution: normal:MEAN,SD or uniform:LOW,HIGH.")
@click.option("--seed", default=1, show_default=True, help="Seed of the whole simulation.")
@click.option("--selector", default="mfi", show_default=True,
              type=click.Choice(["mfi", "kl", "mpwi", "mepwi", "mepv", "astrat", "random"]))
@click.option("--estimator", default="eap", show_default=True,
              type=click.Choice(["eap", "map", "mle", "wle"]))
@click.option("--exposure", default="none", show_default=True, help=EXPOSURE_HELP)
@click.option("--stop", default="se:0.3,max:40", show_default=True, help=STOP_HELP)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="A JSON engine configuration; the options above override its sections.")
@click.option("--scale", "D", default=1.0, show_default=True, type=float,
              help="Scaling constant D of the logistic models (1.702: normal metric).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True),
              help="Write the full results here (only when the run succeeds).")
def simulate_command(bank_path, examinees, theta_dist, seed, selector, estimator, exposure, stop,
                     config_path, D, json_path) -> None:
    """Simulate adaptive tests on a bank and report precision, length and exposure."""
    from cat_engine import CATConfig, ItemBank, simulate

    bank = ItemBank.from_csv(bank_path, D=D)
    settings = json.loads(Path(config_path).read_text()) if config_path else {}
    if not isinstance(settings, dict):
        raise CommandError("--config: the file must hold a JSON object")
    for section, value in settings.items():
        if not isinstance(value, dict):
            raise CommandError(f"--config: section {section!r} must be a JSON object")
    source = click.get_current_context().get_parameter_source
    for name, key, value in (
        ("selector", "selection", {"method": selector}),
        ("estimator", "estimator", {**settings.get("estimator", {}), "method": estimator}),
        ("exposure", "exposure", parse_exposure(exposure)),
        ("stop", "stopping", parse_stop(stop)),
    ):
        if not config_path or source(name).name != "DEFAULT" or key not in settings:
            settings[key] = value
    CATConfig.from_dict(settings, bank)  # validate before drawing anything
    thetas = _draw_thetas(theta_dist, examinees, seed)
    if settings["exposure"].get("method") == "sympson-hetter" and "k" not in settings["exposure"]:
        click.echo("Calibrating Sympson-Hetter exposure parameters by simulation ...", err=True)
    cohorts = max(1, math.ceil(examinees / 1000))
    with click.progressbar(length=examinees, label="Simulating", file=sys.stderr, show_eta=True,
                           hidden=examinees < 5000) as bar:
        last = [0]

        def progress(done: int, total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        result = simulate(bank, thetas, settings, seed=seed, cohorts=cohorts, progress=progress)
    summary = result.to_dict()
    _print_summary(summary, bank_path)
    if json_path:
        _write_json_atomically(Path(json_path), summary)
        click.echo(f"Results written to {json_path}")


def _draw_thetas(spec: str, n: int, seed: int) -> np.ndarray:
    kind, _, args = spec.partition(":")
    try:
        p, q = (float(x) for x in args.split(","))
    except ValueError:
        raise CommandError(f"--theta: {spec!r}: use normal:MEAN,SD or uniform:LOW,HIGH") from None
    rng = np.random.default_rng([seed, 7])
    if kind == "normal" and q > 0:
        return rng.normal(p, q, n)
    if kind == "uniform" and p < q:
        return rng.uniform(p, q, n)
    raise CommandError(f"--theta: {spec!r}: use normal:MEAN,SD (SD > 0) or uniform:LOW,HIGH")


def _print_summary(s: dict, bank_path: str) -> None:
    click.echo(f"Simulated {s['examinees']} test takers on {s['items_in_bank']} items "
               f"({bank_path}) in {s['seconds']:.2f} s")
    click.echo(f"  precision : RMSE {s['rmse']:.3f}, bias {s['bias']:+.3f}, mean SE "
               f"{s['mean_se']:.3f}")
    click.echo(f"  length    : mean {s['mean_length']:.1f}, max {s['max_length']}, "
               f"{s['administered']} items given")
    click.echo(f"  exposure  : max {s['max_exposure']:.3f}, unused {s['unused_fraction']:.1%}, "
               f"overlap {s['overlap_rate']:.3f}, chi-square {s['chi_square_exposure']:.1f}")
    if s["cohorts"] > 1:
        click.echo(f"  steady    : max exposure {s['max_exposure_steady']:.3f} in the last half of "
                   f"{s['cohorts']} cohorts (the control adapts between cohorts)")
    reasons = ", ".join(f"{k} {v}" for k, v in s["stop_reasons"].items())
    click.echo(f"  stopped   : {reasons}")
    if s["calibration"]:
        click.echo(f"  Sympson-Hetter: {s['calibration']['message']} "
                   f"({s['calibration']['seconds']:.1f} s)")
    click.echo("  by true-theta decile (theta range: bias / RMSE / mean length):")
    for row in s["conditional"]:
        click.echo(f"    {row['theta_low']:+.2f}..{row['theta_high']:+.2f}: {row['bias']:+.3f} / "
                   f"{row['rmse']:.3f} / {row['mean_length']:.1f}")
