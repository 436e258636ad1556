"""How long order-service remembers an Idempotency-Key (messaging.inbox.retention
forgets it): a retry with the same key after the window places a second order."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from messaging.inbox.retention import Retention, RetentionTask
from order_service.adapters.orm import idempotency_keys
from order_service.settings import OrderServiceSettings


def idempotency_key_retention(
    sessions: async_sessionmaker[AsyncSession], settings: OrderServiceSettings
) -> RetentionTask:
    keep = timedelta(hours=settings.idempotency_key_retention_hours)
    return RetentionTask(
        sessions,
        [Retention(idempotency_keys, "created_at", keep)],
        settings.idempotency_key_purge_interval_s,
        settings.idempotency_key_purge_batch_size,
    )
