"""Writes outgoing messages as outbox rows inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypedDict

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from messaging.envelope import OutgoingMessage, RabbitRoute, json_ready
from messaging.outbox.headers import OutboxHeaders


class OutboxValues(TypedDict):
    """The columns the writer fills in; the table's defaults do the rest."""

    message_id: uuid.UUID
    message_type: str
    destination_kind: str
    destination: str
    routing_key: str | None
    ordering_key: str
    payload: dict[str, Any]
    schema_version: int
    headers: OutboxHeaders
    priority: int | None
    best_effort: bool


def outbox_row(message: OutgoingMessage) -> OutboxValues:
    destination = message.destination
    return OutboxValues(
        message_id=message.id,
        message_type=message.type,
        destination_kind=destination.kind,
        destination=destination.name,
        routing_key=destination.routing_key if isinstance(destination, RabbitRoute) else None,
        ordering_key=message.ordering_key or message.subject,
        payload=json_ready(message.data),
        schema_version=message.data.SCHEMA_VERSION,
        headers=OutboxHeaders(
            ce=message.cloudevent_attributes(),
            binary=message.binary_mode_headers(),
            trace=dict(message.trace_headers),
        ),
        priority=message.priority,
        best_effort=message.best_effort,
    )


async def write_to_outbox(
    session: AsyncSession, table: Table, messages: Sequence[OutgoingMessage]
) -> None:
    """Insert the messages with the session's current transaction; never commits."""
    if messages:
        await session.execute(insert(table), [outbox_row(m) for m in messages])
