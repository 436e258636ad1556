"""point-service: `serve` the consumers, `migrate` the database, or
`rebuild-projection` (replay `orders` into a fresh schema and compare)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from messaging.cli import run, service_parser
from point_service.entrypoints.app import create_app
from point_service.settings import PointServiceSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def main(argv: Sequence[str] | None = None) -> int:
    parser, sub = service_parser(
        "point-service",
        __doc__,
        "run the consumers (and health, metrics, AsyncAPI over HTTP)",
    )
    rebuild = sub.add_parser(
        "rebuild-projection",
        help="replay `orders` from the beginning in a new consumer group into a fresh schema "
        "and compare the balances with the live ones",
    )
    rebuild.add_argument("--keep", action="store_true", help="keep the replay schema")
    args = parser.parse_args(argv)
    return run(args, PointServiceSettings, MIGRATIONS, create_app, rebuild_projection)


def rebuild_projection(settings: PointServiceSettings, args: argparse.Namespace) -> int:
    from point_service.entrypoints.replay import rebuild_projection

    return asyncio.run(rebuild_projection(settings, keep=args.keep))


if __name__ == "__main__":
    sys.exit(main())
