"""messaging.database: a process opens at most DATABASE_POOL_SIZE +
DATABASE_MAX_OVERFLOW connections (the chart's connection budget counts on
it). Building the engine connects to nothing."""

from __future__ import annotations

from sqlalchemy.pool import QueuePool

from messaging.database import build_engine
from messaging.settings import DatabaseSettings


def test_the_pool_is_bounded_by_size_and_overflow() -> None:
    settings = DatabaseSettings(
        database_name="order",
        database_user="order",
        database_password="secret",
        database_pool_size=4,
        database_max_overflow=2,
    )
    pool = build_engine(settings, "test").pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow) == (4, 2)
