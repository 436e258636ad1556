"""Every notice to every connected browser, without letting a slow one grow
the process's memory.

Each client has a bounded queue of frames. A client whose queue is full when
a notice comes has fallen behind: its queue is emptied and replaced by a
single `resync` frame, which tells the page to load /state again. The client
loses the notices it was too slow to take, never the state they led to, and
the process holds at most `queue_size` frames per client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from live_feed import sse

RESYNC = sse.event("{}", "resync")
# What a client's stream ends with when the process shuts down.
CLOSE = b""


class Client:
    """One browser's stream: the frames waiting to be written to it."""

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self.overflows = 0

    def offer(self, frame: bytes) -> bool:
        """Queue the frame; False when the client was behind and now only has
        a resync waiting (the frame is not queued)."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflows += 1
            self._drain()
            self.queue.put_nowait(RESYNC)
            return False
        return True

    def close(self) -> None:
        """End the stream once the client has taken what is queued, or at
        once if it is behind (what it would miss, /state has)."""
        if self.queue.full():
            self._drain()
        self.queue.put_nowait(CLOSE)

    def _drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def next_frame(self, timeout_s: float) -> bytes | None:
        """The next frame, or None when none came within the timeout."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None


class Fanout:
    def __init__(
        self,
        queue_size: int,
        on_clients: Callable[[int], None] = lambda _: None,
        on_overflow: Callable[[], None] = lambda: None,
    ) -> None:
        if queue_size < 2:
            raise ValueError("a client queue holds at least a notice and the end of the stream")
        self.queue_size = queue_size
        self.clients: set[Client] = set()
        self._on_clients = on_clients
        self._on_overflow = on_overflow
        self.closed = False

    def connect(self) -> Client:
        client = Client(self.queue_size)
        if self.closed:
            client.close()
        self.clients.add(client)
        self._on_clients(len(self.clients))
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)
        self._on_clients(len(self.clients))

    def publish(self, frame: bytes) -> None:
        for client in self.clients:
            if not client.offer(frame):
                self._on_overflow()

    def close(self) -> None:
        """Shutting down: every stream ends, new ones end at once."""
        self.closed = True
        for client in self.clients:
            client.close()
