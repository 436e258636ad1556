"""Running a service's ASGI app (FastAPI or AsgiFastStream) the same way everywhere."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from opentelemetry.sdk.trace import TracerProvider

from messaging.settings import HttpSettings, TelemetrySettings
from messaging.telemetry import setup_telemetry

LOGGER = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]


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

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
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


class LimitRequestBody:
    """Answers 413 to a request whose body exceeds `max_bytes`, by its
    Content-Length or, without one, as it streams in, before the app has
    read or parsed it. Neither uvicorn nor Starlette has such a limit, hence
    this wrapper."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        received = 0
        started = refused = over = False

        async def limited_receive() -> Message:
            # Over the limit: answer 413 now, and tell the app the client has
            # gone, so that it stops reading (FastAPI would turn an exception
            # raised here into its own 400).
            nonlocal received, refused, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    if not started:
                        refused = True
                        await self._too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 was the answer
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, watched_send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Request body too large",
                "status": 413,
                "detail": f"the request body exceeds {self.max_bytes} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class EndFirst(uvicorn.Server):
    """uvicorn waits for open responses to finish before it stops; a response
    that never finishes (an event stream) would make every SIGTERM wait out
    the graceful shutdown timeout. `end` is called first, to end them."""

    def __init__(self, config: uvicorn.Config, end: Callable[[], None]) -> None:
        super().__init__(config)
        self.end = end

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.end()
        await super().shutdown(sockets)


def serve(
    telemetry: TelemetrySettings,
    http: HttpSettings,
    create_app: Callable[[TracerProvider], Any],
    end_first: Callable[[Any], None] | None = None,
) -> None:
    """Set up logs and traces, then serve until SIGTERM; in-flight requests and
    messages get 20 s to finish. Exits non-zero when the app stops on its own
    (ExitWhenTheAppStops). (A service's one settings class is both.)
    `end_first(app)`, if given, is called when shutdown begins, before
    uvicorn waits for open responses (EndFirst)."""
    provider = setup_telemetry(telemetry)
    created = create_app(provider)
    app = ExitWhenTheAppStops(created)
    config = uvicorn.Config(
        app,
        host=http.http_host,
        port=http.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
    server = (
        uvicorn.Server(config)
        if end_first is None
        else EndFirst(config, lambda: end_first(created))
    )
    app.server = server
    server.run()
    provider.shutdown()
    if app.failed:
        LOGGER.error("the app stopped after start-up (its error is logged above): exiting")
        raise SystemExit(1)
