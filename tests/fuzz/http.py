"""HTTP fuzzing of order-service from its own OpenAPI document.

Schemathesis (a maintained property-based API tester) generates requests for
every operation — the documented examples, boundary and invalid values
(coverage), random valid and invalid ones (fuzzing, both modes), and
sequences that follow the document's links (stateful: place an order, then
read, list, cancel it and ask for the customer's summary) — against the
running service, and checks each response: no server error, a status code
the document declares, a declared content type and headers, a body that
matches the declared schema. Every request and response is recorded (HAR),
so the figures are counted, not estimated: `cases` is the number of requests
sent, `server_errors` the responses with a 5xx status.

Seeded: the seed is printed, and `FUZZ_SEED=<seed>` replays a run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
PHASES = "examples,coverage,fuzzing,stateful"


@dataclass
class HttpFuzzResult:
    seed: int
    cases: int
    server_errors: int
    exit_code: int
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.server_errors == 0 and self.cases > 0


def fuzz_http(base_url: str, seed: int, cases: int) -> HttpFuzzResult:
    """Fuzz the API at base_url with about `cases` generated examples per
    operation and phase (Schemathesis's --max-examples)."""
    schemathesis = Path(sys.executable).parent / "schemathesis"
    with tempfile.TemporaryDirectory(prefix="fuzz-http-") as tmp:
        har = Path(tmp) / "requests.har"
        print(f"fuzz_http: seed={seed} max_examples={cases} (FUZZ_SEED={seed} replays)", flush=True)
        done = subprocess.run(
            [
                str(schemathesis), "run", f"{base_url}/openapi.json",
                "--checks", ",".join(CHECKS),
                "--phases", PHASES,
                "--max-examples", str(cases),
                "--seed", str(seed),
                "--workers", "1",
                "--request-timeout", "15",
                "--continue-on-failure",
                "--report", "har", "--report-har-path", str(har),
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )  # fmt: skip
        entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    statuses = [int(e["response"]["status"]) for e in entries]
    failures = [] if done.returncode == 0 else [done.stdout[-6000:], done.stderr[-2000:]]
    return HttpFuzzResult(
        seed=seed,
        cases=len(statuses),
        server_errors=sum(1 for s in statuses if s >= 500),
        exit_code=done.returncode,
        failures=failures,
    )
