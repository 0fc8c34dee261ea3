"""``cat-engine raters``: rater measurement (many-facet Rasch model) and agreement from a CSV."""

from __future__ import annotations

import sys
import time

import click

from api.calibration_cli import write_json
from api.cli_errors import CommandError

_FILE = click.Path(exists=True, dir_okay=False)
#: Ratings from which the progress bar is shown (smaller runs take well under a second).
PROGRESS_FROM = 10_000


@click.command("raters")
@click.argument("ratings_path", metavar="RATINGS.csv", type=_FILE)
@click.option("--json", "json_path", required=True, type=click.Path(dir_okay=False),
              help="Write the analysis (raters, criteria, thresholds, students, agreement) here.")
@click.option("--model", type=click.Choice(["rating-scale", "partial-credit"]),
              default="rating-scale", show_default=True,
              help="One set of thresholds for every criterion (Andrich), or one per criterion.")
@click.option("--min-score", type=int, default=None, metavar="N",
              help="The rubric score that is the lowest level of every criterion [default: the "
                   "lowest score observed on each criterion].")
@click.option("--max-iterations", default=500, show_default=True,
              type=click.IntRange(min=1, max=10_000))
def raters_command(ratings_path: str, json_path: str, model: str, min_score: int | None,
                   max_iterations: int) -> None:
    """Measure rater severity, criterion difficulty and students from RATINGS.csv.

    RATINGS.csv is long: one row per rating, with the columns student_id,criterion,rater,score
    (integer scores). The many-facet Rasch model is fitted by marginal maximum likelihood over
    students (raters centred at 0); agreement between raters (exact, adjacent, weighted kappa per
    pair, ICCs, Krippendorff's alpha) is computed from the same ratings. Nothing is written
    unless the whole analysis succeeds.
    """
    from calibration.agreement import rater_agreement
    from calibration.raters import fit_mfrm, read_ratings

    started = time.perf_counter()
    ratings = read_ratings(ratings_path, min_score=min_score)
    click.echo(f"Read {ratings.n} ratings of {ratings.n_students} students on "
               f"{ratings.n_criteria} criteria by {ratings.n_raters} raters", err=True)
    with click.progressbar(length=max_iterations, label="Fitting", file=sys.stderr,
                           hidden=ratings.n < PROGRESS_FROM) as bar:
        result = fit_mfrm(ratings, model, max_iterations=max_iterations,
                          progress=lambda iteration, loglik: bar.update(1))
    agreement = rater_agreement(ratings)
    report = result.to_dict()
    report["agreement"] = agreement
    report["seconds"] = time.perf_counter() - started
    try:
        write_json(json_path, report)
    except OSError as error:
        raise CommandError(f"cannot write {json_path}: {error.strerror or error}") from None
    state = "converged" if result.converged else "DID NOT CONVERGE"
    harsh = max(result.raters, key=lambda r: r["severity"])
    lenient = min(result.raters, key=lambda r: r["severity"])
    click.echo(f"{model}: {state} after {result.iterations} iterations in "
               f"{report['seconds']:.2f} s; log-likelihood {result.log_likelihood:.2f}, "
               f"sigma {result.sigma:.2f}")
    click.echo(f"Severity from {lenient['rater']} {lenient['severity']:+.2f} to {harsh['rater']} "
               f"{harsh['severity']:+.2f} logits (raters centred at 0); exact agreement "
               f"{_share(agreement.get('exact'))}")
    click.echo(f"Analysis written to {json_path}")


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"
