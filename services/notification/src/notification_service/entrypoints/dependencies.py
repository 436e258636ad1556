"""What the door gets through FastStream's dependency injection.

The broker factory (entrypoints/brokers.py) puts the process's database
sessions (messaging.brokers.SESSIONS), activity feed (ACTIVITY), mailer and
parking lot into the broker's context (messaging.brokers.provide); the door takes them as
parameters annotated with the aliases below and messaging.consumer's
IncomingEnvelope. Tests replace the one way the door opens a unit of work:
`broker.provider.override(unit_of_work_factory, ...)`, and provide a mailer of
their own.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from faststream import Depends

from messaging.brokers import Activity, Sessions
from messaging.consumer import DeadLetterSink
from messaging.context import InContext
from notification_service.adapters.mailer import Mailer
from notification_service.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory

# Context names are paths (FastStream reads "a.b" as attribute b of a): no dots.
MAILER = "mailer"
PARKING_LOT = "parking_lot"


async def unit_of_work_factory(sessions: Sessions, activity: Activity) -> UnitOfWorkFactory:
    """A unit of work per message, on the process's database sessions, with its
    activity feed (a coroutine function: a plain one would run in a worker
    thread per message)."""
    return partial(UnitOfWork, sessions, activity=activity)


# The parameter types of the door.
UnitsOfWork = Annotated[UnitOfWorkFactory, Depends(unit_of_work_factory)]
TheMailer = Annotated[Mailer, InContext(MAILER)]
# Where an undeliverable message goes: `notification.send.parking-lot`.
ParkingLot = Annotated[DeadLetterSink, InContext(PARKING_LOT)]
