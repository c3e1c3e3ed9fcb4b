"""Benchmark: `mysqlops up` (what `make up` runs after its setup step) until the demo is Green.

Target: `make up` on a machine that already has the packages reaches Green in under 60 s.

Runs `.venv/bin/mysqlops up -f examples/demo-cluster.yaml` as a user would, with a fresh private
MYSQLOPS_HOME, TEMPORAL_ADDRESS and MYSQLOPS_UI_PORT on free ports and a free MySQL port range,
and times it until it exits 0 (it returns once the cluster is Green with no task), then
`mysqlops down`. Then the same again from the data left by the first run (a warm restart: the
dev server's database, the workflow and the nodes' data are kept by `down`), and `down` again.
`make up`'s setup step (scripts/setup.sh, a no-op when everything is installed) is not timed.

Run from the repository root:  .venv/bin/python -m bench.make_up
Exit status 0 when the target is met, 1 when it is missed.
"""

import argparse
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO
from workers.sandbox import private_home, recorded_processes

TARGET_SECONDS = 60.0
MYSQLOPS = REPO / ".venv" / "bin" / "mysqlops"
RESOURCE = "examples/demo-cluster.yaml"
TIMEOUT = 600.0  # seconds allowed to one `up` or `down`


@dataclass(frozen=True)
class Timed:
    seconds: float
    result: subprocess.CompletedProcess[str]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stack_environment(home: Path) -> dict[str, str]:
    """The private home and port range set by private_home, plus a free server and UI port."""
    return {
        **os.environ,
        "MYSQLOPS_HOME": str(home),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "MYSQLOPS_UI_PORT": str(free_port()),
    }


def mysqlops(env: dict[str, str], *args: str) -> Timed:
    started = time.monotonic()
    result = subprocess.run(
        [str(MYSQLOPS), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT
    )
    return Timed(time.monotonic() - started, result)


def checked(what: str, timed: Timed) -> Timed:
    if timed.result.returncode != 0:
        raise RuntimeError(
            f"{what} exited {timed.result.returncode} after {timed.seconds:.1f} s:\n"
            f"{timed.result.stdout[-2000:]}\n{timed.result.stderr[-2000:]}"
        )
    print(f"{what}: {timed.seconds:.1f} s", flush=True)
    return timed


def up_then_down(env: dict[str, str], label: str) -> tuple[float, float]:
    """Seconds of `mysqlops up` (to exit 0, i.e. Green) and of the `mysqlops down` after it."""
    try:
        up = checked(f"{label} mysqlops up", mysqlops(env, "up", "-f", RESOURCE))
    except BaseException:
        mysqlops(env, "down")  # best effort; private_home kills whatever is left after it
        raise
    down = checked(f"{label} mysqlops down", mysqlops(env, "down"))
    return up.seconds, down.seconds


def run(env: dict[str, str], home: Path) -> dict[str, tuple[float, float]]:
    shown = ("MYSQLOPS_HOME", "TEMPORAL_ADDRESS", "MYSQLOPS_UI_PORT", "MYSQLOPS_PORT_BASE")
    print(" ".join(f"{key}={env[key]}" for key in shown))
    results = {}
    for label in ("cold", "warm"):
        results[label] = up_then_down(env, label)
        if leftovers := recorded_processes(home):
            raise RuntimeError(f"still running after mysqlops down: {leftovers}")
    return results


def report(results: dict[str, tuple[float, float]]) -> bool:
    print()
    print(f"{'start':<30}  {'up (s)':>7}  {'down (s)':>8}")
    titles = {
        "cold": "fresh home (first make up)",
        "warm": "restart from existing data",
    }
    for label, (up, down) in results.items():
        print(f"{titles[label]:<30}  {up:>7.1f}  {down:>8.1f}")
    met = results["cold"][0] < TARGET_SECONDS
    verdict = "meets" if met else "MISSES"
    first = results["cold"][0]
    print(f"first up {first:.1f} s: {verdict} the target (under {TARGET_SECONDS:.0f} s)")
    return met


def main() -> int:
    with private_home(prefix="mysqlops-bench-make-up-") as home:
        results = run(stack_environment(home), home)
    return 0 if report(results) else 1


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    sys.exit(main())
