"""Running a service's ASGI app (FastAPI or AsgiFastStream) the same way everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn
from opentelemetry.sdk.trace import TracerProvider

from messaging.settings import HttpSettings, TelemetrySettings
from messaging.telemetry import setup_telemetry


def serve(
    telemetry: TelemetrySettings, http: HttpSettings, create_app: Callable[[TracerProvider], Any]
) -> None:
    """Set up logs and traces, then serve until SIGTERM; in-flight requests and
    messages get 20 s to finish. (A service's one settings class is both.)"""
    provider = setup_telemetry(telemetry)
    uvicorn.run(
        create_app(provider),
        host=http.http_host,
        port=http.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
    provider.shutdown()
