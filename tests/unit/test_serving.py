"""messaging.serving: a process whose app stops on its own after start-up exits
non-zero instead of serving health checks with nothing running."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import uvicorn

from messaging.serving import EndFirst, ExitWhenTheAppStops, Message
from tests.support.waiting import free_port, wait_until


class AppWhoseBrokerFails:
    """Like AsgiFastStream when its broker cannot start: start-up complete,
    then `lifespan.shutdown.failed` without being asked to shut down."""

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await asyncio.sleep(0.2)  # the broker's start failing
        await send({"type": "lifespan.shutdown.failed", "message": "login refused"})
        raise RuntimeError("login refused")


class HealthyApp:
    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})


def server_for(app: ExitWhenTheAppStops) -> uvicorn.Server:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None)
    )
    app.server = server
    return server


async def test_uvicorn_exits_when_the_app_stops_after_start_up() -> None:
    app = ExitWhenTheAppStops(AppWhoseBrokerFails())
    # Without the wrapper uvicorn would serve until cancelled: bounded here.
    await asyncio.wait_for(server_for(app).serve(), timeout=10)
    assert app.failed


async def test_a_requested_shutdown_is_not_a_failure() -> None:
    app = ExitWhenTheAppStops(HealthyApp())
    server = server_for(app)
    server.should_exit = True  # as SIGTERM would: uvicorn starts, then shuts down
    await asyncio.wait_for(server.serve(), timeout=10)
    assert not app.failed


class EndlessStream:
    """An event stream that ends only when told to (as live-feed's do)."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await HealthyApp()(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b": open\n\n", "more_body": True})
        self.started.set()
        await self.ended.wait()
        await send({"type": "http.response.body", "body": b""})


async def test_end_first_ends_open_streams_before_uvicorn_waits_for_them() -> None:
    stream = EndlessStream()
    config = uvicorn.Config(
        stream,
        host="127.0.0.1",
        port=free_port(),
        log_config=None,
        timeout_graceful_shutdown=60,
    )
    server = EndFirst(config, stream.ended.set)
    serving = asyncio.create_task(server.serve())

    async def listening() -> bool:
        return server.started

    async with httpx.AsyncClient() as client:
        assert await wait_until(listening, 5, 0.01)
        async with client.stream("GET", f"http://127.0.0.1:{config.port}/") as response:
            await asyncio.wait_for(stream.started.wait(), 5)
            server.should_exit = True
            # Without `end` uvicorn would wait up to its 60 s for the stream.
            await asyncio.wait_for(serving, timeout=10)
            assert response.status_code == 200
    assert stream.ended.is_set()
