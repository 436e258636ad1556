"""Every secure-connection option against the real thing.

A throw-away CA (trustme) signs the server certificates; separate, short-lived
servers of the binaries the local stack installed (stackctl.components) are
started for TLS on free ports beside the stack (which need not run):

- PostgreSQL with `ssl=on` and `hostssl` lines only (plaintext is refused);
- Mailpit requiring STARTTLS and a login, Mailpit with implicit TLS (SMTPS),
  and a plain Mailpit that offers no STARTTLS at all;
- RabbitMQ with a TLS listener only (AMQPS) and its management API on https;
- Kafka (KRaft, one node) with an SSL listener and a SASL_SSL listener taking
  SCRAM-SHA-256, SCRAM-SHA-512 (users added when the storage is formatted)
  and PLAIN.

The project's own settings and client builders connect to them, a round trip
is made through each, and a client trusting another CA is refused.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar

import aio_pika
import asyncpg
import httpx
import pytest
import trustme
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from cryptography.hazmat.primitives import serialization
from faststream.kafka import KafkaBroker
from faststream.rabbit import RabbitBroker, RabbitQueue
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import MetaData, insert, text

from catalogue import accounts, topology
from catalogue.accounts import AccountsSettings
from catalogue.contracts.notifications import NotificationKind, SendNotification
from catalogue.contracts.points import GetPointBalance, PointBalance
from catalogue.services import SERVICES
from catalogue.topology import NOTIFICATION_PARKING_LOT, NOTIFICATION_SEND, ProvisionSettings
from messaging.brokers import rabbit_broker
from messaging.connections import (
    kafka_client_options,
    postgres_ssl,
    rabbitmq_ssl_context,
    tls_context,
)
from messaging.database import build_engine
from messaging.envelope import Contract, KafkaTopic, MessageContext, OutgoingMessage, RabbitRoute
from messaging.faststream_security import kafka_security, rabbitmq_security
from messaging.outbox.schema import outbox_table
from messaging.outbox.writer import outbox_row
from messaging.startup import kafka_topics_exist, rabbit_queues_exist
from notification_service.adapters.mailer import (
    PermanentDeliveryError,
    SmtpMailer,
    TemporaryDeliveryError,
    smtp_security,
)
from notification_service.entrypoints import parking_lot
from notification_service.settings import NotificationServiceSettings
from order_service.adapters.points_client import PointsClient
from order_service.settings import OrderServiceSettings
from outbox_relay.cli import list_failures
from outbox_relay.publishers import Outcome
from outbox_relay.relay import OutboxRelay, default_publishers
from outbox_relay.settings import RelaySettings
from outbox_relay.store import OutboxRow
from point_service.entrypoints.replay import rebuild_projection
from point_service.settings import PointServiceSettings
from stackctl.components import PG_BIN, RABBITMQ_BIN, rabbitmq_node_environment
from stackctl.settings import StackSettings
from tests.support.mail import MailCatcher
from tests.support.waiting import free_port

STACK = StackSettings()
MAILPIT = STACK.tools_dir / "bin" / "mailpit"
KAFKA_LIBS = STACK.tools_dir / "kafka" / "libs"
KAFKA_LOG4J = STACK.config_dir / "kafka-log4j2.properties"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 75.0

NO_POSTGRES = not (PG_BIN / "postgres").exists()
NO_MAILPIT = not MAILPIT.exists()
NO_RABBITMQ = not (RABBITMQ_BIN / "rabbitmq-server").exists() or shutil.which("epmd") is None
NO_KAFKA = not KAFKA_LIBS.is_dir() or shutil.which("java") is None

needs_postgres = pytest.mark.skipif(
    NO_POSTGRES, reason=f"{PG_BIN}/postgres absent: make system-deps (postgresql-15)"
)
needs_mailpit = pytest.mark.skipif(NO_MAILPIT, reason=f"{MAILPIT} absent: make tools")
needs_rabbitmq = pytest.mark.skipif(
    NO_RABBITMQ, reason="rabbitmq-server or epmd absent: make system-deps (rabbitmq-server)"
)
needs_kafka = pytest.mark.skipif(NO_KAFKA, reason=f"{KAFKA_LIBS} or java absent: make tools")

pytestmark = pytest.mark.tls_servers

# The placeholders every settings class needs; each test adds its connection.
BASE: dict[str, Any] = {
    "database_name": "unused",
    "database_user": "unused",
    "database_password": "unused",
    "rabbitmq_user": "unused",
    "rabbitmq_password": "unused",
    "otel_service_name": "tls-tests",
}
PASSWORDS = {s: secrets.token_urlsafe(12) for s in SERVICES}


# -- the throw-away PKI ---------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    ca_file: str
    wrong_ca_file: str
    # For PostgreSQL: "localhost" only, so that verify-full to 127.0.0.1 fails.
    pg_cert: Path
    pg_key: Path
    # For the other servers: "localhost" and 127.0.0.1.
    cert: Path
    key: Path
    # Kafka's PEM key store: the PKCS#8 key and the certificate chain in one file.
    kafka_keystore: Path


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Not under pytest's tmp_path: PostgreSQL runs as another user, who must
    # be able to reach its data directory (pytest's are private to root).
    path = Path(tempfile.mkdtemp(prefix="tls-servers-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pkcs8(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki(workdir: Path) -> Pki:
    ca, wrong = trustme.CA(), trustme.CA()
    pki_dir = workdir / "pki"
    pki_dir.mkdir()
    ca.cert_pem.write_to_path(str(pki_dir / "ca.pem"))
    wrong.cert_pem.write_to_path(str(pki_dir / "wrong-ca.pem"))
    pg = ca.issue_cert("localhost")
    leaf = ca.issue_cert("localhost", HOST)
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    (pki_dir / "pg.crt").write_bytes(b"".join(blob.bytes() for blob in pg.cert_chain_pems))
    (pki_dir / "pg.key").write_bytes(pkcs8(pg.private_key_pem.bytes()))
    (pki_dir / "server.crt").write_bytes(chain)
    (pki_dir / "server.key").write_bytes(pkcs8(leaf.private_key_pem.bytes()))
    (pki_dir / "kafka.pem").write_bytes(pkcs8(leaf.private_key_pem.bytes()) + chain)
    for path in pki_dir.iterdir():
        path.chmod(0o644)
    (pki_dir / "server.key").chmod(0o600)
    return Pki(
        ca_file=str(pki_dir / "ca.pem"),
        wrong_ca_file=str(pki_dir / "wrong-ca.pem"),
        pg_cert=pki_dir / "pg.crt",
        pg_key=pki_dir / "pg.key",
        cert=pki_dir / "server.crt",
        key=pki_dir / "server.key",
        kafka_keystore=pki_dir / "kafka.pem",
    )


# -- server processes -----------------------------------------------------------
@dataclass
class Server:
    """One server process of these tests, its log in the work directory."""

    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    started: float = 0.0

    def start(self) -> Server:
        self._log = self.log_path.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.log_path.parent,
            user=self.user,
            start_new_session=True,
        )
        return self

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    async def ready(self, probe: Callable[[], Awaitable[object]]) -> float:
        """Wait until `probe` succeeds; the seconds since start."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            self.check_running()
            try:
                await asyncio.wait_for(probe(), 10)
            except Exception as exc:  # noqa: BLE001 - anything means not ready yet
                if time.monotonic() > deadline:
                    pytest.fail(f"{self.name} not ready: {exc!r}\n{self.tail()}")
                await asyncio.sleep(0.5)
            else:
                return time.monotonic() - self.started

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, self.stop_signal)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self._log is not None:
            self._log.close()


@dataclass
class Launched:
    """The slow servers (RabbitMQ, Kafka), started together at the beginning
    of the module so that their boots overlap with the quicker tests."""

    servers: dict[str, Server] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)


def rabbitmq_server(workdir: Path, pki: Pki, ports: dict[str, int]) -> list[Server]:
    base = workdir / "rabbitmq"
    for sub in ("home", "mnesia", "log"):
        (base / sub).mkdir(parents=True)
    ports.update(amqps=free_port(), https=free_port(), dist=free_port(), epmd=free_port())
    ssl_options = (
        f"cacertfile = {pki.ca_file}\n"
        f"certfile = {pki.cert}\n"
        f"keyfile = {pki.key}\n"
        "verify = verify_none\n"
        "fail_if_no_peer_cert = false\n"
    )
    (base / "rabbitmq.conf").write_text(
        "listeners.tcp = none\n"
        f"listeners.ssl.default = {HOST}:{ports['amqps']}\n"
        + "".join(f"ssl_options.{line}\n" for line in ssl_options.splitlines())
        + f"management.ssl.ip = {HOST}\n"
        f"management.ssl.port = {ports['https']}\n"
        + "".join(f"management.ssl.{line}\n" for line in ssl_options.splitlines()[:3])
        + "default_user = admin\n"
        "default_pass = admin-secret\n"
        "loopback_users = none\n"
        "log.console = true\n"
        "log.console.level = warning\n"
        "log.file = false\n"
        "vm_memory_high_watermark.relative = 0.1\n"
        "disk_free_limit.absolute = 50MB\n"
    )
    (base / "advanced.config").write_text("[].\n")
    (base / "rabbitmq-env.conf").write_text("")
    (base / "enabled_plugins").write_text("[rabbitmq_management].\n")
    # Laid out as the local stack's node, its Erlang distribution on loopback too.
    env = rabbitmq_node_environment(
        base, f"tls{ports['amqps']}@localhost", HOST, ports["dist"], ports["epmd"]
    )
    epmd = Server(
        "epmd", ["epmd", "-port", str(ports["epmd"]), "-address", HOST], base / "epmd.log"
    )
    server = Server(
        "rabbitmq", [str(RABBITMQ_BIN / "rabbitmq-server")], base / "rabbitmq.log", env=env
    )
    return [epmd, server]


def kafka_server(workdir: Path, pki: Pki, ports: dict[str, int]) -> Server:
    base = workdir / "kafka"
    (base / "data").mkdir(parents=True)
    ports.update(
        ssl=free_port(), sasl_ssl=free_port(), internal=free_port(), controller=free_port()
    )
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    plain = 'org.apache.kafka.common.security.plain.PlainLoginModule required user_plain="plain-secret";'  # noqa: E501
    properties = base / "server.properties"
    properties.write_text(
        "process.roles=broker,controller\n"
        "node.id=1\n"
        f"controller.quorum.voters=1@{HOST}:{ports['controller']}\n"
        f"listeners=SSL://{HOST}:{ports['ssl']},SASL_SSL://{HOST}:{ports['sasl_ssl']},"
        f"INTERNAL://{HOST}:{ports['internal']},CONTROLLER://{HOST}:{ports['controller']}\n"
        f"advertised.listeners=SSL://{HOST}:{ports['ssl']},SASL_SSL://{HOST}:{ports['sasl_ssl']},"
        f"INTERNAL://{HOST}:{ports['internal']}\n"
        "listener.security.protocol.map=SSL:SSL,SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,"
        "CONTROLLER:PLAINTEXT\n"
        "controller.listener.names=CONTROLLER\n"
        "inter.broker.listener.name=INTERNAL\n"
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512\n"
        f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram}\n"
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}\n"
        f"listener.name.sasl_ssl.plain.sasl.jaas.config={plain}\n"
        "ssl.keystore.type=PEM\n"
        f"ssl.keystore.location={pki.kafka_keystore}\n"
        "ssl.client.auth=none\n"
        f"log.dirs={base / 'data'}\n"
        "auto.create.topics.enable=false\n"
        "offsets.topic.replication.factor=1\n"
        "offsets.topic.num.partitions=1\n"
        "transaction.state.log.replication.factor=1\n"
        "transaction.state.log.min.isr=1\n"
        "share.coordinator.state.topic.replication.factor=1\n"
        "share.coordinator.state.topic.min.isr=1\n"
        "group.initial.rebalance.delay.ms=0\n"
        "num.network.threads=1\n"
        "num.io.threads=2\n"
    )

    def java(main_class: str, *args: str) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
            "-cp",
            f"{KAFKA_LIBS}/*",
            main_class,
            *args,
        ]

    cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
    format_storage = java(
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster_id}",
        "-c",
        str(properties),
        "--add-scram",
        "SCRAM-SHA-512=[name=admin,password=admin-secret]",
        "--add-scram",
        "SCRAM-SHA-256=[name=relay,password=relay-secret]",
        "--add-scram",
        "SCRAM-SHA-512=[name=point,password=point-secret]",
    )
    start = java("kafka.Kafka", str(properties))
    script = f"{shlex.join(format_storage)} && exec {shlex.join(start)}"
    return Server("kafka", ["sh", "-c", script], base / "kafka.log")


@pytest.fixture(scope="module", autouse=True)
def launched(workdir: Path, pki: Pki) -> Iterator[Launched]:
    launched = Launched()
    if not NO_RABBITMQ:
        epmd, rabbit = rabbitmq_server(workdir, pki, launched.ports)
        launched.servers["epmd"] = epmd.start()
        launched.servers["rabbitmq"] = rabbit.start()
    if not NO_KAFKA:
        launched.servers["kafka"] = kafka_server(workdir, pki, launched.ports).start()
    yield launched
    for name in ("kafka", "rabbitmq", "epmd"):
        if name in launched.servers:
            launched.servers[name].stop()


def show_boot(name: str, seconds: float) -> None:
    print(f"{name} ready {seconds:.1f}s after start", file=sys.stderr)


# -- PostgreSQL: ssl=on, hostssl only ------------------------------------------------
@dataclass(frozen=True)
class Postgres:
    port: int
    admin_password: str


def run_as_postgres_user() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


@pytest.fixture(scope="module")
async def postgres(workdir: Path, pki: Pki) -> AsyncIterator[Postgres]:
    base = workdir / "postgres"
    data = base / "data"
    base.mkdir()
    user = run_as_postgres_user()
    password = secrets.token_urlsafe(12)
    (base / "pw").write_text(password + "\n")
    shutil.copy(pki.pg_cert, base / "server.crt")
    shutil.copy(pki.pg_key, base / "server.key")
    (base / "server.key").chmod(0o600)
    if user:
        shutil.chown(base, user, user)
        for path in base.iterdir():
            shutil.chown(path, user, user)
    subprocess.run(
        [
            str(PG_BIN / "initdb"),
            f"--pgdata={data}",
            "--username=admin",
            f"--pwfile={base / 'pw'}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
        user=user,
        cwd=base,
    )
    # Only encrypted connections are admitted: a plaintext client finds no line.
    (data / "pg_hba.conf").write_text(
        "hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n"
    )
    port = free_port()
    server = Server(
        "postgres",
        [
            str(PG_BIN / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=localhost",
            "-c",
            "unix_socket_directories=",
            "-c",
            "ssl=on",
            "-c",
            f"ssl_cert_file={base / 'server.crt'}",
            "-c",
            f"ssl_key_file={base / 'server.key'}",
            "-c",
            "fsync=off",
            "-c",
            "logging_collector=off",
        ],
        base / "postgres.log",
        user=user,
        stop_signal=signal.SIGINT,
    ).start()

    async def probe() -> None:
        conn = await asyncpg.connect(
            host=HOST,
            port=port,
            user="admin",
            password=password,
            database="postgres",
            ssl=postgres_ssl("verify-ca", pki.ca_file),
            timeout=3,
        )
        await conn.close()

    try:
        show_boot("postgres", await server.ready(probe))
        yield Postgres(port, password)
    finally:
        server.stop()


def database(postgres: Postgres, service: str, **values: Any) -> dict[str, Any]:
    return {
        **BASE,
        "database_host": "localhost",
        "database_port": postgres.port,
        "database_name": service,
        "database_user": service,
        "database_password": PASSWORDS[service],
        **values,
    }


def point_database_over_tls(postgres: Postgres, pki: Pki) -> dict[str, Any]:
    """point-service's database settings, the server verified against the test CA."""
    return database(
        postgres, "point", database_sslmode="verify-full", database_sslrootcert=pki.ca_file
    )


@pytest.fixture(scope="module")
async def provisioned_postgres(postgres: Postgres, pki: Pki) -> Postgres:
    """provision-accounts' PostgreSQL step, its admin connection verified."""
    settings = AccountsSettings.model_validate(
        {
            "postgres_host": "localhost",
            "postgres_port": postgres.port,
            "postgres_admin_user": "admin",
            "postgres_admin_password": postgres.admin_password,
            "postgres_sslmode": "verify-full",
            "postgres_sslrootcert": pki.ca_file,
            "rabbitmq_management_url": "http://unused",
            "rabbitmq_admin_user": "admin",
            "rabbitmq_admin_password": "unused",
            **{f"{s}_database_password": PASSWORDS[s] for s in SERVICES},
            **{f"{s}_rabbitmq_password": PASSWORDS[s] for s in SERVICES},
        }
    )
    await accounts.provision_postgres_of(settings)
    return postgres


SSL_OF_THIS_SESSION = "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()"
SSL_IN_USE = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"


@needs_postgres
async def test_services_reach_postgres_over_verified_tls(
    provisioned_postgres: Postgres, pki: Pki
) -> None:
    settings = PointServiceSettings.model_validate(
        point_database_over_tls(provisioned_postgres, pki)
    )
    engine = build_engine(settings, "tls-test")
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text(SSL_OF_THIS_SESSION))).one()
            assert row.ssl is True
            assert row.version.startswith("TLSv1.")
            assert (await conn.execute(text("select current_user"))).scalar() == "point"
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def migrated_postgres(provisioned_postgres: Postgres, pki: Pki) -> Postgres:
    """point-service's database, migrated by `point-service migrate` over verified TLS."""
    values = point_database_over_tls(provisioned_postgres, pki)
    env = {**os.environ, **{k.upper(): str(v) for k, v in values.items()}}
    env.pop("PGSSLMODE", None)
    migrate = subprocess.run(
        [str(Path(sys.executable).with_name("point-service")), "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    return provisioned_postgres


@needs_postgres
async def test_migrations_run_over_verified_tls(migrated_postgres: Postgres, pki: Pki) -> None:
    settings = PointServiceSettings.model_validate(point_database_over_tls(migrated_postgres, pki))
    engine = build_engine(settings, "tls-test")
    try:
        async with engine.connect() as conn:
            tables = set((await conn.execute(text(
                "select tablename from pg_tables where schemaname = 'public'"
            ))).scalars())  # fmt: skip
    finally:
        await engine.dispose()
    assert {"point_ledger", "outbox", "alembic_version"} <= tables


@needs_postgres
async def test_the_relay_connections_are_verified_tls(
    migrated_postgres: Postgres, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = RelaySettings.model_validate(
        database(
            migrated_postgres,
            "order",
            database_sslmode="verify-full",
            database_sslrootcert=pki.ca_file,
        )
    )
    relay = OutboxRelay(settings)
    await relay._connect()
    try:
        assert relay.pool is not None
        assert relay._listener is not None
        async with relay.pool.acquire() as conn:
            assert await conn.fetchval(SSL_IN_USE) is True
        assert await relay._listener.fetchval(SSL_IN_USE) is True
    finally:
        await relay._close()
    # `outbox-relay failures list`: its own connection.
    point = RelaySettings.model_validate(point_database_over_tls(migrated_postgres, pki))
    await list_failures(point, 10)
    assert "0 failed message(s) in outbox" in capsys.readouterr().out


@needs_postgres
async def test_postgres_modes_against_a_hostssl_only_server(postgres: Postgres, pki: Pki) -> None:
    async def session_ssl(host: str, ssl_argument: Any) -> bool:
        conn = await asyncpg.connect(
            host=host,
            port=postgres.port,
            user="admin",
            password=postgres.admin_password,
            database="postgres",
            ssl=ssl_argument,
            timeout=5,
        )
        try:
            return bool(await conn.fetchval(SSL_IN_USE))
        finally:
            await conn.close()

    # The default (prefer) takes the TLS the server offers, unverified.
    assert await session_ssl(HOST, postgres_ssl("prefer", "")) is True
    # verify-ca checks the chain only: the certificate names "localhost", not 127.0.0.1.
    assert await session_ssl(HOST, postgres_ssl("verify-ca", pki.ca_file)) is True
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
        await session_ssl(HOST, postgres_ssl("verify-full", pki.ca_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        await session_ssl("localhost", postgres_ssl("verify-full", pki.wrong_ca_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        await session_ssl("localhost", postgres_ssl("require", pki.wrong_ca_file))
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await session_ssl(HOST, postgres_ssl("disable", ""))


# -- SMTP: Mailpit with STARTTLS required, with implicit TLS, and without TLS --------
@dataclass(frozen=True)
class Mailpit:
    smtp_port: int
    api: str


@pytest.fixture(scope="module")
async def mailpits(workdir: Path, pki: Pki) -> AsyncIterator[dict[str, Mailpit]]:
    base = workdir / "mailpit"
    base.mkdir()
    # htpasswd's {SHA} form, one of the formats Mailpit's auth file takes.
    digest = base64.b64encode(hashlib.sha1(b"mail-secret").digest()).decode()  # noqa: S324
    (base / "smtp-auth").write_text(f"notifier:{{SHA}}{digest}\n")
    tls = ["--smtp-tls-cert", str(pki.cert), "--smtp-tls-key", str(pki.key)]
    variants = {
        "starttls": [*tls, "--smtp-require-starttls", "--smtp-auth-file", str(base / "smtp-auth")],
        "tls": [*tls, "--smtp-require-tls", "--smtp-auth-accept-any"],
        "plain": [],
    }
    servers, found = [], {}
    try:
        for name, extra in variants.items():
            smtp, http = free_port(), free_port()
            server = Server(
                f"mailpit-{name}",
                [
                    str(MAILPIT),
                    "--smtp",
                    f"{HOST}:{smtp}",
                    "--listen",
                    f"{HOST}:{http}",
                    "--database",
                    str(base / f"{name}.db"),
                    "--smtp-disable-rdns",
                    "--disable-version-check",
                    *extra,
                ],
                base / f"{name}.log",
            ).start()
            servers.append(server)
            found[name] = Mailpit(smtp, f"http://{HOST}:{http}")
        for server, mailpit in zip(servers, found.values(), strict=True):

            async def probe(url: str = f"{mailpit.api}/readyz") -> None:
                async with httpx.AsyncClient(timeout=2) as http:
                    (await http.get(url)).raise_for_status()

            await server.ready(probe)
        yield found
    finally:
        for server in servers:
            server.stop()


def mail_command(recipient: str) -> SendNotification:
    return SendNotification(
        kind=NotificationKind.ORDER, recipient=recipient, subject="tls", body="over TLS"
    )


async def deliver(mailpit: Mailpit, recipient: str, **values: Any) -> None:
    settings = NotificationServiceSettings.model_validate(
        {**BASE, "smtp_host": "localhost", "smtp_port": mailpit.smtp_port, **values}
    )
    mailer = SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        5,
        settings.smtp_sender,
        1,
        security=smtp_security(settings),
    )
    try:
        await mailer.send(str(uuid.uuid4()), mail_command(recipient))
    finally:
        mailer.close()


async def delivered(mailpit: Mailpit, recipient: str) -> int:
    catcher = MailCatcher(mailpit.api)
    try:
        return len(await catcher.to(recipient))
    finally:
        await catcher.close()


@needs_mailpit
async def test_starttls_with_login_delivers_and_nothing_goes_in_clear(
    mailpits: dict[str, Mailpit], pki: Pki
) -> None:
    server = mailpits["starttls"]
    secure = {
        "smtp_security": "starttls",
        "smtp_username": "notifier",
        "smtp_password": "mail-secret",
        "smtp_ssl_cafile": pki.ca_file,
    }
    await deliver(server, "ok@example.com", **secure)
    assert await delivered(server, "ok@example.com") == 1

    with pytest.raises(TemporaryDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        await deliver(
            server, "wrong-ca@example.com", **{**secure, "smtp_ssl_cafile": pki.wrong_ca_file}
        )
    with pytest.raises(TemporaryDeliveryError, match="login refused"):
        await deliver(server, "wrong-pw@example.com", **{**secure, "smtp_password": "nope"})
    # The server's own rule, for contrast: it refuses a client that does not upgrade.
    with pytest.raises(PermanentDeliveryError):
        await deliver(server, "plain@example.com")
    for refused in ("wrong-ca", "wrong-pw", "plain"):
        assert await delivered(server, f"{refused}@example.com") == 0


@needs_mailpit
async def test_starttls_is_required_once_configured(mailpits: dict[str, Mailpit]) -> None:
    server = mailpits["plain"]
    with pytest.raises(TemporaryDeliveryError, match="does not offer STARTTLS"):
        await deliver(server, "never-in-clear@example.com", smtp_security="starttls")
    assert await delivered(server, "never-in-clear@example.com") == 0
    await deliver(server, "default@example.com")  # the default is unchanged: plaintext
    assert await delivered(server, "default@example.com") == 1


@needs_mailpit
async def test_implicit_tls_delivers_and_refuses_another_ca(
    mailpits: dict[str, Mailpit], pki: Pki
) -> None:
    server = mailpits["tls"]
    await deliver(server, "smtps@example.com", smtp_security="tls", smtp_ssl_cafile=pki.ca_file)
    assert await delivered(server, "smtps@example.com") == 1
    with pytest.raises(TemporaryDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        await deliver(
            server,
            "smtps-wrong@example.com",
            smtp_security="tls",
            smtp_ssl_cafile=pki.wrong_ca_file,
        )
    assert await delivered(server, "smtps-wrong@example.com") == 0


# -- RabbitMQ: AMQPS only, management on https ----------------------------------------
@dataclass(frozen=True)
class Rabbit:
    amqps_port: int
    management_url: str


def rabbit(rabbit: Rabbit, pki: Pki, service: str, **values: Any) -> dict[str, Any]:
    return {
        **BASE,
        "rabbitmq_host": "localhost",
        "rabbitmq_port": rabbit.amqps_port,
        "rabbitmq_user": service,
        "rabbitmq_password": "admin-secret" if service == "admin" else PASSWORDS[service],
        "rabbitmq_tls": True,
        "rabbitmq_ssl_cafile": pki.ca_file,
        **values,
    }


@pytest.fixture(scope="module")
async def rabbitmq(launched: Launched, pki: Pki) -> Rabbit:
    server = launched.servers["rabbitmq"]
    found = Rabbit(launched.ports["amqps"], f"https://localhost:{launched.ports['https']}")
    settings = AccountsSettings.model_validate(
        {
            "postgres_admin_user": "unused",
            "postgres_admin_password": "unused",
            "rabbitmq_management_url": found.management_url,
            "rabbitmq_management_ssl_cafile": pki.ca_file,
            "rabbitmq_admin_user": "admin",
            "rabbitmq_admin_password": "admin-secret",
            **{f"{s}_database_password": PASSWORDS[s] for s in SERVICES},
            **{f"{s}_rabbitmq_password": PASSWORDS[s] for s in SERVICES},
        }
    )

    async def probe() -> None:
        async with httpx.AsyncClient(
            timeout=3, verify=settings.management_tls(), auth=("admin", "admin-secret")
        ) as http:
            response = await http.get(f"{found.management_url}/api/health/checks/virtual-hosts")
            response.raise_for_status()

    show_boot("rabbitmq", await server.ready(probe))
    # provision-accounts' RabbitMQ step over https, then provision-topology over AMQPS.
    await accounts.provision_rabbitmq(
        settings.rabbitmq_management_url,
        settings.rabbitmq_admin_user,
        settings.rabbitmq_admin_password.get_secret_value(),
        settings.passwords("rabbitmq"),
        verify=settings.management_tls(),
    )
    await topology.provision_rabbitmq(ProvisionSettings.model_validate(rabbit(found, pki, "admin")))
    return found


@needs_rabbitmq
async def test_relay_publishes_over_amqps_and_the_consumer_gets_it(
    rabbitmq: Rabbit, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    publisher = default_publishers(RelaySettings.model_validate(rabbit(rabbitmq, pki, "order")))[
        "rabbitmq"
    ]
    row = stored_row(OutgoingMessage(
        mail_command("amqps@example.com"), NOTIFICATION_SEND, "c-1", "tls-tests",
        MessageContext("tls"),
    ))  # fmt: skip
    try:
        [result] = await publisher.publish([row])
    finally:
        await publisher.close()
    assert result.outcome is Outcome.SENT, result.error

    notification = NotificationServiceSettings.model_validate(rabbit(rabbitmq, pki, "notification"))
    assert notification.rabbitmq_url().startswith("amqps://")
    connection = await aio_pika.connect(
        notification.rabbitmq_url(), ssl_context=rabbitmq_ssl_context(notification)
    )
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(NOTIFICATION_SEND.routing_key, ensure=True)
        message = await queue.get(no_ack=True, fail=False, timeout=5)
        assert message is not None
        assert message.message_id == str(row.message_id)
    # The start-up check and the parking-lot CLI use their own connections.
    await rabbit_queues_exist(
        notification.rabbitmq_url(),
        [NOTIFICATION_SEND.routing_key, NOTIFICATION_PARKING_LOT],
        ssl_context=rabbitmq_ssl_context(notification),
    )()
    await parking_lot.list_parked(notification)
    assert f"0 message(s) in {NOTIFICATION_PARKING_LOT}" in capsys.readouterr().out


@needs_rabbitmq
async def test_request_reply_between_faststream_brokers_over_amqps(
    rabbitmq: Rabbit, pki: Pki
) -> None:
    point = PointServiceSettings.model_validate(rabbit(rabbitmq, pki, "point"))
    order = OrderServiceSettings.model_validate(rabbit(rabbitmq, pki, "order"))
    responder = RabbitBroker(point.rabbitmq_url(), security=rabbitmq_security(point))

    @responder.subscriber(RabbitQueue(topology.POINT_BALANCE.routing_key, declare=False))
    async def answer(body: GetPointBalance) -> PointBalance:
        return PointBalance(customer_id=body.customer_id, balance=42, as_of=datetime.now(UTC))

    client = PointsClient(
        rabbit_broker(order, "order-service", logging.getLogger(__name__), TracerProvider()), 5
    )
    await responder.start()
    try:
        client.start()
        for _ in range(100):
            if client.connected:
                break
            await asyncio.sleep(0.1)
        answered = await client.balance("c-tls")
    finally:
        await client.stop()
        await responder.stop()
    assert isinstance(answered, PointBalance), answered
    assert answered.balance == 42


@needs_rabbitmq
async def test_rabbitmq_refuses_another_ca(rabbitmq: Rabbit, pki: Pki) -> None:
    wrong = NotificationServiceSettings.model_validate(
        rabbit(rabbitmq, pki, "notification", rabbitmq_ssl_cafile=pki.wrong_ca_file)
    )
    connect = aio_pika.connect(wrong.rabbitmq_url(), ssl_context=rabbitmq_ssl_context(wrong))
    assert "CERTIFICATE_VERIFY_FAILED" in await refusal(connect)
    async with httpx.AsyncClient(verify=tls_context(pki.wrong_ca_file)) as http:
        management = http.get(f"{rabbitmq.management_url}/api/overview")
        assert "CERTIFICATE_VERIFY_FAILED" in await refusal(management)


# -- Kafka: SSL, and SASL_SSL with SCRAM and PLAIN ---------------------------------------
@dataclass(frozen=True)
class Kafka:
    ssl_bootstrap: str
    sasl_bootstrap: str


def kafka(pki: Pki, bootstrap: str, protocol: str, **values: Any) -> dict[str, Any]:
    return {
        **BASE,
        "kafka_bootstrap_servers": bootstrap,
        "kafka_security_protocol": protocol,
        "kafka_ssl_cafile": pki.ca_file,
        **values,
    }


def scram(kafka_: Kafka, pki: Pki, user: str, mechanism: str, **values: Any) -> dict[str, Any]:
    login = {
        "kafka_sasl_mechanism": mechanism,
        "kafka_sasl_username": user,
        "kafka_sasl_password": f"{user}-secret",
    }
    return kafka(pki, kafka_.sasl_bootstrap, "SASL_SSL", **{**login, **values})


async def topics(options: dict[str, Any]) -> set[str]:
    admin = AIOKafkaAdminClient(**options, request_timeout_ms=5000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def kafka_broker(launched: Launched, pki: Pki) -> Kafka:
    server = launched.servers["kafka"]
    found = Kafka(f"localhost:{launched.ports['ssl']}", f"localhost:{launched.ports['sasl_ssl']}")
    admin = ProvisionSettings.model_validate(scram(found, pki, "admin", "SCRAM-SHA-512"))
    show_boot("kafka", await server.ready(lambda: topics(kafka_client_options(admin))))
    # provision-topology's Kafka step, logged in with SCRAM-SHA-512 over TLS.
    await topology.provision_kafka(admin)
    return found


@needs_kafka
async def test_relay_produces_and_point_service_consumes_over_sasl_ssl(
    kafka_broker: Kafka, pki: Pki
) -> None:
    relay = RelaySettings.model_validate(scram(kafka_broker, pki, "relay", "SCRAM-SHA-256"))
    publisher = default_publishers(relay)["kafka"]
    row = stored_row(
        OutgoingMessage(Probe(text="sasl"), topology.POINTS, "c-1", "tls", MessageContext("tls"))
    )
    try:
        [result] = await publisher.publish([row])
    finally:
        await publisher.close()
    assert result.outcome is Outcome.SENT, result.error

    point = PointServiceSettings.model_validate(scram(kafka_broker, pki, "point", "SCRAM-SHA-512"))
    broker = KafkaBroker(point.kafka_bootstrap_servers, security=kafka_security(point))
    received: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @broker.subscriber(topology.POINTS.topic, group_id="tls-tests", auto_offset_reset="earliest")
    async def on_points(body: dict[str, Any]) -> None:
        if not received.done():
            received.set_result(body["text"])

    await broker.start()
    try:
        assert await asyncio.wait_for(received, 30) == "sasl"
    finally:
        await broker.stop()


@needs_kafka
async def test_ssl_and_plain_logins_and_the_start_up_check(kafka_broker: Kafka, pki: Pki) -> None:
    ssl_only = PointServiceSettings.model_validate(kafka(pki, kafka_broker.ssl_bootstrap, "SSL"))
    assert topology.ORDERS.topic in await topics(kafka_client_options(ssl_only))
    plain = PointServiceSettings.model_validate(
        kafka(
            pki,
            kafka_broker.sasl_bootstrap,
            "SASL_SSL",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="plain",
            kafka_sasl_password="plain-secret",
        )
    )
    await kafka_topics_exist(
        lambda: AIOKafkaAdminClient(**kafka_client_options(plain)), [topology.ORDERS.topic]
    )()


@needs_kafka
async def test_kafka_refuses_another_ca_and_a_wrong_password(
    kafka_broker: Kafka, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """aiokafka raises "unable to bootstrap" and logs why: both are looked at."""
    wrong_ca = PointServiceSettings.model_validate(
        scram(kafka_broker, pki, "point", "SCRAM-SHA-512", kafka_ssl_cafile=pki.wrong_ca_file)
    )
    caplog.clear()
    refused = await refusal(topics(kafka_client_options(wrong_ca)))
    assert "CERTIFICATE_VERIFY_FAILED" in refused + caplog.text
    wrong_password = PointServiceSettings.model_validate(
        scram(kafka_broker, pki, "point", "SCRAM-SHA-512", kafka_sasl_password="nope")
    )
    caplog.clear()
    refused = await refusal(topics(kafka_client_options(wrong_password)))
    assert "Authentication failed" in refused + caplog.text


# -- the outbox relay and the point replay with every connection secure ----------------
@needs_postgres
@needs_rabbitmq
@needs_kafka
async def test_outbox_relay_and_replay_with_every_connection_secure(
    migrated_postgres: Postgres,
    rabbitmq: Rabbit,
    kafka_broker: Kafka,
    pki: Pki,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Rows committed to a hostssl-only PostgreSQL reach Kafka over SASL_SSL and
    RabbitMQ over AMQPS through the relay; the point replay reads them back
    from Kafka into PostgreSQL, both over TLS."""
    values = {
        **BASE,
        **own(database(
            migrated_postgres, "point", database_sslmode="verify-full",
            database_sslrootcert=pki.ca_file,
        )),
        **own(scram(kafka_broker, pki, "point", "SCRAM-SHA-512")),
        **own(rabbit(rabbitmq, pki, "point")),
    }  # fmt: skip
    relay_settings = RelaySettings.model_validate({**values, "outbox_table": "outbox"})
    messages = [
        OutgoingMessage(Probe(text="relay"), KafkaTopic(topology.ORDERS.topic), "c-9", "tls",
                        MessageContext("tls")),
        OutgoingMessage(mail_command("relay@example.com"), NOTIFICATION_SEND, "c-9", "tls",
                        MessageContext("tls")),
    ]  # fmt: skip
    engine = build_engine(relay_settings, "tls-test")
    try:
        async with engine.begin() as conn:
            table = outbox_table(MetaData(), "outbox")
            await conn.execute(insert(table), [outbox_row(m) for m in messages])
    finally:
        await engine.dispose()

    relay = OutboxRelay(relay_settings)
    await relay._connect()
    try:
        sent = await relay.drain_once()
        assert sent == 2
    finally:
        await relay._close()

    consumer = AIOKafkaConsumer(
        topology.ORDERS.topic,
        **kafka_client_options(relay_settings),
        group_id="tls-tests-relay",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        records = await consumer.getmany(timeout_ms=10_000)
        ids = {dict(r.headers)["ce_id"].decode() for rs in records.values() for r in rs}
    finally:
        await consumer.stop()
    assert str(messages[0].id) in ids

    point = PointServiceSettings.model_validate(values)
    assert await rebuild_projection(point) == 0
    out = capsys.readouterr().out
    assert "unreadable, skipped" in out
    assert "differences=0" in out


# -- helpers ------------------------------------------------------------------------------
def own(values: dict[str, Any]) -> dict[str, Any]:
    """The values of one connection group, without the placeholders of the others."""
    return {k: v for k, v in values.items() if k not in BASE or v != BASE[k]}


class Probe(Contract):
    TYPE: ClassVar[str] = "test.tls-probe"

    text: str


def stored_row(message: OutgoingMessage) -> OutboxRow:
    """The row as the relay reads it back from the outbox table."""
    row = outbox_row(message)
    destination = message.destination
    return OutboxRow(
        id=1,
        message_id=message.id,
        message_type=message.type,
        destination_kind=destination.kind,
        destination=destination.name,
        routing_key=destination.routing_key if isinstance(destination, RabbitRoute) else None,
        ordering_key=row["ordering_key"],
        payload=message.data.model_dump_json(),
        headers=row["headers"],
        priority=row["priority"],
        best_effort=False,
        attempts=0,
        created_at=message.time,
    )


async def refusal(attempt: Awaitable[object]) -> str:
    """What refused the attempt, with every error it was raised from."""
    with pytest.raises(Exception) as raised:  # noqa: PT011 - clients wrap it differently
        await attempt
    return describe_chain(raised.value)


def describe_chain(error: BaseException | None) -> str:
    parts = []
    while error is not None:
        parts.append(repr(error))
        error = error.__cause__ or error.__context__
    return " <- ".join(parts)
