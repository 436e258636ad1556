"""order-service: `serve` the HTTP API, `migrate` the database to the latest schema,
or print its `asyncapi` document."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from messaging.asyncapi import render
from messaging.migrations import upgrade
from messaging.serving import serve
from order_service.entrypoints.asyncapi import specification
from order_service.entrypoints.http import create_app
from order_service.settings import OrderServiceSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="order-service", description=__doc__)
    parser.add_argument("command", choices=["serve", "migrate", "asyncapi"])
    args = parser.parse_args(argv)
    if args.command == "migrate":
        upgrade(MIGRATIONS)
    elif args.command == "asyncapi":
        print(render(specification()), end="")
    else:
        settings = OrderServiceSettings()
        serve(settings, settings, lambda provider: create_app(settings, provider))
    return 0


if __name__ == "__main__":
    sys.exit(main())
