"""``cat-engine xapi forward``: post the statements due to the schools' learning record stores,
for cron or a systemd timer (the job queue does the same after each commit that stores
statements; see :mod:`api.xapi_out`)."""

from __future__ import annotations

import click

from storage import session_factory


@click.group("xapi")
def xapi_group() -> None:
    """xAPI statements sent on to the schools' learning record stores."""


@xapi_group.command("forward")
@click.option("--school", "school_id", type=int, default=None,
              help="Only this school's LRS (its id); default: every enabled LRS.")
@click.option("--batch", "batch_size", type=click.IntRange(1, 1000), default=50,
              show_default=True, help="Statements per post.")
@click.pass_obj
def forward_command(settings, school_id: int | None, batch_size: int) -> None:
    """Post every due statement, in order; failed posts are retried later with backoff, and a
    statement out of tries goes to the school's dead letters."""
    from api.xapi_out import secret_box, sender_settings
    from evidence.xapi_forwarding import send_due

    try:
        box, options = secret_box(), sender_settings()
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    reports = send_due(session_factory(settings.engine()), box, school_id=school_id,
                       batch_size=batch_size, **options)
    if not reports:
        click.echo("no school has an enabled LRS")
    failed = False
    for report in reports:
        line = f"school {report.school_id}: {report.sent} sent"
        if report.skipped:
            line += f" (skipped: {report.skipped})"
        if report.dead:
            line += f", {report.dead} to the dead letters"
        if report.waiting:
            line += f", {report.waiting} waiting"
            if report.next_try_at is not None:
                line += f" (next try {report.next_try_at.isoformat(timespec='seconds')})"
        if report.errors:
            failed = True
            line += f"; last error: {report.errors[-1]}"
        click.echo(line)
    if failed:
        raise SystemExit(1)
