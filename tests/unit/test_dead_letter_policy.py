"""The dead-letter middleware's decisions, on FastStream's in-memory Kafka test
broker (handler logic only; the real brokers are in tests/integration)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import pydantic
from faststream import Context
from faststream.kafka import KafkaBroker, TestKafkaBroker

from messaging.consumer import DeadLetterPolicy, PoisonMessageError
from messaging.deadletter import kafka_dead_letter_topic

SOURCE, DLT, GROUP = "unit-orders", "unit-orders.dlt", "unit-group"


class TransientError(Exception):
    pass


class Body(pydantic.BaseModel):
    n: int


@dataclass
class Harness:
    """A handler that raises, per message number, the next exception of its
    script (None: succeed), and a subscriber recording the dead-letter topic."""

    scripts: dict[int, list[type[Exception] | None]]
    calls: list[int] = field(default_factory=list)
    dead: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def broker(self, **policy: Any) -> KafkaBroker:
        broker = KafkaBroker()
        broker.add_middleware(
            DeadLetterPolicy(
                source=SOURCE,
                sink=kafka_dead_letter_topic(broker, DLT, GROUP),
                transient=lambda exc: isinstance(exc, TransientError),
                backoff_base_s=0.001,
                backoff_max_s=0.002,
                **policy,
            )
        )

        @broker.subscriber(SOURCE, group_id=GROUP)
        async def handle(body: Body) -> None:
            self.calls.append(body.n)
            script = self.scripts.get(body.n, [])
            error = script.pop(0) if script else None
            if error is not None:
                raise error(f"scripted failure of message {body.n}")

        @broker.subscriber(DLT, group_id="inspector")
        async def dead_letters(message: Any = Context("message")) -> None:  # noqa: B008
            self.dead.append((message.body, dict(message.headers)))

        return broker


async def test_poison_is_dead_lettered_with_reason_and_coordinates_and_the_next_handled() -> None:
    h = Harness({})
    async with TestKafkaBroker(h.broker()) as broker:
        await broker.publish(b'{"n": "seven"}', SOURCE, key=b"k1", headers={"ce_id": "id-1"})
        await broker.publish({"n": 2}, SOURCE, key=b"k2")
    assert h.calls == [2], "the undecodable message never reached the handler; the next did"
    [(body, headers)] = h.dead
    assert body == b'{"n": "seven"}', "the original bytes are kept"
    assert headers["x-dead-letter-kind"] == "poison"
    assert "ValidationError" in headers["x-dead-letter-reason"]
    assert headers["x-original-topic"] == SOURCE
    assert headers["x-consumer-group"] == GROUP
    assert {"x-original-partition", "x-original-offset"} <= headers.keys()
    assert headers["ce_id"] == "id-1", "the message's own headers travel with it"


async def test_a_handler_raising_poison_is_dead_lettered_at_once() -> None:
    h = Harness({1: [PoisonMessageError]})
    async with TestKafkaBroker(h.broker()) as broker:
        await broker.publish({"n": 1}, SOURCE)
    assert h.calls == [1], "no retry of a message that can never succeed"
    assert h.dead[0][1]["x-dead-letter-kind"] == "poison"


async def test_a_transient_failure_is_retried_in_place_until_it_passes() -> None:
    h = Harness({1: [TransientError] * 12})
    async with TestKafkaBroker(h.broker(max_attempts=3)) as broker:
        await broker.publish({"n": 1}, SOURCE)
        await broker.publish({"n": 2}, SOURCE)
    assert h.calls == [1] * 13 + [2], "retried past max_attempts, then the next in order"
    assert h.dead == [], "a down dependency is not the message's fault"


async def test_a_failing_message_is_dead_lettered_after_max_attempts() -> None:
    h = Harness({1: [RuntimeError] * 10})
    async with TestKafkaBroker(h.broker(max_attempts=3)) as broker:
        await broker.publish({"n": 1}, SOURCE)
        await broker.publish({"n": 2}, SOURCE)
    assert h.calls == [1, 1, 1, 2]
    [(_, headers)] = h.dead
    assert headers["x-dead-letter-kind"] == "failing"
    assert headers["x-dead-letter-reason"].startswith("failed 3 times; last: RuntimeError")


async def test_a_failure_that_recovers_within_the_attempts_is_not_dead_lettered() -> None:
    h = Harness({1: [RuntimeError, None]})
    async with TestKafkaBroker(h.broker(max_attempts=3)) as broker:
        await broker.publish({"n": 1}, SOURCE)
    assert h.calls == [1, 1]
    assert h.dead == []


async def test_messages_the_policy_does_not_apply_to_are_left_to_the_broker() -> None:
    h = Harness({1: [RuntimeError]})
    async with TestKafkaBroker(h.broker(applies=lambda _: False)) as broker:
        # Whether the error reaches the publisher is the test broker's business.
        with contextlib.suppress(RuntimeError):
            await broker.publish({"n": 1}, SOURCE)
    assert h.calls == [1], "not retried by the policy"
    assert h.dead == [], "not dead-lettered by the policy"
