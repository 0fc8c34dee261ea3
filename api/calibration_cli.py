"""``cat-engine calibrate``, ``dif`` and ``link``: calibration work for assessment teams."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path

import click

from api.cli_errors import CommandError

_FILE = click.Path(exists=True, dir_okay=False)


def _write_atomically(path: Path, write) -> None:
    """Write through a temporary file in the same folder, so a failure leaves no output."""
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                               prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: dict) -> None:
    """Write ``data`` as JSON, atomically."""
    _write_atomically(Path(path), lambda h: json.dump(data, h, indent=2, allow_nan=False))


def write_parameters(path: str | Path, records: list[dict]) -> None:
    """Write item parameter records as CSV (``item_id,model,a,b,c,d,b1..bk`` and more)."""
    columns: list[str] = []
    for record in records:
        for key in record:
            if key not in columns:
                columns.append(key)

    def write(handle) -> None:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _cell(v) for k, v in record.items()})

    _write_atomically(Path(path), write)


def _cell(value):
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    if isinstance(value, float) and value != value:
        return ""
    return value


@click.command("dif")
@click.argument("responses", type=_FILE)
@click.option("--reference", required=True, help="Label of the reference group.")
@click.option("--focal", required=True, help="Label of the focal group.")
@click.option("--matching", type=click.Choice(["total", "theta"]), default="total",
              show_default=True,
              help="Match on the total score (complete data) or on ability deciles (needs --bank).")
@click.option("--bank", "bank_path", type=_FILE,
              help="Item parameters for --matching theta (EAP ability per person).")
@click.option("--purify", is_flag=True, help="Drop C items from the matching score once.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write the full report here.")
def dif_command(responses, reference, focal, matching, bank_path, purify, json_path) -> None:
    """Mantel-Haenszel DIF (ETS A/B/C) and SMD for polytomous items, between two groups.

    RESPONSES is a long (person_id,item_id,response,group) or wide (with a group column) CSV.
    """
    from calibration.data import read_responses
    from calibration.dif import dif_report

    data = read_responses(responses)
    ability = None
    if matching == "theta":
        if not bank_path:
            raise CommandError("--matching theta needs --bank (to estimate each person's theta)")
        from calibration.fit import eap_scores
        from cat_engine import ItemBank

        ability = eap_scores(data, ItemBank.from_csv(bank_path))[0]
    report = dif_report(data, reference, focal, matching=matching, purify=purify,
                        ability=ability)
    summary = report["summary"]
    click.echo(f"DIF {reference} (reference, n={report['n_reference']}) vs {focal} (focal, "
               f"n={report['n_focal']}), matching on {matching}: A {summary['A']}, "
               f"B {summary['B']}, C {summary['C']}")
    for row in report["mantel_haenszel"]:
        if row["category"] != "A":
            click.echo(f"  {row['item_id']}: {row['category']}  delta_MH {row['delta_mh']:+.2f} "
                       f"(SE {row['se_delta']:.2f}, p {row['p_value']:.3g}) favours "
                       f"{row['favours']}")
    for row in report["standardized_mean_difference"]:
        if row["category"] != "A":
            click.echo(f"  {row['item_id']}: {row['category']}  SMD {row['smd']:+.3f} "
                       f"(effect size {row['effect_size']:+.2f}) favours {row['favours']}")
    if json_path:
        write_json(json_path, report)
        click.echo(f"Report written to {json_path}")


@click.command("link")
@click.argument("new_path", metavar="NEW.csv", type=_FILE)
@click.argument("reference_path", metavar="REFERENCE.csv", type=_FILE)
@click.option("--method", type=click.Choice(["stocking-lord", "haebara", "mean-sigma",
                                             "mean-mean"]),
              default="stocking-lord", show_default=True)
@click.option("--common", help="Comma-separated ids of the common items (default: all shared).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Write the new calibration's items on the reference scale here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write the linking constants here.")
def link_command(new_path, reference_path, method, common, out_path, json_path) -> None:
    """Put a separate calibration (NEW.csv) on the bank's scale (REFERENCE.csv).

    theta_bank = A * theta_new + B, through the common items.
    """
    from calibration.linking import link
    from cat_engine import ItemBank

    new, reference = ItemBank.from_csv(new_path), ItemBank.from_csv(reference_path)
    ids = [c.strip() for c in common.split(",") if c.strip()] if common else None
    result = link(new, reference, method=method, common=ids)
    linked = result.transform(new)
    click.echo(f"{method}: A = {result.A:.4f}, B = {result.B:+.4f} "
               f"({len(result.common_items)} common items)")
    write_parameters(out_path, linked.to_records())
    click.echo(f"{len(linked)} items on the reference scale written to {out_path}")
    if json_path:
        write_json(json_path, {"method": method, "A": result.A, "B": result.B,
                               "common_items": list(result.common_items),
                               "criterion": result.criterion})


@click.command("calibrate")
@click.argument("responses", type=_FILE)
@click.option("--model", default="2pl", show_default=True,
              type=click.Choice(["rasch", "1pl", "2pl", "3pl", "grm", "gpcm", "pcm"]),
              help="IRT model for every item that is not fixed.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Write the item parameters (and their standard errors) here.")
@click.option("--fixed", "fixed_path", type=_FILE,
              help="Bank CSV of anchor items whose parameters stay fixed (fixed-parameter "
                   "calibration onto the bank's scale).")
@click.option("--backend", type=click.Choice(["em", "girth"]), default="em", show_default=True)
@click.option("--max-iterations", default=500, show_default=True,
              type=click.IntRange(min=1, max=10_000))
@click.option("--tolerance", default=1e-4, show_default=True, type=click.FloatRange(min=0,
                                                                                  min_open=True))
@click.option("--fit/--no-fit", default=True, show_default=True,
              help="Item fit (S-X2, infit, outfit) in PARAMS.csv and the summary.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write a summary (log-likelihood, AIC, BIC, iterations, convergence) here.")
def calibrate_command(responses, model, out_path, fixed_path, backend, max_iterations, tolerance,
                      fit, json_path) -> None:
    """Estimate item parameters from RESPONSES (long person_id,item_id,response or wide CSV).

    Nothing is written unless the calibration succeeds; items that cannot be estimated are
    named in the error.
    """
    import time

    from calibration import calibrate
    from calibration.data import read_responses
    from cat_engine import ItemBank

    started = time.perf_counter()
    data = read_responses(responses)
    fixed = ItemBank.from_csv(fixed_path) if fixed_path else None
    click.echo(f"Read {data.n_obs} responses of {data.n_persons} persons to {data.n_items} items "
               f"in {time.perf_counter() - started:.1f} s", err=True)
    with click.progressbar(length=max_iterations, label="EM cycles", file=sys.stderr,
                           hidden=data.n_obs < 200_000) as bar:
        def progress(iteration: int, log_likelihood: float) -> None:
            bar.update(1)

        result = calibrate(data, model, fixed=fixed, backend=backend,
                           max_iterations=max_iterations, tolerance=tolerance, progress=progress,
                           fit=fit)
    summary = result.summary()
    records = result.to_records()
    if result.fit is not None:
        for record, row in zip(records, result.fit, strict=True):
            record.update({"s_x2": row["s_x2"], "s_x2_df": row["df"], "s_x2_p": row["p_value"],
                           "infit": row["infit"], "outfit": row["outfit"],
                           "fit_flags": row["flags"]})
    write_parameters(out_path, records)
    if json_path:
        flagged = [row["item_id"] for row in result.fit or () if row["misfit"]]
        write_json(json_path, {**summary, "misfitting_items": flagged,
                               "settings": result.settings})
    state = "converged" if summary["converged"] else "DID NOT CONVERGE"
    click.echo(f"{model} on {data.n_items} items, {data.n_persons} persons: {state} after "
               f"{summary['iterations']} cycles in {summary['seconds']:.1f} s; log-likelihood "
               f"{summary['log_likelihood']:.2f}, AIC {summary['aic']:.1f}, "
               f"BIC {summary['bic']:.1f}")
    if result.fit is not None:
        flagged = [row["item_id"] for row in result.fit if row["misfit"]]
        click.echo(f"Item fit: {len(flagged)} of {len(result.fit)} items flagged"
                   + (f" ({', '.join(flagged[:10])}{' ...' if len(flagged) > 10 else ''})"
                      if flagged else ""))
    click.echo(f"Parameters written to {out_path}")
