"""What runs in the local stack: each component's command, ports, readiness probe
and one-time preparation (initdb, Kafka storage format, rendered config files).

Components are plain data; supervisord runs them (see supervisor.py) and
``cli.py`` orders the steps.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from stackctl import probes
from stackctl.credentials import Credentials
from stackctl.settings import StackSettings

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
APT_POSTGRES = "apt-get install postgresql-15 (or run `make system-deps` as root)"
APT_RABBITMQ = "apt-get install rabbitmq-server (or run `make system-deps` as root)"
APT_REDIS = "apt-get install redis-server (or run `make system-deps` as root)"
MAKE_TOOLS = "run `make tools`"


class PrerequisiteMissingError(Exception):
    """A program the stack needs is not installed; the message says how to get it."""


@dataclass(frozen=True)
class Component:
    name: str
    command: list[str]
    ports: Mapping[str, int]
    probe: Callable[[], Awaitable[None]]
    prepare: Callable[[], None] = lambda: None
    environment: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    directory: Path | None = None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 30
    # Programs that must be installed, and how to get each one.
    needs: Mapping[str, str] = field(default_factory=dict)
    # Services (later issues) start only once the infrastructure is ready.
    autostart: bool = True
    priority: int = 100

    def check_prerequisites(self) -> None:
        for program, how_to_get in self.needs.items():
            if shutil.which(program) is None and not Path(program).exists():
                raise PrerequisiteMissingError(f"{self.name}: {program} not found: {how_to_get}")


def render(template: Path, target: Path, values: Mapping[str, object]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    text = Template(template.read_text()).substitute({k: str(v) for k, v in values.items()})
    target.write_text(text)


class LocalStack:
    """Builds the component list for one settings object and its credentials."""

    def __init__(self, settings: StackSettings, credentials: Credentials) -> None:
        self.s = settings
        self.creds = credentials
        self.running_as_root = os.geteuid() == 0

    # -- shared values ----------------------------------------------------
    def template_values(self) -> dict[str, object]:
        values: dict[str, object] = dict(self.s.model_dump(exclude={"root"}))
        values.update(
            kafka_data_dir=self.s.state_dir / "kafka" / "data",
            observability_dir=self.s.root / "deploy" / "observability",
            rabbitmq_admin_user=self.creds.rabbitmq_admin.user,
            rabbitmq_admin_password=self.creds.rabbitmq_admin.password,
        )
        return values

    def postgres_dsn(self, database: str = "postgres", user: str | None = None) -> str:
        account = self.creds.postgres.get(user) if user else self.creds.postgres_admin
        if account is None:
            raise KeyError(user)
        return (
            f"postgresql://{account.user}:{account.password}"
            f"@{self.s.host}:{self.s.postgres_port}/{database}"
        )

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.s.host}:{self.s.kafka_port}"

    @property
    def rabbitmq_management_url(self) -> str:
        return f"http://{self.s.host}:{self.s.rabbitmq_management_port}"

    def components(self) -> list[Component]:
        return [
            self.postgres(),
            self.epmd(),
            self.rabbitmq(),
            self.kafka(),
            self.prometheus(),
            self.jaeger(),
            self.mailpit(),
            self.redis(),
        ]

    # -- PostgreSQL ---------------------------------------------------------
    def postgres(self) -> Component:
        data = self.s.state_dir / "postgres" / "data"
        user = "postgres" if self.running_as_root else None

        def prepare() -> None:
            if (data / "PG_VERSION").exists():
                return
            data.mkdir(parents=True, exist_ok=True)
            pwfile = data.parent / "initdb.pw"
            pwfile.write_text(self.creds.postgres_admin.password + "\n")
            if user:
                _give_to_user(data.parent, user)
            cmd = [
                str(PG_BIN / "initdb"),
                f"--pgdata={data}",
                f"--username={self.creds.postgres_admin.user}",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
            try:
                _run_as(user, cmd)
            finally:
                pwfile.unlink(missing_ok=True)

        return Component(
            name="postgres",
            command=[
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.s.postgres_port),
                "-c",
                f"listen_addresses={self.s.host}",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=300",
                "-c",
                "logging_collector=off",
            ],
            ports={"postgres": self.s.postgres_port},
            probe=lambda: probes.postgres_accepts(self.postgres_dsn()),
            prepare=prepare,
            user=user,
            needs={str(PG_BIN / "postgres"): APT_POSTGRES, str(PG_BIN / "initdb"): APT_POSTGRES},
            # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for clients.
            stopsignal="INT",
            priority=10,
        )

    # -- RabbitMQ -----------------------------------------------------------
    def epmd(self) -> Component:
        # Supervised on its own port: otherwise RabbitMQ forks a daemon epmd that
        # outlives `make down` and would share the developer's own epmd on 4369.
        return Component(
            name="epmd",
            command=[
                "epmd",
                "-port",
                str(self.s.epmd_port),
                "-address",
                self.s.host,
            ],
            ports={"epmd": self.s.epmd_port},
            probe=lambda: probes.tcp_open(self.s.host, self.s.epmd_port),
            needs={"epmd": APT_RABBITMQ},
            priority=10,
        )

    def rabbitmq_environment(self) -> dict[str, str]:
        return rabbitmq_node_environment(
            self.s.state_dir / "rabbitmq",
            "stack@localhost",
            self.s.host,
            self.s.rabbitmq_dist_port,
            self.s.epmd_port,
        )

    def rabbitmq(self) -> Component:
        base = self.s.state_dir / "rabbitmq"

        def prepare() -> None:
            for sub in ("home", "mnesia", "log"):
                (base / sub).mkdir(parents=True, exist_ok=True)
            render(
                self.s.config_dir / "rabbitmq.conf", base / "rabbitmq.conf", self.template_values()
            )
            (base / "advanced.config").write_text("[].\n")
            (base / "rabbitmq-env.conf").write_text("")
            (base / "enabled_plugins").write_text(
                "[rabbitmq_management,rabbitmq_prometheus,rabbitmq_stomp].\n"
            )

        server = str(RABBITMQ_BIN / "rabbitmq-server")
        admin = (self.creds.rabbitmq_admin.user, self.creds.rabbitmq_admin.password)
        health = f"{self.rabbitmq_management_url}/api/health/checks/virtual-hosts"

        async def probe() -> None:
            await probes.tcp_open(self.s.host, self.s.rabbitmq_port)
            await probes.http_ok(health, auth=admin)

        return Component(
            name="rabbitmq",
            command=[server],
            ports={
                "amqp": self.s.rabbitmq_port,
                "dist": self.s.rabbitmq_dist_port,
                "management": self.s.rabbitmq_management_port,
                "prometheus": self.s.rabbitmq_prometheus_port,
                "stomp": self.s.rabbitmq_stomp_port,
            },
            probe=probe,
            prepare=prepare,
            environment=self.rabbitmq_environment(),
            needs={server: APT_RABBITMQ},
            stopwaitsecs=60,
            priority=20,
        )

    # -- Kafka --------------------------------------------------------------
    @property
    def kafka_home(self) -> Path:
        return self.s.tools_dir / "kafka"

    def kafka_java_command(self, main_class: str, *args: str) -> list[str]:
        base = self.s.state_dir / "kafka"
        return [
            "java",
            f"-Xms{self.s.kafka_heap}",
            f"-Xmx{self.s.kafka_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={base / 'log4j2.properties'}",
            "-cp",
            f"{self.kafka_home / 'libs'}/*",
            main_class,
            *args,
        ]

    def kafka(self) -> Component:
        base = self.s.state_dir / "kafka"
        properties = base / "server.properties"

        def prepare() -> None:
            if not (self.kafka_home / "libs").is_dir():
                raise PrerequisiteMissingError(
                    f"{self.kafka_home}/libs is missing: run `make tools`"
                )
            values = self.template_values()
            render(self.s.config_dir / "kafka-server.properties", properties, values)
            render(
                self.s.config_dir / "kafka-log4j2.properties", base / "log4j2.properties", values
            )
            shutil.copyfile(
                self.s.config_dir / "kafka-jmx-exporter.yaml", base / "jmx-exporter.yaml"
            )
            if (base / "data" / "meta.properties").exists():
                return
            cluster_id_file = base / "cluster-id"
            if not cluster_id_file.exists():
                raw = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
                cluster_id_file.write_text(raw)
            cmd = self.kafka_java_command(
                "kafka.tools.StorageTool",
                "format",
                # One argument with `=`: a random id may begin with "-", which
                # as a separate argument would be read as an option (1 in 64).
                f"--cluster-id={cluster_id_file.read_text().strip()}",
                "-c",
                str(properties),
                "--ignore-formatted",
            )
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)

        agent = self.s.tools_dir / "jmx_prometheus_javaagent.jar"
        command = self.kafka_java_command("kafka.Kafka", str(properties))
        command.insert(
            1,
            f"-javaagent:{agent}={self.s.host}:{self.s.kafka_jmx_exporter_port}:"
            f"{base / 'jmx-exporter.yaml'}",
        )

        async def probe() -> None:
            await probes.kafka_cluster_answers(self.kafka_bootstrap)
            await probes.tcp_open(self.s.host, self.s.kafka_jmx_exporter_port)

        return Component(
            name="kafka",
            command=command,
            ports={
                "kafka": self.s.kafka_port,
                "controller": self.s.kafka_controller_port,
                "jmx-exporter": self.s.kafka_jmx_exporter_port,
            },
            probe=probe,
            prepare=prepare,
            needs={"java": "apt-get install openjdk-17-jre-headless", str(agent): MAKE_TOOLS},
            stopwaitsecs=60,
            priority=20,
        )

    # -- Prometheus ---------------------------------------------------------
    def prometheus(self) -> Component:
        base = self.s.state_dir / "prometheus"
        binary = "prometheus"

        def prepare() -> None:
            render(
                self.s.config_dir / "prometheus.yml",
                base / "prometheus.yml",
                self.template_values(),
            )
            (base / "data").mkdir(parents=True, exist_ok=True)

        url = f"http://{self.s.host}:{self.s.prometheus_port}"
        return Component(
            name="prometheus",
            command=[
                binary,
                f"--config.file={base / 'prometheus.yml'}",
                f"--storage.tsdb.path={base / 'data'}",
                f"--web.listen-address={self.s.host}:{self.s.prometheus_port}",
                "--storage.tsdb.retention.time=3d",
                "--web.enable-lifecycle",
            ],
            ports={"http": self.s.prometheus_port},
            probe=lambda: probes.http_ok(f"{url}/-/ready"),
            prepare=prepare,
            needs={binary: "apt-get install prometheus"},
            priority=30,
        )

    # -- Jaeger -------------------------------------------------------------
    def jaeger(self) -> Component:
        base = self.s.state_dir / "jaeger"
        binary = self.s.tools_dir / "bin" / "jaeger"

        def prepare() -> None:
            render(self.s.config_dir / "jaeger.yaml", base / "jaeger.yaml", self.template_values())

        async def probe() -> None:
            await probes.http_ok(f"http://{self.s.host}:{self.s.jaeger_health_port}/status")
            await probes.http_ok(f"http://{self.s.host}:{self.s.jaeger_query_port}/api/services")
            await probes.tcp_open(self.s.host, self.s.jaeger_otlp_grpc_port)

        return Component(
            name="jaeger",
            command=[str(binary), "--config", f"file:{base / 'jaeger.yaml'}"],
            ports={
                "otlp-grpc": self.s.jaeger_otlp_grpc_port,
                "otlp-http": self.s.jaeger_otlp_http_port,
                "query-http": self.s.jaeger_query_port,
                "query-grpc": self.s.jaeger_query_grpc_port,
                "health": self.s.jaeger_health_port,
                "metrics": self.s.jaeger_metrics_port,
            },
            probe=probe,
            prepare=prepare,
            needs={str(binary): MAKE_TOOLS},
            priority=30,
        )

    # -- Mailpit ------------------------------------------------------------
    def mailpit(self) -> Component:
        """The mail catcher: a real SMTP server that keeps what it receives and
        shows it over an HTTP API; its chaos triggers make SMTP fail on demand."""
        base = self.s.state_dir / "mailpit"
        binary = self.s.tools_dir / "bin" / "mailpit"
        url = f"http://{self.s.host}:{self.s.mailpit_http_port}"
        return Component(
            name="mailpit",
            command=[
                str(binary),
                "--smtp",
                f"{self.s.host}:{self.s.mailpit_smtp_port}",
                "--listen",
                f"{self.s.host}:{self.s.mailpit_http_port}",
                "--database",
                str(base / "mailpit.db"),
                "--max",
                "200000",
                "--smtp-disable-rdns",
                "--enable-chaos",
                "--disable-version-check",
            ],
            ports={"smtp": self.s.mailpit_smtp_port, "http": self.s.mailpit_http_port},
            probe=lambda: probes.http_ok(f"{url}/readyz"),
            prepare=lambda: base.mkdir(parents=True, exist_ok=True),
            needs={str(binary): MAKE_TOOLS},
            priority=30,
        )

    # -- Redis --------------------------------------------------------------
    def redis(self) -> Component:
        """Redis pub/sub for the activity feed: nothing persisted (no RDB, no
        AOF), a password, loopback only. A notice published while nobody
        listens is gone; so is everything on a restart, by design."""
        base = self.s.state_dir / "redis"
        config = base / "redis.conf"

        def prepare() -> None:
            base.mkdir(parents=True, exist_ok=True)
            lines = [
                f"bind {self.s.host}",
                f"port {self.s.redis_port}",
                "protected-mode yes",
                'save ""',
                "appendonly no",
                f"dir {base}",
                'logfile ""',
                f"requirepass {self.creds.redis_password}",
                # A subscriber that falls this far behind is disconnected
                # rather than growing Redis's memory: the feed is lossy anyway.
                "client-output-buffer-limit pubsub 8mb 2mb 10",
            ]
            fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(lines) + "\n")

        return Component(
            name="redis",
            command=["/usr/bin/redis-server", str(config)],
            ports={"redis": self.s.redis_port},
            probe=lambda: probes.redis_pong(
                self.s.host, self.s.redis_port, self.creds.redis_password
            ),
            prepare=prepare,
            needs={"/usr/bin/redis-server": APT_REDIS},
            priority=30,
        )


def rabbitmq_node_environment(
    base: Path, node: str, host: str, dist_port: int, epmd_port: int
) -> dict[str, str]:
    """A RabbitMQ node whose every file is under `base` (its rabbitmq.conf,
    advanced.config, rabbitmq-env.conf and enabled_plugins written there),
    its Erlang distribution and epmd on `host` only."""
    # Erlang distribution listens on every interface unless told otherwise,
    # whatever rabbitmq.conf says; the CLI tools (rabbitmqctl through
    # `stackctl exec rabbitmq`) start a distribution listener of their own.
    loopback_dist = f"-kernel inet_dist_use_interface {_erlang_ip(host)}"
    return {
        "HOME": str(base / "home"),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback_dist,
        "RABBITMQ_CTL_ERL_ARGS": loopback_dist,
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": host,
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        # A killed VM's crash dump goes with the state, not into the checkout.
        "ERL_CRASH_DUMP": str(base / "log" / "erl_crash.dump"),
    }


def _erlang_ip(address: str) -> str:
    """An IPv4 address as an Erlang tuple: 127.0.0.1 -> {127,0,0,1}. (The stack's
    host is IPv4: Kafka's listeners and every URL are written for it.)"""
    return "{" + ",".join(map(str, ipaddress.IPv4Address(address).packed)) + "}"


def _give_to_user(path: Path, user: str) -> None:
    """Hand a state directory to an unprivileged user (PostgreSQL refuses root).

    The user must also be able to traverse every ancestor directory; a private
    temporary directory (mode 0700, as ``mktemp -d`` makes) would stop it, so
    the search bit is added where it is missing, and said so.
    """
    entry = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
    for ancestor in path.resolve().parents:
        mode = ancestor.stat().st_mode
        if not mode & 0o001:
            print(f"stackctl: adding o+x to {ancestor} so that user {user} can reach {path}")
            ancestor.chmod(mode | 0o001)


def _run_as(user: str | None, cmd: list[str]) -> None:
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
