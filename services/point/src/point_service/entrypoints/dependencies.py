"""What the doors get through FastStream's dependency injection.

The broker factory (entrypoints/brokers.py) puts the process's settings and
database sessions into each broker's context (messaging.brokers.provide); the
doors take them as parameters annotated with the aliases below. Tests replace the one way a
door opens a unit of work: `broker.provider.override(unit_of_work_factory, ...)`.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from faststream import Context, Depends
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from messaging.consumer import Envelope, envelope
from point_service.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory
from point_service.settings import PointServiceSettings

# Context names are paths (FastStream reads "a.b" as attribute b of a): no dots.
SETTINGS = "settings"
SESSIONS = "sessions"


def unit_of_work_factory(
    sessions: Annotated[async_sessionmaker[AsyncSession], Context(SESSIONS)],
) -> UnitOfWorkFactory:
    """A unit of work per message, on the process's database sessions."""
    return partial(UnitOfWork, sessions)


# The parameter types of the doors.
Settings = Annotated[PointServiceSettings, Context(SETTINGS)]
IncomingEnvelope = Annotated[Envelope, Depends(envelope)]
UnitsOfWork = Annotated[UnitOfWorkFactory, Depends(unit_of_work_factory)]
