"""outbox-relay: run the relay, or list and re-drive the failure log.

    outbox-relay run
    outbox-relay failures list [--limit N]
    outbox-relay failures retry MESSAGE_ID [MESSAGE_ID ...]
    outbox-relay failures retry --all

Configuration comes from the environment (RelaySettings).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence

import asyncpg
import uvicorn
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from messaging.connections import database_ssl
from messaging.telemetry import setup_telemetry
from outbox_relay.relay import OutboxRelay
from outbox_relay.settings import RelaySettings
from outbox_relay.store import OutboxStore

log = logging.getLogger("outbox_relay")


def health_app(relay: OutboxRelay) -> Starlette:
    """Liveness: the loop turns. Readiness: the outbox database is connected.
    Broker health is deliberately not part of either: a sidecar that turned
    unready while Kafka is down would take the service's API out of its Service,
    which is exactly what the outbox exists to avoid."""
    stale_after = relay.s.relay_poll_interval_s + relay.s.relay_publish_timeout_s * 3 + 30

    async def live(_: Request) -> JSONResponse:
        age = time.monotonic() - relay.heartbeat
        return JSONResponse(
            {"loop_age_s": round(age, 1)}, status_code=200 if age < stale_after else 503
        )

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"database": relay.ready}, status_code=200 if relay.ready else 503)

    return Starlette(
        routes=[
            Route("/health/live", live),
            Route("/health/ready", ready),
            Mount("/metrics", make_asgi_app()),
        ]
    )


class EmbeddedServer(uvicorn.Server):
    """uvicorn serving health and metrics inside a process whose shutdown the
    relay owns: it must not take over SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run(settings: RelaySettings) -> None:
    provider = setup_telemetry(settings)
    relay = OutboxRelay(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, relay.stop)
    server = EmbeddedServer(
        uvicorn.Config(
            health_app(relay),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    http = asyncio.create_task(server.serve(), name="relay-http")
    # Everything imported and built so far lives for the whole process: move it
    # out of the collector's reach, so that full collections stay short and do
    # not stall publishing (they showed up as 30-70 ms latency spikes).
    gc.collect()
    gc.freeze()
    log.info("outbox relay started on table %s", settings.outbox_table)
    try:
        await relay.run()
    finally:
        server.should_exit = True
        await http
        provider.shutdown()
        log.info("outbox relay stopped")


async def list_failures(settings: RelaySettings, limit: int) -> None:
    conn = await asyncpg.connect(
        settings.database_dsn(),
        timeout=settings.database_connect_timeout_s,
        ssl=database_ssl(settings),
    )
    try:
        failures = await OutboxStore(settings.outbox_table).failures(conn, limit)
    finally:
        await conn.close()
    print(f"{len(failures)} failed message(s) in {settings.outbox_table}")
    for f in failures:
        route = f"{f.destination}/{f.routing_key}" if f.routing_key else f.destination
        print(
            f"{f.message_id}  {f.message_type}  to {route}  key {f.ordering_key}  "
            f"attempts {f.attempts}  created {f.created_at:%Y-%m-%d %H:%M:%S}  "
            f"error: {f.last_error}"
        )


async def retry_failures(
    settings: RelaySettings, ids: Sequence[uuid.UUID], all_failed: bool
) -> int:
    conn = await asyncpg.connect(
        settings.database_dsn(),
        timeout=settings.database_connect_timeout_s,
        ssl=database_ssl(settings),
    )
    try:
        redriven = await OutboxStore(settings.outbox_table).redrive(
            conn, ids, all_failed=all_failed
        )
    finally:
        await conn.close()
    for message_id in redriven:
        print(f"re-driven {message_id}")
    missing = set(ids) - set(redriven)
    for message_id in sorted(missing, key=str):
        print(f"not in the failure log: {message_id}", file=sys.stderr)
    return 1 if missing else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="outbox-relay", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="drain the outbox until SIGTERM")
    failures = sub.add_parser("failures", help="the failure log").add_subparsers(
        dest="action", required=True
    )
    listing = failures.add_parser("list", help="list failed messages")
    listing.add_argument("--limit", type=int, default=100)
    retry = failures.add_parser("retry", help="re-drive failed messages")
    retry.add_argument("ids", nargs="*", type=uuid.UUID, metavar="MESSAGE_ID")
    retry.add_argument("--all", action="store_true", help="re-drive every failed message")
    args = parser.parse_args(argv)

    settings = RelaySettings()
    if args.command == "run":
        asyncio.run(run(settings))
        return 0
    if args.action == "list":
        asyncio.run(list_failures(settings, args.limit))
        return 0
    if not args.ids and not args.all:
        parser.error("failures retry needs MESSAGE_ID ... or --all")
    return asyncio.run(retry_failures(settings, args.ids, args.all))


if __name__ == "__main__":
    sys.exit(main())
