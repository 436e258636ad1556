"""One delivery per message id at a time: `MessageLock`, and its PostgreSQL
implementation, a transaction-scoped advisory lock on the id."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession


class MessageLock(Protocol):
    async def hold(self, message_id: uuid.UUID) -> None:
        """Wait until no other transaction holds the id, then hold it until this
        transaction ends (commit or rollback)."""


class AdvisoryMessageLock:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def hold(self, message_id: uuid.UUID) -> None:
        await self.session.execute(select(func.pg_advisory_xact_lock(lock_key(message_id))))


def lock_key(message_id: uuid.UUID) -> int:
    """A signed 64-bit advisory lock key from the message id."""
    return (message_id.int & 0xFFFF_FFFF_FFFF_FFFF) - (1 << 63)
