"""Running a service's ASGI app (FastAPI or AsgiFastStream) the same way everywhere."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from opentelemetry.sdk.trace import TracerProvider

from messaging.settings import HttpSettings, TelemetrySettings
from messaging.telemetry import setup_telemetry

LOGGER = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


class ExitWhenTheAppStops:
    """Makes uvicorn exit when the app stops on its own after start-up.

    FastStream's AsgiFastStream reports start-up complete and only then
    starts its brokers. When a broker cannot start (a login refused, a queue
    that does not exist yet), it reports `lifespan.shutdown.failed`, which
    uvicorn only logs: the process would go on answering /health/live with no
    consumer running, and nothing would ever restart it (found on kind, where
    the services started while provisioning was still creating their
    RabbitMQ users). Here uvicorn is told to exit instead, and `serve` exits
    non-zero, so that the process's supervisor (the kubelet, supervisord)
    starts it again. uvicorn has no option for this, hence the wrapper.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.server: uvicorn.Server | None = None
        self.failed = False
        self._shutdown_asked = False

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watched_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                self._shutdown_asked = True
            return message

        async def watched_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.failed" and not self._shutdown_asked:
                self.failed = True
                if self.server is not None:
                    self.server.should_exit = True
            await send(message)

        await self.app(scope, watched_receive, watched_send)


def serve(
    telemetry: TelemetrySettings, http: HttpSettings, create_app: Callable[[TracerProvider], Any]
) -> None:
    """Set up logs and traces, then serve until SIGTERM; in-flight requests and
    messages get 20 s to finish. Exits non-zero when the app stops on its own
    (ExitWhenTheAppStops). (A service's one settings class is both.)"""
    provider = setup_telemetry(telemetry)
    app = ExitWhenTheAppStops(create_app(provider))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=http.http_host,
            port=http.http_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=20,
        )
    )
    app.server = server
    server.run()
    provider.shutdown()
    if app.failed:
        LOGGER.error("the app stopped after start-up (its error is logged above): exiting")
        raise SystemExit(1)
