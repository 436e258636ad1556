"""The point service's use cases; the FastStream subscribers and the replay
both call these. Each runs in one unit of work: inbox, ledger, balance and the
messages of the domain events commit together; what changed is announced on
the activity feed once committed (service_layer/notices.py). They take the
incoming contract, the envelope (for the inbox) and a unit of work; no broker,
no SQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from catalogue.contracts.orders import OrderCancelled, OrderPlaced
from catalogue.contracts.points import GrantPoints, PointBalance
from messaging.consumer import Envelope
from point_service.domain.model import EntryKind, OrderEntry, points_for
from point_service.service_layer import notices
from point_service.service_layer.unit_of_work import PointsUnitOfWork

# Inbox consumer names: one per door a message comes through.
ORDERS_CONSUMER = "point-service.orders"
COMMANDS_CONSUMER = "point-service.commands"


async def order_placed(
    event: OrderPlaced, envelope: Envelope, uow: PointsUnitOfWork, per_unit: Decimal
) -> bool:
    """Grant the order's points, once per order; False if the message was a
    duplicate."""
    async with uow:
        if not await uow.first_delivery(ORDERS_CONSUMER, envelope):
            return False
        points = points_for(event.total, per_unit)
        already = await uow.points.entry_for_order(event.order_id, EntryKind.GRANT)
        if points > 0 and already is None:
            account = await uow.points.lock_account(event.customer_id)
            account.earn(event.order_id, points, event.customer_email, cause=envelope.id)
            await uow.points.save(account)
            uow.announce(notices.points_changed(account, points, event.order_id))
        await uow.commit()
    return True


async def order_cancelled(event: OrderCancelled, envelope: Envelope, uow: PointsUnitOfWork) -> None:
    """Revoke exactly what the order granted, once; nothing if it granted nothing."""
    async with uow:
        if not await uow.first_delivery(ORDERS_CONSUMER, envelope):
            return
        granted = await uow.points.entry_for_order(event.order_id, EntryKind.GRANT)
        revoked = await uow.points.entry_for_order(event.order_id, EntryKind.REVOKE)
        if granted is not None and revoked is None:
            account = await uow.points.lock_account(event.customer_id)
            taken = account.revoke(event.order_id, granted, cause=envelope.id)
            await uow.points.save(account)
            uow.announce(notices.points_changed(account, -taken, event.order_id))
        await uow.commit()


async def grant_points(command: GrantPoints, envelope: Envelope, uow: PointsUnitOfWork) -> None:
    """A manual adjustment. InsufficientPointsError (the balance would go below
    zero) rejects the command."""
    async with uow:
        if not await uow.first_delivery(COMMANDS_CONSUMER, envelope):
            return
        account = await uow.points.lock_account(command.customer_id)
        account.adjust(command.points, command.reason, cause=envelope.id)
        await uow.points.save(account)
        uow.announce(notices.points_changed(account, command.points, reason=command.reason))
        await uow.commit()


async def point_balance(customer_id: str, uow: PointsUnitOfWork) -> PointBalance:
    """A read: no inbox, no outbox, nothing to deduplicate."""
    async with uow:
        balance = await uow.points.balance(customer_id)
    return PointBalance(customer_id=customer_id, balance=balance, as_of=datetime.now(UTC))


async def order_entries(order_ids: list[uuid.UUID], uow: PointsUnitOfWork) -> list[OrderEntry]:
    """A read: the orders' grants and revocations (GET /points)."""
    async with uow:
        return await uow.points.entries_of_orders(order_ids)
