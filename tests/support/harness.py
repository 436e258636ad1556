"""What a consumer service's unit-test harness (tests/unit/<service>/harness.py)
does the same way for every service: recorders that keep a body as it came,
and the service's brokers with the in-memory database behind its unit-of-work
dependency."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from faststream import StreamMessage
from faststream.kafka import KafkaBroker
from faststream.rabbit import RabbitBroker


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
