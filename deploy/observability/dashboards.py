"""Grafana dashboards of the system, built from code with Grafana's own typed
builders (grafana-foundation-sdk, pinned in pyproject.toml).

    uv run python deploy/observability/dashboards.py          # write dashboards/*.json
    uv run python deploy/observability/dashboards.py --check  # fail if they are stale

The committed JSON is what the local stack's verification evaluates against the
real Prometheus (every panel query must return data) and what the Helm chart
ships as ConfigMaps for Grafana's dashboard sidecar. Names follow the system's:
jobs are the components (order-service, order-relay, …).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from catalogue.services import PROCESSES, PROGRAMS

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SERVICES = "|".join(PROGRAMS)
APPS = "|".join(PROCESSES)
# The gateway of the live page (services/live-feed): its Prometheus job.
LIVE_FEED = "live-feed"
JOB_DEST = "{{job}} {{destination}}"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class PanelSpec:
    title: str
    queries: list[Query]
    unit: str = "short"
    stat: bool = False
    description: str = ""


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    rows: dict[str, list[PanelSpec]] = field(default_factory=dict)


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def p99(metric: str, by: str = "", selector: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return (
        f"histogram_quantile(0.99, sum by ({group}) "
        f"(rate({metric}_bucket{selector}[$__rate_interval])))"
    )


def p50(metric: str, by: str = "", selector: str = "") -> str:
    return p99(metric, by, selector).replace("0.99", "0.5", 1)


OVERVIEW = DashboardSpec(
    "reference-overview",
    "Reference system / Overview",
    "One order's way through the system: rate, end-to-end latency, errors.",
    {
        "Orders": [
            PanelSpec(
                "Orders placed",
                [
                    q(
                        'sum(rate(http_requests_total{job="order-service",handler="/orders",'
                        'method="POST",status="2xx"}[$__rate_interval]))',
                        "orders/s",
                    )
                ],
                unit="reqps",
            ),
            PanelSpec(
                "Order placed → points granted",
                [
                    q(p50("order_to_points_seconds"), "p50"),
                    q(p99("order_to_points_seconds"), "p99"),
                ],
                unit="s",
                description="order_to_points_seconds, observed by point-service on first delivery.",
            ),
            PanelSpec(
                "Order placed → confirmation mail delivered",
                [
                    q(p50("notification_end_to_end_seconds", selector='{kind="order"}'), "p50"),
                    q(p99("notification_end_to_end_seconds", selector='{kind="order"}'), "p99"),
                ],
                unit="s",
            ),
        ],
        "Errors and health": [
            PanelSpec(
                "HTTP 5xx ratio",
                [
                    q(
                        # `or … * 0`: a job without any 5xx yet shows 0, not "no data".
                        '(sum by (job) (rate(http_requests_total{status=~"5.."}[$__rate_interval]))'
                        " or sum by (job) (rate(http_requests_total[$__rate_interval])) * 0)"
                        " / sum by (job) (rate(http_requests_total[$__rate_interval]))",
                        "{{job}}",
                    )
                ],
                unit="percentunit",
            ),
            PanelSpec(
                "Messages dead-lettered (last hour)",
                [
                    q(
                        "sum by (source, reason) (increase(messaging_dead_lettered_total[1h]))",
                        "{{source}} {{reason}}",
                    )
                ],
                stat=True,
            ),
            PanelSpec(
                "Components up",
                [q(f'up{{job=~"{APPS}|{LIVE_FEED}|kafka|rabbitmq"}}', "{{job}}")],
                stat=True,
            ),
        ],
    },
)

RELAY = DashboardSpec(
    "reference-outbox-relay",
    "Reference system / Outbox relay",
    "The relay sidecars: backlog, publish latency, outcomes, failure log, blocked keys.",
    {
        "Backlog": [
            PanelSpec(
                "Pending rows",
                [q("sum by (job, destination) (outbox_pending_messages)", JOB_DEST)],
            ),
            PanelSpec(
                "Oldest pending row",
                [
                    q(
                        "max by (job, destination) (outbox_oldest_pending_age_seconds)",
                        "{{job}} {{destination}}",
                    )
                ],
                unit="s",
            ),
            PanelSpec(
                "Commit → broker ack",
                [
                    q(p50("outbox_commit_to_publish_seconds", "job"), "{{job}} p50"),
                    q(p99("outbox_commit_to_publish_seconds", "job"), "{{job}} p99"),
                ],
                unit="s",
            ),
        ],
        "Outcomes": [
            PanelSpec(
                "Publish attempts by outcome",
                [
                    q(
                        "sum by (job, outcome) (rate(outbox_messages_total[$__rate_interval]))",
                        "{{job}} {{outcome}}",
                    )
                ],
                unit="ops",
            ),
            PanelSpec(
                "Failure log (rows to re-drive)",
                [q("sum by (job, destination) (outbox_failed_messages)", JOB_DEST)],
                stat=True,
            ),
            PanelSpec(
                "Rows blocked behind a failing key",
                [q("sum by (job, destination) (outbox_blocked_messages)", JOB_DEST)],
            ),
            PanelSpec(
                "Broker reachable",
                [
                    q(
                        "min by (job, destination_kind) (outbox_broker_available)",
                        "{{job}} {{destination_kind}}",
                    )
                ],
                stat=True,
            ),
            PanelSpec(
                "Batch size (p50)",
                [q(p50("outbox_batch_size_messages", "job"), "{{job}}")],
            ),
        ],
    },
)

CONSUMERS = DashboardSpec(
    "reference-consumers",
    "Reference system / Consumers",
    "point-service and notification-service: lag, processing time, duplicates, dead letters.",
    {
        "Kafka": [
            PanelSpec(
                "Consumer lag by partition",
                [
                    q(
                        "sum by (group, partition) (kafka_consumer_lag_messages)",
                        "{{group}} p{{partition}}",
                    )
                ],
            ),
            PanelSpec(
                "Messages processed",
                [
                    q(
                        "sum by (app_name, handler, status) "
                        "(rate(faststream_received_processed_messages_total[$__rate_interval]))",
                        "{{app_name}} {{handler}} {{status}}",
                    )
                ],
                unit="ops",
            ),
            PanelSpec(
                "Processing time (p99)",
                [
                    q(
                        p99("faststream_received_processed_messages_duration_seconds", "handler"),
                        "{{handler}}",
                    )
                ],
                unit="s",
            ),
        ],
        "Effects": [
            PanelSpec(
                "Duplicates skipped (last hour)",
                [
                    q(
                        "sum by (consumer) (increase(messaging_duplicates_skipped_total[1h]))",
                        "{{consumer}}",
                    )
                ],
                stat=True,
            ),
            PanelSpec(
                "Notification outcomes",
                [
                    q(
                        "sum by (kind, outcome) "
                        "(rate(notification_deliveries_total[$__rate_interval]))",
                        "{{kind}} {{outcome}}",
                    )
                ],
                unit="ops",
            ),
            PanelSpec(
                "Balance requests by outcome",
                [
                    q(
                        "sum by (outcome) (rate(points_balance_requests_total[$__rate_interval]))",
                        "{{outcome}}",
                    )
                ],
                unit="reqps",
            ),
            PanelSpec(
                "Dead-letter and parking-lot queues",
                [
                    q(
                        "sum by (queue) (rabbitmq_detailed_queue_messages"
                        '{queue=~".+[.](parking-lot|dead-letter)"})',
                        "{{queue}}",
                    )
                ],
            ),
            PanelSpec(
                "Dead-letter topics: records in (last hour)",
                [
                    q(
                        "sum by (topic) (increase("
                        "kafka_server_brokertopicmetrics_messagesinpersec_total"
                        '{topic=~".+[.]dlt"}[1h]))',
                        "{{topic}}",
                    )
                ],
                description="Kafka consumers dead-letter to <topic>.<group>.dlt, a log"
                " rather than a queue: it has no depth (MessagesDeadLettered runbook).",
            ),
        ],
    },
)

BROKERS = DashboardSpec(
    "reference-brokers",
    "Reference system / Brokers",
    "Kafka (JMX exporter) and RabbitMQ (its prometheus plugin).",
    {
        "Kafka": [
            PanelSpec(
                "Messages in by topic",
                [
                    q(
                        "sum by (topic) (rate("
                        'kafka_server_brokertopicmetrics_messagesinpersec_total{topic!=""}'
                        "[$__rate_interval]))",
                        "{{topic}}",
                    )
                ],
                unit="ops",
            ),
            PanelSpec(
                "Bytes in and out",
                [
                    q(
                        "sum(rate(kafka_server_brokertopicmetrics_bytesinpersec_total"
                        '{topic=""}[$__rate_interval]))',
                        "in",
                    ),
                    q(
                        "sum(rate(kafka_server_brokertopicmetrics_bytesoutpersec_total"
                        '{topic=""}[$__rate_interval]))',
                        "out",
                    ),
                ],
                unit="Bps",
            ),
            PanelSpec(
                "Under-replicated and offline partitions",
                [
                    q("sum(kafka_server_replicamanager_underreplicatedpartitions)", "under-rep."),
                    q("sum(kafka_controller_kafkacontroller_offlinepartitionscount)", "offline"),
                ],
                stat=True,
            ),
        ],
        "RabbitMQ": [
            PanelSpec(
                "Queue depth",
                [q("sum by (queue) (rabbitmq_detailed_queue_messages)", "{{queue}}")],
            ),
            PanelSpec(
                "Messages received and confirmed",
                [
                    q(
                        "sum(rate(rabbitmq_global_messages_received_total[$__rate_interval]))",
                        "received",
                    ),
                    q(
                        "sum(rate(rabbitmq_global_messages_confirmed_total[$__rate_interval]))",
                        "confirmed",
                    ),
                ],
                unit="ops",
            ),
            PanelSpec(
                "Connections and consumers",
                [
                    q("sum(rabbitmq_connections)", "connections"),
                    q("sum(rabbitmq_global_consumers)", "consumers"),
                ],
            ),
        ],
    },
)


def notices(outcome: str, window: str = "$__rate_interval", by: str = "job, kind") -> str:
    """Activity notices of one outcome per `by`; `or … * 0` shows 0 for every
    series that has notices at all, so "none dropped" is a 0, not "no data"."""
    fn = "increase" if window == "1h" else "rate"
    return (
        f'sum by ({by}) ({fn}(activity_notices_total{{outcome="{outcome}"}}[{window}]))'
        f" or sum by ({by}) ({fn}(activity_notices_total[{window}])) * 0"
    )


ACTIVITY = DashboardSpec(
    "reference-activity",
    "Reference system / Activity notices and live feed",
    "Best-effort activity notices on Redis pub/sub (published or dropped, never retried)"
    " and the live feed that streams them to browsers.",
    {
        "Activity notices (Redis pub/sub, lossy by design)": [
            PanelSpec(
                "Notices published",
                [q(notices("published"), "{{job}} {{kind}}")],
                unit="ops",
                description='activity_notices_total{outcome="published"}: published to'
                " activity.<program> after the business transaction committed.",
            ),
            PanelSpec(
                "Notices dropped",
                [q(notices("dropped"), "{{job}} {{kind}}")],
                unit="ops",
                description="Not published (Redis unreachable, slower than REDIS_TIMEOUT_MS):"
                " counted and forgotten; the order is unaffected (ActivityNoticesDropped).",
            ),
            PanelSpec(
                "Notices dropped (last hour)",
                [q(notices("dropped", "1h", "job"), "{{job}}")],
                stat=True,
            ),
        ],
        "Live feed": [
            PanelSpec(
                "Browsers connected",
                [q(f'sum by (job) (live_feed_clients{{job="{LIVE_FEED}"}})', "SSE clients")],
                description="live_feed_clients: event streams open now, over every replica.",
            ),
            PanelSpec(
                "Notices published and received",
                [
                    q(
                        'sum(rate(activity_notices_total{outcome="published"}[$__rate_interval]))',
                        "published by the services",
                    ),
                    q(
                        f'sum(rate(live_feed_notices_total{{job="{LIVE_FEED}"}}'
                        "[$__rate_interval]))",
                        "received by the live feed",
                    ),
                ],
                unit="ops",
                description="Each replica of the live feed receives every notice: with one,"
                " the two lines meet; received below published is pub/sub's loss (a"
                " subscriber away or too slow).",
            ),
            PanelSpec(
                "Live feed up",
                [q(f'up{{job="{LIVE_FEED}"}}', "{{instance}}")],
                stat=True,
                description="Redis itself exports no metrics here (no exporter is shipped):"
                " its trouble shows as dropped notices and as the live feed not ready.",
            ),
        ],
    },
)

DASHBOARDS = (OVERVIEW, RELAY, CONSUMERS, BROKERS, ACTIVITY)


def build(spec: DashboardSpec) -> Dashboard:
    dashboard = (
        Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(["reference-architecture", "generated"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for row, panels in spec.rows.items():
        dashboard = dashboard.with_row(Row(row))
        for panel in panels:
            builder = (Stat() if panel.stat else Timeseries()).title(panel.title)
            builder = builder.unit(panel.unit).datasource(DATASOURCE).height(8).span(8)
            if panel.description:
                builder = builder.description(panel.description)
            for ref, query in zip("ABCDEFGH", panel.queries, strict=False):
                builder = builder.with_target(
                    Dataquery().ref_id(ref).expr(query.expr).legend_format(query.legend or "__auto")
                )
            dashboard = dashboard.with_panel(builder)
    return dashboard


def render(spec: DashboardSpec) -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(build(spec).build()) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON files are stale")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    stale = []
    for spec in DASHBOARDS:
        path = OUT / f"{spec.uid}.json"
        text = render(spec)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale dashboards: {', '.join(stale)}; run make dashboards", file=sys.stderr)
        return 1
    print(f"dashboards: {len(DASHBOARDS)} {'current' if args.check else 'written'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
