"""Where the end-to-end suite runs: one abstraction, two targets.

A target gives the suite its endpoints and its fault actions. The suite never
asks which target it has; `E2E_TARGET` chooses (`local`, the default, or
`kind`).

- ``LocalTarget``: the local stack (`make up`); faults go through supervisord.
- ``KindTarget``: the Helm release on a kind cluster, reached through the
  port-forwards `make kind-e2e` opens; faults are kubectl actions (scale a
  workload to zero and back, delete a pod). A relay is a sidecar there: it
  cannot be stopped apart from its pod, so "stop" kills its container and the
  kubelet restarts it, which is the fault a sidecar really meets. Kafka must
  advertise the port-forwarded address on an external listener (the chart's
  values for kind do) so that clients outside the cluster can follow it.

Component names are the system's names: kafka, rabbitmq, postgres,
order-service, order-relay, point-service, point-relay, notification-service,
mailpit.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from catalogue.services import PROCESSES, SERVICES
from stackctl.components import LocalStack
from stackctl.control import build, start

CLUSTER_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "kind" / "cluster.sh"

COMPONENTS = ("kafka", "rabbitmq", "postgres", *PROCESSES, "mailpit")


@dataclass(frozen=True)
class Endpoints:
    order_api: str
    mail_api: str
    rabbitmq_management: str
    rabbitmq_user: str
    rabbitmq_password: str
    kafka_bootstrap: str
    prometheus: str
    jaeger_query: str
    # postgresql:// DSNs of each service's database, read-only use by the checker
    databases: dict[str, str]
    # host:port of RabbitMQ's AMQP listener (rabbitmq_user's credentials) and of
    # the mail catcher's SMTP server: for bench/ceiling.py, which speaks to the
    # components with raw clients. Empty when the target does not expose them.
    rabbitmq_amqp: str = ""
    mail_smtp: str = ""


class Target(Protocol):
    name: str
    endpoints: Endpoints

    async def stop(self, component: str) -> None: ...
    async def start(self, component: str) -> None:
        """Start it and return once it is ready."""
        ...

    async def kill(self, component: str) -> None: ...


class LocalTarget:
    name = "local"

    def __init__(self) -> None:
        self.stack: LocalStack
        self.stack, self.supervisor = build()
        s, creds = self.stack.s, self.stack.creds
        host = s.host
        admin = creds.rabbitmq_admin
        self.endpoints = Endpoints(
            order_api=f"http://{host}:{s.order_service_port}",
            mail_api=f"http://{host}:{s.mailpit_http_port}",
            rabbitmq_management=self.stack.rabbitmq_management_url,
            rabbitmq_user=admin.user,
            rabbitmq_password=admin.password,
            kafka_bootstrap=self.stack.kafka_bootstrap,
            prometheus=f"http://{host}:{s.prometheus_port}",
            jaeger_query=f"http://{host}:{s.jaeger_query_port}",
            databases={
                service: self.stack.postgres_dsn(database=service, user=service)
                for service in SERVICES
            },
            rabbitmq_amqp=f"{host}:{s.rabbitmq_port}",
            mail_smtp=f"{host}:{s.mailpit_smtp_port}",
        )

    async def stop(self, component: str) -> None:
        await asyncio.to_thread(self.supervisor.stop, component)

    async def start(self, component: str) -> None:
        await start(self.stack, self.supervisor, component)

    async def kill(self, component: str) -> None:
        await asyncio.to_thread(self.supervisor.signal, component, "KILL")


class KindTarget:
    """The Helm release on kind. Endpoints come from the port-forwards that
    `make kind-e2e` opens (deploy/k8s/kind-e2e.sh) and the credentials it
    reads from the release's Secret, as E2E_* variables."""

    name = "kind"

    # component -> (workload kind, chart component, container) in the release
    WORKLOADS: ClassVar[dict[str, tuple[str, str, str]]] = {
        "kafka": ("statefulset", "kafka", "kafka"),
        "rabbitmq": ("statefulset", "rabbitmq", "rabbitmq"),
        "postgres": ("statefulset", "postgresql", "postgresql"),
        "mailpit": ("deployment", "mailpit", "mailpit"),
        "order-service": ("deployment", "order-service", "order-service"),
        "order-relay": ("deployment", "order-service", "outbox-relay"),
        "point-service": ("deployment", "point-service", "point-service"),
        "point-relay": ("deployment", "point-service", "outbox-relay"),
        "notification-service": ("deployment", "notification-service", "notification-service"),
    }

    def __init__(self) -> None:
        env = os.environ
        self.namespace = env.get("E2E_NAMESPACE", "reference")
        self.release = env.get("E2E_RELEASE", "reference")
        self.endpoints = Endpoints(
            order_api=env["E2E_ORDER_API"],
            mail_api=env["E2E_MAIL_API"],
            rabbitmq_management=env["E2E_RABBITMQ_MANAGEMENT"],
            rabbitmq_user=env["E2E_RABBITMQ_USER"],
            rabbitmq_password=env["E2E_RABBITMQ_PASSWORD"],
            kafka_bootstrap=env["E2E_KAFKA_BOOTSTRAP"],
            prometheus=env["E2E_PROMETHEUS"],
            jaeger_query=env["E2E_JAEGER_QUERY"],
            databases={s: env[f"E2E_{s.upper()}_DATABASE_DSN"] for s in SERVICES},
            # Optional: kind-e2e.sh forwards neither port (the suite needs
            # neither); set them to port-forwards of your own to run the ceiling.
            rabbitmq_amqp=env.get("E2E_RABBITMQ_AMQP", ""),
            mail_smtp=env.get("E2E_MAIL_SMTP", ""),
        )

    def kubectl(self, *args: str) -> list[str]:
        return ["kubectl", "--namespace", self.namespace, *args]

    async def stop(self, component: str) -> None:
        kind, name, _ = self.WORKLOADS[component]
        if component.endswith("-relay"):
            # A sidecar cannot be stopped apart from its pod: stopping it is
            # SIGTERM to its process; the kubelet starts it again.
            await self.kill(component)
            return
        await run(self.kubectl("scale", f"{kind}/{self.release}-{name}", "--replicas=0"))
        # Scaling returns at once; stopped means its pods are gone.
        await run(
            self.kubectl("wait", "--for=delete", "pod", "-l", self.selector(name), "--timeout=180s")
        )

    def selector(self, name: str) -> str:
        return f"app.kubernetes.io/name={name},app.kubernetes.io/instance={self.release}"

    async def start(self, component: str) -> None:
        kind, name, _ = self.WORKLOADS[component]
        workload = f"{kind}/{self.release}-{name}"
        if not component.endswith("-relay"):
            await run(self.kubectl("scale", workload, "--replicas=1"))
        await run(self.kubectl("rollout", "status", workload, "--timeout=300s"))

    async def kill(self, component: str) -> None:
        kind, name, container = self.WORKLOADS[component]
        if component.endswith("-relay"):
            workload = f"{kind}/{self.release}-{name}"
            # The image has python but no kill(1).
            signal_pid_1 = "import os, signal; os.kill(1, signal.SIGTERM)"
            await run(
                self.kubectl("exec", workload, "-c", container, "--", "python", "-c", signal_pid_1)
            )
            return
        await run(
            self.kubectl("delete", "pod", "-l", self.selector(name), "--grace-period=0", "--force")
        )

    async def upgrade(self, *helm_args: str, image_tag: str | None = None) -> None:
        """helm upgrade --wait of the release as installed, plus these
        arguments; with image_tag, to the system's images tagged anew."""
        tag = ["--image-tag", image_tag] if image_tag else []
        await run(["bash", str(CLUSTER_SCRIPT), "upgrade", *tag, *helm_args], timeout_s=600)

    async def pods(self) -> dict[str, str]:
        """uid -> component (app.kubernetes.io/name) of the release's pods
        that run or start (not completed Jobs, not pods being deleted)."""
        listing = await output(
            self.kubectl(
                "get", "pods", "-l", f"app.kubernetes.io/instance={self.release}",
                "-o", "json",
            )
        )  # fmt: skip
        return {
            p["metadata"]["uid"]: p["metadata"]["labels"]["app.kubernetes.io/name"]
            for p in json.loads(listing)["items"]
            if not p["metadata"].get("deletionTimestamp")
            and p["status"].get("phase") in ("Running", "Pending")
        }

    async def traffic_during(
        self, work: Awaitable[None], tag: str, rate_per_s: float
    ) -> tuple[list[dict[str, str]], list[str]]:
        """Orders placed from a pod in the cluster, through order-service's
        Service (as real clients reach it, not through a port-forward), at a
        steady rate while `work` runs: (orders accepted, requests that
        failed). The client does not retry: a refused or failed request
        counts as failed."""
        pod = f"e2e-traffic-{uuid.uuid4().hex[:8]}"
        script = (
            "import json, os, time, uuid, httpx\n"
            "api = httpx.Client(base_url=os.environ['ORDER_API'], timeout=10)\n"
            "started, n = time.monotonic(), 0\n"
            "while not os.path.exists('/tmp/stop') and time.monotonic() - started < 600:\n"
            f"    customer = 'e2e-{tag}-' + uuid.uuid4().hex[:10]\n"
            "    order = {'customer_id': customer, 'customer_email': customer + '@example.com',\n"
            "             'currency': 'EUR',\n"
            "             'items': [{'sku': 'sku-e2e', 'quantity': 1, 'unit_price': '10.00'}]}\n"
            "    try:\n"
            "        r = api.post('/orders', json=order)\n"
            "        line = ({'id': r.json()['id'], 'customer_id': customer,\n"
            "                 'created_at': r.json()['created_at']} if r.status_code == 201\n"
            "                else {'failed': f'{r.status_code} {r.text[:200]}'})\n"
            "    except httpx.HTTPError as e:\n"
            "        line = {'failed': repr(e)}\n"
            "    print(json.dumps(line), flush=True)\n"
            "    n += 1\n"
            f"    time.sleep(max(0.0, started + n / {rate_per_s} - time.monotonic()))\n"
        )
        image = await self.image_of("order-service")
        await run(
            self.kubectl(
                "run", pod, "--restart=Never", f"--image={image}", "--image-pull-policy=Never",
                f"--env=ORDER_API=http://{self.release}-order-service:8080",
                "--command", "--", "python", "-c", script,
            )
        )  # fmt: skip
        try:
            await run(self.kubectl("wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=120s"))
            await work
            await run(self.kubectl("exec", pod, "--", "python", "-c", "open('/tmp/stop', 'w')"))
            await run(
                self.kubectl(
                    "wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{pod}",
                    "--timeout=60s",
                )
            )  # fmt: skip
            lines = (await output(self.kubectl("logs", pod))).splitlines()
        finally:
            await run(self.kubectl("delete", "pod", pod, "--wait=false"))
        results = [json.loads(line) for line in lines if line.startswith("{")]
        return (
            [r for r in results if "failed" not in r],
            [r["failed"] for r in results if "failed" in r],
        )

    async def image_of(self, service: str) -> str:
        return await output(
            self.kubectl(
                "get", f"deployment/{self.release}-{service}",
                "-o", "jsonpath={.spec.template.spec.containers[0].image}",
            )
        )  # fmt: skip

    async def connects(self, labels: dict[str, str], host: str, port: int) -> str | None:
        """Whether a new pod of the release's namespace with these labels can
        open a TCP connection to host:port (through the NetworkPolicies)
        within 15 s: a new pod's first connections are refused until the
        node's policy controller has seen its address (about a second).
        Connected: the probe pod's address and after how long (for the
        failure message of a pod that should have been refused); refused:
        None."""
        image = await self.image_of("order-service")
        probe = (
            "import socket, sys, time\n"
            "started = time.monotonic()\n"
            "while time.monotonic() < started + 15:\n"
            f"    try: socket.create_connection(({host!r}, {port}), timeout=3).close()\n"
            "    except OSError: time.sleep(0.5)\n"
            "    else:\n"
            "        me = socket.gethostbyname(socket.gethostname())\n"
            "        print(f'pod {me} connected after {time.monotonic() - started:.1f} s')\n"
            "        sys.exit(0)\n"
            "sys.exit(1)\n"
        )
        args = self.kubectl(
            "run", f"e2e-probe-{uuid.uuid4().hex[:8]}", "--rm", "--attach", "--quiet",
            "--restart=Never", f"--image={image}", "--image-pull-policy=Never",
            "--labels=" + ",".join(f"{k}={v}" for k, v in labels.items()),
            "--command", "--", "python", "-c", probe,
        )  # fmt: skip
        done = await asyncio.to_thread(
            subprocess.run, args, capture_output=True, text=True, timeout=120, check=False
        )
        return (done.stdout.strip() or "connected") if done.returncode == 0 else None


async def output(args: list[str], timeout_s: float = 60) -> str:
    done = await asyncio.to_thread(
        subprocess.run, args, capture_output=True, text=True, timeout=timeout_s, check=True
    )
    return done.stdout.strip()


async def run(args: list[str], stdin: bytes | None = None, timeout_s: float = 240) -> None:
    def call() -> None:
        done = subprocess.run(
            args, input=stdin, capture_output=True, timeout=timeout_s, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:6])}… failed ({done.returncode}): {done.stderr.decode()[-500:]}"
            )

    await asyncio.to_thread(call)


def target_from_env() -> LocalTarget | KindTarget:
    chosen = os.environ.get("E2E_TARGET", "local")
    if chosen == "local":
        return LocalTarget()
    if chosen == "kind":
        return KindTarget()
    raise ValueError(f"E2E_TARGET must be local or kind, not {chosen!r}")
