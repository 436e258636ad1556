"""The async SQLAlchemy engine every service uses: bounded waits everywhere, so a
down database fails a request or a message fast instead of hanging it."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from messaging.connections import database_ssl
from messaging.settings import DatabaseSettings

# The database (or the network to it) is unavailable. This is the one
# definition: the API answers 503 with Retry-After (order-service), a consumer
# retries the same message in place instead of dead-lettering it
# (messaging.consumer), the relay waits and reconnects (messaging.relay),
# provisioning and start-up wait (messaging.provisioning, messaging.startup).
# A server that is starting or stopping counts: asyncpg raises
# CannotConnectNowError ("the database system is not yet accepting
# connections") and AdminShutdownError as OperatorInterventionError, which
# SQLAlchemy wraps in a plain DBAPIError, so the causes are looked at too.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
)


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what it wraps: its __cause__, or SQLAlchemy's `orig` (the
    driver's error), once each."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        orig = getattr(current, "orig", None)
        current = current.__cause__ or (orig if isinstance(orig, BaseException) else None)


def unavailable(error: BaseException) -> bool:
    """Whether `error` means the database is unavailable (retry later), as
    opposed to a bug or bad data (retrying cannot help)."""
    return any(isinstance(cause, TRANSIENT_ERRORS) for cause in causes(error))


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
