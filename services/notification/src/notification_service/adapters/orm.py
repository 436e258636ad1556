"""The notification database: the inbox (deduplication) and the delivery log."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, Table, Text, Uuid, func

from messaging.inbox.schema import inbox_table

metadata = MetaData()

inbox = inbox_table(metadata)

deliveries = Table(
    "deliveries",
    metadata,
    Column("message_id", Uuid, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("subject", Text, nullable=False),
    # Delivery attempts it took (1 = first try).
    Column("attempts", Integer, nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The order the mail is about (order and points mails), for GET /deliveries.
    Column("order_id", Uuid),
    Index("deliveries_delivered_at", "delivered_at"),
    Index("deliveries_order_id", "order_id"),
)
