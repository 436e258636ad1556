"""Whether an error means the database (or the network to it) is unavailable.

This is the one definition: the API answers 503 with Retry-After
(order-service), a consumer retries the same message in place instead of
dead-lettering it (messaging.consumer), the relay waits and reconnects
(outbox_relay), provisioning and start-up wait (messaging.provisioning,
messaging.startup). A server that is starting or stopping counts: asyncpg
raises CannotConnectNowError ("the database system is not yet accepting
connections") and AdminShutdownError as OperatorInterventionError, which
SQLAlchemy wraps in a plain DBAPIError, so the causes are looked at too.

The module imports no SQLAlchemy: the outbox relay talks to asyncpg directly
and runs without it installed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import asyncpg

# What the driver (and the network under it) raises.
DRIVER_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)
# What SQLAlchemy raises of its own (a pool timeout, a dropped connection) or
# wraps the driver's errors in.
SQLALCHEMY_ERRORS = ("OperationalError", "InterfaceError", "TimeoutError", "DisconnectionError")


def transient_errors() -> tuple[type[Exception], ...]:
    """The error classes that mean unavailable: the driver's, and SQLAlchemy's
    when SQLAlchemy is loaded. An error of a library that is not loaded cannot
    occur, so looking in sys.modules at the time of the question (not at
    import, which may come first) loses nothing and imports nothing."""
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is None:
        return DRIVER_ERRORS
    return (*DRIVER_ERRORS, *(getattr(exc, name) for name in SQLALCHEMY_ERRORS))


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
    transient = transient_errors()
    return any(isinstance(cause, transient) for cause in causes(error))
