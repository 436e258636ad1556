"""The outbox table's names, without SQLAlchemy: its row states, the check on
a configured table name, and the NOTIFY channel and trigger that wake the
relays. messaging.outbox.schema defines the table with them; the relay
(outbox_relay), which runs without SQLAlchemy, writes its SQL with them.
"""

from __future__ import annotations

import re

PENDING, SENT, FAILED, DROPPED = "pending", "sent", "failed", "dropped"
STATES = (PENDING, SENT, FAILED, DROPPED)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


def checked_table_name(name: str) -> str:
    """Table names come from configuration and end up in SQL text: allow only
    plain lowercase identifiers."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"outbox table name {name!r} must match {_IDENTIFIER.pattern}")
    return name


def notify_channel(table: str) -> str:
    return f"{table}_pending"


def notify_trigger_ddl(table: str) -> list[str]:
    """A statement-level trigger that wakes relays listening on the table's
    channel; one NOTIFY per inserting statement, however many rows."""
    function = f"{checked_table_name(table)}_notify"
    return [
        f"""
        create or replace function {function}() returns trigger language plpgsql as $$
        begin
            perform pg_notify('{notify_channel(table)}', '');
            return null;
        end $$
        """,
        f"drop trigger if exists {function} on {table}",
        f"""
        create trigger {function} after insert on {table}
        for each statement execute function {function}()
        """,
    ]


def drop_notify_trigger_ddl(table: str) -> list[str]:
    return [
        f"drop trigger if exists {table}_notify on {table}",
        f"drop function if exists {table}_notify()",
    ]
