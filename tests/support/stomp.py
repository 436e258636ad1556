"""A minimal STOMP 1.2 client over a raw socket.

Written by hand on purpose: it exists to *show* the protocol (docs/deep-dive.md)
— text frames of a command line, headers and a NUL-terminated body — next to
AMQP's binary framing. A system that used STOMP for real would take a library.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class Frame:
    command: str
    headers: dict[str, str]
    body: bytes

    def encode(self) -> bytes:
        lines = [self.command, *(f"{k}:{v}" for k, v in self.headers.items())]
        return ("\n".join(lines) + "\n\n").encode() + self.body + b"\x00"

    def text(self) -> str:
        """The frame as it travels, NUL shown as ^@."""
        return self.encode().decode(errors="replace").replace("\x00", "^@")


class StompClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, host: str, port: int, login: str, passcode: str, timeout_s: float = 5
    ) -> tuple[StompClient, Frame]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        client = cls(reader, writer)
        await client.send(
            Frame(
                "CONNECT",
                {"accept-version": "1.2", "host": "/", "login": login, "passcode": passcode},
                b"",
            )
        )
        connected = await client.receive(timeout_s)
        if connected.command != "CONNECTED":
            raise ConnectionError(f"STOMP CONNECT refused: {connected.headers}")
        return client, connected

    async def send(self, frame: Frame) -> None:
        self.writer.write(frame.encode())
        await self.writer.drain()

    async def receive(self, timeout_s: float = 5) -> Frame:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\x00"), timeout_s)
        head, _, body = raw[:-1].lstrip(b"\r\n").partition(b"\n\n")
        command, *lines = head.decode().split("\n")
        headers = dict(line.split(":", 1) for line in lines if line)
        return Frame(command, headers, body)

    async def close(self) -> None:
        await self.send(Frame("DISCONNECT", {}, b""))
        self.writer.close()
        await self.writer.wait_closed()
