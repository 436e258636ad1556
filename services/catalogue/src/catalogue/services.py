"""The system's services, named once: what the local stack, the accounts, the
checks, the tests and the benchmarks iterate over.

A service's short name (``order``) names its database, its PostgreSQL and
RabbitMQ accounts and its Helm values key; its program (``order-service``) is
the executable, the OpenTelemetry service name, the Prometheus job and the
container. The services whose outbox a relay publishes each have a relay
process (``order-relay``) beside them.

    python -m catalogue.services            # the short names, one per line
"""

from __future__ import annotations

import sys

SERVICES = ("order", "point", "notification")
RELAYED = ("order", "point")


def program(service: str) -> str:
    return f"{service}-service"


def relay_program(service: str) -> str:
    return f"{service}-relay"


PROGRAMS = tuple(program(s) for s in SERVICES)
RELAYS = tuple(relay_program(s) for s in RELAYED)
# Every process of the system's own, in the order they serve a request.
PROCESSES = tuple(
    p for s in SERVICES for p in (program(s), *([relay_program(s)] if s in RELAYED else []))
)


if __name__ == "__main__":
    sys.stdout.write("".join(f"{s}\n" for s in SERVICES))
