"""An in-memory database for a service's unit tests: the committed state of
its tables, what its outbox relay would publish, and the transaction the
service's fake unit of work runs on it.

A `FakeTransaction` works on a copy of the committed tables and publishes the
copy on commit, with the messages its subclass collects and the activity
notices the work announced, so leaving without a commit (an error, a
rejected request) changes nothing and announces nothing, as a rolled-back
transaction would."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, Self, TypeVar

from catalogue.contracts.activity import ActivityNotice
from messaging.activity import Notice, traced
from messaging.envelope import MessageContext, OutgoingMessage

T = TypeVar("T")


@dataclass
class FakeStore(Generic[T]):
    committed: T
    # What the outbox relay would publish, in commit order.
    outbox: list[OutgoingMessage] = field(default_factory=list)
    # The activity notices published after their commits, in commit order.
    announced: list[ActivityNotice] = field(default_factory=list)
    # Raised by the next commits, one each: ConnectionRefusedError is the
    # database going away between the work and its commit.
    failures: list[BaseException] = field(default_factory=list)
    # Down: no unit of work can start (the connection is refused).
    down: bool = False
    opened: int = 0
    commits: int = 0


class FakeTransaction(Generic[T]):
    tables: T

    def __init__(self, db: FakeStore[T], context: MessageContext) -> None:
        self.db = db
        self.context = context
        self.announcing: list[ActivityNotice] = []

    def started(self) -> None:
        """Hook for subclasses: create repositories on `self.tables`."""

    def collect_messages(self) -> list[OutgoingMessage]:
        """Hook for subclasses: the messages of the aggregates touched."""
        return []

    async def __aenter__(self) -> Self:
        self.db.opened += 1
        if self.db.down:
            raise ConnectionRefusedError("the database refuses connections")
        self.tables = copy.deepcopy(self.db.committed)
        self.announcing = []
        self.started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """What was not committed is dropped with the working copy."""
        self.announcing = []

    async def commit(self) -> None:
        if self.db.failures:
            raise self.db.failures.pop(0)
        messages = self.collect_messages()
        self.db.committed = copy.deepcopy(self.tables)
        self.db.outbox += messages
        self.db.commits += 1
        self.db.announced += self.announcing
        self.announcing = []

    def announce(self, notice: Notice) -> None:
        assert isinstance(notice, ActivityNotice)
        self.announcing.append(traced(notice))
