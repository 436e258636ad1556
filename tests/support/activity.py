"""An activity feed (messaging.activity) that records what it is given."""

from __future__ import annotations

from dataclasses import dataclass, field

from catalogue.contracts.activity import ActivityNotice
from messaging.activity import Notice


@dataclass
class RecordingFeed:
    published: list[ActivityNotice] = field(default_factory=list)

    def publish(self, notice: Notice) -> None:
        assert isinstance(notice, ActivityNotice)
        self.published.append(notice)
