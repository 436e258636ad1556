"""The command line every FastStream service has: `serve`, `migrate` and
`asyncapi`; a service adds its own subcommands to the parser and runs them.

    parser, sub = service_parser("point-service", __doc__, serve_help="...")
    sub.add_parser("rebuild-projection", ...)
    args = parser.parse_args(argv)
    return run(args, PointServiceSettings, MIGRATIONS, create_app, own)

`own(settings, args)` runs a subcommand of the service's own, with the
process's settings, and returns the exit status.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from opentelemetry.sdk.trace import TracerProvider

from messaging.asyncapi import placeholder_settings, render
from messaging.migrations import upgrade
from messaging.serving import serve
from messaging.settings import HttpSettings, TelemetrySettings

# A service's one settings class: telemetry and HTTP settings, and more.
S = TypeVar("S", bound=TelemetrySettings)


def service_parser(
    prog: str, description: str | None, serve_help: str
) -> tuple[argparse.ArgumentParser, Any]:
    """The parser with the `serve`, `migrate` and `asyncapi` subcommands, and
    its subparsers, for the service's own."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help=serve_help)
    sub.add_parser("migrate", help="upgrade the database to the latest schema")
    sub.add_parser("asyncapi", help="print the AsyncAPI document (JSON)")
    return parser, sub


def run(
    args: argparse.Namespace,
    settings_class: type[S],
    migrations: Path,
    create_app: Callable[[S, TracerProvider], Any],
    own: Callable[[S, argparse.Namespace], int],
) -> int:
    """Run the subcommand: the AsyncAPI document from placeholder settings;
    everything else with the process's settings (from the environment)."""
    if args.command == "asyncapi":
        placeholder = settings_class.model_validate(placeholder_settings())
        app = create_app(placeholder, TracerProvider())
        print(render(app.schema), end="")
        return 0
    settings = settings_class()
    if args.command == "migrate":
        upgrade(migrations)
    elif args.command == "serve":
        http = cast(HttpSettings, settings)  # a service's settings class is both
        serve(settings, http, lambda provider: create_app(settings, provider))
    else:
        return own(settings, args)
    return 0
