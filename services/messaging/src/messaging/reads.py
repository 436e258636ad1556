"""Read APIs by order id on a FastStream service's HTTP port (an AsgiFastStream
route): `GET <path>?order_id=<uuid>&order_id=<uuid>...`, answered with a JSON
list. point-service's /points and notification-service's /deliveries, what the
live page loads its state from.

At most MAX_ORDER_IDS ids per request; no id is an empty list. A bad id, too
many, or an unknown parameter is a 422 problem naming the field, as
order-service answers; an unavailable database a 503 with Retry-After. A
plain ASGI app: FastStream's `get` handlers resolve their parameters through
fast_depends, in a worker thread for a plain function (messaging.context).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

import orjson

from messaging.serving import Message, Receive, Send
from messaging.unavailable import unavailable

LOGGER = logging.getLogger(__name__)

MAX_ORDER_IDS = 200
PARAMETER = "order_id"

Read = Callable[[list[uuid.UUID]], Awaitable[Sequence[Mapping[str, Any]]]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]


class InvalidQueryError(ValueError):
    pass


def order_ids(query_string: bytes, limit: int = MAX_ORDER_IDS) -> list[uuid.UUID]:
    """The distinct order ids of the query, in their order."""
    try:
        query = parse_qs(query_string.decode("latin-1"), strict_parsing=False)
    except ValueError as exc:  # parse_qs limits the number of fields
        raise InvalidQueryError(str(exc)) from exc
    unknown = sorted(set(query) - {PARAMETER})
    if unknown:
        raise InvalidQueryError(f"unknown parameter(s): {', '.join(unknown)}")
    values = list(dict.fromkeys(query.get(PARAMETER, [])))
    if len(values) > limit:
        raise InvalidQueryError(f"at most {limit} order ids, not {len(values)}")
    try:
        return [uuid.UUID(v) for v in values]
    except ValueError as exc:
        raise InvalidQueryError(f"not a UUID: {exc}") from exc


def by_order_ids(read: Read, limit: int = MAX_ORDER_IDS) -> ASGIApp:
    """An ASGI app answering GET with `read(order ids)` as a JSON list."""

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, _problem(405, "Method not allowed", "only GET"))
            return
        try:
            ids = order_ids(scope.get("query_string", b""), limit)
        except InvalidQueryError as exc:
            error = {"field": PARAMETER, "message": str(exc)}
            body = _problem(422, "Invalid request", f"invalid field(s): {PARAMETER}", [error])
            await _answer(send, 422, body)
            return
        try:
            body = orjson.dumps(list(await read(ids) if ids else []), default=_json)
        except Exception as exc:
            if not unavailable(exc):
                LOGGER.exception("GET %s failed", scope["path"])
                await _answer(send, 500, _problem(500, "Internal error", "it was logged"))
                return
            detail = "the database did not answer; retry later"
            await _answer(send, 503, _problem(503, "Database unavailable", detail), retry=True)
            return
        await _answer(send, 200, body, content_type=b"application/json")

    return app


def _json(value: object) -> str:
    """What orjson does not take as it is: a UUID of a subclass (asyncpg's)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _problem(status: int, title: str, detail: str, errors: list[Any] | None = None) -> bytes:
    problem: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    problem["detail"] = detail
    if errors is not None:
        problem["errors"] = errors
    return orjson.dumps(problem)


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"application/problem+json",
    retry: bool = False,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if retry:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
