"""order-service's real FastAPI app (routes, dependencies, problem handlers,
middlewares) over the in-memory database and a stand-in points client,
through FastAPI's dependency overrides; no lifespan, so nothing connects."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from messaging.asyncapi import placeholder_settings
from order_service.entrypoints.dependencies import points_client, unit_of_work_factory
from order_service.entrypoints.http import create_app
from order_service.service_layer.handlers import PointBalances
from order_service.service_layer.unit_of_work import UnitOfWorkFactory
from order_service.settings import OrderServiceSettings
from tests.unit.order.builders import FakePoints
from tests.unit.order.fakes import FakeDatabase


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def points() -> FakePoints:
    return FakePoints()


@pytest.fixture(scope="module")
def app() -> FastAPI:
    settings = OrderServiceSettings.model_validate(
        {**placeholder_settings(), "http_max_body_bytes": 4096}
    )
    return create_app(settings, TracerProvider())


@pytest.fixture
async def api(
    app: FastAPI, db: FakeDatabase, points: FakePoints
) -> AsyncIterator[httpx.AsyncClient]:
    def in_memory() -> UnitOfWorkFactory:
        return db.unit_of_work

    def stand_in() -> PointBalances:
        return points

    app.dependency_overrides = {unit_of_work_factory: in_memory, points_client: stand_in}
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://order") as client:
            yield client
    finally:
        app.dependency_overrides = {}
