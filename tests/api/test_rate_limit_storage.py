"""The ``database://`` limits storage: fixed windows, atomic increments under concurrency, on
SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from api.rate_limit_storage import DatabaseStorage
from storage import make_engine
from storage.migrate import upgrade


@pytest.fixture
def counters(any_db_url: str):
    engine = make_engine(any_db_url)
    upgrade(engine)
    yield storage_from_string("database://", engine=engine)
    engine.dispose()


def test_the_scheme_is_registered_and_needs_a_database(counters) -> None:
    assert isinstance(counters, DatabaseStorage)
    assert counters.check()
    with pytest.raises(ValueError, match="engine= or url="):
        storage_from_string("database://")


def test_a_window_counts_then_starts_again(counters) -> None:
    assert [counters.incr("k", 2) for _ in range(3)] == [1, 2, 3]
    assert counters.incr("k", 2, amount=2) == 5
    assert counters.get("k") == 5
    assert time.time() < counters.get_expiry("k") <= time.time() + 2
    assert counters.get("other") == 0
    time.sleep(2.1)
    assert counters.get("k") == 0  # the window has ended: nothing counts any more
    assert counters.incr("k", 60) == 1  # and the next count opens a new one
    assert counters.get_expiry("k") > time.time() + 50


def test_clear_and_reset(counters) -> None:
    counters.incr("a", 60)
    counters.incr("b", 60)
    counters.clear("a")
    assert counters.get("a") == 0 and counters.get("b") == 1
    assert counters.reset() == 1
    assert counters.get("b") == 0


def test_a_fixed_window_limit_over_it(counters) -> None:
    limiter = FixedWindowRateLimiter(counters)
    item = parse("3 per minute")
    assert [limiter.hit(item, "x") for _ in range(4)] == [True, True, True, False]
    assert not limiter.test(item, "x")
    assert limiter.test(item, "y")
    stats = limiter.get_window_stats(item, "x")
    assert stats.remaining == 0 and stats.reset_time > time.time() + 50


def test_concurrent_increments_are_never_lost(counters) -> None:
    """Eight threads on their own connections count one key together: every increment sees
    a count of its own, and the total is exact."""
    seen: list[int] = []
    lock = threading.Lock()

    def count() -> None:
        for _ in range(25):
            value = counters.incr("shared", 60)
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, 201))
    assert counters.get("shared") == 200


def test_ended_windows_are_swept(counters) -> None:
    from sqlalchemy import func, select

    from storage.rights import RateLimitCounter

    counters.incr("old", 1)
    time.sleep(1.1)
    counters._last_sweep = 0.0  # as if the last sweep were long ago
    counters.incr("new", 60)  # counting sweeps the rows of ended windows
    with counters.engine.connect() as connection:
        keys = connection.execute(select(RateLimitCounter.key)).scalars().all()
        assert keys == ["new"]
        assert connection.scalar(select(func.count()).select_from(RateLimitCounter)) == 1
