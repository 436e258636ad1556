"""What the routes get through FastAPI's dependency injection.

The app factory (entrypoints/http.py) puts the process's database sessions,
activity feed and points client on `app.state`; the routes take a unit of work and the
points client as parameters annotated with the aliases below. Tests replace
the one way a request opens a unit of work, and the points client:
`app.dependency_overrides[unit_of_work_factory] = ...` (and `[points_client]`).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated

from fastapi import Depends, Header, Request

from messaging.envelope import MessageContext
from order_service.service_layer.handlers import PointBalances
from order_service.service_layer.unit_of_work import (
    OrdersUnitOfWork,
    UnitOfWork,
    UnitOfWorkFactory,
)

CORRELATION_HEADER = "X-Correlation-ID"


async def unit_of_work_factory(request: Request) -> UnitOfWorkFactory:
    """A unit of work per request, on the process's database sessions, with
    the process's activity feed."""
    state = request.app.state
    return partial(UnitOfWork, state.sessions, activity=state.activity)


async def unit_of_work(
    request: Request,
    units: Annotated[UnitOfWorkFactory, Depends(unit_of_work_factory)],
    correlation_id: Annotated[str | None, Header(alias=CORRELATION_HEADER, max_length=128)] = None,
) -> OrdersUnitOfWork:
    """The request's correlation id (or a new one) and its own id become the
    correlation and causation ids of what it emits. A coroutine function, like
    every dependency here: FastAPI runs a plain one in a worker thread per
    request."""
    correlation = correlation_id or str(uuid.uuid4())
    request.state.correlation_id = correlation
    return units(MessageContext(correlation, causation_id=str(uuid.uuid4())))


async def points_client(request: Request) -> PointBalances:
    """The process's client of point-service (adapters/points_client.py)."""
    points: PointBalances = request.app.state.points
    return points


# The parameter types of the routes.
Uow = Annotated[OrdersUnitOfWork, Depends(unit_of_work)]
Points = Annotated[PointBalances, Depends(points_client)]
