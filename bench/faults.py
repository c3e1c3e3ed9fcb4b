"""Benchmark: faults injected into a 3-node cluster under a steady writer, repaired by its
workflow, side by side with the same faults repaired by hand.

Targets (issue 3): no acknowledged write lost, the same table checksum on every node, the
cluster Green at the end with no manual intervention; a SIGKILL in the status within 2 s and
out of the load balancer within 3 s; the writer's writes stall at most 3 s when the writer node
is killed; Green again within 1.5x a restart + rejoin by hand (one node) and 2x a recovery by
hand (whole cluster); no live node suspected by the group (timeouts not too short).

First the references, on a cluster run by hand (bench/by_hand.py: what a careful DBA does) under
a writer on node 0, `--reference-rounds` times: SIGKILL of one node, its position recovered
(`--wsrep-recover`) and `mariadbd --wsrep-start-position=...` until Synced; SIGTERM of one node
and `mariadbd` until Synced; SIGKILL of all three, every position recovered, the most advanced
bootstrapped from its position, the others started from theirs one at a time until Synced.
Only the repair is timed: a person's detection and decision are free.

Then a fresh cluster through its workflow (default spec, remediation on) gets `mysqlops chaos`
(workers/chaos: the recorded writer through HAProxy, `--faults` faults drawn with
random.Random(--seed) among `--kinds`, each measured, the end checks). On top of its checks this
script compares each kind's Green-again time with the by-hand floor and searches the error logs
for suspicions of nodes no fault had hit.

Run from the repository root, as root:
    .venv/bin/python bench/faults.py [--faults 24] [--seed 1] [--kinds kill,stop,hang,kill-all]
Exit status 0 when the run's checks pass (no acknowledged row lost, identical checksums, Green
at the end, no manual intervention, no data set aside); 1 otherwise. Missed timing targets are
printed.
"""

import argparse
import asyncio
import getpass
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.local.paths import ClusterPaths
from api.cluster import MySQLClusterSpec
from bench.by_hand import ManualCluster
from bench.common import (
    cluster_resource,
    delete_cluster,
    finish,
    median,
    private_home,
    start_cluster,
    temporal_stack,
    wait_green,
)
from workers.chaos import runner
from workers.chaos.faults import KINDS, FaultResult
from workers.chaos.report import check_lines, fault_lines
from workers.chaos.writer import DATABASE, Writer
from workers.chaos.writer import app_connection as app_connection  # bench/backup.py uses it

CLUSTER_NAME = "faults"
CREATE_TIMEOUT = 600.0
DEFAULT_KINDS = "kill,stop,hang,kill-all"

# Per fault kind: the most a repair may take against the by-hand floor (issue 3 sets these
# two; the others are reported without a target).
RATIO_TARGETS = {"kill": 1.5, "kill-all": 2.0}
DETECT_TARGET = 2.0  # seconds from a SIGKILL to the status
OUT_OF_LB_TARGET = 3.0  # seconds from a SIGKILL to no longer routed to
STALL_TARGET = 3.0  # seconds of write stall when the writer is killed


# -- the references by hand -------------------------------------------------------------------


@dataclass
class References:
    """Seconds a person needs once they know what to do (no detection, no decision)."""

    restart_after_kill: list[float] = field(default_factory=list)
    restart_after_stop: list[float] = field(default_factory=list)
    recover_all: list[float] = field(default_factory=list)

    def floor(self, kind: str) -> float | None:
        measured = {
            "kill": self.restart_after_kill,
            "hang": self.restart_after_kill,  # by hand: kill -9, then as after a crash
            "stop": self.restart_after_stop,
            "kill-all": self.recover_all,
        }.get(kind, [])
        return median(measured) if measured else None


def measure_references(rounds: int) -> References:
    """The same faults on a cluster run by hand, under the same kind of writer (on node 0)."""
    references = References()
    cluster = ManualCluster(MySQLClusterSpec(replicas=3), name="reference")
    first = cluster.paths(cluster.names[0]).socket
    writer = Writer(
        lambda: pymysql.connect(
            unix_socket=str(first),
            user=getpass.getuser(),
            autocommit=True,
            connect_timeout=2,
            read_timeout=5,
            write_timeout=5,
        ),
        f"{DATABASE}.acked",
    )
    try:
        cluster.prepare()
        cluster.create()
        writer.start()
        if not writer.ready.wait(60):
            raise RuntimeError(f"the by-hand writer acknowledged nothing: {writer.last_errors()}")
        victim = cluster.names[-1]
        for _ in range(rounds):
            started = time.monotonic()
            cluster.signal(victim, signal.SIGKILL)
            cluster.restart_after_crash(victim)
            references.restart_after_kill.append(time.monotonic() - started)
            started = time.monotonic()
            cluster.signal(victim, signal.SIGTERM)
            cluster.start(victim)
            references.restart_after_stop.append(time.monotonic() - started)
            started = time.monotonic()
            for node in cluster.names:
                cluster.signal(node, signal.SIGKILL)
            cluster.recover()
            references.recover_all.append(time.monotonic() - started)
            print(
                f"by hand: restart after SIGKILL {references.restart_after_kill[-1]:.1f} s, "
                f"after SIGTERM {references.restart_after_stop[-1]:.1f} s, whole cluster "
                f"{references.recover_all[-1]:.1f} s",
                flush=True,
            )
    finally:
        writer.stop()
        cluster.close()
    return references


# -- suspicions of live nodes -----------------------------------------------------------------

LISTENING = re.compile(r"\((?P<member>[0-9a-f]{8}-[0-9a-f]{4}), 'tcp://[^']+'\) listening at")
SUSPECTING = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d +\d+:\d\d:\d\d) "
    r".*suspecting node: (?P<member>[0-9a-f]{8}-[0-9a-f]{4})"
)
SLACK = timedelta(seconds=2)  # error-log timestamps have whole seconds


def false_suspicions(home: Path, names: list[str], results: list[FaultResult]) -> list[str]:
    """Suspicions (evs) between nodes that no fault had hit at that moment: a live node taken
    for a dead one, what group timeouts that are too short would cause on a loaded machine."""
    logs = {n: ClusterPaths.of(home, "default", CLUSTER_NAME).node(n).error_log for n in names}
    texts = {
        n: path.read_text(errors="replace") if path.exists() else "" for n, path in logs.items()
    }
    owner = {m["member"]: n for n, text in texts.items() for m in LISTENING.finditer(text)}
    windows = [
        (r.victims, r.started_at.replace(tzinfo=None), r.ended_at.replace(tzinfo=None))
        for r in results
        if r.started_at and r.ended_at
    ]
    found = []
    for observer, text in texts.items():
        for line in text.splitlines():
            if not (m := SUSPECTING.match(line)):
                continue
            at = datetime.strptime(" ".join(m["at"].split()), "%Y-%m-%d %H:%M:%S")
            suspect = owner.get(m["member"], m["member"])
            if not any(  # a victim suspected, or a cut victim suspecting the others
                {suspect, observer} & set(victims) and start - SLACK <= at <= end + SLACK
                for victims, start, end in windows
            ):
                found.append(f"{m['at']} {observer} suspected {suspect}")
    return found


# -- the report -------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def medians(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return median(known) if known else None


def report(chaos: runner.ChaosRun, references: References, suspicions: list[str]) -> list[str]:
    """Print the run; the targets it missed."""
    results = chaos.results
    print()
    print("\n".join(fault_lines(results)))
    missed: list[str] = []
    print()
    print(
        f"{'fault':<16}  {'n':>2}  {'detect s':>8}  {'out of LB s':>11}  {'Green again s':>13}  "
        f"{'by hand s':>9}  {'ratio':>5}  target"
    )
    for kind in KINDS:
        runs = [r for r in results if r.kind == kind]
        if not runs:
            continue
        back = medians([r.green for r in runs])
        floor = references.floor(kind)
        ratio = back / floor if back is not None and floor else None
        target = RATIO_TARGETS.get(kind)
        verdict_text = "-"
        if target is not None:
            met = ratio is not None and ratio <= target
            verdict_text = f"{target}x {'met' if met else 'MISSED'}"
            if not met:
                missed.append(f"{kind}: Green again {seconds(back)} s vs by hand {seconds(floor)}")
        print(
            f"{kind:<16}  {len(runs):>2}  {seconds(medians([r.detected for r in runs])):>8}  "
            f"{seconds(medians([r.out_of_lb for r in runs])):>11}  {seconds(back):>13}  "
            f"{seconds(floor):>9}  {'-' if ratio is None else f'{ratio:.2f}':>5}  {verdict_text}"
        )
    timeout = chaos.options.fault_timeout
    kills = [r for r in results if r.kind == "kill"]
    worst_detect = max((r.detected or timeout for r in kills), default=None)
    worst_out = max((r.out_of_lb or timeout for r in kills), default=None)
    writer_stalls = [r.stall for r in kills if r.writer in r.victims]
    for label, value, target in (
        ("slowest SIGKILL detection", worst_detect, DETECT_TARGET),
        ("slowest SIGKILL out of the load balancer", worst_out, OUT_OF_LB_TARGET),
        ("longest write stall, writer SIGKILLed", max(writer_stalls, default=None), STALL_TARGET),
    ):
        if value is None:
            continue
        met = value <= target
        print(f"{label}: {value:.1f} s (target {target} s: {'met' if met else 'MISSED'})")
        if not met:
            missed.append(f"{label} {value:.1f} s")
    print(f"suspicions of live nodes (false alarms of the group timeouts): {len(suspicions)}")
    for line in suspicions[:5]:
        print(f"    {line}")
    if suspicions:
        missed.append(f"{len(suspicions)} suspicions of live nodes")
    print()
    if chaos.verdict is not None:
        print("\n".join(check_lines(chaos.verdict)))
    print(f"targets missed:         {'; '.join(missed) or 'none'}")
    print("PASS" if chaos.passed else "FAIL")
    return missed


# -- the benchmark ----------------------------------------------------------------------------


def say(line: str) -> None:
    print(line, flush=True)


async def run(options: runner.ChaosOptions) -> tuple[runner.ChaosRun, list[str]]:
    with private_home("mysqlops-bench-faults-") as home:
        async with temporal_stack(home) as client:
            handle = await start_cluster(client, cluster_resource(CLUSTER_NAME))
            try:
                started = time.monotonic()
                status = await wait_green(handle, CREATE_TIMEOUT)
                print(f"3-node cluster Green in {time.monotonic() - started:.1f} s", flush=True)
                chaos = await runner.run(client, home, options, say)
                names = [n.name for n in status.nodes]
                suspicions = false_suspicions(home, names, chaos.results)
            finally:
                try:
                    await delete_cluster(handle, home, timeout=300)
                except Exception as exc:  # the clean-up below still runs
                    print(f"cleanup: delete failed: {exc!r}", file=sys.stderr)
    return chaos, suspicions


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=24, help="faults to inject")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault choice")
    parser.add_argument("--kinds", default=DEFAULT_KINDS, help=f"among {','.join(KINDS)}")
    parser.add_argument("--partition-seconds", type=float, default=15)
    parser.add_argument(
        "--reference-rounds", type=int, default=2, help="rounds of the by-hand references"
    )
    return parser.parse_args()


async def main(args: argparse.Namespace) -> int:
    options = runner.ChaosOptions(
        namespace="default",
        name=CLUSTER_NAME,
        faults=args.faults,
        seed=args.seed,
        kinds=runner.parse_kinds(args.kinds),
        partition_seconds=args.partition_seconds,
    )
    runner.preflight(options.kinds)
    references = await asyncio.to_thread(measure_references, args.reference_rounds)
    chaos, suspicions = await run(options)
    report(chaos, references, suspicions)
    return 0 if chaos.passed else 1


if __name__ == "__main__":
    finish(asyncio.run(main(parse_args())))
