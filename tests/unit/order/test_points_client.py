"""adapters/points_client.py against FastStream's in-memory RabbitMQ: the
summary's request/reply to point-service, answered or not, within its timeout."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.rabbit import (
    RabbitBroker,
    RabbitExchange,
    RabbitMessage,
    RabbitQueue,
    TestRabbitBroker,
)
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from catalogue.contracts.points import GetPointBalance, PointBalance
from catalogue.topology import POINT_BALANCE
from messaging.asyncapi import placeholder_settings
from messaging.brokers import rabbit_broker
from order_service.adapters.points_client import PointsClient, Unavailable
from order_service.settings import OrderServiceSettings

TIMEOUT_S = 0.05


def order_broker() -> RabbitBroker:
    """The broker order-service gives its client: its parser, tracing and
    metrics; the in-memory broker replaces the connection."""
    settings = OrderServiceSettings.model_validate(placeholder_settings())
    return rabbit_broker(settings, "order-service", logging.getLogger(__name__), TracerProvider())


def requests(outcome: str) -> float:
    return REGISTRY.get_sample_value("points_balance_requests_total", {"outcome": outcome}) or 0.0


# (exchange, routing key, message type, expiration) of each request received
asked: list[tuple[Any, ...]] = []


@pytest.fixture
async def client() -> AsyncIterator[PointsClient]:
    asked.clear()
    points = PointsClient(order_broker(), TIMEOUT_S)

    @points.broker.subscriber(
        RabbitQueue(POINT_BALANCE.routing_key, declare=False),
        RabbitExchange(POINT_BALANCE.exchange, declare=False),
    )
    async def point_service(body: GetPointBalance, message: RabbitMessage) -> str:
        raw = message.raw_message
        asked.append((raw.exchange, raw.routing_key, raw.type, raw.expiration))
        if body.customer_id == "slow":
            await asyncio.sleep(10 * TIMEOUT_S)
        if body.customer_id == "garbled":
            return "not a balance"
        if body.customer_id == "broken":
            raise RuntimeError("point-service failed")
        answer = PointBalance(customer_id=body.customer_id, balance=7, as_of=datetime.now(UTC))
        return answer.model_dump_json()

    async with TestRabbitBroker(points.broker):
        points.start()
        async with asyncio.timeout(5):
            # It connects in the background.
            while not points.connected:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        yield points
    await points.stop()


async def test_point_service_answers_with_the_balance(client: PointsClient) -> None:
    before = requests("answered")
    answer = await client.balance("c-1")
    assert isinstance(answer, PointBalance)
    assert (answer.customer_id, answer.balance) == ("c-1", 7)
    # Dropped by RabbitMQ once the caller has stopped waiting.
    assert asked == [
        (POINT_BALANCE.exchange, POINT_BALANCE.routing_key, GetPointBalance.TYPE, TIMEOUT_S)
    ]
    assert requests("answered") == before + 1


async def test_no_answer_within_the_timeout_is_unavailable_and_does_not_wait_longer(
    client: PointsClient,
) -> None:
    before = requests("timeout")
    started = time.monotonic()
    assert await client.balance("slow") == Unavailable("timeout")
    assert time.monotonic() - started < 5 * TIMEOUT_S
    assert requests("timeout") == before + 1


@pytest.mark.parametrize("customer", ["garbled", "broken"])
async def test_an_answer_that_is_no_balance_is_an_error(
    client: PointsClient, customer: str
) -> None:
    before = requests("error")
    assert await client.balance(customer) == Unavailable("error")
    assert requests("error") == before + 1


async def test_before_rabbitmq_is_reached_the_answer_is_unavailable_at_once() -> None:
    points = PointsClient(order_broker(), TIMEOUT_S)
    before = requests("unavailable")
    assert await points.balance("c-1") == Unavailable("unavailable")
    assert requests("unavailable") == before + 1
