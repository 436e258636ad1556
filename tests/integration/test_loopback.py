"""Nothing in the local stack can be reached from another machine: every
listening socket of supervisord, of every process it runs and of their children
(RabbitMQ's Erlang VM under its start script, PostgreSQL's backends) is on a
loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from dataclasses import dataclass

import psutil

from stackctl.components import LocalStack
from stackctl.control import all_components, wait_ready
from stackctl.supervisor import Supervisor


@dataclass(frozen=True)
class Listener:
    component: str
    process: str
    pid: int
    protocol: str
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return (
            f"{self.component}: {self.process} (pid {self.pid}) listens on "
            f"{host}:{self.port}/{self.protocol}"
        )


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # Java binds 127.0.0.1 through an IPv6 socket: ::ffff:127.0.0.1.
        ip = ip.ipv4_mapped
    return ip.is_loopback


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def listeners_of(component: str, processes: list[psutil.Process]) -> list[Listener]:
    """TCP sockets in LISTEN and bound UDP sockets without a peer (they take
    datagrams from anyone)."""
    found = []
    for process in processes:
        try:
            name = process.name()
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue  # a short-lived child (e.g. inet_gethost) gone meanwhile
        for c in connections:
            local, remote = _address(c.laddr), _address(c.raddr)
            if local is None:
                continue  # not bound to a port
            if c.type == socket.SOCK_STREAM and c.status != psutil.CONN_LISTEN:
                continue
            if c.type == socket.SOCK_DGRAM and remote is not None:
                continue
            protocol = "tcp" if c.type == socket.SOCK_STREAM else "udp"
            found.append(Listener(component, name, process.pid, protocol, *local))
    return found


def _address(value: object) -> tuple[str, int] | None:
    """psutil reports an address without a port as (), which its stubs do not say."""
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[0]), int(value[1])
    return None


async def scan(local_stack: LocalStack, supervisor: Supervisor) -> tuple[list[Listener], list[str]]:
    """Every listener once every component is ready, and the declared ports it
    did not find (a component another test is restarting may lack one)."""
    components = all_components(local_stack)
    await asyncio.gather(*(wait_ready(local_stack, supervisor, c) for c in components))
    # supervisord alone: its children are the programs, scanned by name below.
    listeners = listeners_of("supervisord", [psutil.Process(supervisor.daemon_pid())])
    for name, process in sorted(supervisor.processes().items()):
        with contextlib.suppress(psutil.NoSuchProcess):
            listeners += listeners_of(name, tree(process.pid))
    seen = {(listener.component, listener.port) for listener in listeners}
    unseen = [
        f"{c.name} {role}={port}"
        for c in components
        for role, port in c.ports.items()
        if (c.name, port) not in seen
    ]
    return listeners, unseen


async def test_every_listener_of_the_stack_is_on_loopback(
    local_stack: LocalStack, supervisor: Supervisor
) -> None:
    exposed: set[str] = set()
    for _ in range(3):
        listeners, unseen = await scan(local_stack, supervisor)
        exposed |= {str(listener) for listener in listeners if not is_loopback(listener.address)}
        if not unseen:
            break
    assert not exposed, "listening beyond loopback:\n" + "\n".join(sorted(exposed))
    # The scan saw every port the components declare, or it would prove nothing.
    assert not unseen, f"no listener found for declared ports: {', '.join(unseen)}"
