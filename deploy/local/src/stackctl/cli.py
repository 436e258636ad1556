"""stackctl: up, down, status, clean, and per-component start/stop/restart/kill/logs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

from stackctl.components import PrerequisiteMissingError
from stackctl.control import (
    StackError,
    all_components,
    build,
    down,
    restart,
    start,
    status,
    up,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start every component and wait until all are ready")
    sub.add_parser("down", help="stop every component; keep data")
    sub.add_parser("status", help="show each component and whether it is ready")
    sub.add_parser("clean", help="stop and delete all local state")
    for verb in ("start", "stop", "restart", "kill"):
        p = sub.add_parser(verb, help=f"{verb} one component by name")
        p.add_argument("name")
    run = sub.add_parser(
        "exec", help="run a command with a component's environment (e.g. the relay CLI)"
    )
    run.add_argument("name")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    logs = sub.add_parser("logs", help="print the last lines of a component's log")
    logs.add_argument("name")
    logs.add_argument("-n", "--lines", type=int, default=60)
    args = parser.parse_args(argv)
    # aiokafka logs every refused connection while Kafka boots; the probe reports it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    stack, supervisor = build()
    try:
        match args.command:
            case "up":
                asyncio.run(up(stack, supervisor))
            case "down":
                down(stack, supervisor)
            case "status":
                return 0 if asyncio.run(status(stack, supervisor)) else 1
            case "clean":
                down(stack, supervisor)
                shutil.rmtree(stack.s.state_dir, ignore_errors=True)
                print(f"removed {stack.s.state_dir}")
            case "start":
                asyncio.run(start(stack, supervisor, args.name))
            case "stop":
                supervisor.stop(args.name)
            case "restart":
                asyncio.run(restart(stack, supervisor, args.name))
            case "kill":
                supervisor.signal(args.name, "KILL")
            case "exec":
                component = next(c for c in all_components(stack) if c.name == args.name)
                cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
                return subprocess.run(
                    cmd, env={**os.environ, **component.environment}, check=False
                ).returncode
            case "logs":
                print(supervisor.tail(args.name, args.lines))
    except (StackError, PrerequisiteMissingError) as exc:
        print(f"stackctl {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
