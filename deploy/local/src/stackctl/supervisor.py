"""supervisord as the process supervisor of the local stack.

supervisord (PyPI ``supervisor``) gives per-process logs, restarts, and
starting, stopping or signalling one component by name over XML-RPC. It has no
readiness checks, so those live in probes.py and are driven by cli.py.
"""

from __future__ import annotations

import os
import shlex
import signal as signal_module
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

from stackctl.components import Component
from stackctl.settings import StackSettings


def _escape(value: str) -> str:
    # supervisord expands %(name)s in its config values.
    return value.replace("%", "%%")


def _environment_line(env: dict[str, str]) -> str:
    return ",".join(
        f'{key}="{_escape(val).replace(chr(34), chr(92) + chr(34))}"' for key, val in env.items()
    )


def render_config(settings: StackSettings, components: Iterable[Component]) -> str:
    state = settings.state_dir
    lines = [
        "; Rendered by stackctl; edit deploy/local/src/stackctl instead.",
        "[unix_http_server]",
        f"file={settings.supervisor_socket}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={settings.log_dir / 'supervisord.log'}",
        f"pidfile={state / 'supervisord.pid'}",
        f"childlogdir={settings.log_dir}",
        "minfds=10000",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{settings.supervisor_socket}",
        "",
    ]
    for c in components:
        lines += [
            f"[program:{c.name}]",
            f"command={_escape(shlex.join(c.command))}",
            f"autostart={str(c.autostart).lower()}",
            "autorestart=true",
            "startsecs=2",
            "startretries=2",
            f"stopsignal={c.stopsignal}",
            f"stopwaitsecs={c.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            f"priority={c.priority}",
            f"stdout_logfile={settings.log_dir / (c.name + '.log')}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            "redirect_stderr=true",
        ]
        if c.user:
            lines.append(f"user={c.user}")
        if c.directory:
            lines.append(f"directory={c.directory}")
        if c.environment:
            lines.append(f"environment={_environment_line(dict(c.environment))}")
        lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    state: str
    pid: int
    description: str
    exitstatus: int


class Supervisor:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.config_path = settings.state_dir / "supervisord.conf"

    def _proxy(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.settings.supervisor_socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def is_running(self) -> bool:
        if not self.settings.supervisor_socket.exists():
            return False
        try:
            state = self._proxy().supervisor.getState()
        except (OSError, xmlrpc.client.Fault):
            return False
        return cast(str, state["statename"]) == "RUNNING"

    def write_config(self, components: Iterable[Component]) -> None:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(self.settings, components))

    def start_daemon(self) -> None:
        """Start supervisord (it daemonizes) and wait until its socket answers."""
        self.settings.supervisor_socket.unlink(missing_ok=True)
        supervisord = Path(sys.executable).with_name("supervisord")
        subprocess.run([str(supervisord), "-c", str(self.config_path)], check=True, timeout=30)
        deadline = time.monotonic() + 15
        while not self.is_running():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"supervisord did not answer on {self.settings.supervisor_socket}; "
                    f"see {self.settings.log_dir / 'supervisord.log'}"
                )
            time.sleep(0.1)

    def apply_config(self) -> None:
        """Like `supervisorctl update`: pick up added, changed and removed programs."""
        proxy = self._proxy()
        added, changed, removed = proxy.supervisor.reloadConfig()[0]
        for name in removed + changed:
            self.stop(name)
            proxy.supervisor.removeProcessGroup(name)
        for name in added + changed:
            proxy.supervisor.addProcessGroup(name)

    def daemon_pid(self) -> int:
        """supervisord's own process id."""
        return cast(int, self._proxy().supervisor.getPID())

    def processes(self) -> dict[str, ProcessInfo]:
        infos = self._proxy().supervisor.getAllProcessInfo()
        return {
            i["name"]: ProcessInfo(
                i["name"], i["statename"], i["pid"], i["description"], i["exitstatus"]
            )
            for i in infos
        }

    def info(self, name: str) -> ProcessInfo:
        i = self._proxy().supervisor.getProcessInfo(name)
        return ProcessInfo(i["name"], i["statename"], i["pid"], i["description"], i["exitstatus"])

    def start(self, name: str) -> None:
        self._unless_already("startProcess", name, False, "ALREADY_STARTED")

    def stop(self, name: str) -> None:
        self._unless_already("stopProcess", name, True, "NOT_RUNNING")

    def _unless_already(self, method: str, name: str, wait: bool, already: str) -> None:
        """Start or stop; a no-op where the process already is so."""
        try:
            getattr(self._proxy().supervisor, method)(name, wait)
        except xmlrpc.client.Fault as fault:
            if already not in fault.faultString:
                raise

    def signal(self, name: str, signal: str) -> None:
        """Signal a component's whole process group. supervisord's signalProcess
        reaches only the program it started: a SIGKILL of a wrapper script
        (rabbitmq-server) left the Erlang VM running, holding the ports, so the
        "killed" broker never went down."""
        pid = self.info(name).pid
        number = getattr(signal_module, f"SIG{signal}")
        if pid and os.getpgid(pid) == pid:
            os.killpg(pid, number)
        else:
            self._proxy().supervisor.signalProcess(name, signal)

    def shutdown(self, timeout_s: float) -> None:
        pidfile = self.settings.state_dir / "supervisord.pid"
        pid = int(pidfile.read_text()) if pidfile.exists() else None
        self._proxy().supervisor.shutdown()
        deadline = time.monotonic() + timeout_s
        while pid is not None and _alive(pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"supervisord (pid {pid}) still running after {timeout_s:.0f}s")
            time.sleep(0.2)

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.settings.log_dir / f"{name}.log"
        if not path.exists():
            return f"(no log at {path})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
