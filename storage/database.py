"""Engine and session factory built from one ``DATABASE_URL``.

The URL is read from the ``DATABASE_URL`` environment variable unless given explicitly. Without one,
the embedded default is a SQLite file, ``instance/cat-engine.sqlite3`` under the current directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DATABASE_FILE = Path("instance") / "cat-engine.sqlite3"


class DatabaseError(Exception):
    """A database could not be used; the message is one line, safe to show (password masked)."""


class DatabaseURLError(DatabaseError):
    """``DATABASE_URL`` cannot be parsed, names an unknown driver, or cannot be reached."""


# In text that is not a URL, anything between a colon and an "@" may be a password.
_PASSWORD_IN_URL = re.compile(r":[^:@/]*@")


def mask_url(url: str | URL) -> str:
    """Return ``url`` as text with any password replaced by ``***``.

    Works on URLs SQLAlchemy cannot parse too, so that an error message never leaks a password.
    """
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (exc.ArgumentError, ValueError, TypeError):
        return _PASSWORD_IN_URL.sub(":***@", str(url))


def database_url(url: str | None = None) -> str:
    """Return the database URL to use: ``url``, else ``$DATABASE_URL``, else the SQLite default.

    The default file's directory is created when missing; a URL given explicitly is used as is.
    """
    if url:
        return url
    env = os.environ.get("DATABASE_URL", "").strip()
    if env:
        return env
    path = DEFAULT_DATABASE_FILE.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


SQLITE_BUSY_TIMEOUT_MS = 5000


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # Write-ahead logging: readers never wait for a writer, nor a writer for readers; only
    # writers queue (up to the busy timeout). Kept in the file once set; in-memory databases
    # stay in "memory" mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """Build an engine for ``url`` (see :func:`database_url`).

    SQLite connections enforce foreign keys (so that the same constraints hold on SQLite as on
    PostgreSQL), use write-ahead logging (readers and the one writer do not block each other)
    and wait up to five seconds for another writer before giving up (then a 503 to retry).

    Raises
    ------
    DatabaseURLError
        The URL cannot be parsed or names a driver that is not installed.
    """
    text = database_url(url)
    try:
        parsed = make_url(text)
    except (exc.ArgumentError, ValueError) as error:
        raise DatabaseURLError(f"cannot parse DATABASE_URL {mask_url(text)}: {error}") from None
    options = dict(kwargs)
    if parsed.get_backend_name() == "sqlite":
        options.setdefault("connect_args", {}).setdefault("check_same_thread", False)
    else:
        # No ping before every checkout (a round trip per request): a connection found dead
        # invalidates the pool's older connections and the request gets a 503 to retry (see
        # docs/decisions.md). DATABASE_PRE_PING=1 turns the ping back on.
        options.setdefault("pool_pre_ping",
                           os.environ.get("DATABASE_PRE_PING", "") in {"1", "true", "yes"})
    try:
        engine = create_engine(parsed, **options)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise DatabaseURLError(
            f"cannot use DATABASE_URL {mask_url(parsed)}: {_first_line(error)}"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


# SQLite's errors that mean "another connection holds the file just now", not a fault.
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy",
                "unable to open database file")


def unavailability(error: BaseException) -> str | None:
    """Whether a database error means "not available just now, retry" rather than a fault.

    Returns
    -------
    str or None
        ``"reset"``: a pooled connection was found dead (the database restarted; the pool has
        dropped its older connections, so a retry gets a fresh one). ``"busy"``: SQLite's file is
        locked by another writer beyond the busy timeout, or the pool had no free connection in
        time. ``"unreachable"``: the server refuses or drops connections, is shutting down, is
        out of resources, or cancelled the transaction (deadlock, serialization failure): what
        DB-API calls an ``OperationalError`` on PostgreSQL. ``None`` for anything else (a
        constraint, a bug in a statement), which is no reason to retry.
    """
    if isinstance(error, exc.TimeoutError):  # QueuePool: no connection free within its timeout
        return "busy"
    if not isinstance(error, exc.DBAPIError):
        return None
    if error.connection_invalidated:
        return "reset"
    if not isinstance(error, exc.OperationalError):
        return None
    if type(error.orig).__module__.startswith("sqlite3"):
        text = str(error.orig).lower()
        return "busy" if any(phrase in text for phrase in _SQLITE_BUSY) else None
    return "unreachable"


def check_connection(engine: Engine) -> None:
    """Open and close one connection, turning failure into a one-line :class:`DatabaseURLError`."""
    try:
        with engine.connect():
            pass
    except exc.DBAPIError as error:
        raise DatabaseURLError(
            f"cannot connect to DATABASE_URL {mask_url(engine.url)}: {_first_line(error.orig)}"
        ) from None


def bind_key(session: Session) -> str:
    """The database a session works on, as text: a key for per-database caches (the URL of
    its engine, whether the session is bound to an engine or to one of its connections)."""
    bind = session.get_bind()
    return str(getattr(bind, "engine", bind).url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine``; objects stay usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back everything when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _first_line(error: BaseException | None) -> str:
    text = str(error).strip() if error is not None else ""
    return text.splitlines()[0] if text else type(error).__name__
