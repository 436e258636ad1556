"""What a consumer service's unit-test harness (tests/unit/<service>/harness.py)
does the same way for every service: a message's body and headers as its
producer sends them, recorders that keep a body as it came, and the service's
brokers with the in-memory database behind its unit-of-work dependency."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from faststream import StreamMessage
from faststream.kafka import KafkaBroker
from faststream.rabbit import RabbitBroker

from messaging.envelope import OutgoingMessage


def on_the_wire(
    message: OutgoingMessage, headers: dict[str, Any] | None, body: bytes | None
) -> tuple[bytes, dict[str, Any]]:
    """`message`'s body and headers as its producer sends it (CloudEvents binary
    mode: the data as JSON, its attributes in headers); `headers` are laid over
    its own and `body`, where given, replaces the data."""
    payload = message.data.model_dump_json().encode() if body is None else body
    return payload, {**message.binary_mode_headers(), **(headers or {})}


async def undecoded(message: StreamMessage[Any]) -> bytes:
    """The body as it came: a dead-lettered or parked message need not be JSON
    (and a recorder that failed on it would be dead-lettered or parked in turn,
    by the same policy)."""
    return message.body


@contextlib.contextmanager
def in_memory_units_of_work(
    brokers: Iterable[KafkaBroker | RabbitBroker],
    dependency: Callable[..., Any],
    factory: Callable[..., Any],
) -> Iterator[None]:
    """Every broker's `dependency` (the unit-of-work factory's) gives `factory`
    (the in-memory database's) until the block ends."""

    def in_memory() -> Callable[..., Any]:
        return factory

    with contextlib.ExitStack() as overrides:
        for broker in brokers:
            overrides.enter_context(broker.provider.scope(dependency, in_memory))
        yield
