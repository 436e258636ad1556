"""Fixtures for any service's unit tests."""

from __future__ import annotations

import smtplib

import pytest

import messaging.consumer
from tests.support.fake_smtp import FakeSmtp


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dead-letter policy retries at once (its schedule is tested in
    tests/unit/test_dead_letter_policy.py)."""
    monkeypatch.setattr(messaging.consumer, "full_jitter", lambda *_: 0.0)


@pytest.fixture
def fake_smtp(monkeypatch: pytest.MonkeyPatch) -> type[FakeSmtp]:
    """smtplib.SMTP and SMTP_SSL replaced by recording fakes (each class keeps
    its own instances); returns the plain one."""

    class Plain(FakeSmtp):
        instances: list[FakeSmtp] = []  # noqa: RUF012
        failing: list[BaseException] = []  # noqa: RUF012

    class Implicit(FakeSmtp):
        instances: list[FakeSmtp] = []  # noqa: RUF012
        failing: list[BaseException] = []  # noqa: RUF012

    monkeypatch.setattr(smtplib, "SMTP", Plain)
    monkeypatch.setattr(smtplib, "SMTP_SSL", Implicit)
    return Plain
