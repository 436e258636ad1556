"""The PostgreSQL unit of work and the mail's Message-ID, without a server:
what the SQL implementation sends, in which order, and when its transaction
commits or rolls back."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.adapters.mailer import SmtpMailer, TemporaryDeliveryError
from notification_service.service_layer.handlers import (
    CONSUMER,
    Delivered,
    Duplicate,
    RetryLater,
    deliver,
)
from notification_service.service_layer.unit_of_work import UnitOfWork
from tests.unit.notification.builders import envelope_of, mail
from tests.unit.notification.fakes import FakeMailer


class Result:
    def __init__(self, row: tuple[object, ...] | None) -> None:
        self.row = row

    def first(self) -> tuple[object, ...] | None:
        return self.row


@dataclass
class Transactions:
    """An async_sessionmaker's begin(): a session whose statements are kept (as
    PostgreSQL SQL), committed on a clean exit, rolled back on an error. An
    INSERT ... RETURNING returns a row, or none into a table in `conflicts`."""

    statements: list[str] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)
    conflicts: set[str] = field(default_factory=set)

    async def execute(self, statement: Any) -> Result:
        sql = str(statement)
        self.statements.append(sql)
        table = sql.removeprefix("INSERT INTO ").split(" ", 1)[0]
        returned = "RETURNING" in sql and table not in self.conflicts
        return Result((uuid.uuid4(),) if returned else None)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        try:
            yield cast(AsyncSession, self)
        except BaseException as exc:
            self.ends.append(f"rollback ({type(exc).__name__})")
            raise
        self.ends.append("commit")


async def test_a_delivery_is_two_inserts_then_the_mail_then_the_commit() -> None:
    """The inserts are the lock: no advisory lock, no SELECT before them."""
    transactions, mailer = Transactions(), FakeMailer()
    command = mail()
    outcome = await deliver(command, envelope_of(command), 1, UnitOfWork(transactions), mailer)
    assert outcome == Delivered()
    inbox_write, record = transactions.statements
    assert inbox_write.startswith("INSERT INTO inbox")
    assert inbox_write.endswith("ON CONFLICT DO NOTHING RETURNING inbox.message_id")
    assert record.startswith("INSERT INTO deliveries")
    assert record.endswith("ON CONFLICT (message_id) DO NOTHING RETURNING deliveries.message_id")
    assert (transactions.ends, len(mailer.sent)) == (["commit"], 1)


@pytest.mark.parametrize(
    ("conflict", "statements"), [("inbox", 1), ("deliveries", 2)], ids=["inbox", "history"]
)
async def test_a_message_already_recorded_is_a_duplicate_that_rolls_back(
    conflict: str, statements: int
) -> None:
    """Found in the inbox, or only in the longer-kept delivery history (its
    inbox row purged): nothing sent, and the inbox row just written undone."""
    transactions, mailer = Transactions(conflicts={conflict}), FakeMailer()
    command = mail()
    outcome = await deliver(command, envelope_of(command), 1, UnitOfWork(transactions), mailer)
    assert outcome == Duplicate()
    assert len(transactions.statements) == statements
    assert (transactions.ends, mailer.sent) == (["rollback (_LeftWithoutCommitError)"], [])


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
            command = mail()
            await uow.first_delivery(CONSUMER, envelope_of(command))
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
