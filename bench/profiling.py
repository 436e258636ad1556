"""Sampling profiles of the system's Python processes under load (`make bench
PROFILE=dir`): py-spy attached to each running process, no restart and no
code change, writing collapsed stacks ("frame;frame;frame count" lines) that
`summarize` turns into where the time goes.

py-spy samples from outside the process (it reads the interpreter's memory);
`--nonblocking` keeps it from pausing the process at each sample, so the
profiled figures stay close to the unprofiled ones.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

# The processes worth profiling: ours. (The brokers and PostgreSQL are not Python.)
PYTHON_PROCESSES = (
    "order-service",
    "order-relay",
    "point-service",
    "point-relay",
    "notification-service",
)
SAMPLES_PER_S = 97  # not a divisor of the event loop's timers' periods


@contextlib.contextmanager
def recording(pids: dict[str, int], into: Path) -> Iterator[None]:
    """py-spy on each process while the block runs; stopped with SIGINT (which
    makes it write its file) when the block ends."""
    spy = shutil.which("py-spy", path=Path(sys.executable).parent)
    if spy is None:
        raise RuntimeError("py-spy is not installed (it is in the dev dependency group)")
    into.mkdir(parents=True, exist_ok=True)
    spies = []
    for name, pid in pids.items():
        command = [spy, "record", "--pid", str(pid), "--format", "raw", "--nonblocking"]
        command += ["--rate", str(SAMPLES_PER_S), "--output", str(into / f"{name}.txt")]
        spies.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    try:
        yield
    finally:
        for s in spies:
            s.send_signal(signal.SIGINT)
        for s in spies:
            s.wait(60)


# "handle (faststream/broker/subscriber.py:123)" → "faststream"
_PACKAGE = re.compile(r"\(([^/:)]+)")


def summarize(path: Path, top: int = 15) -> str:
    """The busiest frames of one profile: by own time (the frame at the top of
    the stack) and by library (the package of that frame), in % of samples
    that were not idle."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue  # a frame name with a line break in it
        leaf = stack.rsplit(";", 1)[-1]
        n = int(count)
        total += n
        own[leaf] += n
        found = _PACKAGE.search(leaf)
        packages[found.group(1) if found else leaf] += n
    if not total:
        return f"{path.stem}: no samples"
    lines = [f"{path.stem}: {total} samples"]
    lines += ["  by package (own time):"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in packages.most_common(top)]
    lines += ["  by frame (own time):"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Summarize py-spy raw profiles.")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for f in args.files:
        print(summarize(f, args.top))


if __name__ == "__main__":
    main()
