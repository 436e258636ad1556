"""The live-feed process: one ASGI app (Starlette).

    GET /              the page (page/index.html, page.js, page.css under /assets)
    GET /events        text/event-stream: `notice` events as they come from Redis,
                       `resync` when the page must load /state again, `feed`
                       when the subscription to Redis is lost
    GET /state         the recent orders with their points and mails (state.py)
    GET /health/live   the process serves HTTP
    GET /health/ready  Redis answers and the subscription stands (feed off: always)
    GET /metrics       Prometheus

Notices are best effort end to end: whatever a page missed while it was not
connected, it gets from /state when it (re)connects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from catalogue.contracts.activity import ActivityNotice
from live_feed import metrics, sse
from live_feed.adapters.notices import NoticeSubscription, redis_answers
from live_feed.adapters.services import HttpReadApis
from live_feed.fanout import CLOSE, RESYNC, Fanout
from live_feed.settings import LiveFeedSettings
from live_feed.state import Feed, Heard, Links, SingleFlight, State, assemble

PAGE = Path(__file__).resolve().parent.parent / "page"
# The page loads only what this process serves; links leave to other origins.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Told to the pages when the subscription is lost (a `resync` follows when it
# is back).
FEED_LOST = sse.event('{"feed": "not subscribed"}', "feed")
MAX_LIMIT = 200  # order-service's own maximum for GET /orders


@dataclass(frozen=True)
class Tuning:
    """What the tests shorten; the process runs with the defaults."""

    # Frames queued per browser before it counts as behind (fanout.py).
    client_queue_size: int = 256
    # A comment on an idle stream this often: proxies and load balancers
    # close connections idle for 30-60 s.
    heartbeat_s: float = 15.0
    # How long a browser waits before reconnecting a dropped stream.
    retry_ms: int = 2000
    # Bound of each call to a service's read API.
    upstream_timeout_s: float = 2.0
    # Orders in /state unless ?limit= says otherwise.
    state_limit: int = 50


def create_app(
    settings: LiveFeedSettings, tracer_provider: TracerProvider, tuning: Tuning | None = None
) -> Starlette:
    tuning = tuning or Tuning()
    notices = Notices(settings, tuning)
    http = httpx.AsyncClient()
    HTTPXClientInstrumentor.instrument_client(http, tracer_provider=tracer_provider)
    apis = HttpReadApis(
        http,
        settings.order_service_url,
        settings.point_service_url,
        settings.notification_service_url,
        tuning.upstream_timeout_s,
    )
    links = Links(trace_ui=settings.trace_ui_url, mail_ui=settings.mail_ui_url)

    async def current_state(limit: int) -> State:
        return await assemble(apis, limit, notices.heard, notices.status(), links)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with notices.running():
            yield
        await http.aclose()

    app = Starlette(
        routes=[
            Route("/", page),
            Mount("/assets", StaticFiles(directory=PAGE), name="assets"),
            Route("/events", Events(notices.fanout, tuning).handle),
            Route("/state", StateRoute(SingleFlight(current_state), tuning.state_limit).handle),
            Route("/health/live", live),
            Route("/health/ready", Ready(settings, notices.subscription).handle),
            Route("/metrics", AsgiEndpoint(make_asgi_app())),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(
                OpenTelemetryMiddleware,
                excluded_urls="health/.*,metrics,events,assets/.*",
                tracer_provider=tracer_provider,
                exclude_spans=["receive", "send"],
            )
        ],
    )
    app.state.fanout = notices.fanout
    return app


class Notices:
    """The notices' side: the subscription to Redis, what it heard, and the
    fan-out of every notice (and of every gap) to the browsers."""

    def __init__(self, settings: LiveFeedSettings, tuning: Tuning) -> None:
        self.settings = settings
        self.fanout = Fanout(
            tuning.client_queue_size,
            on_clients=metrics.CLIENTS.set,
            on_overflow=metrics.OVERFLOWS.inc,
        )
        self.heard = Heard()
        self.subscription = NoticeSubscription(
            settings,
            self.on_notice,
            on_gap=lambda: self.fanout.publish(RESYNC),
            on_lost=lambda: self.fanout.publish(FEED_LOST),
            on_invalid=lambda _: metrics.INVALID.inc(),
        )

    def on_notice(self, notice: ActivityNotice) -> None:
        metrics.NOTICES.inc()
        self.heard.remember(notice)
        self.fanout.publish(sse.event(notice.model_dump_json(), "notice"))

    def status(self) -> Feed:
        if not self.settings.redis_host:
            return "off"
        return "subscribed" if self.subscription.subscribed.is_set() else "not subscribed"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Subscribed (unless the feed is off) until the block ends; then every
        stream ends too."""
        subscribed = self.subscription.subscribed
        metrics.SUBSCRIBED.set_function(lambda: float(subscribed.is_set()))
        listening = (
            asyncio.create_task(self.subscription.run()) if self.settings.redis_host else None
        )
        try:
            yield
        finally:
            self.fanout.close()
            if listening is not None:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening


async def page(_: Request) -> Response:
    return FileResponse(PAGE / "index.html", headers=PAGE_HEADERS)


async def live(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


class AsgiEndpoint:
    """A plain ASGI app as a route's endpoint (Starlette would take a bare
    function for a request-response handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class Events:
    """GET /events: one stream per browser, fed by the fanout."""

    def __init__(self, fanout: Fanout, tuning: Tuning) -> None:
        self.fanout = fanout
        self.tuning = tuning

    async def handle(self, _: Request) -> Response:
        return StreamingResponse(self.stream(), media_type=sse.MEDIA_TYPE, headers=STREAM_HEADERS)

    async def stream(self) -> AsyncGenerator[bytes, None]:
        client = self.fanout.connect()
        try:
            yield sse.retry(self.tuning.retry_ms)
            while True:
                frame = await client.next_frame(self.tuning.heartbeat_s)
                if frame is None:
                    yield sse.comment("heartbeat")
                elif frame == CLOSE:
                    return
                else:
                    yield frame
        finally:
            self.fanout.disconnect(client)


class StateRoute:
    def __init__(self, state: SingleFlight, default_limit: int) -> None:
        self.state = state
        self.default_limit = default_limit

    async def handle(self, request: Request) -> Response:
        raw = request.query_params.get("limit", str(self.default_limit))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            return JSONResponse(
                {"title": "Bad limit", "status": 422, "detail": f"limit is 1..{MAX_LIMIT}"},
                422,
                media_type="application/problem+json",
            )
        state = await self.state(int(raw))
        return Response(
            state.model_dump_json(),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )


class Ready:
    def __init__(self, settings: LiveFeedSettings, subscription: NoticeSubscription) -> None:
        self.settings = settings
        self.subscription = subscription

    async def handle(self, _: Request) -> Response:
        if not self.settings.redis_host:
            return JSONResponse({"redis": "off"})
        answers = await redis_answers(self.settings)
        subscribed = self.subscription.subscribed.is_set()
        body = {"redis": "ok" if answers else "unavailable", "subscribed": subscribed}
        return JSONResponse(body, 200 if answers and subscribed else 503)
