"""The point service's use cases; the FastStream subscribers and the replay
both call these. Each runs in one unit of work: inbox, ledger, balance and
outgoing messages commit together."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from catalogue.contracts.notifications import PRIORITY, NotificationKind, SendNotification
from catalogue.contracts.orders import OrderCancelled, OrderPlaced
from catalogue.contracts.points import GrantPoints, PointBalance, PointsGranted, PointsRevoked
from catalogue.topology import NOTIFICATION_SEND, POINTS
from messaging.consumer import Envelope
from messaging.envelope import OutgoingMessage
from point_service.domain.model import EntryKind, points_for
from point_service.service_layer.unit_of_work import UnitOfWork

SOURCE = "point-service"
# Inbox consumer names: one per door a message comes through.
ORDERS_CONSUMER = "point-service.orders"
COMMANDS_CONSUMER = "point-service.commands"

UowFactory = Callable[[Envelope], UnitOfWork]


def _event(uow: UnitOfWork, customer_id: str, data: PointsGranted | PointsRevoked) -> None:
    # Keyed by customer: a reader of `points` sees one customer's changes in order.
    uow.emit(OutgoingMessage(data, POINTS, customer_id, SOURCE, uow.context))


async def order_placed(
    event: OrderPlaced, envelope: Envelope, uow: UnitOfWork, per_unit: Decimal
) -> bool:
    """Grant the order's points; False if the message was a duplicate."""
    async with uow:
        if not await uow.first_delivery(ORDERS_CONSUMER, envelope):
            return False
        points = points_for(event.total, per_unit)
        already = await uow.points.entry_for_order(event.order_id, EntryKind.GRANT)
        if points > 0 and already is None:
            account = await uow.points.lock_account(event.customer_id)
            account.grant(points)
            await uow.points.save(account)
            await uow.points.append(
                event.customer_id,
                EntryKind.GRANT,
                points,
                f"order {event.order_id}",
                envelope.id,
                order_id=event.order_id,
            )
            _event(
                uow,
                event.customer_id,
                PointsGranted(
                    customer_id=event.customer_id,
                    order_id=event.order_id,
                    points=points,
                    balance=account.balance,
                    reason="order placed",
                    granted_at=datetime.now(UTC),
                ),
            )
            uow.emit(
                OutgoingMessage(
                    SendNotification(
                        kind=NotificationKind.POINTS,
                        recipient=event.customer_email,
                        subject=f"You earned {points} points",
                        body=f"Order {event.order_id} earned you {points} points. "
                        f"Your balance is {account.balance}.",
                    ),
                    NOTIFICATION_SEND,
                    event.customer_id,
                    SOURCE,
                    uow.context,
                    priority=PRIORITY[NotificationKind.POINTS],
                )
            )
        await uow.commit()
    return True


async def order_cancelled(event: OrderCancelled, envelope: Envelope, uow: UnitOfWork) -> None:
    """Revoke exactly what the order granted, once; nothing if it granted nothing."""
    async with uow:
        if not await uow.first_delivery(ORDERS_CONSUMER, envelope):
            return
        granted = await uow.points.entry_for_order(event.order_id, EntryKind.GRANT)
        revoked = await uow.points.entry_for_order(event.order_id, EntryKind.REVOKE)
        if granted is not None and revoked is None:
            account = await uow.points.lock_account(event.customer_id)
            taken = account.revoke(granted)
            await uow.points.save(account)
            # A compensating entry, even for 0 points: the order is settled.
            await uow.points.append(
                event.customer_id,
                EntryKind.REVOKE,
                -taken,
                f"order {event.order_id} cancelled",
                envelope.id,
                order_id=event.order_id,
            )
            if taken:
                _event(
                    uow,
                    event.customer_id,
                    PointsRevoked(
                        customer_id=event.customer_id,
                        order_id=event.order_id,
                        points=taken,
                        balance=account.balance,
                        reason="order cancelled",
                        revoked_at=datetime.now(UTC),
                    ),
                )
        await uow.commit()


async def grant_points(command: GrantPoints, envelope: Envelope, uow: UnitOfWork) -> None:
    """A manual adjustment. InsufficientPointsError (the balance would go below
    zero) rejects the command."""
    async with uow:
        if not await uow.first_delivery(COMMANDS_CONSUMER, envelope):
            return
        account = await uow.points.lock_account(command.customer_id)
        account.adjust(command.points)
        await uow.points.save(account)
        await uow.points.append(
            command.customer_id, EntryKind.ADJUSTMENT, command.points, command.reason, envelope.id
        )
        now = datetime.now(UTC)
        data: PointsGranted | PointsRevoked = (
            PointsGranted(
                customer_id=command.customer_id,
                order_id=None,
                points=command.points,
                balance=account.balance,
                reason=command.reason,
                granted_at=now,
            )
            if command.points > 0
            else PointsRevoked(
                customer_id=command.customer_id,
                order_id=None,
                points=-command.points,
                balance=account.balance,
                reason=command.reason,
                revoked_at=now,
            )
        )
        _event(uow, command.customer_id, data)
        await uow.commit()


async def point_balance(customer_id: str, uow: UnitOfWork) -> PointBalance:
    async with uow:
        balance = await uow.points.balance(customer_id)
    return PointBalance(customer_id=customer_id, balance=balance, as_of=datetime.now(UTC))
