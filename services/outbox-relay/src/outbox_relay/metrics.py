"""The relay's Prometheus metrics. Label values are bounded: destinations are
the few topics and exchanges of one service, outcomes a fixed set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter(
    "outbox_messages_total",
    "Publish attempts of outbox messages by outcome (sent, retry, failed, dropped, unavailable).",
    ["destination_kind", "destination", "outcome"],
)
PUBLISH_LATENCY = Histogram(
    "outbox_commit_to_publish_seconds",
    "From the business transaction's commit (row creation) to the broker's acknowledgement.",
    ["destination_kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
BATCH_DURATION = Histogram(
    "outbox_batch_duration_seconds",
    "Claim, publish and record of one batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "outbox_batch_size_messages",
    "Rows claimed per batch.",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500),
)
PENDING = Gauge("outbox_pending_messages", "Rows waiting to be published.", ["destination"])
OLDEST_PENDING_AGE = Gauge(
    "outbox_oldest_pending_age_seconds",
    "Age of the oldest row waiting to be published.",
    ["destination"],
)
FAILED = Gauge(
    "outbox_failed_messages",
    "Rows in the failure log (state failed), waiting for an operator to re-drive them.",
    ["destination"],
)
BLOCKED = Gauge(
    "outbox_blocked_messages",
    "Pending rows held back behind an earlier failed or retrying row of the same key.",
    ["destination"],
)
BROKER_AVAILABLE = Gauge(
    "outbox_broker_available",
    "1 while the relay can reach the broker, 0 while it pauses it after a failure.",
    ["destination_kind"],
)
PURGED = Counter(
    "outbox_purged_messages_total", "Finished rows deleted after the retention period."
)
DATABASE_ERRORS = Counter(
    "outbox_database_errors_total", "Failures talking to the outbox database."
)
BATCH_ERRORS = Counter(
    "outbox_batch_errors_total", "Batches aborted by an unexpected error (a bug: see the logs)."
)
