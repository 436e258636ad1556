"""Provisioning steps that wait for their dependency, within a bound.

`provision-accounts` and `provision-topology` run while the infrastructure is
still starting (the chart's provisioning Job, `make up`), and on Kubernetes a
new pod's first connections may be refused until the node's NetworkPolicy
controller has seen its address (measured on kind: about a second). Each step
is idempotent, so it is retried whole on a connection failure, with jittered
exponential back-off, until it succeeds or `PROVISION_TIMEOUT_S` has passed;
then it fails with the last error. Any other error fails at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import aiormq.exceptions
import httpx
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, RequestTimedOutError
from pydantic import Field
from pydantic_settings import BaseSettings
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from messaging.settings import SETTINGS_CONFIG
from messaging.unavailable import unavailable

log = logging.getLogger(__name__)


class ProvisioningSettings(BaseSettings):
    """How long a provisioning step waits for its server."""

    model_config = SETTINGS_CONFIG

    provision_timeout_s: float = Field(default=300, gt=0)


# The brokers and the management API, beside the database (unavailable).
UNREACHABLE = (
    httpx.TransportError,
    aiormq.exceptions.AMQPConnectionError,
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
)


def unreachable(error: BaseException) -> bool:
    """The dependency is not (yet) there: refused, timed out, or a server
    that answers 5xx while it starts (RabbitMQ's management API does)."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code >= 500
    return unavailable(error) or isinstance(error, UNREACHABLE)


async def until_reachable(
    what: str,
    step: Callable[[], Awaitable[None]],
    timeout_s: float,
    retry_on: Callable[[BaseException], bool] = unreachable,
) -> None:
    """Run `step` until it succeeds, again after each error `retry_on` accepts,
    within `timeout_s`; any other error, or the last one, is raised."""

    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        log.warning("%s: not there yet (%s); again in %.1f s", what, error, wait)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception(retry_on),
        stop=stop_after_delay(timeout_s),
        wait=wait_exponential_jitter(multiplier=0.5, max=10),
        before_sleep=waiting,
        reraise=True,
    ):
        with attempt:
            await step()


def run_command(
    prog: str,
    doc: str,
    provision: Callable[[], Coroutine[Any, Any, None]],
    argv: Sequence[str] | None,
) -> int:
    """A provisioning command: no arguments (its settings come from the
    environment), a log line per step, 0 once every step has succeeded."""
    argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0]).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(provision())
    return 0
