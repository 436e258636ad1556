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

from opentelemetry.sdk.trace import TracerProvider

from messaging.asyncapi import placeholder_settings, render
from messaging.migrations import upgrade
from messaging.serving import serve
from notification_service.entrypoints.app import create_app
from notification_service.entrypoints.parking_lot import list_parked, redrive
from notification_service.settings import NotificationServiceSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notification-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="consume notification.send and deliver e-mail")
    sub.add_parser("migrate", help="upgrade the database to the latest schema")
    sub.add_parser("asyncapi", help="print the AsyncAPI document (JSON)")
    lot = sub.add_parser("parking-lot", help="the parked messages").add_subparsers(
        dest="action", required=True
    )
    lot.add_parser("list", help="list parked messages and why they were parked")
    retry = lot.add_parser("retry", help="send parked messages back to notification.send")
    retry.add_argument("ids", nargs="*", metavar="MESSAGE_ID")
    retry.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "asyncapi":
        placeholder = NotificationServiceSettings.model_validate(placeholder_settings())
        app = create_app(placeholder, TracerProvider())
        print(render(app.schema), end="")  # type: ignore[arg-type]
        return 0
    settings = NotificationServiceSettings()
    if args.command == "migrate":
        upgrade(MIGRATIONS)
    elif args.command == "serve":
        serve(settings, settings, lambda provider: create_app(settings, provider))
    elif args.action == "list":
        asyncio.run(list_parked(settings))
    else:
        if not args.ids and not args.all:
            parser.error("parking-lot retry needs MESSAGE_ID ... or --all")
        return asyncio.run(redrive(settings, args.ids, everything=args.all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
