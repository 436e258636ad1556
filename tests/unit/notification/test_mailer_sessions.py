"""adapters/mailer.py keeps each worker thread's SMTP session open between
mails, and never reuses one that may be broken."""

from __future__ import annotations

import asyncio
import smtplib
import threading
import uuid

import pytest

from catalogue.contracts.notifications import NotificationKind, SendNotification
from notification_service.adapters import mailer as mailer_module
from notification_service.adapters.mailer import SmtpMailer, TemporaryDeliveryError
from tests.support.fake_smtp import FakeSmtp

COMMAND = SendNotification(
    recipient="c@example.com", subject="s", body="b", kind=NotificationKind.ORDER
)


async def send(mailer: SmtpMailer, times: int = 1) -> None:
    for _ in range(times):
        await mailer.send(str(uuid.uuid4()), COMMAND)


async def test_one_worker_sends_every_mail_over_one_session(fake_smtp: type[FakeSmtp]) -> None:
    mailer = SmtpMailer("mail", 25, 1, "shop@example.com", workers=1)
    try:
        await send(mailer, 3)
        [smtp] = fake_smtp.instances
        assert smtp.names() == ["connect", "send", "send", "send"], "still open"
    finally:
        mailer.close()
    assert smtp.names()[-1] == "quit", "closed with the mailer"


async def test_a_failed_mail_drops_its_session_and_the_next_opens_another(
    fake_smtp: type[FakeSmtp],
) -> None:
    fake_smtp.failing.append(smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))
    mailer = SmtpMailer("mail", 25, 1, "shop@example.com", workers=1)
    try:
        with pytest.raises(TemporaryDeliveryError, match="SMTPServerDisconnected"):
            await send(mailer)
        await send(mailer)
    finally:
        mailer.close()
    first, second = fake_smtp.instances
    assert first.names() == ["connect", "send", "quit"]
    assert second.names() == ["connect", "send", "quit"]


async def test_a_refused_recipient_drops_the_session_too(fake_smtp: type[FakeSmtp]) -> None:
    fake_smtp.failing.append(smtplib.SMTPRecipientsRefused({"c@example.com": (550, b"no")}))
    mailer = SmtpMailer("mail", 25, 1, "shop@example.com", workers=1)
    try:
        with pytest.raises(mailer_module.PermanentDeliveryError):
            await send(mailer)
        await send(mailer)
    finally:
        mailer.close()
    assert len(fake_smtp.instances) == 2


async def test_an_idle_session_is_checked_first_and_replaced_if_the_server_closed_it(
    fake_smtp: type[FakeSmtp], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mailer_module, "CHECK_IDLE_AFTER_S", 0.0)
    mailer = SmtpMailer("mail", 25, 1, "shop@example.com", workers=1)
    try:
        await send(mailer, 2)
        [smtp] = fake_smtp.instances
        assert smtp.names() == ["connect", "send", "noop", "send"]
        smtp.idle_closed = True
        await send(mailer)
    finally:
        mailer.close()
    first, second = fake_smtp.instances
    assert first.names() == ["connect", "send", "noop", "send", "noop", "quit"]
    assert second.names() == ["connect", "send", "quit"]


async def test_a_session_is_renewed_after_its_quota_of_mails(
    fake_smtp: type[FakeSmtp], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mailer_module, "MAILS_PER_SESSION", 2)
    mailer = SmtpMailer("mail", 25, 1, "shop@example.com", workers=1)
    try:
        await send(mailer, 5)
    finally:
        mailer.close()
    assert [s.names().count("send") for s in fake_smtp.instances] == [2, 2, 1]
    assert all(s.names()[-1] == "quit" for s in fake_smtp.instances)


async def test_each_worker_thread_has_its_own_session(fake_smtp: type[FakeSmtp]) -> None:
    mailer = SmtpMailer("mail", 25, 1, "shop@example.com", workers=2)
    try:
        # Both workers busy at once: two sessions, never one shared.
        blocking = mailer._send_blocking
        both = threading.Barrier(2, timeout=5)

        def held(mail: object) -> None:
            both.wait()
            blocking(mail)  # type: ignore[arg-type]

        mailer._send_blocking = held  # type: ignore[method-assign]
        await asyncio.gather(send(mailer), send(mailer))
    finally:
        mailer.close()
    assert len(fake_smtp.instances) == 2
    assert all(s.names() == ["connect", "send", "quit"] for s in fake_smtp.instances)
