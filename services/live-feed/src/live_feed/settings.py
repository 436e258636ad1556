"""The one settings class of the live-feed process."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import ValidationInfo, field_validator

from messaging.settings import HttpSettings, RedisSettings, TelemetrySettings, variable


def base_url(value: str, info: ValidationInfo, *, required: bool) -> str:
    """An http(s) base URL without its trailing slash (paths are appended)."""
    if not value and not required:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{variable(info)}={value!r}: not an http(s) URL")
    return value.rstrip("/")


class LiveFeedSettings(RedisSettings, TelemetrySettings, HttpSettings):
    # Base URLs of the services' HTTP ports, whose read APIs /state assembles.
    order_service_url: str
    point_service_url: str
    notification_service_url: str
    # The tracing backend's UI (Jaeger: <url>/trace/<trace id>) and the mail
    # catcher's UI (Mailpit: <url>/search?q=<text>); empty: the page shows no
    # such links.
    trace_ui_url: str = ""
    mail_ui_url: str = ""

    @field_validator("order_service_url", "point_service_url", "notification_service_url")
    @classmethod
    def _service_url(cls, value: str, info: ValidationInfo) -> str:
        return base_url(value, info, required=True)

    @field_validator("trace_ui_url", "mail_ui_url")
    @classmethod
    def _ui_url(cls, value: str, info: ValidationInfo) -> str:
        return base_url(value, info, required=False)
