"""Alembic for every service: each service's `migrations/env.py` calls
run_environment(), and its CLI's `migrate` calls upgrade(). The database
settings come from the environment, like every other entry point."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
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
