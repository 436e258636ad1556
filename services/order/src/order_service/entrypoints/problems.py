"""Every error of the HTTP API as RFC 9457 problem details: 422 names the field
at fault, 404 the missing order, 413 a body over HTTP_MAX_BODY_BYTES, 503 with
Retry-After an unavailable database (messaging.unavailable.unavailable: fast,
nothing half-written), 500 only for a bug."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from messaging.unavailable import unavailable
from order_service.service_layer import handlers

# The logger of the door (named as before the door was split into modules).
LOGGER = logging.getLogger("order_service.entrypoints.http")
# Errors of the database layer: unavailable ones are 503, the rest a bug (500).
DATABASE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, asyncpg.PostgresError, OSError, TimeoutError)

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
    """An OpenAPI response answered with a problem."""
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


async def invalid_input(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": field_path(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    fields = ", ".join(e["field"] for e in errors)
    return problem(422, "Invalid request", f"invalid field(s): {fields}", errors=errors)


async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    # FastAPI's own refusals (a body it cannot decode: 400), as problems too.
    response = problem(exc.status_code, "Bad request", str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


async def not_found(_: Request, exc: handlers.OrderNotFoundError) -> JSONResponse:
    return problem(404, "Order not found", str(exc))


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


def answer_errors_as_problems(app: FastAPI) -> None:
    app.exception_handler(RequestValidationError)(invalid_input)
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(handlers.OrderNotFoundError)(not_found)
    app.exception_handler(handlers.IdempotencyKeyReusedError)(key_reused)
    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, database_error)
