"""The async SQLAlchemy engine every service uses: bounded waits everywhere, so a
down database fails a request or a message fast instead of hanging it. Which of
its errors mean the database is unavailable: messaging.unavailable."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from messaging.connections import database_ssl
from messaging.settings import DatabaseSettings


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
