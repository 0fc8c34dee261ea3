"""A ``limits`` storage kept in the project's own database: the ``database://`` scheme.

Flask-Limiter counts requests in a ``limits`` storage. Process memory is no storage for a
server with several workers (each would count alone, and a restart forgets), so the default
here is the database every worker already shares, table ``rate_limit_counters``
(:class:`storage.rights.RateLimitCounter`): one row per key, holding its count and when its
window ends (Unix seconds). Only the fixed-window strategy is supported, which is what the
app uses.

The increment is one atomic statement on SQLite (3.35+) and PostgreSQL alike::

    INSERT INTO rate_limit_counters (key, count, expires_at) VALUES (:key, :amount, :end)
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN expires_at <= :now THEN :amount ELSE count + :amount END,
        expires_at = CASE WHEN expires_at <= :now THEN :end ELSE expires_at END
    RETURNING count

so two processes counting the same key at once never lose a count. Rows of windows that
have ended are deleted now and then (at most once a minute per process, by the process that
counts). Each operation runs in a short transaction of its own on a pooled connection, apart
from the request's session; on PostgreSQL an increment does not wait for its WAL flush
(``synchronous_commit`` off for that transaction: a crash may forget the last counts, never
corrupt them).

Usage: ``RATELIMIT_STORAGE_URI = "database://"`` with ``RATELIMIT_STORAGE_OPTIONS =
{"engine": engine}`` (what :func:`api.rate_limits.init_app` sets up), or
``storage_from_string("database://", url="postgresql+psycopg://...")``.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar

from limits.storage import Storage
from sqlalchemy import case, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from storage import make_engine
from storage.rights import RateLimitCounter

SCHEME = "database"
#: Seconds between two sweeps of ended windows by one process.
SWEEP_EVERY = 60.0

_TABLE = RateLimitCounter.__table__


class DatabaseStorage(Storage):
    """Fixed-window rate-limit counters in the ``rate_limit_counters`` table.

    Parameters
    ----------
    uri
        ``database://`` (the scheme this class is registered under).
    engine
        The SQLAlchemy engine of the app's database (preferred: shares its pool).
    url
        A database URL, when no engine is given (an engine is made from it).
    wrap_exceptions
        Wrap database errors in :class:`limits.errors.StorageError`.
    """

    STORAGE_SCHEME: ClassVar[list[str]] = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 engine: Engine | None = None, url: str | None = None, **options) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        if engine is None and url is None:
            raise ValueError("the database:// rate-limit storage needs engine= or url= "
                             "(the app passes its own engine)")
        self.engine = engine if engine is not None else make_engine(url)
        self._postgresql = self.engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgresql else sqlite.insert
        self._last_sweep = 0.0
        self._lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception]:
        """Errors the database may raise (wrapped when ``wrap_exceptions``)."""
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s count in its current window (a new window of ``expiry``
        seconds when it has none, or it ended) and return the new count."""
        now = time.time()
        statement = self._insert(_TABLE).values(key=key, count=amount, expires_at=now + expiry)
        ended = _TABLE.c.expires_at <= now
        statement = statement.on_conflict_do_update(
            index_elements=[_TABLE.c.key],
            set_={
                "count": case((ended, statement.excluded.count),
                              else_=_TABLE.c.count + statement.excluded.count),
                "expires_at": case((ended, statement.excluded.expires_at),
                                   else_=_TABLE.c.expires_at),
            },
        ).returning(_TABLE.c.count)
        with self.engine.begin() as connection:
            if self._postgresql:
                # A count lost to a crash in the next few milliseconds costs nothing; waiting
                # for the WAL flush of every count would cost every limited request.
                connection.execute(text("SET LOCAL synchronous_commit TO OFF"))
            count = connection.execute(statement).scalar_one()
        self._sweep(now)
        return int(count)

    def get(self, key: str) -> int:
        """The count of ``key`` in its current window (0 when it has none)."""
        with self.engine.connect() as connection:
            count = connection.execute(
                select(_TABLE.c.count).where(_TABLE.c.key == key,
                                             _TABLE.c.expires_at > time.time())).scalar()
        return int(count or 0)

    def get_expiry(self, key: str) -> float:
        """When ``key``'s window ends (Unix seconds; now when it has none)."""
        now = time.time()
        with self.engine.connect() as connection:
            end = connection.execute(
                select(_TABLE.c.expires_at).where(_TABLE.c.key == key,
                                                  _TABLE.c.expires_at > now)).scalar()
        return float(end) if end is not None else now

    def check(self) -> bool:
        """Whether the database answers."""
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        """Forget every count; returns how many keys there were."""
        with self.engine.begin() as connection:
            return connection.execute(delete(_TABLE)).rowcount

    def clear(self, key: str) -> None:
        """Forget ``key``'s count."""
        with self.engine.begin() as connection:
            connection.execute(delete(_TABLE).where(_TABLE.c.key == key))

    def _sweep(self, now: float) -> None:
        """Delete the rows of ended windows, at most once per :data:`SWEEP_EVERY` seconds."""
        with self._lock:
            if now - self._last_sweep < SWEEP_EVERY:
                return
            self._last_sweep = now
        with self.engine.begin() as connection:
            connection.execute(delete(_TABLE).where(_TABLE.c.expires_at <= now))
