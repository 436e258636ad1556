"""messaging.serving: a process whose app stops on its own after start-up exits
non-zero instead of serving health checks with nothing running."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from messaging.serving import ExitWhenTheAppStops, Message
from tests.support.waiting import free_port


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
