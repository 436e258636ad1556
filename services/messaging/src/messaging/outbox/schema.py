"""The outbox table: one definition, used by every service's migrations, by the
unit of work that writes it and (as SQL) by the relay that drains it. Its
states and the trigger that wakes the relays are in messaging.outbox.names.

A row is one message waiting to be published. ``id`` orders the rows of one
ordering key: writers of one aggregate are serialized by the aggregate's row
lock, so a later message of the same key always gets a larger id
(docs/outbox-relay.md explains why that is enough).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from messaging.outbox.names import DROPPED, FAILED, PENDING, SENT, STATES, checked_table_name


def outbox_table(metadata: MetaData, name: str = "outbox") -> Table:
    checked_table_name(name)
    return Table(
        name,
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("message_id", Uuid, nullable=False, unique=True),
        Column("message_type", Text, nullable=False),
        Column("destination_kind", Text, nullable=False),
        # Kafka topic, or RabbitMQ exchange.
        Column("destination", Text, nullable=False),
        Column("routing_key", Text),
        Column("ordering_key", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("schema_version", Integer, nullable=False),
        # CloudEvents attributes, W3C trace context, correlation and causation ids.
        Column("headers", JSONB, nullable=False),
        Column("priority", SmallInteger),
        Column("best_effort", Boolean, nullable=False, server_default=text("false")),
        Column("state", Text, nullable=False, server_default=text(f"'{PENDING}'")),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column(
            "next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()
        ),
        Column("last_error", Text),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # When the row stopped being pending: sent, or dropped (best effort).
        Column("finished_at", DateTime(timezone=True)),
        CheckConstraint(f"state in {STATES!r}", name=f"{name}_state"),
        CheckConstraint("destination_kind in ('kafka', 'rabbitmq')", name=f"{name}_kind"),
        # The relay's scan: pending rows in id order.
        Index(f"{name}_pending", "id", postgresql_where=text(f"state = '{PENDING}'")),
        # The head-of-key test: is there an earlier unsent row of the same key?
        Index(
            f"{name}_key_blockers",
            "destination",
            "ordering_key",
            "id",
            postgresql_where=text(f"state in ('{PENDING}', '{FAILED}') and not best_effort"),
        ),
        # The failure log (few rows), for the CLI and the gauges.
        Index(f"{name}_failed", "id", postgresql_where=text(f"state = '{FAILED}'")),
        # Retention: finished rows by age.
        Index(
            f"{name}_finished",
            "finished_at",
            postgresql_where=text(f"state in ('{SENT}', '{DROPPED}')"),
        ),
    )
