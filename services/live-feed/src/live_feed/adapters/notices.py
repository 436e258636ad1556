"""The activity notices, from Redis pub/sub (pattern ``activity.*``).

Pub/sub keeps nothing: while this process is not subscribed, notices are
gone. So the subscription tells its owner about every gap: `on_lost` runs
when a subscription is lost, `on_gap` each time it is confirmed again after
the first time (after a lost connection, a Redis restart), and the pages
reload the state from the services' APIs. A lost connection is logged once,
not on every retry.

redis.asyncio directly, not FastStream's RedisBroker: its subscriber
re-subscribes inside the library and logs each failed fetch with a stack
trace every 5 s, so the moment a gap ends, the one thing the pages need to
hear about, would not be observable here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis.asyncio as redis
from pydantic import ValidationError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from catalogue.contracts.activity import CHANNEL_PATTERN, ActivityNotice
from messaging.settings import RedisSettings

LOGGER = logging.getLogger(__name__)
# How often an idle subscription checks that Redis still answers (a PING on
# the subscribed connection): a silently dropped connection is found within it.
HEALTH_CHECK_S = 5


def redis_client(settings: RedisSettings, timeout_s: float | None = None) -> redis.Redis:
    """A client that fails fast and leaves reconnecting to its user."""
    connect_timeout = settings.redis_timeout_ms / 1000
    return redis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        password=settings.redis_password.get_secret_value() or None,
        socket_connect_timeout=max(connect_timeout, 0.5),
        socket_timeout=timeout_s,
        health_check_interval=HEALTH_CHECK_S,
        retry=Retry(NoBackoff(), 0),
    )


class NoticeSubscription:
    """Subscribed to ``activity.*`` for as long as `run` runs, reconnecting
    with a capped exponential backoff."""

    def __init__(
        self,
        settings: RedisSettings,
        on_notice: Callable[[ActivityNotice], None],
        on_gap: Callable[[], None],
        on_lost: Callable[[], None] = lambda: None,
        on_invalid: Callable[[bytes], None] = lambda _: None,
        backoff_s: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        self.settings = settings
        self.on_notice = on_notice
        self.on_gap = on_gap
        self.on_lost = on_lost
        self.on_invalid = on_invalid
        self.backoff_s = backoff_s
        self.subscribed = asyncio.Event()
        self.confirmations = 0
        self._outage_logged = False

    async def run(self) -> None:
        first, cap = self.backoff_s
        delay = first
        while True:
            try:
                await self._listen()
            except (redis.RedisError, OSError) as exc:
                if not self._outage_logged:
                    self._outage_logged = True
                    LOGGER.warning(
                        "not subscribed to %s on redis %s:%d (%r): notices are lost "
                        "until it is back; retrying every %.1f-%.0f s",
                        CHANNEL_PATTERN,
                        self.settings.redis_host,
                        self.settings.redis_port,
                        exc,
                        first,
                        cap,
                    )
                if self.subscribed.is_set():
                    delay = first
                    self.subscribed.clear()
                    self.on_lost()
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)

    async def _listen(self) -> None:
        client = redis_client(self.settings)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.psubscribe(CHANNEL_PATTERN)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message)
        finally:
            await client.aclose()

    def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "psubscribe":
            self.confirmations += 1
            self.subscribed.set()
            self._outage_logged = False
            LOGGER.info("subscribed to %s", CHANNEL_PATTERN)
            if self.confirmations > 1:
                self.on_gap()
        elif message["type"] == "pmessage":
            data: bytes = message["data"]
            try:
                notice = ActivityNotice.model_validate_json(data)
            except ValidationError:
                LOGGER.warning("not an activity notice on %s: %.200r", message["channel"], data)
                self.on_invalid(data)
                return
            self.on_notice(notice)


async def redis_answers(settings: RedisSettings) -> bool:
    client = redis_client(settings, timeout_s=max(settings.redis_timeout_ms / 1000, 0.5))
    try:
        # redis-py types ping() as "Awaitable[bool] | bool" (sync and async).
        return await cast("Awaitable[bool]", client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        await client.aclose()
