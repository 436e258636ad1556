"""Alembic environment of the order database (async engine, settings from the
environment like every other entry point)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from order_service.adapters.orm import metadata
from order_service.settings import OrderServiceSettings


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


async def main() -> None:
    settings = OrderServiceSettings()
    engine = create_async_engine(
        settings.database_dsn("postgresql+asyncpg"),
        connect_args={"timeout": settings.database_connect_timeout_s},
    )
    async with engine.connect() as connection:
        await connection.run_sync(run)
        await connection.commit()
    await engine.dispose()


asyncio.run(main())
