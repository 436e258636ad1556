"""Health and metrics routes for the FastStream services (AsgiFastStream).

Liveness: the process serves HTTP. Readiness: every dependency check passes
within its own bounded wait (a check that raises counts as not ready).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faststream.asgi import AsgiResponse, get
from faststream.asgi.types import ASGIApp
from prometheus_client import make_asgi_app
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

Check = Callable[[], Awaitable[bool]]


def database_check(sessions: async_sessionmaker[AsyncSession]) -> Check:
    async def check() -> bool:
        async with sessions() as session:
            await session.execute(text("select 1"))
        return True

    return check


def health_routes(checks: Sequence[Check]) -> list[tuple[str, ASGIApp]]:
    @get(include_in_schema=False)
    async def ready(scope: Any) -> AsgiResponse:
        try:
            healthy = all([await check() for check in checks])
        except Exception:  # noqa: BLE001 - any failing check means "not ready"
            healthy = False
        body = b'{"status": "ok"}' if healthy else b'{"status": "unavailable"}'
        return AsgiResponse(body, 200 if healthy else 503)

    @get(include_in_schema=False)
    async def live(scope: Any) -> AsgiResponse:
        return AsgiResponse(b'{"status": "ok"}', 200)

    return [("/health/live", live), ("/health/ready", ready), ("/metrics", make_asgi_app())]
