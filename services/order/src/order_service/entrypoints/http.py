"""The HTTP door of the order service: parse, call a handler, map the result.

Errors are RFC 9457 problem details: 422 names the field at fault, 404 the
missing order, 503 an unavailable database (fast, nothing half-written).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import sqlalchemy.exc
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_fastapi_instrumentator import Instrumentator
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    async_sessionmaker,
)

from messaging.connections import rabbitmq_security
from messaging.contracts.points import PointBalance
from messaging.database import build_engine
from messaging.envelope import MessageContext
from order_service.adapters.points_client import PointsClient
from order_service.adapters.retention import idempotency_key_retention
from order_service.domain.model import Line, Order
from order_service.service_layer import handlers
from order_service.service_layer.unit_of_work import UnitOfWork
from order_service.settings import OrderServiceSettings

CORRELATION_HEADER = "X-Correlation-ID"
DATABASE_UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    OSError,
    TimeoutError,
)

Sku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: int = Field(gt=0, le=1000)
    unit_price: Decimal = Field(gt=0, max_digits=12, decimal_places=2)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    customer_email: EmailStr
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    items: list[LineIn] = Field(min_length=1, max_length=100)


class LineOut(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal


class OrderOut(BaseModel):
    id: uuid.UUID
    customer_id: str
    customer_email: str
    currency: str
    items: list[LineOut]
    total: Decimal
    status: str
    created_at: datetime
    cancelled_at: datetime | None

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            customer_id=order.customer_id,
            customer_email=order.customer_email,
            currency=order.currency,
            items=[
                LineOut(sku=x.sku, quantity=x.quantity, unit_price=x.unit_price)
                for x in order.lines
            ],
            total=order.total,
            status=order.status.value,
            created_at=order.created_at,
            cancelled_at=order.cancelled_at,
        )


class PointsOut(BaseModel):
    status: Literal["available", "unavailable"]
    balance: int | None = None
    reason: str | None = None


class CustomerSummary(BaseModel):
    customer_id: str
    orders: int
    points: PointsOut


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
        status_code=status,
        media_type="application/problem+json",
    )


def field_path(location: tuple[int | str, ...]) -> str:
    parts = [p for p in location if p not in ("body", "query", "path", "header")]
    path = ""
    for p in parts:
        path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
    return path or ".".join(map(str, location))


def unit_of_work(
    request: Request,
    correlation_id: Annotated[str | None, Header(alias=CORRELATION_HEADER, max_length=128)] = None,
) -> UnitOfWork:
    """A unit of work per request; the request's correlation id (or a new one)
    and its own id become the correlation and causation ids of what it emits."""
    correlation = correlation_id or str(uuid.uuid4())
    request.state.correlation_id = correlation
    context = MessageContext(correlation, causation_id=str(uuid.uuid4()))
    return UnitOfWork(request.app.state.sessions, context)


Uow = Annotated[UnitOfWork, Depends(unit_of_work)]


def create_app(settings: OrderServiceSettings) -> FastAPI:
    engine = build_engine(settings, settings.otel_service_name)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    points = PointsClient(
        settings.rabbitmq_url(),
        settings.points_request_timeout_s,
        security=rabbitmq_security(settings),
    )

    retention = idempotency_key_retention(sessions, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        points.start()
        await retention.start()
        yield
        await retention.stop()
        await points.stop()
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
    )

    app.state.sessions = sessions

    @app.middleware("http")
    async def echo_correlation_id(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        correlation = getattr(request.state, "correlation_id", None)
        if correlation:
            response.headers[CORRELATION_HEADER] = correlation
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_input(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": field_path(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        fields = ", ".join(e["field"] for e in errors)
        return problem(422, "Invalid request", f"invalid field(s): {fields}", errors=errors)

    @app.exception_handler(handlers.OrderNotFoundError)
    async def not_found(_: Request, exc: handlers.OrderNotFoundError) -> JSONResponse:
        return problem(404, "Order not found", str(exc))

    @app.exception_handler(handlers.IdempotencyKeyReusedError)
    async def key_reused(_: Request, exc: handlers.IdempotencyKeyReusedError) -> JSONResponse:
        return problem(
            422,
            "Idempotency-Key reused",
            f"Idempotency-Key {exc} was already used with a different request body",
            errors=[{"field": "Idempotency-Key", "message": "already used with another body"}],
        )

    for error in DATABASE_UNAVAILABLE:

        @app.exception_handler(error)
        async def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
            response = problem(
                503,
                "Database unavailable",
                "the order database did not answer; nothing was changed, retry later",
            )
            response.headers["Retry-After"] = "5"
            return response

    @app.post("/orders", status_code=201, response_model=OrderOut)
    async def place_order(
        body: OrderIn,
        uow: Uow,
        response: Response,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
        ] = None,
    ) -> Any:
        command = handlers.PlaceOrder(
            customer_id=body.customer_id,
            customer_email=str(body.customer_email),
            currency=body.currency,
            lines=[Line(x.sku, x.quantity, x.unit_price) for x in body.items],
        )
        idempotency = None
        if idempotency_key is not None:
            fingerprint = json.dumps(body.model_dump(mode="json"), sort_keys=True)
            idempotency = handlers.IdempotentRequest(
                idempotency_key, hashlib.sha256(fingerprint.encode()).hexdigest()
            )
        stored = await handlers.place_order(
            command, uow, lambda order: OrderOut.of(order).model_dump(mode="json"), idempotency
        )
        response.status_code = stored.status_code
        response.headers["Location"] = f"/orders/{stored.body['id']}"
        return stored.body

    @app.get("/orders/{order_id}", response_model=OrderOut)
    async def get_order(order_id: uuid.UUID, uow: Uow) -> OrderOut:
        return OrderOut.of(await handlers.get_order(order_id, uow))

    @app.get("/orders", response_model=list[OrderOut])
    async def list_orders(
        uow: Uow,
        customer_id: Annotated[str, Query(min_length=1, max_length=64)],
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> list[OrderOut]:
        return [OrderOut.of(o) for o in await handlers.list_orders(customer_id, limit, uow)]

    @app.post("/orders/{order_id}/cancel", response_model=OrderOut)
    async def cancel_order(order_id: uuid.UUID, uow: Uow) -> OrderOut:
        return OrderOut.of(await handlers.cancel_order(order_id, uow))

    @app.get("/customers/{customer_id}/summary", response_model=CustomerSummary)
    async def customer_summary(
        customer_id: Annotated[str, Path(min_length=1, max_length=64)], uow: Uow
    ) -> CustomerSummary:
        """The customer's orders from this service's own database, and the point
        balance from point-service if it answers within the timeout."""
        orders, balance = await asyncio.gather(
            handlers.count_orders(customer_id, uow), points.balance(customer_id)
        )
        return CustomerSummary(
            customer_id=customer_id,
            orders=orders,
            points=PointsOut(status="available", balance=balance.balance)
            if isinstance(balance, PointBalance)
            else PointsOut(status="unavailable", reason=balance.reason),
        )

    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        async with sessions() as session:
            await session.execute(text("select 1"))
        return JSONResponse({"database": "ok"})

    Instrumentator(excluded_handlers=["/health/.*", "/metrics"]).instrument(app).expose(
        app, include_in_schema=False
    )
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health/.*,metrics")
    return app
