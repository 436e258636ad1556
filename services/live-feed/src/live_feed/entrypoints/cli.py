"""live-feed: `serve` the page, its event stream and the state it loads."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence

import uvicorn

from live_feed.entrypoints.app import create_app
from live_feed.fanout import Fanout
from live_feed.settings import LiveFeedSettings
from messaging.serving import ExitWhenTheAppStops
from messaging.telemetry import setup_telemetry

LOGGER = logging.getLogger(__name__)


class EndStreamsFirst(uvicorn.Server):
    """uvicorn waits for open responses to finish before it stops, and an
    event stream never finishes: every SIGTERM would wait out the graceful
    shutdown timeout. The streams are ended first (each page reconnects to
    another replica, or to this one once it is back, and reloads /state)."""

    def __init__(self, config: uvicorn.Config, fanout: Fanout) -> None:
        super().__init__(config)
        self.fanout = fanout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.fanout.close()
        await super().shutdown(sockets)


def serve(settings: LiveFeedSettings) -> None:
    """As messaging.serving.serve, with streams that end on shutdown."""
    provider = setup_telemetry(settings)
    # One line per call to the services' read APIs is noise; their spans say it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    starlette = create_app(settings, provider)
    app = ExitWhenTheAppStops(starlette)
    server = EndStreamsFirst(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=20,
        ),
        starlette.state.fanout,
    )
    app.server = server
    server.run()
    provider.shutdown()
    if app.failed:
        LOGGER.error("the app stopped after start-up (its error is logged above): exiting")
        raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="live-feed", description=__doc__)
    parser.add_argument("command", choices=["serve"])
    parser.parse_args(argv)
    serve(LiveFeedSettings())
    return 0


if __name__ == "__main__":
    sys.exit(main())
