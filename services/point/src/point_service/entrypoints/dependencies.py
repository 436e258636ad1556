"""What the doors get through FastStream's dependency injection.

The broker factory (entrypoints/brokers.py) puts the process's settings,
database sessions and activity feed into each broker's context
(messaging.brokers.provide, under SETTINGS, SESSIONS and ACTIVITY); the
doors take them as parameters annotated with the aliases below and
messaging.consumer's IncomingEnvelope. Tests replace the
one way a door opens a unit of work:
`broker.provider.override(unit_of_work_factory, ...)`.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from faststream import Depends

from messaging.brokers import SETTINGS, Activity, Sessions
from messaging.context import InContext
from point_service.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory
from point_service.settings import PointServiceSettings


async def unit_of_work_factory(sessions: Sessions, activity: Activity) -> UnitOfWorkFactory:
    """A unit of work per message, on the process's database sessions, with its
    activity feed (a coroutine function: a plain one would run in a worker
    thread per message)."""
    return partial(UnitOfWork, sessions, activity=activity)


# The parameter types of the doors.
Settings = Annotated[PointServiceSettings, InContext(SETTINGS)]
UnitsOfWork = Annotated[UnitOfWorkFactory, Depends(unit_of_work_factory)]
