"""Secure-connection options, without servers: the defaults leave every client
as it was (plaintext, the same URLs and arguments), each option reaches the
client that uses it, and a contradictory or incomplete setting is refused
with the variable named. tests/integration/test_secure_connections.py proves
the same settings against real TLS servers."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trustme
from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.rabbit import RabbitBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from catalogue.accounts import AccountsSettings
from catalogue.contracts.notifications import NotificationKind, SendNotification
from catalogue.services import SERVICES
from messaging.asyncapi import placeholder_settings
from messaging.connections import (
    database_ssl,
    kafka_client_options,
    postgres_ssl,
    rabbitmq_ssl_context,
)
from messaging.database import build_engine
from messaging.faststream_security import kafka_security, rabbitmq_security
from notification_service.adapters.mailer import (
    SmtpMailer,
    TemporaryDeliveryError,
    smtp_security,
)
from notification_service.entrypoints.app import create_app as notification_app
from notification_service.settings import NotificationServiceSettings
from order_service.entrypoints.http import create_app as order_app
from order_service.settings import OrderServiceSettings
from outbox_relay.relay import default_publishers
from outbox_relay.settings import RelaySettings
from point_service.entrypoints.app import create_app as point_app
from point_service.settings import PointServiceSettings
from tests.support.fake_smtp import FakeSmtp

BASE = placeholder_settings()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings read the environment: none of the developer's may leak in."""
    for cls in (RelaySettings, NotificationServiceSettings, AccountsSettings):
        for name in cls.model_fields:
            monkeypatch.delenv(name.upper(), raising=False)


def relay(**values: Any) -> RelaySettings:
    return RelaySettings.model_validate({**BASE, **values})


def error_fields(cls: type[BaseSettings], **values: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as raised:
        cls.model_validate({**BASE, **values})
    return {str(e["loc"][0]): e["msg"] for e in raised.value.errors()}


def trusts(context: ssl.SSLContext, ca: trustme.CA) -> bool:
    """Whether the context verifies chain and host name against this CA alone."""
    der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())
    return (
        context.verify_mode == ssl.CERT_REQUIRED
        and context.check_hostname
        and context.get_ca_certs(binary_form=True) == [der]
    )


# -- defaults: nothing changes ------------------------------------------------
def test_defaults_leave_every_client_as_it_was() -> None:
    s = relay(kafka_bootstrap_servers="k:9092", rabbitmq_host="r")
    assert s.rabbitmq_url() == "amqp://docs:docs@r:5672/%2F"
    assert kafka_client_options(s) == {"bootstrap_servers": "k:9092"}
    assert kafka_security(s) is None
    assert rabbitmq_ssl_context(s) is None
    assert rabbitmq_security(s) is None
    assert s.database_sslmode == "prefer"


def test_the_default_sslmode_is_what_asyncpg_does_when_given_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from asyncpg import connect_utils

    monkeypatch.delenv("PGSSLMODE", raising=False)

    def parsed(ssl_argument: Any) -> Any:
        _, params = connect_utils._parse_connect_dsn_and_args(  # type: ignore[attr-defined]
            dsn="postgresql://u:p@db:5432/d",
            host=None,
            port=None,
            user=None,
            password=None,
            passfile=None,
            database=None,
            ssl=ssl_argument,
            service=None,
            servicefile=None,
            direct_tls=None,
            server_settings=None,
            target_session_attrs=None,
            krbsrvname=None,
            gsslib=None,
        )
        return params.sslmode, params.ssl.verify_mode, params.ssl.check_hostname

    assert parsed(database_ssl(relay())) == parsed(None)


def test_asyncapi_documents_are_unchanged_by_default() -> None:
    """No security object by default: the generated server entries stay as
    committed in docs/asyncapi."""
    app = point_app(PointServiceSettings.model_validate(BASE), TracerProvider())
    for broker in app.brokers:
        assert broker.specification.security is None


# -- PostgreSQL -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "expected"), [("disable", False), ("allow", "allow"), ("prefer", "prefer")]
)
def test_unverified_sslmodes_are_asyncpgs_own(mode: str, expected: object) -> None:
    assert database_ssl(relay(database_sslmode=mode)) == expected


def test_verify_full_checks_chain_and_host_name_against_the_ca_file(
    ca: trustme.CA, ca_file: str
) -> None:
    context = database_ssl(relay(database_sslmode="verify-full", database_sslrootcert=ca_file))
    assert isinstance(context, ssl.SSLContext)
    assert trusts(context, ca)


def test_verify_ca_checks_the_chain_but_not_the_host_name(ca_file: str) -> None:
    context = database_ssl(relay(database_sslmode="verify-ca", database_sslrootcert=ca_file))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert not context.check_hostname


def test_require_encrypts_and_verifies_only_with_a_ca_file(ca_file: str) -> None:
    bare = postgres_ssl("require", "")
    assert isinstance(bare, ssl.SSLContext)
    assert bare.verify_mode == ssl.CERT_NONE
    with_ca = postgres_ssl("require", ca_file)
    assert isinstance(with_ca, ssl.SSLContext)
    assert with_ca.verify_mode == ssl.CERT_REQUIRED


def test_an_empty_ca_file_means_the_system_trust_store() -> None:
    context = postgres_ssl("verify-full", "")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    system = ssl.create_default_context()
    assert len(context.get_ca_certs()) == len(system.get_ca_certs())


async def test_build_engine_connects_with_the_ssl_context(
    ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    class RefusedError(Exception):
        pass

    async def connect(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise RefusedError

    monkeypatch.setattr(asyncpg, "connect", connect)
    engine = build_engine(
        relay(database_sslmode="verify-full", database_sslrootcert=ca_file), "tests"
    )
    with pytest.raises(RefusedError):
        async with engine.connect():
            pass
    await engine.dispose()
    assert trusts(seen["ssl"], ca)


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_a_ca_file_with_a_mode_that_never_verifies_is_refused(mode: str, ca_file: str) -> None:
    errors = error_fields(RelaySettings, database_sslmode=mode, database_sslrootcert=ca_file)
    assert "DATABASE_SSLROOTCERT" in errors["database_sslrootcert"]


def test_a_missing_ca_file_is_refused_with_its_variable(tmp_path: Path) -> None:
    errors = error_fields(
        RelaySettings,
        database_sslmode="verify-full",
        database_sslrootcert=str(tmp_path / "absent.pem"),
    )
    assert "DATABASE_SSLROOTCERT" in errors["database_sslrootcert"]
    assert "no such file" in errors["database_sslrootcert"]


def test_an_unknown_sslmode_is_refused() -> None:
    assert "database_sslmode" in error_fields(RelaySettings, database_sslmode="on")


# -- Kafka ------------------------------------------------------------------------
def test_ssl_gives_a_context_trusting_the_ca_file(ca: trustme.CA, ca_file: str) -> None:
    s = relay(kafka_security_protocol="SSL", kafka_ssl_cafile=ca_file)
    options = kafka_client_options(s)
    assert options["security_protocol"] == "SSL"
    assert trusts(options["ssl_context"], ca)
    assert "sasl_mechanism" not in options
    security = kafka_security(s)
    assert type(security) is BaseSecurity
    assert security.use_ssl


@pytest.mark.parametrize(
    ("mechanism", "cls"),
    [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)],
)
def test_sasl_ssl_logs_in_with_the_mechanism_over_tls(
    mechanism: str, cls: type[BaseSecurity], ca: trustme.CA, ca_file: str
) -> None:
    s = relay(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="relay",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=ca_file,
    )
    options = kafka_client_options(s)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "relay"
    assert options["sasl_plain_password"] == "s3cret"
    assert trusts(options["ssl_context"], ca)
    assert type(kafka_security(s)) is cls


def test_sasl_plaintext_logs_in_without_tls() -> None:
    s = relay(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    )
    options = kafka_client_options(s)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["ssl_context"] is None
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"


def test_the_point_service_broker_and_the_relay_producer_get_the_same_options(
    ca_file: str,
) -> None:
    values = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_sasl_username": "point",
        "kafka_sasl_password": "pw",
        "kafka_ssl_cafile": ca_file,
    }
    app = point_app(PointServiceSettings.model_validate({**BASE, **values}), TracerProvider())
    [kafka] = [b for b in app.brokers if isinstance(b, KafkaBroker)]
    broker = kafka._connection_kwargs
    producer = default_publishers(relay(**values))["kafka"].client  # type: ignore[attr-defined]
    for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username"):
        assert broker[key] == producer[key]
    assert broker["security_protocol"] == "SASL_SSL"
    assert broker["ssl_context"].verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("PLAINTEXT", "PLAIN"),
        ("SSL", "PLAIN"),
        *((p, m) for p in ("SASL_PLAINTEXT", "SASL_SSL") for m in ("PLAIN", "SCRAM-SHA-256")),
        ("SASL_SSL", "SCRAM-SHA-512"),
    ],
)
def test_the_plain_options_are_what_faststream_makes_of_its_security_object(
    protocol: str, mechanism: str, ca_file: str
) -> None:
    """messaging.connections builds aiokafka's arguments without FastStream (the
    relay runs without it); KafkaBroker turns kafka_security() into the same."""
    values: dict[str, Any] = {"kafka_security_protocol": protocol}
    if protocol.endswith("SSL"):
        values["kafka_ssl_cafile"] = ca_file
    if protocol.startswith("SASL_"):
        values |= {
            "kafka_sasl_mechanism": mechanism,
            "kafka_sasl_username": "u",
            "kafka_sasl_password": "p",
        }
    s = relay(**values)
    plain = kafka_client_options(s)
    broker = {"bootstrap_servers": s.kafka_bootstrap_servers, **parse_security(kafka_security(s))}
    assert list(plain) == list(broker)
    # Each call builds its own TLS context: compare what they trust.
    plain_context, broker_context = plain.pop("ssl_context", None), broker.pop("ssl_context", None)
    assert plain == broker
    assert (plain_context is None) == (broker_context is None) == (not protocol.endswith("SSL"))
    if plain_context is not None:
        assert plain_context.get_ca_certs() == broker_context.get_ca_certs()


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_sasl_without_credentials_names_both_variables(protocol: str) -> None:
    errors = error_fields(RelaySettings, kafka_security_protocol=protocol)
    assert "KAFKA_SASL_USERNAME" in errors["kafka_sasl_username"]
    assert "KAFKA_SASL_PASSWORD" in errors["kafka_sasl_password"]


def test_credentials_without_sasl_are_refused() -> None:
    errors = error_fields(RelaySettings, kafka_security_protocol="SSL", kafka_sasl_username="u")
    assert "KAFKA_SASL_USERNAME" in errors["kafka_sasl_username"]


def test_a_kafka_ca_file_without_tls_is_refused(ca_file: str) -> None:
    errors = error_fields(
        RelaySettings, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u",
        kafka_sasl_password="p", kafka_ssl_cafile=ca_file,
    )  # fmt: skip
    assert "KAFKA_SSL_CAFILE" in errors["kafka_ssl_cafile"]


def test_an_unknown_mechanism_is_refused() -> None:
    assert "kafka_sasl_mechanism" in error_fields(RelaySettings, kafka_sasl_mechanism="GSSAPI")


# -- RabbitMQ --------------------------------------------------------------------
def test_tls_gives_amqps_on_5671_unless_a_port_is_set(ca: trustme.CA, ca_file: str) -> None:
    s = relay(rabbitmq_tls=True, rabbitmq_ssl_cafile=ca_file, rabbitmq_host="r")
    assert s.rabbitmq_url() == "amqps://docs:docs@r:5671/%2F"
    context = rabbitmq_ssl_context(s)
    assert context is not None
    assert trusts(context, ca)
    assert relay(rabbitmq_tls=True, rabbitmq_port=30671).rabbitmq_url().endswith(":30671/%2F")


def test_tls_from_the_environment_moves_the_default_port(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**BASE, "rabbitmq_tls": "true"}.items():
        monkeypatch.setenv(key.upper(), str(value))
    assert RelaySettings().rabbitmq_port == 5671
    monkeypatch.setenv("RABBITMQ_PORT", "5672")
    assert RelaySettings().rabbitmq_url().startswith("amqps://docs:docs@127.0.0.1:5672/")


def test_every_rabbitmq_client_gets_the_context(ca: trustme.CA, ca_file: str) -> None:
    values = {"rabbitmq_tls": True, "rabbitmq_ssl_cafile": ca_file}
    notification = notification_app(
        NotificationServiceSettings.model_validate({**BASE, **values}), TracerProvider()
    )
    point = point_app(PointServiceSettings.model_validate({**BASE, **values}), TracerProvider())
    s = relay(**values)
    brokers: list[RabbitBroker] = [
        b for app in (notification, point) for b in app.brokers if isinstance(b, RabbitBroker)
    ]
    order = order_app(OrderServiceSettings.model_validate({**BASE, **values}), TracerProvider())
    brokers.append(order.state.points.broker)
    assert len(brokers) == 3
    for broker in brokers:
        assert str(broker._connection_kwargs["url"]).startswith("amqps://")
        assert trusts(broker._connection_kwargs["ssl_context"], ca)
    publisher = default_publishers(s)["rabbitmq"]
    assert trusts(publisher.ssl_context, ca)  # type: ignore[attr-defined]


def test_a_rabbitmq_ca_file_without_tls_is_refused(ca_file: str) -> None:
    errors = error_fields(RelaySettings, rabbitmq_ssl_cafile=ca_file)
    assert "RABBITMQ_SSL_CAFILE" in errors["rabbitmq_ssl_cafile"]


# -- provisioning (provision-accounts) ----------------------------------------------
ACCOUNTS = {
    "postgres_admin_user": "a",
    "postgres_admin_password": "a",
    "rabbitmq_management_url": "http://r:15672",
    "rabbitmq_admin_user": "a",
    "rabbitmq_admin_password": "a",
    **{f"{s}_{k}_password": "x" for s in SERVICES for k in ("database", "rabbitmq")},
}


def test_accounts_default_to_asyncpgs_own_negotiation() -> None:
    settings = AccountsSettings.model_validate(ACCOUNTS)
    assert settings.postgres_ssl() == "prefer"


def test_accounts_verify_postgres_and_an_https_management_api(ca: trustme.CA, ca_file: str) -> None:
    settings = AccountsSettings.model_validate(
        {
            **ACCOUNTS,
            "postgres_sslmode": "verify-full",
            "postgres_sslrootcert": ca_file,
            "rabbitmq_management_url": "https://r:15671",
            "rabbitmq_management_ssl_cafile": ca_file,
        }
    )
    postgres = settings.postgres_ssl()
    assert isinstance(postgres, ssl.SSLContext)
    assert trusts(postgres, ca)
    assert trusts(settings.management_tls(), ca)


def test_a_management_ca_file_for_plain_http_is_refused(ca_file: str) -> None:
    with pytest.raises(ValidationError, match="RABBITMQ_MANAGEMENT_SSL_CAFILE") as raised:
        AccountsSettings.model_validate({**ACCOUNTS, "rabbitmq_management_ssl_cafile": ca_file})
    assert raised.value.errors()[0]["loc"] == ("rabbitmq_management_ssl_cafile",)


# -- SMTP --------------------------------------------------------------------------
def notification(**values: Any) -> NotificationServiceSettings:
    return NotificationServiceSettings.model_validate({**BASE, **values})


def test_smtp_defaults_to_plaintext_without_login() -> None:
    security = smtp_security(notification())
    assert (security.mode, security.username, security.context) == ("none", "", None)


def test_smtp_tls_trusts_the_ca_file(ca: trustme.CA, ca_file: str) -> None:
    security = smtp_security(
        notification(
            smtp_security="tls", smtp_username="u", smtp_password="p", smtp_ssl_cafile=ca_file
        )
    )
    assert security.mode == "tls"
    assert (security.username, security.password) == ("u", "p")
    assert security.context is not None
    assert trusts(security.context, ca)


def test_a_login_in_clear_is_refused() -> None:
    errors = error_fields(NotificationServiceSettings, smtp_username="u", smtp_password="p")
    assert "SMTP_USERNAME" in errors["smtp_username"]


@pytest.mark.parametrize(
    "values",
    [{"smtp_username": "u"}, {"smtp_password": "p"}],
    ids=["username-only", "password-only"],
)
def test_a_half_login_is_refused(values: dict[str, str]) -> None:
    errors = error_fields(NotificationServiceSettings, smtp_security="starttls", **values)
    assert "SMTP_PASSWORD" in errors["smtp_password"]


def test_an_smtp_ca_file_without_tls_is_refused(ca_file: str) -> None:
    errors = error_fields(NotificationServiceSettings, smtp_ssl_cafile=ca_file)
    assert "SMTP_SSL_CAFILE" in errors["smtp_ssl_cafile"]


COMMAND = SendNotification(
    recipient="c@example.com", subject="s", body="b", kind=NotificationKind.ORDER
)


def send(settings: NotificationServiceSettings) -> None:
    mailer = SmtpMailer("mail", 587, 1, "shop@example.com", 1, smtp_security(settings))
    try:
        mailer._send_blocking(mailer.compose("m-1", COMMAND))
    finally:
        mailer.close()


def test_starttls_upgrades_before_login_and_send(fake_smtp: type[FakeSmtp], ca_file: str) -> None:
    send(
        notification(
            smtp_security="starttls",
            smtp_username="u",
            smtp_password="p",
            smtp_ssl_cafile=ca_file,
        )
    )
    [smtp] = fake_smtp.instances
    assert smtp.names() == ["connect", "ehlo", "starttls", "ehlo", "login", "send", "quit"]
    assert isinstance(dict(smtp.calls)["starttls"], ssl.SSLContext)


async def test_a_server_without_starttls_gets_nothing_and_it_is_temporary(
    fake_smtp: type[FakeSmtp],
) -> None:
    fake_smtp.offers_starttls = False
    mailer = SmtpMailer(
        "mail", 587, 1, "shop@example.com", 1, smtp_security(notification(smtp_security="starttls"))
    )
    try:
        with pytest.raises(TemporaryDeliveryError, match="STARTTLS"):
            await mailer.send("m-1", COMMAND)
    finally:
        mailer.close()
    [smtp] = fake_smtp.instances
    assert "send" not in [name for name, _ in smtp.calls]


def test_implicit_tls_connects_with_smtp_ssl(fake_smtp: type[FakeSmtp], ca_file: str) -> None:
    send(notification(smtp_security="tls", smtp_ssl_cafile=ca_file))
    assert fake_smtp.instances == [], "not over plain SMTP"
    [smtp] = smtplib.SMTP_SSL.instances  # type: ignore[attr-defined]
    assert smtp.names() == ["connect", "send", "quit"], "no login without a username"
    assert isinstance(smtp.calls[0][1], ssl.SSLContext)


def test_plain_smtp_is_unchanged(fake_smtp: type[FakeSmtp]) -> None:
    send(notification())
    [smtp] = fake_smtp.instances
    assert smtp.names() == ["connect", "send", "quit"]
