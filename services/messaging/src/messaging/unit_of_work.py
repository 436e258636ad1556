"""The unit of work every service builds on: it owns the transaction, and the
messages the work decided to send are written to the outbox with its commit.
Nothing here talks to a broker; the outbox relay publishes after the commit.

`SessionTransaction` is the transaction alone, for a service that sends no
messages (notification); `UnitOfWork` adds the outbox. Both hand the activity
notices the work announced to the process's feed (messaging.activity) after
the commit succeeded, never before and never after a rollback: a notice tells
of a change that is durable. Publishing them costs the work nothing more than
a put into the feed's queue."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import ClassVar, Protocol, Self

from opentelemetry import trace
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from messaging.activity import FEED_OFF, ActivityPublisher, Notice, traced
from messaging.envelope import MessageContext, OutgoingMessage
from messaging.outbox.writer import write_to_outbox

tracer = trace.get_tracer("messaging.unit_of_work")


class Transactions(Protocol):
    """What opens a database transaction: an `async_sessionmaker`, whose
    `begin()` commits on a clean exit and rolls back on an error."""

    def begin(self) -> AbstractAsyncContextManager[AsyncSession]: ...


class _LeftWithoutCommitError(Exception):
    """Thrown into the transaction of a unit of work left without a commit: it
    rolls back."""


class SessionTransaction:
    """One database transaction (messaging.transaction.Transaction) on a
    session: `commit()` commits it and closes the session, leaving without a
    commit rolls it back. A subclass creates its repositories in `started`."""

    session: AsyncSession

    def __init__(self, transactions: Transactions, activity: ActivityPublisher = FEED_OFF) -> None:
        self.transactions = transactions
        self.activity = activity
        self._transaction: AbstractAsyncContextManager[AsyncSession] | None = None
        self._announced: list[Notice] = []

    async def __aenter__(self) -> Self:
        self._announced = []
        transaction = self.transactions.begin()
        self.session = await transaction.__aenter__()
        self._transaction = transaction
        self.started()
        return self

    def started(self) -> None:
        """Hook for subclasses: create repositories on the new session."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        transaction, self._transaction = self._transaction, None
        self._announced = []
        if transaction is not None:
            # The error, or one of our own: the transaction rolls back.
            error = exc or _LeftWithoutCommitError("left without a commit")
            await transaction.__aexit__(type(error), error, tb)

    async def commit(self) -> None:
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            await transaction.__aexit__(None, None, None)
        announced, self._announced = self._announced, []
        for notice in announced:
            self.activity.publish(notice)

    def announce(self, notice: Notice) -> None:
        """Published after the commit; the trace id is the current span's."""
        self._announced.append(traced(notice))


class UnitOfWork(SessionTransaction):
    """A SessionTransaction whose commit first writes the messages the work
    decided to send to the outbox. A service's unit of work names its outbox
    table and its database (the commit span is `<name> commit`), and extends
    `started` and `collect_messages`."""

    outbox: ClassVar[Table]
    name: ClassVar[str] = "db"

    def __init__(
        self,
        transactions: Transactions,
        context: MessageContext,
        activity: ActivityPublisher = FEED_OFF,
    ) -> None:
        super().__init__(transactions, activity)
        self.context = context

    def collect_messages(self) -> list[OutgoingMessage]:
        """Hook for subclasses: messages derived from the aggregates touched."""
        return []

    async def commit(self) -> None:
        with tracer.start_as_current_span(f"{self.name} commit"):
            await write_to_outbox(self.session, self.outbox, self.collect_messages())
            await super().commit()
