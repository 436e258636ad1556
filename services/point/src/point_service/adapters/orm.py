"""The points database: ledger, balances, inbox and outbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    text,
)

from messaging.inbox.schema import inbox_table
from messaging.outbox.schema import outbox_table

metadata = MetaData()

balances = Table(
    "point_balances",
    metadata,
    Column("customer_id", Text, primary_key=True),
    # bigint: an order's points (its total times points per unit, the total up to
    # numeric(14,2)) and their sum overflow 32 bits.
    Column("balance", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("balance >= 0", name="point_balances_not_negative"),
)

# Append-only. Points are signed: grants and positive adjustments add.
ledger = Table(
    "point_ledger",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("order_id", Uuid),
    Column("kind", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    # The message that caused the entry.
    Column("message_id", Uuid, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("kind in ('grant', 'revoke', 'adjustment')", name="point_ledger_kind"),
    # At most one grant and one revoke per order, whatever the delivery count.
    Index(
        "point_ledger_one_per_order",
        "order_id",
        "kind",
        unique=True,
        postgresql_where=text("order_id is not null"),
    ),
    Index("point_ledger_by_customer", "customer_id", "id"),
)

inbox = inbox_table(metadata)
outbox = outbox_table(metadata)
