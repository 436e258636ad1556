"""The outbox relay: drains one service's outbox table to Kafka and RabbitMQ.

Runs as a sidecar next to the service, one or more replicas per table. See
docs/outbox-relay.md for the design; in short:

- claim: ``FOR UPDATE SKIP LOCKED`` on the oldest unsent row of each
  (destination, ordering key), inside a transaction held while the batch is
  published; the row locks are the lease. Replicas never publish two rows of
  one key concurrently, and a later row of a key is claimable only once every
  earlier one is sent, so per-key order holds across replicas and crashes;
- wake on LISTEN/NOTIFY, with a polling fallback;
- outcomes: sent; retried with exponential backoff and jitter, then kept as
  failed (the failure log, re-driven with ``outbox-relay failures retry``);
  best-effort rows dropped after a short retry; a broker outage pauses that
  broker without spending any message's attempts;
- SIGTERM: stop claiming, finish the batch in flight, exit. SIGKILL: the
  database aborts the transaction, the rows stay pending, and the next claim
  publishes them again with the same message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import asyncpg

from messaging.backoff import full_jitter
from messaging.connections import (
    database_ssl,
    kafka_client_options,
    rabbitmq_ssl_context,
)
from messaging.outbox.names import notify_channel
from messaging.unavailable import transient_errors, unavailable
from outbox_relay import metrics
from outbox_relay.publishers import (
    KafkaPublisher,
    Outcome,
    Publisher,
    RabbitPublisher,
    Result,
)
from outbox_relay.settings import RelaySettings
from outbox_relay.store import OutboxRow, OutboxStore, Retry

log = logging.getLogger(__name__)

# What the relay's loop catches; of those, messaging.unavailable.unavailable ones
# mean wait and reconnect. The relay talks to asyncpg only (no SQLAlchemy).
DATABASE_ERRORS: tuple[type[Exception], ...] = (*transient_errors(), asyncpg.PostgresError)


def default_publishers(settings: RelaySettings) -> dict[str, Publisher]:
    return {
        "kafka": KafkaPublisher(
            kafka_client_options(settings),
            settings.relay_publish_timeout_s,
            settings.relay_kafka_linger_ms,
        ),
        "rabbitmq": RabbitPublisher(
            settings.rabbitmq_url(),
            settings.relay_publish_timeout_s,
            ssl_context=rabbitmq_ssl_context(settings),
        ),
    }


class OutboxRelay:
    def __init__(
        self, settings: RelaySettings, publishers: Mapping[str, Publisher] | None = None
    ) -> None:
        self.s = settings
        self.store = OutboxStore(settings.outbox_table)
        self.publishers = dict(publishers or default_publishers(settings))
        self.pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._wakes = [asyncio.Event() for _ in range(settings.relay_concurrency)]
        # Lanes waiting for work, in the order they began to wait.
        self._idle: list[asyncio.Event] = []
        self._connect_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._paused_until: dict[str, float] = defaultdict(float)
        self._broker_failures: dict[str, int] = defaultdict(int)
        self._database_failures = 0
        # Destinations this relay has published to: their backlog gauges read 0
        # when nothing is pending, rather than not existing.
        self._destinations: set[str] = set()
        self.heartbeat = time.monotonic()
        for kind in self.publishers:
            metrics.BROKER_AVAILABLE.labels(kind).set(1)

    # -- lifecycle ----------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.pool is not None

    def stop(self) -> None:
        """Stop claiming; the batch in flight is finished, then run() returns."""
        self._stopping.set()
        self._wake_all()

    def _wake_all(self) -> None:
        for wake in self._wakes:
            wake.set()

    def _wake_one(self) -> None:
        """A NOTIFY (a commit that wrote to the outbox) wakes one waiting lane,
        not all: at low rates a commit brings one or two rows, and every other
        lane woken would only run an empty claim. Lanes that are busy find the
        new rows themselves, as they claim again after every batch; a lane
        whose batch came back full wakes the others (`_lane`)."""
        if self._idle:
            self._idle.pop(0).set()
        else:
            # Every lane busy: each claims once more before it waits, in case
            # its last claim began before this commit and came back empty.
            self._wake_all()

    async def run(self) -> None:
        """Run `relay_concurrency` lanes until stop(). Each lane claims and
        publishes its own batches in its own transaction, so one lane's database
        work overlaps another's publishing; per-key order holds between lanes
        for the same reason it holds between replicas."""
        stats = asyncio.create_task(self._stats_loop(), name="outbox-stats")
        lanes = [
            asyncio.create_task(self._lane(wake), name=f"outbox-lane-{n}")
            for n, wake in enumerate(self._wakes)
        ]
        try:
            await asyncio.gather(*lanes)
        finally:
            stats.cancel()
            await asyncio.gather(stats, return_exceptions=True)
            await self._close()

    async def _lane(self, wake: asyncio.Event) -> None:
        while not self._stopping.is_set():
            self.heartbeat = time.monotonic()
            try:
                await self._connect()
                claimed = await self.drain_once()
                self._database_failures = 0
            except DATABASE_ERRORS as exc:
                metrics.DATABASE_ERRORS.inc()
                self._database_failures += 1
                delay = full_jitter(self._database_failures, 0.5, 10)
                if unavailable(exc):
                    log.warning("outbox database unavailable (%r); retry in %.1fs", exc, delay)
                else:
                    log.exception("outbox query failed; retry in %.1fs", delay)
                await self._sleep(delay)
                continue
            except Exception:
                metrics.BATCH_ERRORS.inc()
                log.exception("outbox batch failed unexpectedly; retry in 1s")
                await self._sleep(1.0)
                continue
            if claimed == 0:
                # Fewer rows than a batch can still mean more work: heads are
                # one per key, so only an empty claim means "nothing due".
                await self._wait_for_work(wake)
            elif claimed >= self.s.relay_batch_size:
                self._wake_all()  # a backlog: every lane claims

    async def _connect(self) -> None:
        async with self._connect_lock:
            await self._connect_once()

    async def _connect_once(self) -> None:
        if self.pool is None:
            self.pool = await asyncpg.create_pool(
                self.s.database_dsn(),
                min_size=1,
                max_size=self.s.relay_concurrency + 1,
                timeout=self.s.database_connect_timeout_s,
                ssl=database_ssl(self.s),
                command_timeout=self.s.database_statement_timeout_s,
                reset=_keep_session,
                server_settings={
                    "application_name": f"outbox-relay:{self.s.outbox_table}",
                    # The claim must walk the pending index in id order and stop
                    # after `limit` heads. With stale statistics (a burst right
                    # after a quiet period) the planner prefers a bitmap scan
                    # plus sort that tests every pending row: 50 ms instead of
                    # 3 ms per batch at 10k pending. These are the relay's own
                    # connections and its only queries.
                    "enable_bitmapscan": "off",
                    "enable_sort": "off",
                    # Marking rows sent need not wait for the WAL flush: if the
                    # database loses the last few marks in a crash, those rows are
                    # published again with the same message id, which consumers
                    # already handle. It takes an fsync off every batch.
                    "synchronous_commit": "off",
                    # A relay that hangs mid-batch must not hold its leases for ever.
                    "idle_in_transaction_session_timeout": str(
                        int((self.s.relay_publish_timeout_s * 3 + 30) * 1000)
                    ),
                },
            )
        if self._listener is None or self._listener.is_closed():
            self._listener = await asyncpg.connect(
                self.s.database_dsn(),
                timeout=self.s.database_connect_timeout_s,
                ssl=database_ssl(self.s),
            )
            await self._listener.add_listener(
                notify_channel(self.s.outbox_table), lambda *_: self._wake_one()
            )

    async def _close(self) -> None:
        for publisher in self.publishers.values():
            await publisher.close()
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()
        if self.pool is not None:
            await self.pool.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _wait_for_work(self, wake: asyncio.Event) -> None:
        timeout = self.s.relay_poll_interval_s
        paused = [t for t in self._paused_until.values() if t > time.monotonic()]
        if paused:
            timeout = min(timeout, max(min(paused) - time.monotonic(), 0.01))
        self._idle.append(wake)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._idle.remove(wake)
        wake.clear()

    # -- one batch ----------------------------------------------------------
    async def drain_once(self) -> int:
        """Claim, publish and record one batch; return the number of rows claimed."""
        now = time.monotonic()
        kinds = [k for k in self.publishers if self._paused_until[k] <= now]
        if not kinds or self.pool is None:
            return 0
        started = time.perf_counter()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await self.store.claim(conn, self.s.relay_batch_size, kinds)
            if not rows:
                return 0
            results = await self._publish(rows)
            sent = [r.row for r in results if r.outcome is Outcome.SENT]
            await self.store.mark_sent(conn, [row.id for row in sent])
            retries = [
                Retry(
                    r.row.id,
                    r.error or r.outcome.value,
                    self._retry_delay(r.row),
                    permanent=r.outcome is Outcome.PERMANENT,
                )
                for r in results
                if r.outcome in (Outcome.RETRY, Outcome.PERMANENT)
            ]
            new_states = await self.store.mark_retry(
                conn, retries, self.s.relay_max_attempts, self.s.relay_best_effort_max_attempts
            )
        self._observe(results, sent, new_states)
        metrics.BATCH_SIZE.observe(len(rows))
        metrics.BATCH_DURATION.observe(time.perf_counter() - started)
        return len(rows)

    def _retry_delay(self, row: OutboxRow) -> float:
        if row.best_effort:
            return self.s.relay_backoff_base_s
        return full_jitter(
            row.attempts + 1, self.s.relay_backoff_base_s, self.s.relay_backoff_max_s
        )

    async def _publish(self, rows: Sequence[OutboxRow]) -> list[Result]:
        by_kind: dict[str, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            by_kind[row.destination_kind].append(row)
        batches = await asyncio.gather(
            *(self.publishers[kind].publish(batch) for kind, batch in by_kind.items())
        )
        for kind, results in zip(by_kind, batches, strict=True):
            unavailable = [r.error for r in results if r.outcome is Outcome.UNAVAILABLE]
            if unavailable:
                self._pause(kind, unavailable[0])
            else:
                self._broker_failures[kind] = 0
                metrics.BROKER_AVAILABLE.labels(kind).set(1)
        return [r for results in batches for r in results]

    def _pause(self, kind: str, error: str | None) -> None:
        self._broker_failures[kind] += 1
        delay = full_jitter(self._broker_failures[kind], 0.5, self.s.relay_backoff_max_s / 2)
        self._paused_until[kind] = time.monotonic() + delay
        metrics.BROKER_AVAILABLE.labels(kind).set(0)
        log.warning("%s unavailable (%s); pausing it for %.1fs", kind, error, delay)

    def _observe(
        self,
        results: Sequence[Result],
        sent: Sequence[OutboxRow],
        new_states: Sequence[tuple[int, str, str]],
    ) -> None:
        """Counters once per (destination, outcome) and batch, not per message:
        label look-ups are a measurable share of the relay's per-message cost."""
        counts: Counter[tuple[str, str, str]] = Counter()
        now = datetime.now(UTC)
        for kind in {row.destination_kind for row in sent}:
            histogram = metrics.PUBLISH_LATENCY.labels(kind)
            for row in sent:
                if row.destination_kind == kind:
                    histogram.observe((now - row.created_at).total_seconds())
        for row in sent:
            counts[(row.destination_kind, row.destination, "sent")] += 1
        rows = {r.row.id: r.row for r in results}
        for row_id, state, destination in new_states:
            row = rows[row_id]
            counts[
                (row.destination_kind, destination, "retry" if state == "pending" else state)
            ] += 1
            if state != "pending":
                log.error("outbox message %s %s after its last attempt", row.message_id, state)
        for r in results:
            if r.outcome is Outcome.UNAVAILABLE:
                counts[(r.row.destination_kind, r.row.destination, "unavailable")] += 1
        for labels, n in counts.items():
            metrics.PUBLISHED.labels(*labels).inc(n)
        self._destinations.update(destination for _, destination, _ in counts)

    # -- gauges and retention -----------------------------------------------
    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.s.relay_stats_interval_s)
            if self.pool is None:
                continue
            try:
                async with self.pool.acquire() as conn:
                    stats = await self.store.stats(conn)
                    while (
                        purged := await self.store.purge_finished(
                            conn, self.s.relay_retention_s, 5000
                        )
                    ) > 0:
                        metrics.PURGED.inc(purged)
            except DATABASE_ERRORS as exc:
                log.warning("outbox stats failed: %r", exc)
                continue
            seen = {s.destination for s in stats}
            for idle in self._destinations - seen:
                for gauge in (
                    metrics.PENDING,
                    metrics.OLDEST_PENDING_AGE,
                    metrics.FAILED,
                    metrics.BLOCKED,
                ):
                    gauge.labels(idle).set(0)
            self._destinations |= seen
            for s in stats:
                metrics.PENDING.labels(s.destination).set(s.pending)
                metrics.OLDEST_PENDING_AGE.labels(s.destination).set(s.oldest_pending_age_s)
                metrics.FAILED.labels(s.destination).set(s.failed)
                metrics.BLOCKED.labels(s.destination).set(s.blocked)


async def _keep_session(_: asyncpg.Connection) -> None:
    """The pool's reset between two batches: nothing to undo. asyncpg rolls back
    a transaction left open before it calls this; its default reset would also
    send `RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()`, a round
    trip per batch for state the relay's pooled connections never create (the
    LISTEN is on a connection of its own, the settings are the startup ones)."""
