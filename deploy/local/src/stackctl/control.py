"""The stack's operations: up, down, status, and restarting one component and
waiting for it. Used by the CLI and by the tests' fault injection."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Sequence

import httpx
import psutil

from stackctl import probes
from stackctl.apps import Apps, Job
from stackctl.components import Component, LocalStack
from stackctl.credentials import Credentials
from stackctl.provision import provision_postgres, provision_rabbitmq
from stackctl.settings import StackSettings
from stackctl.supervisor import Supervisor

ACTIVE_STATES = {"RUNNING", "STARTING", "BACKOFF"}


class StackError(Exception):
    """A failure `up` reports to the user, with what to do about it."""


def build(settings: StackSettings | None = None) -> tuple[LocalStack, Supervisor]:
    settings = settings or StackSettings()
    credentials = Credentials.load_or_create(settings.state_dir / "credentials.json")
    return LocalStack(settings, credentials), Supervisor(settings)


def _port_setting(settings: StackSettings, port: int) -> str:
    for name, value in settings.model_dump().items():
        if name.endswith("_port") and value == port:
            return f"STACK_{name.upper()}"
    return "the matching STACK_*_PORT variable"


def check_ports(stack: LocalStack, components: Sequence[Component], running: set[str]) -> None:
    busy = [
        f"port {port} ({c.name} {role}) is already in use; free it or set "
        f"{_port_setting(stack.s, port)} to another port"
        for c in components
        if c.name not in running
        for role, port in c.ports.items()
        if not probes.port_is_free(stack.s.host, port)
    ]
    if busy:
        raise StackError("\n".join(busy))


async def wait_ready(stack: LocalStack, supervisor: Supervisor, component: Component) -> float:
    """Wait until the component's probe passes; fail fast if supervisord gives up on it."""
    started = time.monotonic()
    deadline = started + stack.s.ready_timeout_s
    last = "not probed yet"
    while True:
        state = supervisor.info(component.name).state
        if state == "FATAL":
            raise StackError(_failure(supervisor, component, "exited repeatedly (FATAL)"))
        if state in ACTIVE_STATES:
            try:
                await component.probe()
            except probes.NotReadyError as exc:
                last = str(exc)
            else:
                return time.monotonic() - started
        if time.monotonic() > deadline:
            reason = (
                f"not ready after {stack.s.ready_timeout_s:.0f}s "
                f"(state {state}; last check: {last})"
            )
            raise StackError(_failure(supervisor, component, reason))
        await asyncio.sleep(0.5)


def _failure(supervisor: Supervisor, component: Component, reason: str) -> str:
    return (
        f"{component.name} {reason}\n--- last lines of {supervisor.settings.log_dir}/"
        f"{component.name}.log ---\n{supervisor.tail(component.name)}"
    )


def all_components(stack: LocalStack) -> list[Component]:
    return stack.components() + Apps(stack).components()


async def start_and_wait(
    stack: LocalStack, supervisor: Supervisor, components: Sequence[Component]
) -> list[tuple[str, float]]:
    for c in components:
        supervisor.start(c.name)
    results = await asyncio.gather(
        *(wait_ready(stack, supervisor, c) for c in components), return_exceptions=True
    )
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    if failures:
        raise StackError("\n\n".join(failures))
    return [
        (c.name, took)
        for c, took in zip(components, results, strict=True)
        if not isinstance(took, BaseException)
    ]


def run_job(job: Job, timeout_s: float) -> float:
    started = time.monotonic()
    try:
        result = subprocess.run(
            job.command,
            env={**os.environ, **job.environment},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"job {job.name} did not finish within {timeout_s:.0f}s") from exc
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise StackError(f"job {job.name} failed (exit {result.returncode}):\n{output}")
    return time.monotonic() - started


async def reload_prometheus(stack: LocalStack) -> None:
    url = f"http://{stack.s.host}:{stack.s.prometheus_port}/-/reload"
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(url)
    if response.status_code != 200:
        raise StackError(f"prometheus rejected its new configuration: {response.text.strip()}")


async def up(
    stack: LocalStack, supervisor: Supervisor, components: Sequence[Component] | None = None
) -> None:
    """Start the infrastructure, provision it, run the jobs, start the services;
    each phase waits for the previous one to be ready."""
    started = time.monotonic()
    with_apps = components is None
    components = all_components(stack) if components is None else components
    daemon_running = supervisor.is_running()
    running = (
        {n for n, p in supervisor.processes().items() if p.state in ACTIVE_STATES}
        if daemon_running
        else set()
    )
    check_ports(stack, components, running)
    for c in components:
        c.check_prerequisites()
    for c in components:
        c.prepare()
    supervisor.write_config(components)
    if daemon_running:
        supervisor.apply_config()
    else:
        supervisor.start_daemon()

    if "prometheus" in running:
        # Its configuration (scrape jobs, rule files) was just rendered again.
        await reload_prometheus(stack)
    timings = await start_and_wait(stack, supervisor, [c for c in components if c.autostart])
    names = {c.name for c in components}
    if "postgres" in names:
        await provision_postgres(stack)
    if "rabbitmq" in names:
        await provision_rabbitmq(stack)
    if with_apps:
        jobs = Apps(stack).jobs()
        # Independent of each other (topology, one database each): run together.
        durations = await asyncio.gather(
            *(asyncio.to_thread(run_job, job, stack.s.ready_timeout_s) for job in jobs)
        )
        timings += list(zip((job.name for job in jobs), durations, strict=True))
    timings += await start_and_wait(stack, supervisor, [c for c in components if not c.autostart])
    for name, took in timings:
        print(f"  {name:<20} ready after {took:5.1f}s")
    print(f"stack ready in {time.monotonic() - started:.1f}s (state in {stack.s.state_dir})")


async def status(stack: LocalStack, supervisor: Supervisor) -> bool:
    components = all_components(stack)
    if not supervisor.is_running():
        print("stack is down (supervisord not running)")
        return False
    processes = supervisor.processes()

    async def check(c: Component) -> str:
        try:
            await asyncio.wait_for(c.probe(), 5)
        except (probes.NotReadyError, TimeoutError) as exc:
            return f"no ({exc})"
        return "yes"

    readiness = await asyncio.gather(*(check(c) for c in components))
    print(f"{'COMPONENT':<20} {'STATE':<9} {'READY':<6} {'RSS MiB':>8}  {'PROCESS':<28} PORTS")
    all_ready = True
    total_rss = 0
    for c, ready in zip(components, readiness, strict=True):
        info = processes.get(c.name)
        state = info.state if info else "ABSENT"
        rss = resident_bytes(info.pid) if info and info.pid else 0
        total_rss += rss
        ports = " ".join(f"{role}={port}" for role, port in c.ports.items())
        flag, _, why = ready.partition(" ")
        description = info.description if info else ""
        print(f"{c.name:<20} {state:<9} {flag:<6} {rss / 2**20:8.0f}  {description:<28} {ports}")
        if why:
            print(f"{'':<20} {why}")
        all_ready = all_ready and flag == "yes"
    print(f"{'total':<36} {total_rss / 2**20:8.0f}")
    return all_ready


def resident_bytes(pid: int) -> int:
    """Resident memory of a process and all its children (RabbitMQ and
    PostgreSQL are process trees)."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in tree)
    except psutil.Error:
        return 0


def down(stack: LocalStack, supervisor: Supervisor) -> None:
    if not supervisor.is_running():
        print("stack already down")
        return
    supervisor.shutdown(stack.s.stop_timeout_s)
    print("stack stopped (data kept; `make clean` removes it)")


async def restart(stack: LocalStack, supervisor: Supervisor, name: str) -> None:
    """Stop one component, start it again, and wait until it is ready."""
    supervisor.stop(name)
    await start(stack, supervisor, name)


async def start(stack: LocalStack, supervisor: Supervisor, name: str) -> None:
    supervisor.start(name)
    component = next(c for c in all_components(stack) if c.name == name)
    await wait_ready(stack, supervisor, component)
