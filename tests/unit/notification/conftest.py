from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.notification.fakes import FakeDatabase, FakeMailer
from tests.unit.notification.harness import Notification, running


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@pytest.fixture
async def notification(
    db: FakeDatabase, mailer: FakeMailer, no_backoff: None
) -> AsyncIterator[Notification]:
    async with running(db, mailer) as running_notification:
        yield running_notification
