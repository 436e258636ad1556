"""Asking point-service for a balance: request/reply over RabbitMQ with a short,
hard timeout.

A synchronous call to a failing service makes its caller fail (or hang) with
it. Here the caller waits at most `points_request_timeout_s` (300 ms) and then
answers without the balance. The request carries the same expiration, so a
request nobody picked up in time is dropped by RabbitMQ instead of being
answered late to nobody. If RabbitMQ itself is unreachable, the client keeps
reconnecting in the background and the summary answers at once meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from faststream.rabbit import RabbitBroker
from prometheus_client import Counter, Histogram
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from catalogue.contracts.points import GetPointBalance, PointBalance
from catalogue.topology import POINT_BALANCE

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "points_balance_requests_total",
    "GetPointBalance requests by outcome (answered, timeout, unavailable, error).",
    ["outcome"],
)
LATENCY = Histogram(
    "points_balance_request_seconds",
    "Time the summary waited for point-service, answer or not.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1),
)
# Every outcome from the start at 0, so that a first fallback shows in rate().
for _outcome in ("answered", "timeout", "unavailable", "error"):
    REQUESTS.labels(_outcome)


@dataclass(frozen=True)
class Unavailable:
    reason: str


class PointsClient:
    """Asks over `broker` (messaging.brokers.rabbit_broker in the service: the
    same connection settings, tracing and metrics as every RabbitMQ client),
    which it starts in the background and stops."""

    def __init__(self, broker: RabbitBroker, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.broker = broker
        self.connected = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="points-client-connect")

    async def _connect(self) -> None:
        async for attempt in AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.5, max=30),
            retry=retry_if_exception_type(Exception),
        ):
            with attempt:
                await self.broker.start()
        self.connected = True
        log.info("points client connected to RabbitMQ")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.broker.stop()

    async def balance(self, customer_id: str) -> PointBalance | Unavailable:
        started = time.perf_counter()
        try:
            result = await self._ask(customer_id)
        finally:
            LATENCY.observe(time.perf_counter() - started)
        REQUESTS.labels("answered" if isinstance(result, PointBalance) else result.reason).inc()
        return result

    async def _ask(self, customer_id: str) -> PointBalance | Unavailable:
        if not self.connected:
            return Unavailable("unavailable")
        request = GetPointBalance(customer_id=customer_id)
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.broker.request(
                    request.model_dump_json(),
                    exchange=POINT_BALANCE.exchange,
                    routing_key=POINT_BALANCE.routing_key,
                    content_type="application/json",
                    message_type=GetPointBalance.TYPE,
                    expiration=self.timeout_s,
                    timeout=self.timeout_s,
                )
        except TimeoutError:
            return Unavailable("timeout")
        except Exception:
            log.warning("GetPointBalance failed", exc_info=True)
            return Unavailable("error")
        try:
            return PointBalance.model_validate_json(response.body)
        except ValueError:
            log.warning("GetPointBalance answer unreadable: %r", response.body[:200])
            return Unavailable("error")
