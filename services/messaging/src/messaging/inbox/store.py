"""Reading and recording a message in the inbox inside the caller's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession


async def first_delivery(
    session: AsyncSession, table: Table, consumer: str, message_id: uuid.UUID, message_type: str
) -> bool:
    """True the first time this consumer sees the message. Call it in the same
    transaction as the effect: if the transaction rolls back, so does the
    record, and the redelivery is processed again. A copy that comes after the
    id was purged (messaging.inbox.retention) is taken for a first delivery."""
    result = await session.execute(
        insert(table)
        .values(consumer=consumer, message_id=message_id, message_type=message_type)
        .on_conflict_do_nothing()
        .returning(table.c.message_id)
    )
    return result.first() is not None


async def already_delivered(
    session: AsyncSession, table: Table, consumer: str, message_id: uuid.UUID
) -> bool:
    """True if this consumer has recorded the message: a read that records
    nothing, for a consumer that must decide before it acts (notification
    looks before it mails, and records only once the mail went out)."""
    found = await session.execute(
        select(table.c.message_id).where(
            table.c.consumer == consumer, table.c.message_id == message_id
        )
    )
    return found.first() is not None
