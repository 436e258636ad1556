"""The soak (`make chaos`, outside CI): orders at a steady rate while a fault
schedule kills, stops and restarts brokers, relays and consumers at random;
then drain and run the invariant checker over every accepted order.

The schedule comes from a seeded random generator; the seed is printed (and
taken from --seed to replay a run). Ends with one summary line:
`orders=N faults=N lost=N applied_twice=N drain_s=X seed=N`.

It exits non-zero on anything lost, any problem (outbox backlog, unexpected
dead letters or mail) and any duplicate except one: a mail whose first copy
the SMTP server accepted within 2 s of a SIGKILL of notification-service, the
at-least-once window docs/messaging.md documents (hop 7). Such resends are
still counted in applied_twice and listed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.system import PlacedOrder, System, check_invariants
from tests.e2e.targets import KindTarget, LocalTarget, target_from_env

VICTIMS = (
    "kafka",
    "rabbitmq",
    "order-relay",
    "point-relay",
    "point-service",
    "notification-service",
)


async def traffic(
    system: System, tag: str, count: int, rate: float, cancel_share: float, rng: random.Random
) -> list[PlacedOrder]:
    """`count` orders at `rate` per second (each on its own schedule, so a slow
    answer does not slow the rate), a share of them cancelled afterwards."""
    orders: list[PlacedOrder] = []
    refused: Counter[str] = Counter()
    limit = asyncio.Semaphore(64)
    started = time.monotonic()

    async def one(n: int) -> None:
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        async with limit:
            try:
                order = await system.place(tag)
            except (AssertionError, httpx.HTTPError) as exc:
                # Refused or unanswered: not accepted, so not promised anything.
                refused[
                    str(exc)[:60] if isinstance(exc, AssertionError) else type(exc).__name__
                ] += 1
                return
            orders.append(order)
            if rng.random() < cancel_share:
                # A refused cancel changed nothing: the order stays placed.
                with contextlib.suppress(AssertionError, httpx.HTTPError):
                    await system.cancel(order)

    await asyncio.gather(*(one(n) for n in range(count)))
    if refused:
        print(f"{sum(refused.values())} order requests were refused (not counted as accepted):")
        for reason, n in refused.most_common():
            print(f"  {n:6d}  {reason}")
    return orders


@dataclass(frozen=True)
class Fault:
    at: datetime
    action: str
    victim: str


async def faults(
    target: LocalTarget | KindTarget,
    rng: random.Random,
    stop: asyncio.Event,
    every_s: float,
    log: list[Fault],
) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), rng.uniform(every_s / 2, every_s * 1.5))
            break
        except TimeoutError:
            pass
        victim = rng.choice(VICTIMS)
        action = rng.choice(("kill", "stop"))
        down_s = rng.uniform(1, 8)
        print(f"t={time.monotonic():.0f} {action} {victim} for {down_s:.1f}s", flush=True)
        log.append(Fault(datetime.now(UTC), action, victim))
        await (target.kill(victim) if action == "kill" else target.stop(victim))
        await asyncio.sleep(down_s)
        await target.start(victim)


# A mail accepted this shortly before a SIGKILL of notification-service may have
# had its delivery record die with the process (the window is a few ms: the
# INSERTs and the COMMIT after the SMTP server's 250).
CRASH_WINDOW = timedelta(seconds=2)


def explain_resent_mail(resent: dict[str, list[datetime]], log: list[Fault]) -> int:
    """Sort mails delivered twice (command id → acceptance time of each copy)
    into the documented at-least-once case (first copy accepted just before
    notification-service was SIGKILLed; the resend carries the same Message-ID)
    and the rest, which no design here allows. Returns how many are the rest."""
    kills = [f.at for f in log if f.action == "kill" and f.victim == "notification-service"]
    # (The fault is logged just before the signal: a mail can land in between.)
    unexplained = [
        message_id
        for message_id, copies in resent.items()
        if not any(abs(k - copies[0]) <= CRASH_WINDOW for k in kills)
    ]
    print(
        f"mails delivered twice: {len(resent) - len(unexplained)} accepted within"
        f" {CRASH_WINDOW.total_seconds():.0f} s of a SIGKILL of notification-service"
        f" (at-least-once by design, same Message-ID);"
        f" {len(unexplained)} otherwise {unexplained[:5]}"
    )
    return len(unexplained)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=20.0, help="orders per second")
    parser.add_argument("--fault-every", type=float, default=20.0, help="mean s between faults")
    parser.add_argument("--cancel-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"seed={seed} orders={args.orders} rate={args.rate}/s fault every ~{args.fault_every}s")
    rng = random.Random(seed)

    target = target_from_env()
    system = System(target.endpoints)
    stop = asyncio.Event()
    try:
        log: list[Fault] = []
        fault_task = asyncio.create_task(faults(target, rng, stop, args.fault_every, log))
        tag = f"chaos{seed}"
        orders = await traffic(
            system, tag, args.orders, args.rate, args.cancel_share, random.Random(seed + 1)
        )
        stop.set()
        await fault_task
        print(f"{len(orders)} orders accepted; draining")
        started = time.monotonic()
        report = await check_invariants(system, orders, timeout_s=args.drain_timeout)
        drain_s = time.monotonic() - started
        if not report.ok:
            print(f"invariants violated: {report}")
        # The one exception the design documents (docs/messaging.md, hop 7):
        # a mail resent because notification-service was SIGKILLed between the
        # SMTP server's acceptance and its record. Counted in applied_twice
        # all the same; only an unexplained duplicate fails the soak.
        unexplained = len(report.applied_twice) - len(report.mail_resent)
        if report.mail_resent:
            unexplained += explain_resent_mail(report.mail_resent, log)
        failed = bool(report.lost or report.problems or unexplained)
    finally:
        await system.close()
    print(
        f"orders={len(orders)} faults={len(log)} lost={len(report.lost)} "
        f"applied_twice={len(report.applied_twice)} drain_s={drain_s:.1f} seed={seed}"
    )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
