"""Fixtures for any service's unit tests."""

from __future__ import annotations

import pytest

import messaging.consumer


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dead-letter policy retries at once (its schedule is tested in
    tests/unit/test_dead_letter_policy.py)."""
    monkeypatch.setattr(messaging.consumer, "full_jitter", lambda *_: 0.0)
