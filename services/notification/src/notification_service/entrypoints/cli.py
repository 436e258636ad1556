"""notification-service: `serve`, `migrate`, or work the parking lot:

notification-service parking-lot list
notification-service parking-lot retry MESSAGE_ID [...] | --all
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from messaging.cli import run, service_parser
from notification_service.entrypoints.app import create_app
from notification_service.entrypoints.parking_lot import list_parked, redrive
from notification_service.settings import NotificationServiceSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def main(argv: Sequence[str] | None = None) -> int:
    parser, sub = service_parser(
        "notification-service", __doc__, "consume notification.send and deliver e-mail"
    )
    lot = sub.add_parser("parking-lot", help="the parked messages").add_subparsers(
        dest="action", required=True
    )
    lot.add_parser("list", help="list parked messages and why they were parked")
    retry = lot.add_parser("retry", help="send parked messages back to notification.send")
    retry.add_argument("ids", nargs="*", metavar="MESSAGE_ID")
    retry.add_argument("--all", action="store_true")

    def parking_lot(settings: NotificationServiceSettings, args: argparse.Namespace) -> int:
        if args.action == "list":
            asyncio.run(list_parked(settings))
            return 0
        if not args.ids and not args.all:
            parser.error("parking-lot retry needs MESSAGE_ID ... or --all")
        return asyncio.run(redrive(settings, args.ids, everything=args.all))

    args = parser.parse_args(argv)
    return run(args, NotificationServiceSettings, MIGRATIONS, create_app, parking_lot)


if __name__ == "__main__":
    sys.exit(main())
