"""A service that starts before its logins, queues and topics exist waits for them.

On Kubernetes the provisioning Job and the services start together, so a
service may come up before its database login, its RabbitMQ user or the
queues it consumes exist. Exiting would make the kubelet restart it with a
growing back-off (a crash loop that outlasts the provisioning). Instead:

- `migrate` retries its first connection while the login or the database is
  missing (`wait_for_login`);
- `serve` answers /health/live at once, reports not ready, and starts its
  brokers only once every queue and topic it consumes exists
  (`ProvisionedFastStream`), checked with its own credentials.

Each waits with jittered exponential back-off within `STARTUP_TIMEOUT_S` and
then fails with the last error: the process exits non-zero
(messaging.serving.ExitWhenTheAppStops), with that error in its log.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
import aiormq.exceptions
import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError
from faststream.asgi import AsgiFastStream
from pydantic import Field
from pydantic_settings import BaseSettings

from messaging.provisioning import unreachable, until_reachable
from messaging.settings import SETTINGS_CONFIG
from messaging.unavailable import causes

Check = Callable[[], Awaitable[None]]


class StartupSettings(BaseSettings):
    """How long a starting process waits for what provisioning creates."""

    model_config = SETTINGS_CONFIG

    startup_timeout_s: float = Field(default=300, gt=0)


class MissingTopicError(Exception):
    """A topic the process consumes does not exist (yet)."""


# What a process sees before provisioning has created its part. PostgreSQL
# answers "password authentication failed" for a login that does not exist
# (it does not tell which roles exist), so a wrong password is waited for
# too, and fails with that message after the bound.
NOT_PROVISIONED = (
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    aiormq.exceptions.ChannelNotFoundEntity,
    aiormq.exceptions.ChannelAccessRefused,
    MissingTopicError,
    UnknownTopicOrPartitionError,
)


def not_provisioned(error: BaseException) -> bool:
    """Worth waiting for: the server is unreachable, or its part is not there
    (SQLAlchemy wraps the driver's error: its causes are looked at too)."""
    return any(unreachable(c) or isinstance(c, NOT_PROVISIONED) for c in causes(error))


async def wait_for_login(connect: Check, timeout_s: float) -> None:
    await until_reachable("database login", connect, timeout_s, retry_on=not_provisioned)


def rabbit_queues_exist(
    url: str,
    queues: Sequence[str],
    timeout_s: float = 10,
    ssl_context: ssl.SSLContext | None = None,
) -> Check:
    """A check that every queue exists, with the process's own RabbitMQ user
    (so its login and its rights are checked as well)."""

    async def check() -> None:
        connection = await aio_pika.connect(url, timeout=timeout_s, ssl_context=ssl_context)
        try:
            for queue in queues:
                # A failed passive declaration closes its channel: one each.
                channel = await connection.channel()
                await channel.declare_queue(queue, passive=True)
                await channel.close()
        finally:
            await connection.close()

    return check


def kafka_topics_exist(
    admin: Callable[[], AIOKafkaAdminClient], topics: Sequence[str], timeout_s: float = 10
) -> Check:
    """A check that every topic exists (automatic topic creation is off)."""

    async def check() -> None:
        client = admin()
        await asyncio.wait_for(client.start(), timeout_s)
        try:
            present = set(await asyncio.wait_for(client.list_topics(), timeout_s))
        finally:
            await client.close()
        missing = sorted(set(topics) - present)
        if missing:
            raise MissingTopicError(f"topics {missing} do not exist")

    return check


class ProvisionedFastStream(AsgiFastStream):
    """An AsgiFastStream whose brokers start once their topology exists.

    AsgiFastStream reports the ASGI start-up complete and then starts its
    brokers in the background, so the HTTP routes (health, metrics) answer
    while this waits. FastStream has no hook between the two, hence the
    override of `_start_broker` (tests/unit/test_startup.py pins its effect).
    """

    def __init__(
        self,
        *brokers: Any,
        topology: Sequence[tuple[str, Check]],
        startup_timeout_s: float,
        **options: Any,
    ) -> None:
        super().__init__(*brokers, **options)
        self.topology = list(topology)
        self.startup_timeout_s = startup_timeout_s

    async def _start_broker(self) -> None:
        for what, check in self.topology:
            await until_reachable(what, check, self.startup_timeout_s, retry_on=not_provisioned)
        await super()._start_broker()
