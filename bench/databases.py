"""Scratch databases for benchmarks: a new SQLite file or a new PostgreSQL database, removed after.

PostgreSQL needs ``TEST_DATABASE_URL`` naming a role that may create databases (the suite's).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def postgres_base() -> str | None:
    """``TEST_DATABASE_URL`` when it names a PostgreSQL server, else None."""
    base = os.environ.get("TEST_DATABASE_URL")
    if base and make_url(base).get_backend_name() == "postgresql":
        return base
    return None


@contextmanager
def scratch_database(kind: str, prefix: str = "cat_bench") -> Iterator[str]:
    """Yield the URL of a new, empty database of ``kind`` ("sqlite" or "postgresql"); it is
    dropped (or its folder deleted) on the way out.

    Raises
    ------
    SystemExit
        PostgreSQL without a PostgreSQL ``TEST_DATABASE_URL``.
    """
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / f'{prefix}.sqlite3'}"
        return
    base = postgres_base()
    if base is None:
        raise SystemExit("PostgreSQL needs TEST_DATABASE_URL (a role that may create databases)")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
