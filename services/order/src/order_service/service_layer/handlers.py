"""The order service's use cases. Every door (HTTP today) calls these."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from order_service.adapters.orm import idempotency_keys
from order_service.domain.model import Line, Order
from order_service.service_layer.unit_of_work import UnitOfWork


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
class StoredResponse:
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True)
class IdempotentRequest:
    key: str
    request_hash: str


async def place_order(
    command: PlaceOrder,
    uow: UnitOfWork,
    render: Callable[[Order], dict[str, Any]],
    idempotency: IdempotentRequest | None = None,
) -> StoredResponse:
    """Place an order. With an idempotency key, the first request's response is
    stored in the same transaction as the order, and a retry returns it."""
    async with uow:
        if idempotency is not None:
            claimed = await uow.session.execute(
                insert(idempotency_keys)
                .values(key=idempotency.key, request_hash=idempotency.request_hash)
                .on_conflict_do_nothing()
                .returning(idempotency_keys.c.key)
            )
            if claimed.first() is None:
                # Inserted by an earlier request; a concurrent one has committed by now,
                # because the conflicting insert waited for it.
                stored = (
                    (
                        await uow.session.execute(
                            select(idempotency_keys).where(
                                idempotency_keys.c.key == idempotency.key
                            )
                        )
                    )
                    .mappings()
                    .one()
                )
                if stored["request_hash"] != idempotency.request_hash:
                    raise IdempotencyKeyReusedError(idempotency.key)
                return StoredResponse(stored["status_code"], stored["response"])

        order = Order.place(
            command.customer_id, command.customer_email, command.currency, command.lines
        )
        await uow.orders.add(order)
        response = StoredResponse(201, render(order))
        if idempotency is not None:
            await uow.session.execute(
                update(idempotency_keys)
                .where(idempotency_keys.c.key == idempotency.key)
                .values(status_code=response.status_code, response=response.body)
            )
        await uow.commit()
        return response


async def cancel_order(order_id: uuid.UUID, uow: UnitOfWork) -> Order:
    async with uow:
        order = await uow.orders.get(order_id, for_update=True)
        if order is None:
            raise OrderNotFoundError(order_id)
        order.cancel()
        if order.events:
            await uow.orders.save_status(order)
        await uow.commit()
        return order


async def get_order(order_id: uuid.UUID, uow: UnitOfWork) -> Order:
    async with uow:
        order = await uow.orders.get(order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order


async def list_orders(customer_id: str, limit: int, uow: UnitOfWork) -> list[Order]:
    async with uow:
        return await uow.orders.list_by_customer(customer_id, limit)


async def count_orders(customer_id: str, uow: UnitOfWork) -> int:
    async with uow:
        return await uow.orders.count_by_customer(customer_id)
