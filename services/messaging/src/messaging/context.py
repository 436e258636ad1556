"""What a door takes from FastStream's context, without a worker thread.

FastStream's `Context(name)` is a fast_depends custom field whose `use` is a
plain function, and fast_depends runs a plain function in a worker thread
(anyio.to_thread) for every message: one thread hand-off per context
parameter per message, 6 of them per mail in notification-service
(bench/README.md, issue 14). `InContext` is the same field with an async
`use` (fast_depends' custom fields may define either), awaited in place.
Every door of the services takes its context through it (the aliases below
and each service's entrypoints/dependencies.py); test_service_shape checks.
"""

from __future__ import annotations

from typing import Annotated, Any

from faststream import Context
from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage

# The class of FastStream's context fields (`faststream.Context` is a function
# that returns one; the class itself is not exported).
_ContextField: Any = type(Context())


class InContext(_ContextField):  # type: ignore[misc]
    """FastStream's `Context`, resolved on the event loop."""

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:
        resolved: dict[str, Any] = super().use(**kwargs)
        return resolved


# The message being handled, and the broker it came through (RabbitMQ).
RabbitDelivery = Annotated[RabbitMessage, InContext("message")]
TheRabbitBroker = Annotated[RabbitBroker, InContext("broker")]
