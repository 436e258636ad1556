from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import messaging.consumer
from tests.unit.notification.fakes import FakeDatabase, FakeMailer
from tests.unit.notification.harness import Notification, running


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dead-letter policy retries at once (its schedule is tested in
    tests/unit/test_dead_letter_policy.py)."""
    monkeypatch.setattr(messaging.consumer, "full_jitter", lambda *_: 0.0)


@pytest.fixture
async def notification(
    db: FakeDatabase, mailer: FakeMailer, no_backoff: None
) -> AsyncIterator[Notification]:
    async with running(db, mailer) as running_notification:
        yield running_notification
