"""The PostgreSQL unit of work, the advisory lock and the mail's Message-ID,
without a server: what the SQL implementation sends, in which order, and when
its transaction commits or rolls back."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.adapters.lock import lock_key
from notification_service.adapters.mailer import SmtpMailer, TemporaryDeliveryError
from notification_service.service_layer.handlers import Delivered, RetryLater, deliver
from notification_service.service_layer.unit_of_work import UnitOfWork
from tests.unit.notification.builders import envelope_of, mail
from tests.unit.notification.fakes import FakeMailer


class Nothing:
    def first(self) -> None:
        return None


@dataclass
class Transactions:
    """An async_sessionmaker's begin(): a session whose statements are kept (as
    PostgreSQL SQL), committed on a clean exit, rolled back on an error."""

    statements: list[str] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)

    async def execute(self, statement: Any) -> Nothing:
        self.statements.append(str(statement))
        return Nothing()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        try:
            yield cast(AsyncSession, self)
        except BaseException as exc:
            self.ends.append(f"rollback ({type(exc).__name__})")
            raise
        self.ends.append("commit")


async def test_a_delivery_locks_reads_records_and_commits_in_that_order() -> None:
    transactions, mailer = Transactions(), FakeMailer()
    command = mail()
    outcome = await deliver(command, envelope_of(command), 1, UnitOfWork(transactions), mailer)
    assert outcome == Delivered()
    lock, inbox_read, history_read, inbox_write, record = transactions.statements
    assert lock.startswith("SELECT pg_advisory_xact_lock(")
    assert inbox_read.startswith("SELECT inbox.message_id")
    assert history_read.startswith("SELECT deliveries.message_id")
    assert inbox_write.startswith("INSERT INTO inbox")
    assert inbox_write.endswith("ON CONFLICT DO NOTHING RETURNING inbox.message_id")
    assert record.startswith("INSERT INTO deliveries")
    assert (transactions.ends, len(mailer.sent)) == (["commit"], 1)


async def test_a_mail_not_sent_rolls_its_record_back() -> None:
    transactions = Transactions()
    mailer = FakeMailer(refusals=[TemporaryDeliveryError("421")])
    command = mail()
    outcome = await deliver(command, envelope_of(command), 1, UnitOfWork(transactions), mailer)
    assert isinstance(outcome, RetryLater)
    assert transactions.ends == ["rollback (_LeftWithoutCommitError)"]


async def test_an_error_rolls_back_with_that_error() -> None:
    transactions = Transactions()

    async def failing() -> None:
        async with UnitOfWork(transactions) as uow:
            await uow.lock.hold(uuid.uuid4())
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await failing()
    assert transactions.ends == ["rollback (ZeroDivisionError)"]


async def test_a_commit_ends_the_transaction_once() -> None:
    transactions = Transactions()
    async with UnitOfWork(transactions) as uow:
        await uow.commit()
        await uow.commit()
    assert transactions.ends == ["commit"]


def test_the_lock_key_is_the_ids_low_64_bits_signed() -> None:
    assert lock_key(uuid.UUID(int=0)) == -(1 << 63)
    assert lock_key(uuid.UUID(int=(1 << 64) - 1)) == (1 << 63) - 1
    assert lock_key(uuid.UUID(int=(5 << 64) | 7)) == 7 - (1 << 63), "the high bits do not count"


def test_the_message_id_of_a_mail_is_its_command_id_on_every_resend() -> None:
    mailer = SmtpMailer("127.0.0.1", 25, 1, "shop@example.com", 1)
    try:
        message_id = str(uuid.uuid4())
        first, again = (mailer.compose(message_id, mail()) for _ in range(2))
    finally:
        mailer.close()
    assert first["Message-ID"] == again["Message-ID"] == f"<{message_id}@notifications.local>"
    assert first["X-Notification-Id"] == message_id
    assert first["X-Notification-Kind"] == "order"
