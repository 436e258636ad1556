"""Outbox tables and relays for tests: a table of its own per test, in the
order database, drained by real relay processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import asyncpg
import httpx
from sqlalchemy import MetaData, create_engine, insert, text

from messaging.envelope import (
    Contract,
    Destination,
    MessageContext,
    OutgoingMessage,
)
from messaging.outbox.names import drop_notify_trigger_ddl, notify_trigger_ddl
from messaging.outbox.schema import outbox_table
from messaging.outbox.writer import outbox_row
from stackctl.apps import Apps
from stackctl.components import LocalStack
from tests.support.metrics import Samples, scrape
from tests.support.waiting import free_port


class Probe(Contract):
    """A test message: which key, and its place in that key's sequence."""

    TYPE: ClassVar[str] = "test.probe"

    key: str
    seq: int


def probe_message(
    destination: Destination, key: str, seq: int, *, best_effort: bool = False
) -> OutgoingMessage:
    return OutgoingMessage(
        Probe(key=key, seq=seq),
        destination,
        subject=key,
        source="tests",
        context=MessageContext(correlation_id=f"test-{key}"),
        best_effort=best_effort,
    )


@dataclass
class OutboxFixture:
    stack: LocalStack
    name: str

    @property
    def dsn(self) -> str:
        return self.stack.postgres_dsn(database="order", user="order")

    def _engine_url(self) -> str:
        return self.dsn.replace("postgresql://", "postgresql+psycopg://")

    def create(self) -> None:
        engine = create_engine(self._engine_url())
        with engine.begin() as conn:
            outbox_table(MetaData(), self.name).create(conn)
            for statement in notify_trigger_ddl(self.name):
                conn.execute(text(statement))
        engine.dispose()

    def drop(self) -> None:
        engine = create_engine(self._engine_url())
        with engine.begin() as conn:
            for statement in drop_notify_trigger_ddl(self.name):
                conn.execute(text(statement))
            conn.execute(text(f"drop table if exists {self.name}"))
        engine.dispose()

    def insert(self, messages: Iterable[OutgoingMessage], chunk: int = 1000) -> None:
        table = outbox_table(MetaData(), self.name)
        rows = [outbox_row(m) for m in messages]
        engine = create_engine(self._engine_url())
        with engine.begin() as conn:
            for start in range(0, len(rows), chunk):
                conn.execute(insert(table), rows[start : start + chunk])
        engine.dispose()

    async def count(self, where: str = "true") -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(await conn.fetchval(f"select count(*) from {self.name} where {where}"))
        finally:
            await conn.close()

    async def wait_until(self, where: str, expected: int, timeout_s: float = 60) -> int:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            n = await self.count(where)
            if n >= expected or asyncio.get_running_loop().time() > deadline:
                return n
            await asyncio.sleep(0.1)


class RelayProcess:
    """`outbox-relay run` as a real child process on a test table."""

    def __init__(self, stack: LocalStack, table: str, log_dir: Path, **overrides: str) -> None:
        apps = Apps(stack)
        self.port = free_port()
        self.env = {
            **os.environ,
            **apps.database_env("order"),
            **apps.kafka_env(),
            **apps.rabbitmq_env("order"),
            **apps.telemetry_env("test-relay"),
            **apps.http_env(self.port),
            "OUTBOX_TABLE": table,
            **{k.upper(): v for k, v in overrides.items()},
        }
        self.log_path = log_dir / f"relay-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RelayProcess:
        relay = Path(sys.executable).with_name("outbox-relay")
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(relay), "run"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        return self

    async def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                assert self.process is not None
                assert self.process.poll() is None, self.output()
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/health/ready")).is_success:
                        return
                except httpx.HTTPError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, self.output()
                await asyncio.sleep(0.2)

    async def metrics(self) -> Samples:
        return await scrape(f"http://127.0.0.1:{self.port}/metrics/")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout_s: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]


def sequences_by_key(values: Sequence[dict[str, object]]) -> dict[str, list[int]]:
    by_key: dict[str, list[int]] = {}
    for v in values:
        by_key.setdefault(str(v["key"]), []).append(int(str(v["seq"])))
    return by_key
