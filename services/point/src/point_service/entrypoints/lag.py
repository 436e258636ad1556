"""Consumer lag of point-service's Kafka subscription, as this consumer sees it.

Kafka's broker does not export consumer-group lag (its JMX exporter gives
broker metrics); the consumer knows its own assignment, so it reports, every
few seconds, for each partition it owns: log end offset minus the group's
committed offset. This is what the Java client's `records-lag` reports, but
measured against *committed* offsets (what a restart would resume from). When
the consumer is down its series disappear: the ServiceDown alert covers that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer
from prometheus_client import Gauge

log = logging.getLogger(__name__)

CONSUMER_LAG = Gauge(
    "kafka_consumer_lag_messages",
    "Log end offset minus the committed offset, per partition this consumer owns.",
    ["group", "topic", "partition"],
)


async def report_lag(consumer: AIOKafkaConsumer, group: str) -> None:
    assignment = list(consumer.assignment())
    if not assignment:
        CONSUMER_LAG.clear()
        return
    ends = await consumer.end_offsets(assignment)
    lags = {}
    for tp in assignment:
        committed = await consumer.committed(tp) or 0
        lags[(group, tp.topic, str(tp.partition))] = max(0, ends[tp] - committed)
    CONSUMER_LAG.clear()
    for labels, value in lags.items():
        CONSUMER_LAG.labels(*labels).set(value)


class LagReporter:
    def __init__(self, consumer_of: object, group: str, every_s: float = 5.0) -> None:
        self.subscriber = consumer_of
        self.group = group
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="kafka-lag")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            consumer = getattr(self.subscriber, "consumer", None)
            if consumer is not None:
                try:
                    await report_lag(consumer, self.group)
                except Exception:  # a metric must never stop the service
                    log.debug("could not read consumer lag", exc_info=True)
            await asyncio.sleep(self.every_s)
