"""The order database: tables, and the service's outbox (from messaging)."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from messaging.outbox.schema import outbox_table

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("customer_email", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total", Numeric(14, 2), nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("cancelled_at", DateTime(timezone=True)),
    Index("orders_by_customer", "customer_id", "created_at"),
    # GET /orders without a customer: everyone's newest orders.
    Index("orders_created_at", "created_at"),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", Uuid, ForeignKey("orders.id", ondelete="cascade"), primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("sku", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(12, 2), nullable=False),
)

# Idempotency-Key of POST /orders: the first request's fingerprint and response,
# kept for IDEMPOTENCY_KEY_RETENTION_HOURS.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", Text, primary_key=True),
    Column("request_hash", Text, nullable=False),
    Column("status_code", SmallInteger),
    Column("response", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Retention: expired keys are purged oldest first (messaging.inbox.retention).
    Index("idempotency_keys_created_at", "created_at"),
)

outbox = outbox_table(metadata, "outbox")
