"""Server-sent events framing (the WHATWG HTML "event stream" format).

A frame is UTF-8 text ending in a blank line. `data` may not contain a bare
line break of its own, so a multi-line payload becomes one `data:` line per
line (the browser joins them with "\\n"). A line starting with ":" is a
comment the browser ignores: the heartbeat that keeps proxies from closing an
idle stream.
"""

from __future__ import annotations

import re

LINE_BREAK = re.compile(r"\r\n|\r|\n")
MEDIA_TYPE = "text/event-stream"


def event(data: str, name: str | None = None) -> bytes:
    """One event; `name` is what the page listens for (default "message")."""
    lines = [] if name is None else [f"event: {single_line(name)}"]
    lines += [f"data: {line}" for line in LINE_BREAK.split(data)]
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str) -> bytes:
    return "".join(f": {line}\n" for line in LINE_BREAK.split(text)).encode() + b"\n"


def retry(milliseconds: int) -> bytes:
    """How long the browser waits before it reconnects a dropped stream."""
    return f"retry: {int(milliseconds)}\n\n".encode()


def single_line(text: str) -> str:
    if LINE_BREAK.search(text):
        raise ValueError(f"an SSE field value must be one line: {text!r}")
    return text
