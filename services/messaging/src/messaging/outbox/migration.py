"""Alembic helpers: each service's migrations create its outbox with these, so
the table the relay drains is defined in exactly one place (schema.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, text

from messaging.outbox.names import drop_notify_trigger_ddl, notify_trigger_ddl
from messaging.outbox.schema import outbox_table


def create_outbox(op: Any, name: str = "outbox") -> None:
    bind = op.get_bind()
    outbox_table(MetaData(), name).create(bind)
    for statement in notify_trigger_ddl(name):
        bind.execute(text(statement))


def drop_outbox(op: Any, name: str = "outbox") -> None:
    bind = op.get_bind()
    for statement in drop_notify_trigger_ddl(name):
        bind.execute(text(statement))
    outbox_table(MetaData(), name).drop(bind)
