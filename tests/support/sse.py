"""Reading a server-sent event stream as the browser's EventSource does (the
WHATWG rules the live feed uses: `event`, `data`, comments; a `retry` line
dispatches nothing): one reader for the unit tests' bytes and the
integration tests' open streams."""

from __future__ import annotations


class SseReader:
    """Fed the stream line by line; a blank line ends an event."""

    def __init__(self) -> None:
        self.name = ""
        self.data: list[str] = []

    def line(self, line: str) -> tuple[str, str] | None:
        """The (event name, data) this line completes, if it ends one."""
        if line == "":
            event = (self.name or "message", "\n".join(self.data)) if self.data else None
            self.name, self.data = "", []
            return event
        if not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                self.name = value
            elif field == "data":
                self.data.append(value)
        return None
