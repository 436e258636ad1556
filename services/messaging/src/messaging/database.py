"""The async SQLAlchemy engine every service uses: bounded waits everywhere, so a
down database fails a request or a message fast instead of hanging it."""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from messaging.connections import database_ssl
from messaging.settings import DatabaseSettings

# The database (or the network to it) is down: a consumer retries the same
# message in place instead of dead-lettering it (messaging.consumer).
TRANSIENT_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)


def build_engine(settings: DatabaseSettings, application_name: str) -> AsyncEngine:
    return create_async_engine(
        settings.database_dsn("postgresql+asyncpg"),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_connect_timeout_s,
        pool_pre_ping=True,
        connect_args={
            "timeout": settings.database_connect_timeout_s,
            "ssl": database_ssl(settings),
            "command_timeout": settings.database_statement_timeout_s,
            "server_settings": {"application_name": application_name},
        },
    )
