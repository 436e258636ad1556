"""The system's own processes in the local stack: one-shot jobs (topology
provisioning, migrations), the services with their outbox relays, and the
live feed (the gateway between Redis pub/sub and the live page).

Each process gets exactly the environment variables its settings class reads,
the same ones the Helm chart sets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from catalogue.services import RELAYED, SERVICES, program, relay_program
from stackctl import probes
from stackctl.components import Component, LocalStack

LIVE_FEED = "live-feed"


@dataclass(frozen=True)
class Job:
    """A command that must succeed once before the services start."""

    name: str
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)


class Apps:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.s = stack.s
        self.bin = self.s.root / ".venv" / "bin"

    # -- environment groups, one per settings group in messaging.settings ---
    def telemetry_env(self, name: str) -> dict[str, str]:
        return {
            "OTEL_SERVICE_NAME": name,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{self.s.host}:{self.s.jaeger_otlp_grpc_port}",
            "LOG_LEVEL": "INFO",
        }

    def database_env(self, service: str) -> dict[str, str]:
        account = self.stack.creds.postgres[service]
        return {
            "DATABASE_HOST": self.s.host,
            "DATABASE_PORT": str(self.s.postgres_port),
            "DATABASE_NAME": service,
            "DATABASE_USER": account.user,
            "DATABASE_PASSWORD": account.password,
        }

    def kafka_env(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.stack.kafka_bootstrap}

    def rabbitmq_env(self, service: str | None) -> dict[str, str]:
        account = self.stack.creds.rabbitmq[service] if service else self.stack.creds.rabbitmq_admin
        return {
            "RABBITMQ_HOST": self.s.host,
            "RABBITMQ_PORT": str(self.s.rabbitmq_port),
            "RABBITMQ_VHOST": "/",
            "RABBITMQ_USER": account.user,
            "RABBITMQ_PASSWORD": account.password,
        }

    def redis_env(self) -> dict[str, str]:
        return {
            "REDIS_HOST": self.s.host,
            "REDIS_PORT": str(self.s.redis_port),
            "REDIS_PASSWORD": self.stack.creds.redis_password,
        }

    def http_env(self, port: int) -> dict[str, str]:
        return {"HTTP_HOST": self.s.host, "HTTP_PORT": str(port)}

    # -- processes ----------------------------------------------------------
    def service(self, name: str, command: list[str], env: dict[str, str], port: int) -> Component:
        url = f"http://{self.s.host}:{port}/health/ready"
        return Component(
            name=name,
            command=command,
            ports={"http": port},
            probe=lambda: probes.http_ok(url),
            environment=env,
            needs={command[0]: "run `make venv`"},
            autostart=False,
            stopwaitsecs=30,
            priority=50,
        )

    def relay(self, service: str, port: int) -> Component:
        env = {
            **self.database_env(service),
            **self.kafka_env(),
            **self.rabbitmq_env(service),
            **self.telemetry_env(relay_program(service)),
            **self.http_env(port),
            "OUTBOX_TABLE": "outbox",
        }
        return self.service(
            relay_program(service), [str(self.bin / "outbox-relay"), "run"], env, port
        )

    def order_service_env(self) -> dict[str, str]:
        return {
            **self.database_env("order"),
            **self.rabbitmq_env("order"),
            **self.telemetry_env(program("order")),
            **self.http_env(self.s.order_service_port),
            **self.redis_env(),
        }

    def point_service_env(self) -> dict[str, str]:
        return {
            **self.database_env("point"),
            **self.kafka_env(),
            **self.rabbitmq_env("point"),
            **self.telemetry_env(program("point")),
            **self.http_env(self.s.point_service_port),
            **self.redis_env(),
        }

    def notification_service_env(self) -> dict[str, str]:
        return {
            **self.database_env("notification"),
            **self.rabbitmq_env("notification"),
            **self.telemetry_env(program("notification")),
            **self.http_env(self.s.notification_service_port),
            **self.redis_env(),
            "SMTP_HOST": self.s.host,
            "SMTP_PORT": str(self.s.mailpit_smtp_port),
        }

    def live_feed_env(self) -> dict[str, str]:
        def url(port: int) -> str:
            return f"http://{self.s.host}:{port}"

        return {
            **self.redis_env(),
            **self.telemetry_env(LIVE_FEED),
            **self.http_env(self.s.live_feed_port),
            "ORDER_SERVICE_URL": url(self.s.order_service_port),
            "POINT_SERVICE_URL": url(self.s.point_service_port),
            "NOTIFICATION_SERVICE_URL": url(self.s.notification_service_port),
            "TRACE_UI_URL": url(self.s.jaeger_query_port),
            "MAIL_UI_URL": url(self.s.mailpit_http_port),
        }

    def service_env(self, service: str) -> dict[str, str]:
        """The environment of the service's program (and of its migrations)."""
        env: Callable[[], dict[str, str]] = getattr(self, f"{service}_service_env")
        return env()

    def components(self) -> list[Component]:
        """Each service's program, its outbox relay where it has one, and the
        live feed."""
        components = []
        for service in SERVICES:
            components.append(
                self.service(
                    program(service),
                    [str(self.bin / program(service)), "serve"],
                    self.service_env(service),
                    getattr(self.s, f"{service}_service_port"),
                )
            )
            if service in RELAYED:
                components.append(self.relay(service, getattr(self.s, f"{service}_relay_port")))
        components.append(
            self.service(
                LIVE_FEED,
                [str(self.bin / LIVE_FEED), "serve"],
                self.live_feed_env(),
                self.s.live_feed_port,
            )
        )
        return components

    def jobs(self) -> list[Job]:
        return [
            Job(
                "provision-topology",
                [str(self.bin / "provision-topology")],
                {**self.kafka_env(), **self.rabbitmq_env(None)},
            ),
            *(
                Job(
                    f"{service}-migrate",
                    [str(self.bin / program(service)), "migrate"],
                    self.service_env(service),
                )
                for service in SERVICES
            ),
        ]
