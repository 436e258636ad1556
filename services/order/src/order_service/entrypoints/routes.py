"""The routes of the order API, thin: parse, call a handler, render its result
(entrypoints/schemas.py). Errors are problems (entrypoints/problems.py).

`add_routes` puts them on the app itself, in this order (the order of the
OpenAPI document): an included APIRouter would stand in `app.routes` as one
entry, which the metrics' `handler` label and the chart's probe checks read."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import FastAPI, Header, Path, Query, Response

from order_service.entrypoints.dependencies import Points, Uow
from order_service.entrypoints.problems import NOT_FOUND
from order_service.entrypoints.schemas import NO_NUL, CustomerSummary, OrderIn, OrderOut
from order_service.service_layer import handlers


def _link(operation_id: str, parameter: str, field: str) -> dict[str, Any]:
    """An OpenAPI link: call `operation_id` with `parameter` from the response's `field`."""
    return {"operationId": operation_id, "parameters": {parameter: f"$response.body#/{field}"}}


# What a client can do next with a placed order (OpenAPI links; HTTP fuzzing
# follows them as stateful sequences).
PLACED_LINKS: dict[int | str, dict[str, Any]] = {
    201: {
        "links": {
            "GetOrder": _link("get_order", "order_id", "id"),
            "CancelOrder": _link("cancel_order", "order_id", "id"),
            "ListOrders": _link("list_orders", "customer_id", "customer_id"),
            "CustomerSummary": _link("customer_summary", "customer_id", "customer_id"),
        }
    }
}


async def place_order(
    body: OrderIn,
    uow: Uow,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> OrderOut:
    # A retry with the same Idempotency-Key and body is answered as the first
    # request was: 201 and the order as it was placed (no docstring: it would
    # change the OpenAPI document).
    idempotency = None
    if idempotency_key is not None:
        idempotency = handlers.IdempotentRequest(idempotency_key, body.fingerprint())
    placed = await handlers.place_order(body.command(), uow, idempotency)
    response.headers["Location"] = f"/orders/{placed.order.id}"
    return OrderOut.of(placed.order)


async def get_order(order_id: uuid.UUID, uow: Uow) -> OrderOut:
    return OrderOut.of(await handlers.get_order(order_id, uow))


async def list_orders(
    uow: Uow,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[OrderOut]:
    """The most recent orders, newest first: the customer's, or without
    customer_id everyone's."""
    return [OrderOut.of(o) for o in await handlers.list_orders(customer_id, limit, uow)]


async def cancel_order(order_id: uuid.UUID, uow: Uow) -> OrderOut:
    return OrderOut.of(await handlers.cancel_order(order_id, uow))


async def customer_summary(
    customer_id: Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL)],
    uow: Uow,
    points: Points,
) -> CustomerSummary:
    """The customer's orders from this service's own database, and the point
    balance from point-service if it answers within the timeout."""
    return CustomerSummary.of(await handlers.customer_summary(customer_id, uow, points))


def add_routes(app: FastAPI) -> None:
    app.post(
        "/orders",
        status_code=201,
        response_model=OrderOut,
        operation_id="place_order",
        responses=PLACED_LINKS,
    )(place_order)
    app.get(
        "/orders/{order_id}", response_model=OrderOut, responses=NOT_FOUND, operation_id="get_order"
    )(get_order)
    app.get("/orders", response_model=list[OrderOut], operation_id="list_orders")(list_orders)
    app.post(
        "/orders/{order_id}/cancel",
        response_model=OrderOut,
        responses=NOT_FOUND,
        operation_id="cancel_order",
    )(cancel_order)
    app.get(
        "/customers/{customer_id}/summary",
        response_model=CustomerSummary,
        operation_id="customer_summary",
    )(customer_summary)
