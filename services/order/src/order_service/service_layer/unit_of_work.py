"""The unit of work owns the transaction: the order rows and the outbox rows
describing the change commit together, or not at all. Nothing here talks to
a broker; the outbox relay publishes after the commit."""

from __future__ import annotations

from types import TracebackType

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from messaging.envelope import MessageContext, OutgoingMessage
from messaging.outbox.writer import write_to_outbox
from order_service.adapters.orm import outbox
from order_service.adapters.repository import OrderRepository
from order_service.service_layer.messages import outgoing_messages

tracer = trace.get_tracer("order_service")


class UnitOfWork:
    orders: OrderRepository
    session: AsyncSession

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], context: MessageContext):
        self.session_factory = session_factory
        self.context = context
        self.committed_messages: list[OutgoingMessage] = []

    async def __aenter__(self) -> UnitOfWork:
        self.session = self.session_factory()
        self.orders = OrderRepository(self.session)
        return self

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

    def collect_messages(self) -> list[OutgoingMessage]:
        messages: list[OutgoingMessage] = []
        for order in self.orders.seen:
            while order.events:
                messages += outgoing_messages(order, order.events.pop(0), self.context)
        return messages

    async def commit(self) -> None:
        with tracer.start_as_current_span("order-db commit"):
            messages = self.collect_messages()
            await write_to_outbox(self.session, outbox, messages)
            await self.session.commit()
        self.committed_messages += messages
