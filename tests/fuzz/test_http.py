"""The CI-sized HTTP fuzzing run (tests/fuzz/http.py) against the running
local stack's order-service: every generated request answered without a
server error and as the OpenAPI document declares. `make fuzz` runs a longer
one."""

from __future__ import annotations

import os
import random

import pytest

from stackctl.control import build
from tests.fuzz.http import fuzz_http


def test_no_generated_request_gets_a_server_error_or_an_undeclared_answer() -> None:
    local_stack, supervisor = build()
    if not supervisor.is_running():
        pytest.fail("the local stack is not running: start it with `make up`")
    seed = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    cases = int(os.environ.get("FUZZ_HTTP_EXAMPLES", "25"))
    result = fuzz_http(
        f"http://{local_stack.s.host}:{local_stack.s.order_service_port}", seed, cases
    )
    assert result.cases > 0, "\n".join(result.failures)
    assert result.server_errors == 0, f"seed {seed}: {result.server_errors} 5xx\n" + "\n".join(
        result.failures
    )
    assert result.exit_code == 0, f"seed {seed}:\n" + "\n".join(result.failures)
