"""Recording a message in the inbox inside the caller's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import Table, delete, func, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession


async def first_delivery(
    session: AsyncSession, table: Table, consumer: str, message_id: uuid.UUID, message_type: str
) -> bool:
    """True the first time this consumer sees the message. Call it in the same
    transaction as the effect: if the transaction rolls back, so does the
    record, and the redelivery is processed again."""
    result = await session.execute(
        insert(table)
        .values(consumer=consumer, message_id=message_id, message_type=message_type)
        .on_conflict_do_nothing()
        .returning(table.c.message_id)
    )
    return result.first() is not None


async def purge_older_than(session: AsyncSession, table: Table, days: float) -> int:
    """Forget ids older than the dedup window (it must exceed the longest time a
    message can be redelivered after, e.g. the broker's retention)."""
    result = await session.execute(
        delete(table).where(
            table.c.received_at < func.now() - text(f"interval '{float(days)} days'")
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
