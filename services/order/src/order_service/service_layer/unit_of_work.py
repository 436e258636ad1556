"""The order service's unit of work: the order rows, the Idempotency-Key row
and the outbox rows that describe the change commit together, or not at all.

`OrdersUnitOfWork` is what the handlers use; `UnitOfWork` is its PostgreSQL
implementation (tests/unit/order/fakes.py has an in-memory one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from messaging.envelope import MessageContext, OutgoingMessage
from messaging.transaction import Transaction
from messaging.unit_of_work import UnitOfWork as BaseUnitOfWork
from order_service.adapters import orm
from order_service.adapters.idempotency_keys import (
    IdempotencyKeyRepository,
    SqlIdempotencyKeyRepository,
)
from order_service.adapters.repository import OrderRepository, SqlOrderRepository
from order_service.service_layer.messages import collect


class OrdersUnitOfWork(Transaction, Protocol):
    """One transaction (messaging.transaction) over the orders and the
    Idempotency-Keys."""

    @property
    def orders(self) -> OrderRepository: ...

    @property
    def idempotency_keys(self) -> IdempotencyKeyRepository: ...


# How a door opens a unit of work for a request: given the context of the
# messages it may send.
UnitOfWorkFactory = Callable[[MessageContext], OrdersUnitOfWork]


class UnitOfWork(BaseUnitOfWork):
    orders: SqlOrderRepository
    idempotency_keys: SqlIdempotencyKeyRepository

    outbox = orm.outbox
    name = "order-db"

    def started(self) -> None:
        self.orders = SqlOrderRepository(self.session)
        self.idempotency_keys = SqlIdempotencyKeyRepository(self.session)

    def collect_messages(self) -> list[OutgoingMessage]:
        return collect(self.orders.seen, self.context)
