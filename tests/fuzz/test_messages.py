"""The CI-sized message fuzzing run (tests/fuzz/messages.py) against the
running local stack: about 100 malformed messages to every consumer of both
brokers among 20 real orders; each bad message dead-lettered with its reason
(or, where that is the policy, ignored or left unanswered), every consumer
alive, nothing lost. `make fuzz` runs a longer one.

FUZZ_SEED replays a run; FUZZ_CI_MESSAGES changes its size."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator

import pytest

from tests.e2e.system import System
from tests.e2e.targets import LocalTarget
from tests.fuzz.messages import fuzz_messages


@pytest.fixture
async def system() -> AsyncIterator[System]:
    target = LocalTarget()
    if not target.supervisor.is_running():
        pytest.fail("the local stack is not running: start it with `make up`")
    client = System(target.endpoints)
    yield client
    await client.close()


async def test_malformed_messages_are_dead_lettered_and_every_consumer_lives(
    system: System,
) -> None:
    seed = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    count = int(os.environ.get("FUZZ_CI_MESSAGES", "100"))
    result = await fuzz_messages(system, seed, count)
    print(result.table())
    summary = f"seed {seed} (FUZZ_SEED={seed} replays): "
    assert result.consumers_alive, summary + f"a consumer died: {result.alive}"
    assert result.lost == 0, summary + f"{result.lost} lost:\n" + "\n".join(result.problems)
    assert not result.problems, summary + "\n".join(result.problems[:40])
