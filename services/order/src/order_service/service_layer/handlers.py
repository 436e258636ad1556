"""The order service's use cases; the HTTP door calls these. Each runs in one
unit of work: the order, its Idempotency-Key and the messages of its domain
events commit together; what changed is announced on the activity feed once
committed (service_layer/notices.py). They take a command (or an id) and a
unit of work, and return domain results; no HTTP, no broker, no SQL."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from catalogue.contracts.points import PointBalance
from order_service.domain.model import Line, Order
from order_service.service_layer import notices
from order_service.service_layer.unit_of_work import OrdersUnitOfWork

if TYPE_CHECKING:
    from order_service.adapters.points_client import Unavailable


class OrderNotFoundError(Exception):
    def __init__(self, order_id: uuid.UUID) -> None:
        super().__init__(f"order {order_id} does not exist")
        self.order_id = order_id


class IdempotencyKeyReusedError(Exception):
    """The key was first used with a different request body."""


@dataclass(frozen=True)
class PlaceOrder:
    customer_id: str
    customer_email: str
    currency: str
    lines: list[Line]


@dataclass(frozen=True)
class IdempotentRequest:
    key: str
    request_hash: str


@dataclass(frozen=True)
class PlacedOrder:
    """The order a request placed; `replayed`: placed by the first request with
    the same Idempotency-Key, and as it was then."""

    order: Order
    replayed: bool = False


class PointBalances(Protocol):
    """point-service's answer, or why there is none (adapters/points_client.py)."""

    async def balance(self, customer_id: str) -> PointBalance | Unavailable: ...


@dataclass(frozen=True)
class CustomerSummary:
    customer_id: str
    orders: int
    points: PointBalance | Unavailable


async def place_order(
    command: PlaceOrder, uow: OrdersUnitOfWork, idempotency: IdempotentRequest | None = None
) -> PlacedOrder:
    """Place an order. With an idempotency key, the order is remembered with
    the key in the same transaction, and a retry gets it back."""
    async with uow:
        if idempotency is not None:
            first = await uow.idempotency_keys.claim(idempotency.key, idempotency.request_hash)
            if first is not None:
                if first.request_hash != idempotency.request_hash:
                    raise IdempotencyKeyReusedError(idempotency.key)
                return PlacedOrder(first.order, replayed=True)
        order = Order.place(
            command.customer_id, command.customer_email, command.currency, command.lines
        )
        await uow.orders.add(order)
        if idempotency is not None:
            await uow.idempotency_keys.remember(idempotency.key, order)
        uow.announce(notices.order_placed(order))
        await uow.commit()
        return PlacedOrder(order)


async def cancel_order(order_id: uuid.UUID, uow: OrdersUnitOfWork) -> Order:
    async with uow:
        order = await uow.orders.get(order_id, for_update=True)
        if order is None:
            raise OrderNotFoundError(order_id)
        order.cancel()
        if order.events:
            await uow.orders.save_status(order)
            uow.announce(notices.order_cancelled(order))
        await uow.commit()
        return order


async def get_order(order_id: uuid.UUID, uow: OrdersUnitOfWork) -> Order:
    async with uow:
        order = await uow.orders.get(order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order


async def list_orders(customer_id: str | None, limit: int, uow: OrdersUnitOfWork) -> list[Order]:
    """The customer's most recent orders, newest first; without a customer,
    everyone's (the live page's state)."""
    async with uow:
        if customer_id is None:
            return await uow.orders.list_recent(limit)
        return await uow.orders.list_by_customer(customer_id, limit)


async def count_orders(customer_id: str, uow: OrdersUnitOfWork) -> int:
    async with uow:
        return await uow.orders.count_by_customer(customer_id)


async def customer_summary(
    customer_id: str, uow: OrdersUnitOfWork, points: PointBalances
) -> CustomerSummary:
    """The customer's orders from this service's own database, and the point
    balance from point-service if it answers within the client's timeout."""
    orders, balance = await asyncio.gather(
        count_orders(customer_id, uow), points.balance(customer_id)
    )
    return CustomerSummary(customer_id, orders, balance)
