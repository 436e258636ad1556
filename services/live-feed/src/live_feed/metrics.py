"""The gateway's metrics (prometheus-client's default registry, /metrics).
The chart's dashboards read `live_feed_clients` and `live_feed_notices_total`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CLIENTS = Gauge("live_feed_clients", "Browsers connected to /events now")
NOTICES = Counter(
    "live_feed_notices_total", "Activity notices received from Redis (each sent to every client)"
)
INVALID = Counter(
    "live_feed_invalid_notices_total", "Messages on activity.* that were not an activity notice"
)
OVERFLOWS = Counter(
    "live_feed_client_overflows_total",
    "Times a client fell a whole queue behind: its queued notices were dropped and it was "
    "told to reload /state",
)
SUBSCRIBED = Gauge(
    "live_feed_subscribed", "1 while subscribed to activity.* on Redis, else 0 (feed off: 0)"
)
