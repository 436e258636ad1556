"""The gateway's routes in process (no Redis: the feed is off; the services'
URLs lead nowhere), its settings, and the local stack's environment for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from live_feed.entrypoints.app import Tuning, create_app
from live_feed.settings import LiveFeedSettings
from stackctl.apps import LIVE_FEED, Apps
from stackctl.components import LocalStack
from stackctl.credentials import Credentials
from stackctl.settings import StackSettings
from tests.support.waiting import free_port

NOWHERE = f"http://127.0.0.1:{free_port()}"


def settings(**values: str) -> LiveFeedSettings:
    return LiveFeedSettings.model_validate(
        {
            "otel_service_name": "live-feed",
            "order_service_url": NOWHERE,
            "point_service_url": NOWHERE,
            "notification_service_url": NOWHERE,
            **values,
        }
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(), TracerProvider(), Tuning(upstream_timeout_s=1))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://feed") as client:
        yield client


async def test_the_page_and_its_assets_come_from_the_package(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/assets/page.js", "/assets/page.css"):
        assert asset in page.text
        assert (await http.get(asset)).status_code == 200


async def test_state_with_every_service_down_answers_at_once(http: httpx.AsyncClient) -> None:
    response = await http.get("/state")
    assert response.status_code == 200
    state = response.json()
    assert state["orders"] == []
    assert state["services"]["order-service"]["status"] == "unavailable"
    assert state["feed"] == "off"
    assert state["links"] == {"trace_ui": "", "mail_ui": ""}


@pytest.mark.parametrize("limit", ["0", "201", "x", "-1"])
async def test_a_bad_limit_is_a_problem(http: httpx.AsyncClient, limit: str) -> None:
    response = await http.get("/state", params={"limit": limit})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_health_and_metrics(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health/live")).json() == {"status": "ok"}
    assert (await http.get("/health/ready")).json() == {"redis": "off"}
    metrics = (await http.get("/metrics")).text
    for name in ("live_feed_clients", "live_feed_notices_total", "live_feed_subscribed"):
        assert f"\n{name} " in metrics


def test_urls_must_be_http_and_lose_their_trailing_slash() -> None:
    assert settings(trace_ui_url="http://jaeger:16686/").trace_ui_url == "http://jaeger:16686"
    assert settings(mail_ui_url="").mail_ui_url == ""
    with pytest.raises(ValidationError, match="ORDER_SERVICE_URL"):
        settings(order_service_url="order-service:8080")
    with pytest.raises(ValidationError, match="MAIL_UI_URL"):
        settings(mail_ui_url="ftp://mail")


def test_the_local_stack_sets_exactly_what_the_settings_class_reads(tmp_path: Path) -> None:
    stack = LocalStack(
        StackSettings(state_dir=tmp_path), Credentials.load_or_create(tmp_path / "c.json")
    )
    apps = Apps(stack)
    env = apps.live_feed_env()
    fields = LiveFeedSettings.model_fields
    every = {name.upper() for name in fields}
    required = {name.upper() for name, f in fields.items() if f.is_required()}
    assert required <= set(env), sorted(required - set(env))
    assert set(env) <= every, sorted(set(env) - every)
    assert set(env) == every - {"HTTP_MAX_BODY_BYTES", "REDIS_TIMEOUT_MS"}
    LiveFeedSettings.model_validate({k.lower(): v for k, v in env.items()})
    component = next(c for c in apps.components() if c.name == LIVE_FEED)
    assert component.command[-1] == "serve"
    assert component.ports == {"http": stack.s.live_feed_port}
