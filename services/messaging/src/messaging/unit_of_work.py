"""The unit of work every service builds on: it owns the transaction, and the
messages the work decided to send are written to the outbox with its commit.
Nothing here talks to a broker; the outbox relay publishes after the commit."""

from __future__ import annotations

from types import TracebackType
from typing import ClassVar, Self

from opentelemetry import trace
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from messaging.envelope import MessageContext, OutgoingMessage
from messaging.outbox.writer import write_to_outbox

tracer = trace.get_tracer("messaging.unit_of_work")


class UnitOfWork:
    """A service's unit of work names its outbox table and its database (the
    commit span is `<name> commit`), and extends `started` and
    `collect_messages`."""

    outbox: ClassVar[Table]
    name: ClassVar[str] = "db"
    session: AsyncSession

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], context: MessageContext
    ) -> None:
        self.session_factory = session_factory
        self.context = context
        self.pending: list[OutgoingMessage] = []

    async def __aenter__(self) -> Self:
        self.session = self.session_factory()
        self.pending = []
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
        try:
            await self.session.rollback()  # a no-op after commit
        finally:
            await self.session.close()

    def emit(self, message: OutgoingMessage) -> None:
        """Send this message if, and only if, the unit of work commits."""
        self.pending.append(message)

    def collect_messages(self) -> list[OutgoingMessage]:
        """Hook for subclasses: messages derived from the aggregates touched."""
        return []

    async def commit(self) -> None:
        with tracer.start_as_current_span(f"{self.name} commit"):
            messages = self.pending + self.collect_messages()
            await write_to_outbox(self.session, self.outbox, messages)
            await self.session.commit()
        self.pending = []
