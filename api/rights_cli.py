"""``cat-engine erasures run-due`` and ``cat-engine privacy purge``: the two jobs of learners'
rights that run on a schedule (cron, a systemd timer), each in its own short transactions."""

from __future__ import annotations

import os
from pathlib import Path

import click

from storage import session_factory, session_scope


def _file_store():
    from evidence.files import FileStore

    root = os.environ.get("CAT_ENGINE_FILES") or str(
        Path(os.environ.get("CAT_ENGINE_INSTANCE", "instance")) / "files")
    return FileStore(root)


@click.group("erasures")
def erasures_group() -> None:
    """Erasures of students' personal data (requests and confirmations are in the app)."""


@erasures_group.command("run-due")
@click.pass_obj
def run_due(settings) -> None:
    """Carry out every pending erasure whose delay has passed (one transaction each)."""
    from rights.erasure import due_erasures, run_due_one

    factory = session_factory(settings.engine())
    with factory() as session:
        due = due_erasures(session)
    store, done = _file_store(), 0
    for erasure_id in due:
        with session_scope(factory) as session:
            executed = run_due_one(session, erasure_id)
        if executed is not None:
            done += 1
            for sha256 in executed.orphan_files:
                store.path_of(sha256).unlink(missing_ok=True)
            click.echo(f"erasure {erasure_id} of user {executed.erasure.student_id}: done")
    click.echo(f"{done} erasure(s) carried out")


@click.group("privacy")
def privacy_group() -> None:
    """The privacy note's retention periods."""


@privacy_group.command("purge")
@click.option("--apply", is_flag=True,
              help="Delete the records counted (default: a dry run that only counts).")
@click.pass_obj
def purge_command(settings, apply: bool) -> None:
    """Count (or with --apply delete) the records older than the privacy note's retention."""
    from rights.retention import KINDS, purge

    with session_scope(session_factory(settings.engine())) as session:
        result = purge(session, apply=apply)
    if not result.days:
        click.echo("The current privacy note sets no retention period: nothing to purge.")
    for name in KINDS:
        if name in result.counts:
            verb = "deleted" if apply else "would delete"
            click.echo(f"{name}: {verb} {result.counts[name]} (older than "
                       f"{result.days[name]} days, before {result.cutoffs[name]})")
        else:
            click.echo(f"{name}: kept (no retention period in the note)")
    if not apply:
        click.echo("Dry run: nothing was deleted. Run with --apply to delete.")


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log."""


@audit_group.command("verify")
@click.pass_obj
def verify_command(settings) -> None:
    """Check the audit log's hash chain from the first entry to the last; exit 1 naming every
    entry that was changed, removed or inserted."""
    from storage.rights import verify_chain

    with session_factory(settings.engine())() as session:
        count, problems = verify_chain(session)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise click.exceptions.Exit(1)
    click.echo(f"the audit log's {count} entries are intact")
