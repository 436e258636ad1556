"""The order service's unit of work: the order rows and the outbox rows that
describe the change commit together, or not at all."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from messaging.envelope import MessageContext, OutgoingMessage
from messaging.unit_of_work import UnitOfWork as BaseUnitOfWork
from order_service.adapters.orm import outbox
from order_service.adapters.repository import OrderRepository
from order_service.service_layer.messages import outgoing_messages


class UnitOfWork(BaseUnitOfWork):
    orders: OrderRepository

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], context: MessageContext
    ) -> None:
        super().__init__(session_factory, outbox, context, name="order-db")

    def started(self) -> None:
        self.orders = OrderRepository(self.session)

    def collect_messages(self) -> list[OutgoingMessage]:
        messages: list[OutgoingMessage] = []
        for order in self.orders.seen:
            while order.events:
                messages += outgoing_messages(order, order.events.pop(0), self.context)
        return messages
