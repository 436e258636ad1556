from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.point.fakes import FakeDatabase
from tests.unit.point.harness import Point, running


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
async def point(db: FakeDatabase, no_backoff: None) -> AsyncIterator[Point]:
    async with running(db) as running_point:
        yield running_point
