"""The live feed against real Redis: the stack's, and for the restart a
private redis-server of the test's own (the stack's stays up).

- a notice published on Redis reaches a browser's event stream;
- a subscriber that connects late misses what was published before it came,
  while /state still shows the whole order (from the services' APIs);
- Redis restarting: the gateway tells the pages the feed is lost, subscribes
  again by itself, and tells them to reload their state.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis.asyncio as redis

from catalogue.contracts.activity import ActivityKind, ActivityNotice, channel
from stackctl.components import LocalStack
from tests.e2e.live_feed import live_feed_process, sse_events
from tests.support.orders import order_request
from tests.support.waiting import eventually, free_port, wait_until

Event = tuple[str, str]
# A stream is quiet between notices (a heartbeat every 15 s).
STREAM_TIMEOUT = httpx.Timeout(10, read=60)


@pytest.fixture(scope="module")
async def feed(local_stack: LocalStack) -> AsyncIterator[str]:
    with tempfile.NamedTemporaryFile(prefix="live-feed-", suffix=".log", delete=False) as log:
        async with live_feed_process(local_stack, log) as url:
            yield url


@pytest.fixture
async def publisher(local_stack: LocalStack) -> AsyncIterator[redis.Redis]:
    client = redis.Redis(
        host=local_stack.s.host,
        port=local_stack.s.redis_port,
        password=local_stack.creds.redis_password,
    )
    yield client
    await client.aclose()


def notice(kind: ActivityKind = ActivityKind.ORDER_PLACED, **fields: Any) -> ActivityNotice:
    values = {"source": "test-live-feed", "at": datetime.now(UTC), "order_id": uuid.uuid4()}
    return ActivityNotice(kind=kind, **{**values, **fields})


class Stream:
    """An open /events stream: its events are collected as they come."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.open = asyncio.Event()

    def notices(self) -> list[dict[str, Any]]:
        return [json.loads(data) for name, data in self.events if name == "notice"]

    def about(self, order_id: object) -> list[str]:
        return [n["kind"] for n in self.notices() if n["order_id"] == str(order_id)]

    async def read(self, http: httpx.AsyncClient, url: str) -> None:
        async with http.stream("GET", f"{url}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            self.open.set()
            async for event in sse_events(response):
                self.events.append(event)


async def listening(http: httpx.AsyncClient, url: str) -> tuple[Stream, asyncio.Task[None]]:
    stream = Stream()
    task = asyncio.create_task(stream.read(http, url))
    await asyncio.wait_for(stream.open.wait(), 10)
    return stream, task


async def until(check: Any, timeout_s: float = 10) -> bool:
    async def probe() -> bool:
        return bool(check())

    return await wait_until(probe, timeout_s, interval_s=0.05)


async def test_a_notice_published_on_redis_reaches_an_event_stream(
    feed: str, publisher: redis.Redis
) -> None:
    sent = notice(trace_id="ab" * 16, detail={"total": "12.00", "currency": "EUR"})
    async with httpx.AsyncClient(timeout=STREAM_TIMEOUT) as http:
        stream, task = await listening(http, feed)
        try:
            receivers = await publisher.publish(channel("order-service"), sent.model_dump_json())
            assert receivers >= 1, "the gateway is subscribed"
            assert await until(lambda: stream.about(sent.order_id))
            metrics = (await http.get(f"{feed}/metrics")).text
        finally:
            task.cancel()
    got = next(n for n in stream.notices() if n["order_id"] == str(sent.order_id))
    assert ActivityNotice.model_validate(got) == sent
    assert "\nlive_feed_clients 1.0" in metrics


async def test_a_late_subscriber_misses_earlier_notices_but_state_has_the_order(
    feed: str, publisher: redis.Redis, api: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(timeout=STREAM_TIMEOUT) as http:
        early, early_task = await listening(http, feed)
        response = await api.post(
            "/orders", json=order_request(f"late-{uuid.uuid4()}", "30.00", "x")
        )
        assert response.status_code == 201
        order_id = response.json()["id"]
        every = ["mail.sent", "mail.sent", "order.placed", "points.granted"]
        assert await until(lambda: sorted(early.about(order_id)) == every, 30), early.about(
            order_id
        )

        late, late_task = await listening(http, feed)
        marker = notice()
        await publisher.publish(channel("order-service"), marker.model_dump_json())
        assert await until(lambda: late.about(marker.order_id))
        early_task.cancel()
        late_task.cancel()
    assert late.about(order_id) == [], "pub/sub keeps nothing for who was not listening"

    async with httpx.AsyncClient(timeout=10) as http:
        state = (await http.get(f"{feed}/state")).json()
    assert {s["status"] for s in state["services"].values()} == {"ok"}
    order = next(o for o in state["orders"] if o["order_id"] == order_id)
    assert [p["points"] for p in order["points"]] == [30]
    assert sorted(m["kind"] for m in order["mails"]) == ["order", "points"]
    placed = next(n for n in early.notices() if n["order_id"] == order_id)
    assert order["trace_id"] == placed["trace_id"]


class PrivateRedis:
    """A redis-server of the test's own, without persistence, that can be
    stopped and started again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "/usr/bin/redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)

        async def pong() -> bool:
            try:
                return await cast("Awaitable[bool]", client.ping())
            except redis.ConnectionError:
                return False

        try:
            assert await wait_until(pong, 10), "redis-server did not start"
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


async def test_after_redis_restarts_the_pages_are_told_to_reload_their_state(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    server = PrivateRedis(tmp_path)
    await server.start()
    log = (tmp_path / "live-feed.log").open("wb")
    try:
        async with (
            live_feed_process(
                local_stack, log, REDIS_PORT=str(server.port), REDIS_PASSWORD=""
            ) as url,
            httpx.AsyncClient(timeout=STREAM_TIMEOUT) as http,
        ):
            stream, task = await listening(http, url)
            server.stop()
            assert await until(lambda: ("feed", '{"feed": "not subscribed"}') in stream.events)
            ready = await eventually(
                lambda: http.get(f"{url}/health/ready"), lambda r: r.status_code == 503, 10
            )
            assert ready.status_code == 503
            await server.start()
            # The subscription retries at most every 5 s.
            assert await until(lambda: ("resync", "{}") in stream.events, 15)
            assert (await http.get(f"{url}/health/ready")).status_code == 200
            sent = notice()
            client = redis.Redis(port=server.port)
            await client.publish(channel("point-service"), sent.model_dump_json())
            await client.aclose()
            assert await until(lambda: stream.about(sent.order_id))
            task.cancel()
    finally:
        server.stop()
        log.close()
