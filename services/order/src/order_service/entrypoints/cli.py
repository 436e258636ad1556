"""order-service: `serve` the HTTP API, or `migrate` the database to the latest schema."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from messaging.migrations import upgrade
from messaging.telemetry import setup_telemetry
from order_service.entrypoints.http import create_app
from order_service.settings import OrderServiceSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def serve(settings: OrderServiceSettings) -> None:
    setup_telemetry(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="order-service", description=__doc__)
    parser.add_argument("command", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    if args.command == "migrate":
        upgrade(MIGRATIONS)
    else:
        serve(OrderServiceSettings())
    return 0


if __name__ == "__main__":
    sys.exit(main())
