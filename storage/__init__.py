"""Storage: the one SQLAlchemy ``Base``, the engine and session factory, and Alembic migrations.

Everything that persists goes through here. ``DATABASE_URL`` names the database (a SQLite file
under ``instance/`` by default, PostgreSQL in production); :func:`make_engine` builds an engine
from it and :func:`session_factory` the sessions. Migrations live in ``storage/migrations`` and
are applied with ``cat-engine db upgrade`` (see :mod:`storage.migrate`). The ``users`` and
``app_meta`` tables live here too, because every package above (item bank history, evidence, the
API's sign-in) refers to users.

May import: sqlalchemy, alembic, werkzeug (password hashing) and the standard library. Nothing of
this project: every other package builds on this one.
"""

from storage.base import Base, as_utc, enum_type, utcnow
from storage.database import (
    DEFAULT_DATABASE_FILE,
    DatabaseError,
    DatabaseURLError,
    bind_key,
    check_connection,
    database_url,
    make_engine,
    mask_url,
    session_factory,
    session_scope,
    unavailability,
)

__all__ = [
    "DEFAULT_DATABASE_FILE",
    "Base",
    "DatabaseError",
    "DatabaseURLError",
    "as_utc",
    "bind_key",
    "check_connection",
    "database_url",
    "enum_type",
    "make_engine",
    "mask_url",
    "session_factory",
    "session_scope",
    "unavailability",
    "utcnow",
]
