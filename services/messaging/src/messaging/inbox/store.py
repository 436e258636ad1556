"""Recording a message in the inbox inside the caller's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession


async def first_delivery(
    session: AsyncSession, table: Table, consumer: str, message_id: uuid.UUID, message_type: str
) -> bool:
    """True the first time this consumer sees the message. Call it in the same
    transaction as the effect: if the transaction rolls back, so does the
    record, and the redelivery is processed again. A copy that comes after the
    id was purged (messaging.inbox.retention) is taken for a first delivery.

    The insert is also the lock on the id: a concurrent copy's insert waits for
    the transaction holding the row uncommitted to end (READ COMMITTED), then
    finds the row (False) if it committed, or writes its own if it rolled back.
    What the transaction does after it is done once, even for copies handled
    at the same time."""
    result = await session.execute(
        insert(table)
        .values(consumer=consumer, message_id=message_id, message_type=message_type)
        .on_conflict_do_nothing()
        .returning(table.c.message_id)
    )
    return result.first() is not None
