"""The inbox table, shared by every consuming service's migrations."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
)


def inbox_table(metadata: MetaData, name: str = "inbox") -> Table:
    return Table(
        name,
        metadata,
        # Which consumer (handler) processed it: one service may consume a
        # message through several doors, and a replay uses its own consumer name.
        Column("consumer", Text, nullable=False),
        Column("message_id", Uuid, nullable=False),
        Column("message_type", Text, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "message_id", name=f"{name}_pkey"),
        # Retention: the dedup window is purged by age.
        Index(f"{name}_received_at", "received_at"),
    )
