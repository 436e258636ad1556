"""Credentials of the local stack, generated once per state directory.

Even on loopback the stack uses one database user and one RabbitMQ user per
service, as in the cluster, so the code paths that carry credentials are the
same everywhere. Passwords are random, kept in ``.stack/credentials.json``
(mode 0600) and survive restarts; ``make clean`` forgets them with the data.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from catalogue.services import SERVICES


@dataclass(frozen=True)
class Account:
    user: str
    password: str


@dataclass(frozen=True)
class Credentials:
    postgres_admin: Account
    rabbitmq_admin: Account
    postgres: dict[str, Account]
    rabbitmq: dict[str, Account]
    # Redis's one password (requirepass): the activity feed's publishers and
    # the live feed share it. Added after the first release: a state directory
    # from before gets one on its next load.
    redis_password: str

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        if path.exists():
            raw = json.loads(path.read_text())
            creds = cls(
                postgres_admin=Account(**raw["postgres_admin"]),
                rabbitmq_admin=Account(**raw["rabbitmq_admin"]),
                postgres={k: Account(**v) for k, v in raw["postgres"].items()},
                rabbitmq={k: Account(**v) for k, v in raw["rabbitmq"].items()},
                redis_password=raw.get("redis_password") or secrets.token_urlsafe(18),
            )
            if "redis_password" not in raw:
                creds.save(path)
            return creds
        creds = cls(
            postgres_admin=Account("stack", secrets.token_urlsafe(18)),
            rabbitmq_admin=Account("stack", secrets.token_urlsafe(18)),
            postgres={s: Account(s, secrets.token_urlsafe(18)) for s in SERVICES},
            rabbitmq={s: Account(s, secrets.token_urlsafe(18)) for s in SERVICES},
            redis_password=secrets.token_urlsafe(18),
        )
        creds.save(path)
        return creds

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=2)
