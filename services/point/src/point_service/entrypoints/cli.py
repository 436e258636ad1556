"""point-service: `serve` the consumers, `migrate` the database, or
`rebuild-projection` (replay `orders` into a fresh schema and compare)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from messaging.asyncapi import placeholder_settings, render
from messaging.migrations import upgrade
from messaging.serving import serve
from point_service.entrypoints.app import create_app
from point_service.settings import PointServiceSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="point-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the consumers (and health, metrics, AsyncAPI over HTTP)")
    sub.add_parser("migrate", help="upgrade the database to the latest schema")
    sub.add_parser("asyncapi", help="print the AsyncAPI document (JSON)")
    rebuild = sub.add_parser(
        "rebuild-projection",
        help="replay `orders` from the beginning in a new consumer group into a fresh schema "
        "and compare the balances with the live ones",
    )
    rebuild.add_argument("--keep", action="store_true", help="keep the replay schema")
    args = parser.parse_args(argv)
    if args.command == "asyncapi":
        placeholder = PointServiceSettings.model_validate(placeholder_settings())
        app = create_app(placeholder, TracerProvider())
        print(render(app.schema), end="")  # type: ignore[arg-type]
        return 0
    settings = PointServiceSettings()
    if args.command == "migrate":
        upgrade(MIGRATIONS)
    elif args.command == "serve":
        serve(settings, settings, lambda provider: create_app(settings, provider))
    else:
        from point_service.entrypoints.replay import rebuild_projection

        return asyncio.run(rebuild_projection(settings, keep=args.keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
