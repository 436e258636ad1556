"""The HTTP door of the order service: parse, call a handler, map the result.

Errors are RFC 9457 problem details: 422 names the field at fault, 404 the
missing order, 413 a body over HTTP_MAX_BODY_BYTES, 503 with Retry-After an
unavailable database (messaging.unavailable.unavailable: fast, nothing
half-written). Validation at the door guarantees that whatever is accepted
can be stored: no NUL in any string (PostgreSQL refuses it in text), a total
within the column's numeric(14,2).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
import sqlalchemy.exc
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_fastapi_instrumentator import Instrumentator
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    async_sessionmaker,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from catalogue.contracts.points import PointBalance
from messaging.database import build_engine
from messaging.envelope import MessageContext
from messaging.faststream_security import rabbitmq_security
from messaging.serving import LimitRequestBody
from messaging.unavailable import unavailable
from order_service.adapters.points_client import PointsClient
from order_service.adapters.retention import idempotency_key_retention
from order_service.domain.model import Line, Order
from order_service.service_layer import handlers
from order_service.service_layer.unit_of_work import UnitOfWork
from order_service.settings import OrderServiceSettings

LOGGER = logging.getLogger(__name__)
CORRELATION_HEADER = "X-Correlation-ID"
# Errors of the database layer: unavailable ones are 503, the rest a bug (500).
DATABASE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, asyncpg.PostgresError, OSError, TimeoutError)
# Every string the API takes is stored as PostgreSQL text, which cannot hold NUL.
NO_NUL = r"^[^\x00]*$"
# orders.total is numeric(14, 2).
MAX_TOTAL = Decimal("999999999999.99")

CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
Sku = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=NO_NUL)
]


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: int = Field(gt=0, le=1000)
    # order_lines.unit_price is numeric(12, 2); the document states what is
    # accepted as a decimal string (a JSON number is accepted too).
    unit_price: Annotated[
        Decimal,
        Field(gt=0, max_digits=12, decimal_places=2),
        WithJsonSchema(
            {
                "type": "string",
                "pattern": r"^([1-9][0-9]{0,9}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$",
                "examples": ["12.00"],
            }
        ),
    ]


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    customer_email: EmailStr
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    items: list[LineIn] = Field(
        min_length=1,
        max_length=100,
        description=f"The order's total (the sum of quantity * unit_price) is at most {MAX_TOTAL}.",
    )

    @field_validator("items")
    @classmethod
    def _total_fits(cls, items: list[LineIn]) -> list[LineIn]:
        total = sum((line.unit_price * line.quantity for line in items), Decimal(0))
        if total > MAX_TOTAL:
            raise ValueError(f"the order's total {total} exceeds {MAX_TOTAL}")
        return items


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


# RFC 9457 problem details, as every error of this API is answered.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
    }


ERRORS: dict[int | str, dict[str, Any]] = {
    400: problem_response("The request could not be read (e.g. a body that is not UTF-8)."),
    413: problem_response("The request body is larger than HTTP_MAX_BODY_BYTES."),
    422: problem_response("A field is invalid; `errors` names each field at fault."),
    500: problem_response("A bug: the request failed and was logged."),
    503: problem_response("The database is unavailable; nothing was changed (Retry-After)."),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_response("No such order.")}
# What a client can do next with a placed order (OpenAPI links; HTTP fuzzing
# follows them as stateful sequences).
PLACED_LINKS: dict[int | str, dict[str, Any]] = {
    201: {
        "links": {
            "GetOrder": {
                "operationId": "get_order",
                "parameters": {"order_id": "$response.body#/id"},
            },
            "CancelOrder": {
                "operationId": "cancel_order",
                "parameters": {"order_id": "$response.body#/id"},
            },
            "ListOrders": {
                "operationId": "list_orders",
                "parameters": {"customer_id": "$response.body#/customer_id"},
            },
            "CustomerSummary": {
                "operationId": "customer_summary",
                "parameters": {"customer_id": "$response.body#/customer_id"},
            },
        }
    }
}


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
        responses=ERRORS,
    )

    app.state.sessions = sessions
    app.add_middleware(LimitRequestBody, max_bytes=settings.http_max_body_bytes)

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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (a body it cannot decode: 400), as problems too.
        response = problem(exc.status_code, "Bad request", str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

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

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if not unavailable(exc):
            # A bug, not an outage: the server error it is, logged with its cause.
            LOGGER.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            return problem(500, "Internal error", "the request failed; it was logged")
        response = problem(
            503,
            "Database unavailable",
            "the order database did not answer; nothing was changed, retry later",
        )
        response.headers["Retry-After"] = "5"
        return response

    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, database_error)

    @app.post(
        "/orders",
        status_code=201,
        response_model=OrderOut,
        operation_id="place_order",
        responses=PLACED_LINKS,
    )
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

    @app.get(
        "/orders/{order_id}", response_model=OrderOut, responses=NOT_FOUND, operation_id="get_order"
    )
    async def get_order(order_id: uuid.UUID, uow: Uow) -> OrderOut:
        return OrderOut.of(await handlers.get_order(order_id, uow))

    @app.get("/orders", response_model=list[OrderOut], operation_id="list_orders")
    async def list_orders(
        uow: Uow,
        customer_id: Annotated[str, Query(min_length=1, max_length=64, pattern=NO_NUL)],
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> list[OrderOut]:
        return [OrderOut.of(o) for o in await handlers.list_orders(customer_id, limit, uow)]

    @app.post(
        "/orders/{order_id}/cancel",
        response_model=OrderOut,
        responses=NOT_FOUND,
        operation_id="cancel_order",
    )
    async def cancel_order(order_id: uuid.UUID, uow: Uow) -> OrderOut:
        return OrderOut.of(await handlers.cancel_order(order_id, uow))

    @app.get(
        "/customers/{customer_id}/summary",
        response_model=CustomerSummary,
        operation_id="customer_summary",
    )
    async def customer_summary(
        customer_id: Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL)], uow: Uow
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
