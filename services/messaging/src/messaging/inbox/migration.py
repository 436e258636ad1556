"""Alembic helpers for the inbox table (defined once, in schema.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData

from messaging.inbox.schema import inbox_table


def create_inbox(op: Any, name: str = "inbox") -> None:
    inbox_table(MetaData(), name).create(op.get_bind())


def drop_inbox(op: Any, name: str = "inbox") -> None:
    inbox_table(MetaData(), name).drop(op.get_bind())
