"""``cat-engine roster import PATH [--apply]``: a OneRoster 1.2 roster from the command line.

PATH is a OneRoster zip or a folder of its CSV files. Without ``--apply`` it is a dry run that
prints the report; with it the roster is imported in one transaction (as a district
administrator would), or nothing is when it has errors (exit status 1).
"""

from __future__ import annotations

from pathlib import Path

import click

from storage import session_factory, session_scope


@click.group("roster")
def roster_group() -> None:
    """OneRoster 1.2 roster imports (schools, students, teachers, classes, enrolments)."""


def _uploads(path: Path) -> list[tuple[str, bytes]]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv")
        if not files:
            raise click.UsageError(f"{path} holds no .csv file")
        return [(p.name, p.read_bytes()) for p in files]
    return [(path.name, path.read_bytes())]


def _print(report: dict) -> None:
    for kind, counts in report["counts"].items():
        click.echo(f"{kind}: " + ", ".join(f"{n} {outcome.replace('_', ' ')}"
                                           for outcome, n in counts.items()))
    for p in report["problems"]:
        where = p["file"] + (f" line {p['line']}" if p["line"] else "") \
            + (f" {p['field']}" if p["field"] else "") + (f" [{p['id']}]" if p["id"] else "")
        click.echo(f"{p['severity']}: {where}: {p['message']}", err=p["severity"] == "error")
    if report["problems_listed"] < report["n_errors"] + report["n_warnings"]:
        click.echo(f"... {report['n_errors'] + report['n_warnings']} problems in all")


@roster_group.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--apply", is_flag=True,
              help="Import the roster (default: a dry run that only reports).")
@click.pass_obj
def import_command(settings, path: Path, apply: bool) -> None:
    """Check (or with --apply import) the OneRoster 1.2 roster at PATH (a zip or a folder)."""
    from evidence import roster
    from evidence.oneroster import PackageError

    uploads = _uploads(path)
    factory = session_factory(settings.engine())
    try:
        with session_scope(factory) as session:
            if apply:
                outcome, _plan = roster.import_now(session, None, uploads, path.name)
                if not outcome.applied:
                    session.rollback()
            else:
                outcome = roster.dry_run(session, None, uploads, path.name)
    except PackageError as error:
        raise click.ClickException(str(error)) from None
    _print(outcome.report)
    if outcome.report["n_errors"]:
        click.echo(f"{outcome.report['n_errors']} error(s): nothing was imported.", err=True)
        raise click.exceptions.Exit(1)
    click.echo("Imported." if apply else "Dry run: nothing was changed. Run with --apply to "
                                         "import.")
