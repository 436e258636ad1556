"""The live page in a real browser (Debian's chromium, driven by playwright)
against the running stack and a live-feed process of the test's own: an order
placed through order-service's API appears on the page with its points and
both mails, linked to its trace and its mails.

The screenshot is saved under the stack's state (the path is printed); with
LIVE_FEED_SCREENSHOT=<path> a copy goes there too (the README's
docs/images/live-feed.png is made so).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stackctl.components import LocalStack
from tests.e2e.live_feed import (
    chromium_page,
    live_feed_process,
    open_live_page,
    row,
    screenshot_path,
    wait_settled_on_page,
)
from tests.support.orders import order_request


@pytest.fixture(scope="module")
async def feed(local_stack: LocalStack) -> AsyncIterator[str]:
    with tempfile.NamedTemporaryFile(prefix="live-feed-", suffix=".log", delete=False) as log:
        async with live_feed_process(local_stack, log) as url:
            yield url


async def test_an_order_appears_with_its_points_and_both_mails(
    feed: str, api: httpx.AsyncClient, local_stack: LocalStack
) -> None:
    s = local_stack.s
    async with chromium_page() as page:
        await open_live_page(page, feed)
        orders = []
        for n, price in enumerate(("12.00", "30.00", "7.50")):
            body = order_request(f"browser-{n}-{uuid.uuid4().hex[:6]}", price, "browser")
            response = await api.post("/orders", json=body)
            assert response.status_code == 201
            orders.append(response.json()["id"])
        assert await wait_settled_on_page(page, orders, timeout_s=30) == set(orders)

        first = page.locator(row(orders[0]))
        assert "+12 pts" in await first.inner_text()
        trace = await first.locator("a", has_text="trace").get_attribute("href")
        assert trace is not None
        assert trace.startswith(f"http://{s.host}:{s.jaeger_query_port}/trace/")
        assert len(trace.rsplit("/", 1)[1]) == 32
        mails = await first.locator("a", has_text="mails").get_attribute("href")
        assert mails == f"http://{s.host}:{s.mailpit_http_port}/search?q={orders[0]}"
        assert await page.get_attribute("#feed", "data-state") == "subscribed"

        shot = screenshot_path(local_stack, "browser-test.png")
        await page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    if copy := os.environ.get("LIVE_FEED_SCREENSHOT"):
        Path(copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, copy)
