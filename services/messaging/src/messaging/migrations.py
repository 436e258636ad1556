"""Alembic for every service: each service's `migrations/env.py` calls
run_environment(), and its CLI's `migrate` calls upgrade(). The database
settings come from the environment, like every other entry point.

The revisions build with what is alike in them: a timestamp column that
defaults to the insert's time (now_column), and an index built without
locking out writers (create_index_concurrently). The outbox and inbox tables
come from messaging.outbox.migration and messaging.inbox.migration."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Column, DateTime, MetaData, func
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from messaging.connections import database_ssl
from messaging.settings import DatabaseSettings
from messaging.startup import wait_for_login


def upgrade(migrations: Path) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    command.upgrade(config, "head")


def run_environment(
    metadata: MetaData, settings: DatabaseSettings, startup_timeout_s: float
) -> None:
    """Migrate, once the service's login and database exist (messaging.startup)."""

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(
            settings.database_dsn("postgresql+asyncpg"),
            connect_args={
                "timeout": settings.database_connect_timeout_s,
                "ssl": database_ssl(settings),
            },
        )

        async def connect() -> None:
            async with engine.connect():
                pass

        await wait_for_login(connect, startup_timeout_s)
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(main())


def now_column(name: str) -> Column[datetime]:
    """`name timestamptz not null default now()`."""
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


def create_index_concurrently(op: Any, name: str, table: str, columns: Sequence[str]) -> None:
    """An index on a table that may already be large and is written all the
    time: built concurrently (outside the migration's transaction), and left
    alone where it exists, so that a migration interrupted here can run again."""
    with op.get_context().autocommit_block():
        op.create_index(
            name, table, list(columns), postgresql_concurrently=True, if_not_exists=True
        )


def drop_index_concurrently(op: Any, name: str, table: str) -> None:
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
