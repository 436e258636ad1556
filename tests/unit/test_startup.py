"""messaging.startup: a service started before its topology exists serves its
health routes, starts its brokers only once the topology is there, and gives
up with the last error after STARTUP_TIMEOUT_S instead of hanging."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiormq.exceptions
import asyncpg
import pytest
import sqlalchemy.exc
from faststream.rabbit import RabbitBroker
from starlette.responses import PlainTextResponse

from messaging.startup import MissingTopicError, ProvisionedFastStream, not_provisioned


class Topology:
    """A topology check that fails until `create()`; counts its calls."""

    def __init__(self, missing: BaseException) -> None:
        self.missing = missing
        self.created = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if not self.created.is_set():
            raise self.missing


class Lifespan:
    """Drives an ASGI app's lifespan the way uvicorn does."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[str] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.inbox.put({"type": "lifespan.startup"})

        async def send(message: dict[str, Any]) -> None:
            self.sent.append(message["type"])

        async def run() -> None:
            await self.app({"type": "lifespan", "asgi": {"version": "3.0"}}, self.inbox.get, send)

        self.task = asyncio.create_task(run())
        await until(lambda: bool(self.sent))

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        assert self.task is not None
        await asyncio.wait_for(asyncio.gather(self.task, return_exceptions=True), 10)


async def until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - polls state set by another task
            await asyncio.sleep(0.01)


async def get(app: Any, path: str) -> int:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    await app(scope, receive, send)
    return statuses[0]


def app_with(topology: Topology, timeout_s: float) -> tuple[ProvisionedFastStream, list[str]]:
    broker = RabbitBroker()
    started: list[str] = []

    async def start() -> None:
        started.append("broker")

    async def stop(*_: Any) -> None:
        return None

    broker.start = start  # type: ignore[method-assign]
    broker.stop = stop  # type: ignore[method-assign,assignment]

    async def live(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    app = ProvisionedFastStream(
        broker,
        topology=[("rabbitmq queue q", topology)],
        startup_timeout_s=timeout_s,
        asgi_routes=[("/health/live", live)],
    )
    return app, started


async def test_the_brokers_start_once_the_topology_exists_and_health_answers_meanwhile() -> None:
    topology = Topology(aiormq.exceptions.ChannelNotFoundEntity("NOT_FOUND - no queue 'q'"))
    app, started = app_with(topology, timeout_s=60)
    lifespan = Lifespan(app)
    await lifespan.start()
    assert lifespan.sent == ["lifespan.startup.complete"]
    await until(lambda: topology.calls >= 2)
    assert started == [], "no broker starts while its queue is missing"
    assert await get(app, "/health/live") == 200
    topology.created.set()
    await until(lambda: started == ["broker"])
    await lifespan.stop()
    assert lifespan.sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_a_topology_that_never_appears_fails_the_app_after_the_bound() -> None:
    topology = Topology(MissingTopicError("topics ['orders'] do not exist"))
    app, started = app_with(topology, timeout_s=1)
    lifespan = Lifespan(app)
    await lifespan.start()
    await until(lambda: "lifespan.shutdown.failed" in lifespan.sent, timeout_s=15)
    assert started == []
    assert topology.calls > 1
    await lifespan.stop()


def sqlalchemy_wrapped(error: BaseException) -> BaseException:
    wrapped = sqlalchemy.exc.DBAPIError("connect", None, error)
    wrapped.__cause__ = error
    return wrapped


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InvalidPasswordError("password authentication failed for user order"),
        sqlalchemy_wrapped(asyncpg.InvalidCatalogNameError('database "order" does not exist')),
        aiormq.exceptions.ChannelNotFoundEntity("NOT_FOUND - no queue"),
        aiormq.exceptions.ChannelAccessRefused("ACCESS_REFUSED"),
        ConnectionRefusedError(111, "refused"),
        MissingTopicError("topics ['orders'] do not exist"),
    ],
    ids=repr,
)
def test_what_a_starting_process_waits_for(error: BaseException) -> None:
    assert not_provisioned(error)


@pytest.mark.parametrize(
    "error",
    [ValueError("bad setting"), sqlalchemy_wrapped(asyncpg.UndefinedTableError("no table"))],
    ids=repr,
)
def test_what_fails_at_once(error: BaseException) -> None:
    assert not not_provisioned(error)
