"""The one settings class of the stack controller.

Every port is configurable through ``STACK_<NAME>`` environment variables. The
defaults sit in 30000-32767: below Linux's ephemeral range (so an outgoing
connection never steals one) and away from the standard ports of a developer's
own PostgreSQL (5432), RabbitMQ (5672, 15672, 25672, epmd 4369), Kafka (9092,
29092) and Prometheus (9090).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _find_root() -> Path:
    """The repository root: the nearest directory upward holding deploy/local/config."""
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "deploy" / "local" / "config").is_dir():
            return candidate
    return Path(__file__).resolve().parents[4]


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STACK_", frozen=True)

    root: Path = Field(default_factory=_find_root)
    # All runtime state (data, logs, rendered configs, credentials).
    state_dir: Path = Field(default_factory=lambda data: data["root"] / ".stack")
    host: str = "127.0.0.1"

    postgres_port: int = 30432
    rabbitmq_port: int = 30672
    rabbitmq_dist_port: int = 30673
    rabbitmq_management_port: int = 30674
    rabbitmq_prometheus_port: int = 30692
    rabbitmq_stomp_port: int = 30613
    epmd_port: int = 30369
    kafka_port: int = 30092
    kafka_controller_port: int = 30093
    kafka_jmx_exporter_port: int = 30404
    prometheus_port: int = 30090
    jaeger_otlp_grpc_port: int = 30317
    jaeger_otlp_http_port: int = 30318
    jaeger_query_port: int = 30686
    jaeger_query_grpc_port: int = 30685
    jaeger_health_port: int = 30133
    jaeger_metrics_port: int = 30888

    # The system's own processes.
    order_service_port: int = 30800
    order_relay_port: int = 30801
    point_service_port: int = 30810
    point_relay_port: int = 30811
    notification_service_port: int = 30820
    mailpit_smtp_port: int = 30825
    mailpit_http_port: int = 30826
    redis_port: int = 30379
    live_feed_port: int = 30830

    kafka_heap: str = "512m"
    # How long `up` waits for one component to become ready before failing.
    ready_timeout_s: float = 90.0
    # How long `down` waits for the supervisor to stop everything.
    stop_timeout_s: float = 90.0

    @cached_property
    def tools_dir(self) -> Path:
        return self.root / ".tools"

    @cached_property
    def config_dir(self) -> Path:
        return self.root / "deploy" / "local" / "config"

    @cached_property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def supervisor_socket(self) -> Path:
        return self.state_dir / "supervisor.sock"
