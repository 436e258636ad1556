"""The HTTP door of the order service: the app factory.

The routes (entrypoints/routes.py) parse, call a handler and render its
result (entrypoints/schemas.py); every error is RFC 9457 problem details
(entrypoints/problems.py). The app owns the process's database engine, the
points client, the Idempotency-Key retention and the activity feed
(messaging.activity), started and stopped with it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from prometheus_fastapi_instrumentator import Instrumentator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalogue.contracts.activity import ActivityKind, channel
from messaging.activity import activity_feed
from messaging.brokers import rabbit_broker
from messaging.database import build_engine
from messaging.serving import LimitRequestBody
from order_service.adapters.points_client import PointsClient
from order_service.adapters.retention import idempotency_key_retention
from order_service.entrypoints import routes
from order_service.entrypoints.dependencies import CORRELATION_HEADER
from order_service.entrypoints.problems import ERRORS, answer_errors_as_problems
from order_service.service_layer.messages import SOURCE
from order_service.settings import OrderServiceSettings


def create_app(settings: OrderServiceSettings, tracer_provider: TracerProvider) -> FastAPI:
    engine = build_engine(settings, settings.otel_service_name)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    points = PointsClient(
        rabbit_broker(
            settings,
            settings.otel_service_name,
            logging.getLogger("order_service.faststream"),
            tracer_provider,
        ),
        settings.points_request_timeout_s,
    )
    retention = idempotency_key_retention(sessions, settings)
    activity = activity_feed(settings, channel(SOURCE), ActivityKind)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await activity.start()
        points.start()
        await retention.start()
        yield
        await retention.stop()
        await points.stop()
        await activity.close()
        await engine.dispose()

    app = FastAPI(
        title="order-service",
        version="1",
        description="Places and cancels orders; emits OrderPlaced/OrderCancelled events and "
        "SendNotification commands through its transactional outbox. An Idempotency-Key "
        f"on POST /orders is remembered for {settings.idempotency_key_retention_hours:g} hours "
        "after its first request: a retry within that window returns the first response, a "
        "retry after it places a new order.",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.state.sessions = sessions
    app.state.points = points
    app.state.activity = activity
    app.add_middleware(LimitRequestBody, max_bytes=settings.http_max_body_bytes)
    app.add_middleware(EchoCorrelationId)
    answer_errors_as_problems(app)
    routes.add_routes(app)
    add_health_routes(app)
    Instrumentator(excluded_handlers=["/health/.*", "/metrics"]).instrument(app).expose(
        app, include_in_schema=False
    )
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health/.*,metrics")
    return app


class EchoCorrelationId:
    """The request's correlation id (set by the dependency that reads it, on
    the request's state) as a response header. A plain ASGI middleware: a
    `@app.middleware("http")` one runs the rest of the app in a task of its own
    per request, which cost about a sixth of order-service's CPU per POST
    /orders (bench/README.md)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def echoing(message: Message) -> None:
            if message["type"] == "http.response.start":
                correlation = scope.get("state", {}).get("correlation_id")
                if correlation:
                    headers = MutableHeaders(scope=message)
                    headers[CORRELATION_HEADER] = correlation
            await send(message)

        await self.app(scope, receive, echoing)


def add_health_routes(app: FastAPI) -> None:
    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        async with request.app.state.sessions() as session:
            await session.execute(text("select 1"))
        return JSONResponse({"database": "ok"})
