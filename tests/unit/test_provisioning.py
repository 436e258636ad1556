"""messaging.provisioning: a provisioning step waits for its server within a
bound, and fails at once on anything but an unreachable server."""

from __future__ import annotations

import time

import httpx
import pytest

from messaging.provisioning import unreachable, until_reachable


class Step:
    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


def http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("PUT", "http://rabbitmq/api/users/order")
    return httpx.HTTPStatusError(
        "", request=request, response=httpx.Response(status, request=request)
    )


async def test_a_refused_connection_is_tried_again_until_it_succeeds() -> None:
    step = Step(ConnectionRefusedError(111, "refused"), http_error(503))
    await until_reachable("postgres", step, timeout_s=30)
    assert step.calls == 3


async def test_any_other_error_fails_at_once() -> None:
    step = Step(http_error(401))
    with pytest.raises(httpx.HTTPStatusError):
        await until_reachable("rabbitmq", step, timeout_s=30)
    assert step.calls == 1


async def test_a_server_that_never_answers_fails_after_the_bound() -> None:
    step = Step(*[ConnectionRefusedError(111, "refused")] * 100)
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await until_reachable("kafka", step, timeout_s=1)
    assert 1 <= time.monotonic() - started < 12
    assert 1 < step.calls < 100


def test_what_counts_as_unreachable() -> None:
    assert unreachable(TimeoutError())
    assert unreachable(httpx.ConnectError("refused"))
    assert unreachable(http_error(503))
    assert not unreachable(http_error(404))
    assert not unreachable(ValueError("bad name"))
