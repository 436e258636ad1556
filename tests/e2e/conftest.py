"""The end-to-end suite: one target (E2E_TARGET=local|kind), one System client.

E2E_ORDERS sets the orders per scenario (small by default, for `make test`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from tests.e2e.system import System
from tests.e2e.targets import KindTarget, LocalTarget, target_from_env


@pytest.fixture(scope="session")
def target() -> LocalTarget | KindTarget:
    return target_from_env()


@pytest.fixture(scope="session")
def volume() -> int:
    return int(os.environ.get("E2E_ORDERS", "12"))


@pytest.fixture
async def system(target: LocalTarget | KindTarget) -> AsyncIterator[System]:
    client = System(target.endpoints)
    yield client
    await client.close()
