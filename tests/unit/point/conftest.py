from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import messaging.consumer
from tests.unit.point.fakes import FakeDatabase
from tests.unit.point.harness import Point, running


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dead-letter policy retries at once (its schedule is tested in
    tests/unit/test_dead_letter_policy.py)."""
    monkeypatch.setattr(messaging.consumer, "full_jitter", lambda *_: 0.0)


@pytest.fixture
async def point(db: FakeDatabase, no_backoff: None) -> AsyncIterator[Point]:
    async with running(db) as running_point:
        yield running_point
