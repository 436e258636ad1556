"""live-feed: `serve` the page, its event stream and the state it loads."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from live_feed.entrypoints.app import create_app
from live_feed.settings import LiveFeedSettings
from messaging.serving import serve as messaging_serve


def serve(settings: LiveFeedSettings) -> None:
    """messaging.serving.serve, with the event streams ended first when
    shutdown begins: each page reconnects to another replica, or to this one
    once it is back, and reloads /state."""
    # One line per call to the services' read APIs is noise; their spans say it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    messaging_serve(
        settings,
        settings,
        lambda provider: create_app(settings, provider),
        end_first=lambda app: app.state.fanout.close(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="live-feed", description=__doc__)
    parser.add_argument("command", choices=["serve"])
    parser.parse_args(argv)
    serve(LiveFeedSettings())
    return 0


if __name__ == "__main__":
    sys.exit(main())
