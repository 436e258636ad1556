"""The services' read APIs, which /state assembles: each call bounded by a
timeout, and every way it can fail (refused, timed out, an error status, an
answer of another shape) told as `ServiceUnavailableError` with a short reason."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError


class ServiceUnavailableError(Exception):
    """A service did not answer as expected; `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Row(BaseModel):
    # The APIs may add fields; the gateway reads only these.
    model_config = ConfigDict(extra="ignore", frozen=True)


class OrderRow(Row):
    """order-service GET /orders (OrderOut)."""

    id: UUID
    customer_id: str
    status: str
    total: Decimal
    currency: str
    items: list[dict[str, Any]]
    created_at: datetime
    cancelled_at: datetime | None = None


class LedgerEntry(Row):
    """point-service GET /points?order_id=..."""

    order_id: UUID
    customer_id: str
    kind: str
    points: int
    created_at: datetime


class Delivery(Row):
    """notification-service GET /deliveries?order_id=..."""

    order_id: UUID | None = None
    kind: str
    recipient: str
    subject: str
    attempts: int
    delivered_at: datetime | None = None


class ReadApis(Protocol):
    async def recent_orders(self, limit: int) -> list[OrderRow]: ...

    async def points(self, order_ids: Sequence[UUID]) -> list[LedgerEntry]: ...

    async def deliveries(self, order_ids: Sequence[UUID]) -> list[Delivery]: ...


R = TypeVar("R", bound=Row)
ORDERS = TypeAdapter(list[OrderRow])
LEDGER = TypeAdapter(list[LedgerEntry])
DELIVERIES = TypeAdapter(list[Delivery])


class HttpReadApis:
    def __init__(
        self,
        http: httpx.AsyncClient,
        order_service_url: str,
        point_service_url: str,
        notification_service_url: str,
        timeout_s: float,
    ) -> None:
        self.http = http
        self.order_service_url = order_service_url
        self.point_service_url = point_service_url
        self.notification_service_url = notification_service_url
        self.timeout_s = timeout_s

    async def recent_orders(self, limit: int) -> list[OrderRow]:
        return await self._get(f"{self.order_service_url}/orders", {"limit": limit}, ORDERS)

    async def points(self, order_ids: Sequence[UUID]) -> list[LedgerEntry]:
        params = {"order_id": [str(i) for i in order_ids]}
        return await self._get(f"{self.point_service_url}/points", params, LEDGER)

    async def deliveries(self, order_ids: Sequence[UUID]) -> list[Delivery]:
        params = {"order_id": [str(i) for i in order_ids]}
        url = f"{self.notification_service_url}/deliveries"
        return await self._get(url, params, DELIVERIES)

    async def _get(self, url: str, params: dict[str, Any], rows: TypeAdapter[list[R]]) -> list[R]:
        try:
            # httpx's timeout bounds each phase; this bounds the whole call.
            async with asyncio.timeout(self.timeout_s):
                response = await self.http.get(url, params=params, timeout=self.timeout_s)
        except TimeoutError as exc:
            raise ServiceUnavailableError(f"no answer within {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(type(exc).__name__) from exc
        if response.status_code != httpx.codes.OK:
            raise ServiceUnavailableError(f"HTTP {response.status_code}")
        try:
            return rows.validate_json(response.content)
        except ValidationError as exc:
            raise ServiceUnavailableError("an answer of an unexpected shape") from exc
