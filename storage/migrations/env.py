"""Alembic environment: runs migrations on the connection :mod:`storage.migrate` hands over.

Run through ``cat-engine db ...`` rather than the ``alembic`` command, so that the engine is built
by :func:`storage.make_engine` (SQLite foreign keys on, passwords masked in errors).
"""

from alembic import context

from storage.database import make_engine

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=config.attributes.get("target_metadata"),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run cat-engine db upgrade")

connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    with engine.connect() as fresh:
        _run(fresh)
    engine.dispose()
