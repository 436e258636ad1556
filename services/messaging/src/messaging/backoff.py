"""Exponential backoff with full jitter, the one schedule every retry here uses.

Written here rather than taken from a retry library (tenacity is one, used for
the request/reply client's reconnects) because the callers are not retry
loops around one call: the relay stores the next attempt time in the outbox
row (it survives restarts and hand-overs between replicas), and the consumer
middleware keeps two budgets, transient outages (unbounded) and failures
(bounded), each feeding its own attempt count into this one formula.
"""

from __future__ import annotations

import random


def full_jitter(attempt: int, base_s: float, cap_s: float) -> float:
    """A delay drawn uniformly from [0, min(cap, base * 2^(attempt - 1))]."""
    return random.uniform(0, min(cap_s, base_s * 2 ** max(attempt - 1, 0)))  # noqa: S311
