"""An in-memory order database and the unit of work over it: what the handlers
see through `OrdersUnitOfWork`, without PostgreSQL (the transaction itself is
tests/support/fake_database.py's).

What the real tables do that a handler or a response could notice is kept:
an order id is unique; a price comes back as numeric(12,2) gives it (two
decimal places); an order read is a copy, changed only by `save_status`; and
an Idempotency-Key row holds the JSON document the SQL repository writes
(adapters/idempotency_keys.py), so a replay goes through the same round trip."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from messaging.envelope import MessageContext, OutgoingMessage
from order_service.adapters.idempotency_keys import FirstRequest, as_placed, document
from order_service.domain.model import Order
from order_service.service_layer.messages import collect
from tests.support.fake_database import FakeStore, FakeTransaction

CENT = Decimal("0.01")


class ConstraintViolationError(Exception):
    """What PostgreSQL would refuse (an IntegrityError there)."""


@dataclass
class Tables:
    orders: dict[uuid.UUID, Order] = field(default_factory=dict)
    # key: (request hash, the JSON document of the order it placed, None until then)
    idempotency_keys: dict[str, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)


@dataclass
class FakeDatabase(FakeStore[Tables]):
    committed: Tables = field(default_factory=Tables)

    def unit_of_work(self, context: MessageContext) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, context)

    @property
    def orders(self) -> dict[uuid.UUID, Order]:
        return self.committed.orders

    @property
    def idempotency_keys(self) -> dict[str, tuple[str, dict[str, Any] | None]]:
        return self.committed.idempotency_keys


def stored(order: Order) -> Order:
    """The order as its row and line rows hold it: no events, prices to the cent."""
    lines = [replace(x, unit_price=x.unit_price.quantize(CENT)) for x in order.lines]
    return replace(copy.deepcopy(order), lines=lines, events=[])


class FakeOrderRepository:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.seen: list[Order] = []

    async def add(self, order: Order) -> None:
        if order.id in self.tables.orders:
            raise ConstraintViolationError("orders_pkey")
        self.tables.orders[order.id] = stored(order)
        self.seen.append(order)

    async def get(self, order_id: uuid.UUID, *, for_update: bool = False) -> Order | None:
        row = self.tables.orders.get(order_id)
        if row is None:
            return None
        order = copy.deepcopy(row)
        if for_update:
            self.seen.append(order)
        return order

    async def list_by_customer(self, customer_id: str, limit: int) -> list[Order]:
        mine = [o for o in self.tables.orders.values() if o.customer_id == customer_id]
        mine.sort(key=lambda o: o.created_at, reverse=True)
        return copy.deepcopy(mine[:limit])

    async def list_recent(self, limit: int) -> list[Order]:
        newest = sorted(self.tables.orders.values(), key=lambda o: o.created_at, reverse=True)
        return copy.deepcopy(newest[:limit])

    async def count_by_customer(self, customer_id: str) -> int:
        return sum(o.customer_id == customer_id for o in self.tables.orders.values())

    async def save_status(self, order: Order) -> None:
        row = self.tables.orders[order.id]
        row.status, row.cancelled_at = order.status, order.cancelled_at


class FakeIdempotencyKeyRepository:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    async def claim(self, key: str, request_hash: str) -> FirstRequest | None:
        if key not in self.tables.idempotency_keys:
            self.tables.idempotency_keys[key] = (request_hash, None)
            return None
        first_hash, placed = self.tables.idempotency_keys[key]
        assert placed is not None, "a key is committed with its order"
        return FirstRequest(first_hash, as_placed(placed))

    async def remember(self, key: str, order: Order) -> None:
        request_hash, _ = self.tables.idempotency_keys[key]
        self.tables.idempotency_keys[key] = (request_hash, document(order))


class FakeUnitOfWork(FakeTransaction[Tables]):
    orders: FakeOrderRepository
    idempotency_keys: FakeIdempotencyKeyRepository

    def started(self) -> None:
        self.orders = FakeOrderRepository(self.tables)
        self.idempotency_keys = FakeIdempotencyKeyRepository(self.tables)

    def collect_messages(self) -> list[OutgoingMessage]:
        return collect(self.orders.seen, self.context)
