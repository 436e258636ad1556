"""`make fuzz`: HTTP fuzzing of order-service (tests/fuzz/http.py) and message
fuzzing of every consumer on both brokers (tests/fuzz/messages.py), against
the running local stack, with one seed. Ends with exactly one line:

    http_cases=N http_5xx=N messages=N consumers_alive=yes|no lost=N

FUZZ_SEED replays a run (the seed is printed first); FUZZ_HTTP_CASES is the
least number of HTTP requests (1,000 by default) and FUZZ_MESSAGES the number
of malformed messages (500). Exits non-zero on a 5xx, on anything lost, on a
consumer that died, and on any other failure either part reports (listed
above the summary line).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import sys
from typing import Any

from tests.e2e.system import System
from tests.e2e.targets import LocalTarget
from tests.fuzz.messages import MessageFuzzResult, fuzz_messages

# Requests the HTTP fuzzer sends per generated example of every operation
# (tests/fuzz/http.py takes examples per operation; about 19 requests each
# were measured): the first call asks for enough to reach FUZZ_HTTP_CASES,
# further seeds run until it is reached.
REQUESTS_PER_EXAMPLE = 18


def fuzz_http_at_least(base_url: str, seed: int, cases: int) -> tuple[int, int, list[str]]:
    """(requests, 5xx answers, failures) of as many HTTP fuzzing runs as it
    takes to send `cases` requests, seeds seed, seed + 1, ..."""
    from tests.fuzz.http import fuzz_http  # another part of the suite; its interface only

    sent = server_errors = 0
    failures: list[str] = []
    run = 0
    while sent < cases:
        examples = max(1, math.ceil((cases - sent) / REQUESTS_PER_EXAMPLE))
        result: Any = fuzz_http(base_url, seed + run, examples)
        sent += result.cases
        server_errors += result.server_errors
        failures += list(getattr(result, "failures", []))
        if getattr(result, "exit_code", 0) and not result.failures:
            failures.append(f"HTTP fuzzing (seed {seed + run}) exited {result.exit_code}")
        run += 1
        if result.cases == 0:
            failures.append("HTTP fuzzing sent no request")
            break
    return sent, server_errors, failures


async def run_messages(seed: int, count: int) -> MessageFuzzResult:
    target = LocalTarget()
    system = System(target.endpoints)
    try:
        return await fuzz_messages(system, seed, count)
    finally:
        await system.close()


def main() -> int:
    seed = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    http_cases = int(os.environ.get("FUZZ_HTTP_CASES") or 1000)
    messages = int(os.environ.get("FUZZ_MESSAGES") or 500)
    print(f"fuzz: seed={seed} (FUZZ_SEED={seed} replays)", flush=True)
    target = LocalTarget()
    if not target.supervisor.is_running():
        print("the local stack is not running: start it with `make up`", file=sys.stderr)
        return 2

    sent, server_errors, http_failures = fuzz_http_at_least(
        target.endpoints.order_api, seed, http_cases
    )
    result = asyncio.run(run_messages(seed, messages))

    print(f"messages by consumer, kind and outcome (seed {seed}):")
    print(result.table())
    for name, ok in result.alive.items():
        print(f"  {'alive' if ok else 'DEAD '}  {name}")
    for failure in http_failures:
        print(f"http: {failure}")
    for problem in result.problems:
        print(f"messages: {problem}")
    print(
        f"http_cases={sent} http_5xx={server_errors} messages={result.messages}"
        f" consumers_alive={'yes' if result.consumers_alive else 'no'} lost={result.lost}"
    )
    failed = server_errors or http_failures or not result.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
