"""The ``cat-engine`` command line.

Every command reads the database from ``--database-url`` or ``DATABASE_URL`` (default: a SQLite file
under ``instance/``). Errors a person can fix print one line and exit with status 2; no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from api.cli_errors import CommandError
from storage import (
    DatabaseError,
    check_connection,
    make_engine,
    mask_url,
    session_factory,
    session_scope,
)


class _Group(click.Group):
    """Turns the project's domain errors into :class:`CommandError` for every subcommand."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DatabaseError as error:
            raise CommandError(str(error)) from None
        except SQLAlchemyError as error:
            url = ctx.obj.url if isinstance(ctx.obj, _Settings) else "the database"
            first = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise CommandError(f"database error on {mask_url(url)}: {first}") from None
        except ValueError as error:
            raise CommandError(str(error)) from None


class _Settings:
    def __init__(self, url: str | None) -> None:
        self.url = url
        self._engine: Engine | None = None

    def engine(self) -> Engine:
        """The database engine, checked to be reachable."""
        if self._engine is None:
            engine = make_engine(self.url)
            check_connection(engine)
            self.url = engine.url
            self._engine = engine
        return self._engine


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="DATABASE_URL",
    metavar="URL",
    help="SQLAlchemy URL of the database [env: DATABASE_URL; default: "
    "sqlite:///instance/cat-engine.sqlite3].",
)
@click.version_option(package_name="cat-engine", prog_name="cat-engine")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """An explainable computerized adaptive testing engine."""
    ctx.obj = _Settings(database_url or None)


@cli.group(cls=_Group)
def db() -> None:
    """Create and migrate the database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.pass_obj
def db_upgrade(settings: _Settings, revision: str) -> None:
    """Apply migrations up to REVISION (all of them by default)."""
    from storage.migrate import current_revision, upgrade

    engine = settings.engine()
    upgrade(engine, revision)
    click.echo(f"database {mask_url(engine.url)} is at revision {current_revision(engine)}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_obj
def db_downgrade(settings: _Settings, revision: str) -> None:
    """Revert migrations down to REVISION ('base' removes every table; '-1' one step)."""
    from storage.migrate import current_revision, downgrade

    engine = settings.engine()
    downgrade(engine, revision)
    at = current_revision(engine) or "base (empty)"
    click.echo(f"database {mask_url(engine.url)} is at revision {at}")


@db.command("current")
@click.pass_obj
def db_current(settings: _Settings) -> None:
    """Print the database's revision and the newest one the code knows."""
    from storage.migrate import current_revision, head_revision

    engine = settings.engine()
    current = current_revision(engine)
    head = head_revision()
    state = "up to date" if current == head else "run 'cat-engine db upgrade'"
    click.echo(f"current: {current or 'none'}  head: {head}  ({state})")


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
@click.pass_obj
def db_revision(settings: _Settings, message: str) -> None:
    """Autogenerate a new migration from the models (developers; review the file it writes)."""
    from api.models import metadata
    from storage.migrate import revision

    revision(settings.engine(), message, metadata)


@cli.command()
@click.option("--no-serve", is_flag=True, help="Only build the demo database; do not serve it.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--items", "n_items", default=320, show_default=True, type=click.IntRange(min=1),
    help="How many items to generate for the bank.",
)
@click.option("--seed", default=20261123, show_default=True, help="Seed of the item generator.")
@click.pass_obj
def demo(
    settings: _Settings, no_serve: bool, host: str, port: int, n_items: int, seed: int
) -> None:
    """Build a demo database (generated items, demo accounts, one adaptive test) and serve it.

    Refuses to touch a database that was not made by this command.
    """
    from api.demo import DEMO_PASSWORD, DEMO_SCHOOL, DISTRICT_ADMIN, build_demo

    engine = settings.engine()
    click.echo(f"Building the demo database in {mask_url(engine.url)} ...")
    base_url = (os.environ.get("CAT_ENGINE_PUBLIC_URL") or f"http://{host}:{port}").rstrip("/")
    summary = build_demo(engine, n_items=n_items, seed=seed, base_url=base_url)
    skills = ", ".join(f"{skill} {count}" for skill, count in summary.items_per_skill.items())
    click.echo(f"  {'Rebuilt' if summary.rebuilt else 'Built'}: {summary.items} items ({skills})")
    click.echo(f"  Test: {summary.test_name}")
    students = [u for u in summary.usernames if u.startswith("student")]
    others = [u for u in summary.usernames if not u.startswith("student")]
    click.echo(
        f"  Demo accounts: {students[0]}..{students[-1]}, {', '.join(others)}; "
        f"password '{DEMO_PASSWORD}'."
    )
    click.echo(
        f"  Everyone is in the school '{DEMO_SCHOOL}' except {DISTRICT_ADMIN} (the district's "
        "administrator); schooladmin1 administers that school only."
    )
    click.echo(
        "  These accounts exist only in this demo database; never use them on a real one."
    )
    if no_serve:
        return
    engine.dispose()
    _serve(settings.url, host, port, workers=1)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(min=1),
    help="gunicorn worker processes (ignored by the development server).",
)
@click.option("--with-worker/--no-worker", default=True, show_default=True,
              help="Also run a background-job worker when the queue is the local SQLite one.")
@click.pass_obj
def serve(settings: _Settings, host: str, port: int, workers: int, with_worker: bool) -> None:
    """Serve the web application (gunicorn where installed, else Flask's development server)."""
    from storage.migrate import current_revision, head_revision

    engine = settings.engine()
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise CommandError(
            f"database {mask_url(engine.url)} is at revision {current or 'none'}, the code needs "
            f"{head}: run 'cat-engine db upgrade' first"
        )
    engine.dispose()
    _serve(settings.url, host, port, workers=workers, with_worker=with_worker)


@cli.command()
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Jobs run at the same time.")
@click.option("--worker-type", type=click.Choice(["thread", "process"]), default="thread",
              show_default=True, help="Run jobs in threads or in separate processes.")
@click.option("--huey-url", envvar="HUEY_URL", metavar="URL",
              help="The job queue [env: HUEY_URL; default: sqlite:///instance/huey.sqlite3; "
                   "redis://host:6379/0 for several machines].")
@click.pass_obj
def worker(settings: _Settings, workers: int, worker_type: str, huey_url: str | None) -> None:
    """Run queued background jobs (calibration runs) until stopped with Ctrl+C."""
    import logging
    import os

    from api.jobs import get_queue, make_consumer
    from api.services.calibration_runs import reap_stalled_runs

    engine = settings.engine()
    os.environ["DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    consumer = make_consumer(huey_url, workers=workers, worker_type=worker_type)
    with session_scope(session_factory(engine)) as session:
        reaped = reap_stalled_runs(session)
    if reaped:
        click.echo(f"Marked {reaped} calibration run(s) failed: their worker had stopped.")
    engine.dispose()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    click.echo(f"Worker: {workers} {worker_type}(s) on queue {mask_url(get_queue(huey_url).url)}"
               f", database {mask_url(engine.url)}  (Ctrl+C to stop)")
    consumer.run()


@cli.command("licences")
@click.option("--extra", metavar="EXTRA",
              help="List what an extra adds (e.g. 'test', where GPL tools are allowed) instead.")
@click.pass_context
def licences(ctx: click.Context, extra: str | None) -> None:
    """List every installed runtime dependency with its licence; exit 1 if one is not allowed.

    cat-engine is Apache-2.0: runtime dependencies must be permissive, MPL-2.0 or LGPL (used
    unmodified); GPL is allowed only in the test extra.
    """
    from api.licences import RUNTIME_ALLOWED, TEST_ALLOWED, problems, runtime_dependencies

    dependencies = runtime_dependencies(extra=extra)
    width = max((len(d.name) for d in dependencies), default=10)
    for dep in dependencies:
        click.echo(f"{dep.name:<{width}}  {dep.version:<12} {dep.licence or '(unknown)'}"
                   f"  [{dep.source or 'not found'}]")
    found = problems(dependencies, TEST_ALLOWED if extra == "test" else RUNTIME_ALLOWED)
    for line in found:
        click.echo(f"not allowed: {line}", err=True)
    what = f"dependencies of the {extra} extra" if extra else "runtime dependencies"
    click.echo(f"{len(dependencies)} {what}; "
               + (f"{len(found)} with a licence that is not allowed" if found
                  else "every licence is allowed"))
    if found:
        ctx.exit(1)


@cli.group(cls=_Group)
def files() -> None:
    """The files students attach to drafts (content-addressed under FILES_DIR)."""


@files.command("gc")
@click.option("--files-dir", envvar="CAT_ENGINE_FILES", metavar="DIR",
              help="Where the files are [env: CAT_ENGINE_FILES; default: instance/files].")
@click.option("--grace", "grace_seconds", default=3600, show_default=True,
              type=click.IntRange(min=0),
              help="Seconds an unreferenced file is left alone (uploads still in progress).")
@click.pass_obj
def files_gc(settings: _Settings, files_dir: str | None, grace_seconds: int) -> None:
    """Remove files no draft refers to (left by uploads whose transaction failed)."""
    from evidence.files import FileStore, collect_garbage

    root = Path(files_dir) if files_dir else Path(
        os.environ.get("CAT_ENGINE_INSTANCE", "instance")) / "files"
    with session_scope(session_factory(settings.engine())) as session:
        done = collect_garbage(session, FileStore(root), grace_seconds=grace_seconds)
    click.echo(f"removed {done['files']} file(s) ({done['bytes']:,} bytes) and {done['rows']} "
               f"unreferenced record(s) from {root}")


@cli.group(cls=_Group)
def schools() -> None:
    """Schools: a school's administrators see only its classes, teachers and students."""


@schools.command("create")
@click.argument("name")
@click.option("--erasure-confirmation", type=click.Choice(["second_admin", "delay"]),
              default="second_admin", show_default=True,
              help="How an erasure is confirmed: by a second administrator, or after a delay.")
@click.option("--erasure-delay-days", type=click.IntRange(1, 365), default=14,
              show_default=True, help="Days before an erasure confirmed by delay is done.")
@click.option("--students-may-consent", is_flag=True,
              help="Students record their own consents (otherwise administrators do).")
@click.pass_obj
def schools_create(settings: _Settings, name: str, erasure_confirmation: str,
                   erasure_delay_days: int, students_may_consent: bool) -> None:
    """Create the school NAME (audited, with no actor: the command line)."""
    from rights.schools import create_school

    with session_scope(session_factory(settings.engine())) as session:
        school = create_school(session, None, name, erasure_confirmation=erasure_confirmation,
                               erasure_delay_days=erasure_delay_days,
                               students_may_consent=students_may_consent)
        click.echo(f"created school {school.id}: {school.name}")


@schools.command("list")
@click.pass_obj
def schools_list(settings: _Settings) -> None:
    """List the schools with their settings and how many people and classes each holds."""
    from sqlalchemy import select

    from rights.schools import school_view
    from storage.accounts import School

    with session_scope(session_factory(settings.engine())) as session:
        rows = session.scalars(select(School).order_by(School.name)).all()
        if not rows:
            click.echo("no schools: every administrator administers the whole deployment")
        for school in rows:
            v = school_view(session, school)
            click.echo(f"{v['id']}\t{v['name']}\t{v['n_students']} students, "
                       f"{v['n_teachers']} teachers, {v['n_admins']} admins, "
                       f"{v['n_classes']} classes\terasure: {v['erasure_confirmation']}"
                       f" ({v['erasure_delay_days']} days)\tstudents may consent: "
                       f"{'yes' if v['students_may_consent'] else 'no'}")


from api.calibration_cli import calibrate_command, dif_command, link_command  # noqa: E402
from api.lti_cli import lti_group  # noqa: E402
from api.raters_cli import raters_command  # noqa: E402
from api.rights_cli import audit_group, erasures_group, privacy_group  # noqa: E402
from api.roster_cli import roster_group  # noqa: E402
from api.simulate_cli import simulate_command  # noqa: E402
from api.xapi_out_cli import xapi_group  # noqa: E402

cli.add_command(simulate_command, "simulate")
cli.add_command(calibrate_command, "calibrate")
cli.add_command(dif_command, "dif")
cli.add_command(link_command, "link")
cli.add_command(raters_command, "raters")
cli.add_command(erasures_group, "erasures")
cli.add_command(privacy_group, "privacy")
cli.add_command(audit_group, "audit")
cli.add_command(roster_group, "roster")
cli.add_command(xapi_group, "xapi")
cli.add_command(lti_group, "lti")


def _serve(url, host: str, port: int, workers: int, with_worker: bool = True) -> None:
    from api.app import create_app

    if url is not None:
        os.environ["DATABASE_URL"] = url if isinstance(url, str) else url.render_as_string(False)
    background = _start_worker() if with_worker else None
    click.echo(f"Serving on http://{host}:{port}/  (Ctrl+C to stop)")
    try:
        try:
            from api.wsgi_server import run_gunicorn
        except ImportError:  # gunicorn is not installed (e.g. on Windows)
            create_app().run(host=host, port=port)
            return
        run_gunicorn(create_app, host=host, port=port, workers=workers)
    finally:
        if background is not None:
            background.terminate()
            try:
                background.wait(timeout=10)
            except subprocess.TimeoutExpired:
                background.kill()


def _start_worker() -> subprocess.Popen | None:
    """Run ``cat-engine worker`` beside the server, for the embedded setup (SQLite queue).

    The database URL reaches it through the environment, never the command line (``ps``).
    """
    from api.jobs import QueueConfigError, get_queue

    try:
        queue = get_queue()
    except QueueConfigError as error:
        click.echo(f"No background worker: {error}", err=True)
        return None
    if queue.immediate or not queue.url.startswith("sqlite"):
        return None  # several machines share a Redis queue: run workers there
    click.echo("Background jobs: one worker on the SQLite queue (calibration runs)")
    return subprocess.Popen([sys.executable, "-c", "from api.cli import main; main()", "worker"],
                            env=dict(os.environ))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cat-engine`` console script."""
    cli.main(args=argv, prog_name="cat-engine")


if __name__ == "__main__":
    main(sys.argv[1:])
