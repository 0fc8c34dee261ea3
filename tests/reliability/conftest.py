"""Real parts for the reliability tests: a private PostgreSQL cluster (Redis: ``redis_server``
in ``tests/conftest.py``).

Each is a process this test session starts and stops (see :mod:`bench.cluster`). Without the
programs the tests skip, unless ``REQUIRE_POSTGRES=1`` / ``REQUIRE_REDIS=1`` (set by ``.ci/run``)
says they must run, and then they fail.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.cluster import PrivatePostgres, Unavailable
from tests.conftest import _unavailable


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test's own (it may be restarted without harming others)."""
    try:
        cluster = PrivatePostgres()
    except Unavailable as error:
        _unavailable(f"PostgreSQL server programs ({error})", "REQUIRE_POSTGRES")
    with cluster:
        yield cluster
