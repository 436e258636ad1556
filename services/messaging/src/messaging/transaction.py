"""What every service's unit-of-work Protocol starts from: one transaction,
opened with `async with`, made durable by `commit()`, and the activity notices
the work announces, published once it committed.

A service's Protocol adds its repositories (and what else its handlers use)
and is implemented twice: on `messaging.unit_of_work.UnitOfWork` (PostgreSQL,
with the outbox; `SessionTransaction` without one) and in memory for its unit
tests."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from messaging.activity import Notice


class Transaction(Protocol):
    """`async with uow:` opens it, `commit()` makes its effects and the messages
    of its domain events durable; leaving without a commit undoes everything."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    def announce(self, notice: Notice) -> None:
        """Publish `notice` on the activity feed (messaging.activity) once the
        commit succeeded; nothing if the work is left without one."""
