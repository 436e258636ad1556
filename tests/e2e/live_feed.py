"""`make verify-live-feed`: the live page against the running local stack, in
a real browser (Debian's chromium, driven by playwright), and the helpers the
live feed's integration and browser tests share.

1. Places N orders while the page is open; every one must appear on it with
   its points and both mails.
2. Stops the stack's `redis`, places N more: every one must be accepted and
   settle (order-service's API, point-service's /points, notification-service's
   /deliveries), while the services count the notices they drop
   (`activity_notices_total{outcome="dropped"}` on their /metrics).
3. Starts `redis` again (in a finally): the gateway subscribes again and tells
   the page to reload its state, which must then show the N orders placed
   while Redis was down, with their points and mails, though not one of their
   notices reached it.

Ends with exactly one line:

    page_orders_seen=N/N redis_down_orders_accepted=N/N notices_dropped=N screenshot=PATH

and exits non-zero on any failure. The page is the stack's `live-feed` unless
LIVE_FEED_URL names another (a live-feed started by hand).

    python -m tests.e2e.live_feed [--orders N] [--screenshot PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from playwright.async_api import Page, async_playwright

from stackctl.apps import Apps
from stackctl.components import LocalStack
from tests.e2e.targets import LocalTarget
from tests.support.orders import order_request
from tests.support.sse import SseReader
from tests.support.waiting import free_port, responds, wait_until

CHROMIUM = "/usr/bin/chromium"
# Headless, and quiet: without the background-networking flags chromium keeps
# trying to reach its vendor's servers, which a closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
SETTLED = '[data-points="done"][data-order-mail="done"][data-points-mail="done"]'
DROPPED = re.compile(r'^activity_notices_total\{[^}]*outcome="dropped"[^}]*\}\s+(\S+)$', re.M)


# -- the browser -------------------------------------------------------------


@asynccontextmanager
async def chromium_page(width: int = 1400, height: int = 900) -> AsyncIterator[Page]:
    """A page in a fresh headless chromium profile."""
    async with async_playwright() as playwright:
        with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": width, "height": height},
            )
            try:
                yield context.pages[0] if context.pages else await context.new_page()
            finally:
                await context.close()


async def open_live_page(page: Page, url: str, timeout_s: float = 20) -> None:
    """The page loaded, its event stream open and its state loaded."""
    await page.goto(url)
    await page.wait_for_selector('#connection[data-state="live"]', timeout=timeout_s * 1000)
    # Selectors, not a function: the page's Content-Security-Policy forbids
    # the eval that wait_for_function's polling needs.
    await page.wait_for_selector("#state-at:not(:empty)", timeout=timeout_s * 1000)


def row(order_id: str) -> str:
    return f'#orders tr[data-order-id="{order_id}"]'


async def settled_on_page(page: Page, order_ids: Iterable[str]) -> set[str]:
    """The orders the page shows with their points and both mails."""
    shown: list[str] = await page.eval_on_selector_all(
        f"#orders tr{SETTLED}", "rows => rows.map(r => r.dataset.orderId)"
    )
    return set(order_ids) & set(shown)


async def wait_settled_on_page(page: Page, order_ids: list[str], timeout_s: float) -> set[str]:
    async def all_there() -> bool:
        return len(await settled_on_page(page, order_ids)) == len(order_ids)

    await wait_until(all_there, timeout_s, interval_s=0.2)
    return await settled_on_page(page, order_ids)


# -- the system's APIs -----------------------------------------------------------


class Apis:
    """order-service's API, and the read APIs of point- and notification-service."""

    def __init__(self, stack: LocalStack) -> None:
        host, s = stack.s.host, stack.s
        self.http = httpx.AsyncClient(timeout=10)
        self.order = f"http://{host}:{s.order_service_port}"
        self.point = f"http://{host}:{s.point_service_port}"
        self.notification = f"http://{host}:{s.notification_service_port}"

    async def close(self) -> None:
        await self.http.aclose()

    async def place(self, customer: str) -> str | None:
        """The new order's id, or None when it was not accepted."""
        try:
            response = await self.http.post(
                f"{self.order}/orders", json=order_request(customer, "12.00", "live-feed")
            )
        except httpx.HTTPError:
            return None
        return str(response.json()["id"]) if response.status_code == 201 else None

    async def settled(self, order_ids: list[str]) -> set[str]:
        """The orders granted points and sent both mails, as the services tell."""
        params = {"order_id": order_ids}
        points = await self.http.get(f"{self.point}/points", params=params)
        mails = await self.http.get(f"{self.notification}/deliveries", params=params)
        if points.status_code != 200 or mails.status_code != 200:
            return set()
        granted = {p["order_id"] for p in points.json() if p["points"] > 0}
        sent: dict[str, set[str]] = {}
        for mail in mails.json():
            if mail["delivered_at"]:
                sent.setdefault(mail["order_id"], set()).add(mail["kind"])
        return {o for o in order_ids if o in granted and sent.get(o) == {"order", "points"}}

    async def wait_settled(self, order_ids: list[str], timeout_s: float) -> set[str]:
        async def all_settled() -> bool:
            return len(await self.settled(order_ids)) == len(order_ids)

        await wait_until(all_settled, timeout_s, interval_s=0.5)
        return await self.settled(order_ids)

    async def notices_dropped(self) -> float:
        """activity_notices_total{outcome="dropped"}, summed over the services."""
        total = 0.0
        for base in (self.order, self.point, self.notification):
            text = (await self.http.get(f"{base}/metrics")).text
            total += sum(float(v) for v in DROPPED.findall(text))
        return total


# -- a live-feed process of the test's own ------------------------------------------


@asynccontextmanager
async def live_feed_process(
    stack: LocalStack, log: IO[bytes], **overrides: str
) -> AsyncIterator[str]:
    """`live-feed serve` with the stack's environment for it (and the
    overrides), on a free port: its base URL, once ready."""
    port = free_port()
    env = {**os.environ, **Apps(stack).live_feed_env(), "HTTP_PORT": str(port), **overrides}
    command = [str(Path(sys.executable).with_name("live-feed")), "serve"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{stack.s.host}:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            if not await wait_until(lambda: responds(http, f"{url}/health/ready"), 60):
                raise RuntimeError(f"live-feed on {url} did not become ready (log: {log.name})")
        yield url
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) of each event of an open event stream."""
    reader = SseReader()
    async for line in response.aiter_lines():
        if (event := reader.line(line)) is not None:
            yield event


def screenshot_path(stack: LocalStack, name: str) -> Path:
    path = stack.s.state_dir / "live-feed" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# -- make verify-live-feed --------------------------------------------------------


@dataclass
class Outcome:
    n: int
    seen: set[str] = field(default_factory=set)
    accepted: list[str] = field(default_factory=list)
    settled: set[str] = field(default_factory=set)
    recovered: set[str] = field(default_factory=set)
    dropped: float = 0.0
    screenshot: Path | None = None
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"page_orders_seen={len(self.seen)}/{self.n} "
            f"redis_down_orders_accepted={len(self.settled)}/{self.n} "
            f"notices_dropped={self.dropped:.0f} screenshot={self.screenshot}"
        )

    def check(self) -> None:
        n = self.n
        if len(self.seen) < n:
            self.problems.append(f"{n - len(self.seen)} order(s) never settled on the page")
        if len(self.accepted) < n:
            self.problems.append(f"{n - len(self.accepted)} order(s) refused with Redis down")
        if len(self.settled) < len(self.accepted):
            missing = len(self.accepted) - len(self.settled)
            self.problems.append(f"{missing} order(s) not settled with Redis down")
        if len(self.recovered) < len(self.accepted):
            self.problems.append(
                f"after Redis came back the page showed {len(self.recovered)}/"
                f"{len(self.accepted)} of the orders placed while it was down"
            )
        if self.dropped < 1:
            self.problems.append("the services counted no dropped notice while Redis was down")


async def verify(target: LocalTarget, url: str, outcome: Outcome) -> None:
    stack, n = target.stack, outcome.n
    apis = Apis(stack)
    run = uuid.uuid4().hex[:8]
    shot = screenshot_path(stack, "verify-live-feed.png")
    try:
        async with chromium_page() as page:
            await open_live_page(page, url)
            first = [o for o in [await apis.place(f"feed-{run}-{i}") for i in range(n)] if o]
            outcome.seen = await wait_settled_on_page(page, first, timeout_s=30)
            before = await apis.notices_dropped()
            await target.stop("redis")
            try:
                placed = [await apis.place(f"feed-{run}-down-{i}") for i in range(n)]
                outcome.accepted = [o for o in placed if o]
                outcome.settled = await apis.wait_settled(outcome.accepted, timeout_s=30)
                outcome.dropped = await apis.notices_dropped() - before
            finally:
                await target.start("redis")
            # Subscribed again, the gateway tells the page to reload its state.
            outcome.recovered = await wait_settled_on_page(page, outcome.accepted, 30)
            await page.screenshot(path=str(shot))
            outcome.screenshot = shot
    finally:
        await apis.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=5, help="orders per phase (default 5)")
    parser.add_argument("--screenshot", type=Path, help="also save the screenshot here")
    args = parser.parse_args(argv)
    if os.environ.get("E2E_TARGET", "local") != "local":
        parser.error("verify-live-feed runs against the local stack only (E2E_TARGET=local)")
    target = LocalTarget()
    s = target.stack.s
    url = os.environ.get("LIVE_FEED_URL") or f"http://{s.host}:{s.live_feed_port}"
    started = time.monotonic()
    outcome = Outcome(args.orders)
    try:
        asyncio.run(verify(target, url, outcome))
    except Exception as exc:  # noqa: BLE001 - reported, and the run fails
        traceback.print_exc()
        outcome.problems.append(f"the run stopped: {exc!r}")
    else:
        outcome.check()
    if outcome.screenshot is not None and args.screenshot is not None:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outcome.screenshot, args.screenshot)
    for problem in outcome.problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    print(f"took {time.monotonic() - started:.1f}s", file=sys.stderr)
    print(outcome.line())
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())
