"""Accounts of the services, provisioned idempotently (`provision-accounts`):
in PostgreSQL a login and a database per service, owned by it, that no other
login may connect to; in RabbitMQ a user per service with only the rights it
needs. The local stack (stackctl) and the Helm chart's provisioning Job both
run this, so the rights the tests exercise are the rights deployed.

RabbitMQ rights are regular expressions over resource names, checked per
operation: *configure* to declare or delete, *write* to publish to an
exchange (or bind a queue), *read* to consume from a queue. The services
declare nothing (`provision-topology` does, as the administrator), so none
of them may configure anything.
"""

from __future__ import annotations

import logging
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
import httpx
from pydantic import SecretStr, ValidationInfo, field_validator

from catalogue.services import SERVICES
from messaging.connections import PostgresSsl, postgres_ssl, tls_context
from messaging.provisioning import ProvisioningSettings, run_command, until_reachable
from messaging.settings import (
    SETTINGS_CONFIG,
    PostgresSslMode,
    existing_ca_file,
    postgres_ca_file,
    variable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str


# amq.default: the default exchange (request/reply requests and their answers
# are published to it); amq.rabbitmq.reply-to: the direct reply-to pseudo-queue.
RABBITMQ_PERMISSIONS: Mapping[str, Permissions] = {
    # order-service asks point.balance; order-relay publishes SendNotification.
    "order": Permissions("^$", r"^(commands|amq\.default)$", r"^amq\.rabbitmq\.reply-to$"),
    # point-service consumes its command and request queues, answers requests,
    # dead-letters bad commands; point-relay publishes SendNotification.
    "point": Permissions(
        "^$",
        r"^(commands|dead-letter|amq\.default)$",
        r"^(point\.commands|point\.balance)$",
    ),
    # notification-service consumes its queue and republishes to the retry
    # exchange or the parking lot (through the dead-letter exchange); its
    # parking-lot CLI reads the parking lot and re-drives to `commands`.
    "notification": Permissions(
        "^$",
        r"^(notification\.retry|dead-letter|commands)$",
        r"^notification\.send(\.parking-lot)?$",
    ),
}


class AccountsSettings(ProvisioningSettings):
    model_config = SETTINGS_CONFIG

    postgres_host: str = "localhost"
    postgres_port: int = 5432
    postgres_admin_user: str
    postgres_admin_password: SecretStr
    # As DATABASE_SSLMODE and DATABASE_SSLROOTCERT (messaging.settings).
    postgres_sslmode: PostgresSslMode = "prefer"
    postgres_sslrootcert: str = ""
    # May be https://, verified against RABBITMQ_MANAGEMENT_SSL_CAFILE (empty:
    # the system trust store).
    rabbitmq_management_url: str
    rabbitmq_management_ssl_cafile: str = ""
    rabbitmq_admin_user: str
    rabbitmq_admin_password: SecretStr
    order_database_password: SecretStr
    point_database_password: SecretStr
    notification_database_password: SecretStr
    order_rabbitmq_password: SecretStr
    point_rabbitmq_password: SecretStr
    notification_rabbitmq_password: SecretStr

    @field_validator("postgres_sslrootcert")
    @classmethod
    def _postgres_ca(cls, value: str, info: ValidationInfo) -> str:
        return postgres_ca_file(value, info, "postgres_sslmode")

    @field_validator("rabbitmq_management_ssl_cafile")
    @classmethod
    def _management_ca(cls, value: str, info: ValidationInfo) -> str:
        existing_ca_file(value, info)
        url = info.data.get("rabbitmq_management_url")
        if value and url is not None and not url.startswith("https://"):
            raise ValueError(f"{variable(info)} is set but RABBITMQ_MANAGEMENT_URL is not https://")
        return value

    def postgres_ssl(self) -> PostgresSsl:
        return postgres_ssl(self.postgres_sslmode, self.postgres_sslrootcert)

    def management_tls(self) -> ssl.SSLContext:
        return tls_context(self.rabbitmq_management_ssl_cafile)

    def passwords(self, kind: str) -> dict[str, str]:
        return {s: getattr(self, f"{s}_{kind}_password").get_secret_value() for s in SERVICES}


async def provision_postgres(
    host: str,
    port: int,
    admin_user: str,
    admin_password: str,
    passwords: Mapping[str, str],
    ssl: PostgresSsl = "prefer",
) -> None:
    """`ssl` as messaging.connections.postgres_ssl() gives it; `prefer` is
    asyncpg's own default."""
    conn = await asyncpg.connect(
        host=host,
        port=port,
        user=admin_user,
        password=admin_password,
        database="postgres",
        timeout=10,
        ssl=ssl,
    )
    try:
        for service, password in passwords.items():
            role = _identifier(service)
            exists = await conn.fetchval("select 1 from pg_roles where rolname = $1", service)
            verb = "alter" if exists else "create"
            literal = await conn.fetchval("select quote_literal($1)", password)
            await conn.execute(f"{verb} role {role} login password {literal}")
            if not await conn.fetchval("select 1 from pg_database where datname = $1", service):
                await conn.execute(f"create database {role} owner {role}")
            # Each service reaches only its own database.
            await conn.execute(f"revoke connect on database {role} from public")
            log.info("postgres: login and database %s ready", service)
    finally:
        await conn.close()


async def provision_rabbitmq(
    management_url: str,
    admin_user: str,
    admin_password: str,
    passwords: Mapping[str, str],
    verify: ssl.SSLContext | bool = True,
) -> None:
    """`verify`: the context an https:// management URL is verified with."""
    async with httpx.AsyncClient(
        base_url=management_url, auth=(admin_user, admin_password), timeout=10, verify=verify
    ) as http:
        for service, password in passwords.items():
            user = {"password": password, "tags": ""}
            response = await http.put(f"/api/users/{service}", json=user)
            response.raise_for_status()
            rights = RABBITMQ_PERMISSIONS[service]
            response = await http.put(
                f"/api/permissions/%2F/{service}",
                json={"configure": rights.configure, "write": rights.write, "read": rights.read},
            )
            response.raise_for_status()
            log.info("rabbitmq: user %s ready", service)


def _identifier(name: str) -> str:
    if not name.isidentifier() or not name.islower():
        raise ValueError(f"{name!r} is not a plain lower-case identifier")
    return f'"{name}"'


async def provision_postgres_of(settings: AccountsSettings) -> None:
    """The PostgreSQL step with the settings' server, administrator and passwords."""
    await provision_postgres(
        settings.postgres_host,
        settings.postgres_port,
        settings.postgres_admin_user,
        settings.postgres_admin_password.get_secret_value(),
        settings.passwords("database"),
        ssl=settings.postgres_ssl(),
    )


async def provision(settings: AccountsSettings) -> None:
    """Each step waits for its server (messaging.provisioning), within
    PROVISION_TIMEOUT_S."""
    await until_reachable(
        "postgres", lambda: provision_postgres_of(settings), settings.provision_timeout_s
    )
    await until_reachable(
        "rabbitmq",
        lambda: provision_rabbitmq(
            settings.rabbitmq_management_url,
            settings.rabbitmq_admin_user,
            settings.rabbitmq_admin_password.get_secret_value(),
            settings.passwords("rabbitmq"),
            verify=settings.management_tls(),
        ),
        settings.provision_timeout_s,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(
        "provision-accounts", __doc__ or "", lambda: provision(AccountsSettings()), argv
    )


if __name__ == "__main__":
    sys.exit(main())
