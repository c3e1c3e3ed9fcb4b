"""Benchmark: faults injected into a 3-node cluster under a steady writer, repaired by its
workflow, side by side with the same faults repaired by hand.

Targets (issue 3): no acknowledged write lost, the same table checksum on every node, the
cluster Green at the end with no manual intervention; a SIGKILL in the status within 2 s and
out of the load balancer within 3 s; the writer's writes stall at most 3 s when the writer node
is killed; Green again within 1.5x a restart + rejoin by hand (one node) and 2x a recovery by
hand (whole cluster); no live node suspected by the group (timeouts not too short).

First the references, on a cluster run by hand (bench/by_hand.py) under a writer on node 0,
`--reference-rounds` times: SIGKILL of one node then `mariadbd` until Synced; the same after
SIGTERM; SIGKILL of all three, positions read (grastate.dat, `--wsrep-recover`), the highest
bootstrapped, the others started one at a time until Synced. Only the repair is timed: a
person's detection and decision are free.

Then a cluster through its workflow (default spec, remediation on). A writer thread inserts rows
with increasing ids into `chaos.acked` through the writer endpoint (HAProxy) as fast as it can,
recording every acknowledged id and every error (failed statements and failed reconnects
alike); on an error it reconnects every 0.2 s. `--faults` faults follow, chosen with
random.Random(--seed) among:

  kill      SIGKILL of one random node
  stop      SIGTERM of one random node
  hang      SIGSTOP of one random node (the controller kills and restarts it after its grace)
  kill-all  SIGKILL of all three nodes

Before each fault the cluster must be Green with no task running or queued. Per fault, polled
every 0.2 s: the time to detection (a victim or the cluster no longer Green in the status), the
time until HAProxy's writer backend routes to no victim, the time until Green and idle again
with every victim on a new process, the writer's errors and its longest stall between two
acknowledged inserts, and the repairs recorded. A fault not repaired within 240 s, or a manual
intervention, stops the injecting. At the end every acknowledged id is looked for on every node
directly (`wsrep_sync_wait=1`), `CHECKSUM TABLE chaos.acked` is compared across the nodes, and
the error logs are searched for suspicions of nodes no fault had hit.

Run from the repository root:  .venv/bin/python bench/faults.py [--faults 24] [--seed 1]
Exit status 0 when no acknowledged row is lost, the checksums are identical, the cluster ends
Green and no manual intervention appeared; 1 otherwise. Missed timing targets are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import getpass
import itertools
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql
from temporalio.client import WorkflowHandle

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.local import haproxy
from activities.local.paths import ClusterPaths
from activities.local.process import alive, cmdline
from activities.local.runtime import LocalRuntime
from activities.runtime import ClusterRef
from activities.users import APP_SECRET, APP_USER
from api.cluster import ClusterStatus, MySQLClusterSpec, NodeStatus
from api.states import ClusterState, NodeState
from bench.by_hand import ManualCluster
from bench.common import (
    POLL_SECONDS,
    cluster_resource,
    delete_cluster,
    finish,
    green_and_idle,
    median,
    private_home,
    start_cluster,
    status_of,
    temporal_stack,
    wait_green,
)

CLUSTER_NAME = "faults"
CREATE_TIMEOUT = 600.0
FAULT_TIMEOUT = 240.0  # seconds from injection to Green and idle again
WRITE_PAUSE = 0.01  # seconds between two inserts
RECONNECT_PAUSE = 0.2  # seconds between two reconnect attempts
FAULT_KINDS: dict[str, signal.Signals] = {
    "kill": signal.SIGKILL,
    "stop": signal.SIGTERM,
    "hang": signal.SIGSTOP,
    "kill-all": signal.SIGKILL,
}


# -- the writer -------------------------------------------------------------------------------


class Writer(threading.Thread):
    """Inserts rows with increasing ids until stopped, through connections `connect` makes."""

    def __init__(self, connect: Callable[[], pymysql.Connection[Any]]) -> None:
        super().__init__(name="writer", daemon=True)
        self.connect = connect
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.acked: list[int] = []
        self.acked_at: list[float] = []  # monotonic time of each acknowledgement, ascending
        self.errors: list[tuple[float, str]] = []  # (monotonic time, message)
        self.ready = threading.Event()  # the table exists and one row is acknowledged

    def error(self, exc: Exception) -> None:
        with self.lock:
            self.errors.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))

    def run(self) -> None:
        next_id = 1
        conn: pymysql.Connection[Any] | None = None
        prepared = False
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                with conn.cursor() as cursor:
                    if not prepared:
                        cursor.execute("CREATE DATABASE IF NOT EXISTS chaos")
                        cursor.execute(
                            "CREATE TABLE IF NOT EXISTS chaos.acked "
                            "(id BIGINT PRIMARY KEY, at DOUBLE)"
                        )
                        prepared = True
                    row_id, next_id = next_id, next_id + 1  # never reused: it may have landed
                    cursor.execute(
                        "INSERT INTO chaos.acked (id, at) VALUES (%s, %s)", (row_id, time.time())
                    )
                with self.lock:
                    self.acked.append(row_id)
                    self.acked_at.append(time.monotonic())
                self.ready.set()
                self.stopping.wait(WRITE_PAUSE)
            except (pymysql.err.MySQLError, OSError) as exc:
                self.error(exc)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = None
                self.stopping.wait(RECONNECT_PAUSE)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def errors_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for at, _ in self.errors if start <= at <= end)

    def longest_stall(self, start: float, end: float) -> float:
        """Longest time without an acknowledgement within [start, end], counting from the last
        acknowledgement before `start` and up to `end` if none came after the last one."""
        with self.lock:
            times = list(self.acked_at)
        first = bisect.bisect_left(times, start)
        last = bisect.bisect_right(times, end)
        window = times[max(first - 1, 0) : last]
        if not window:
            return end - start
        points = [*window, end]
        if window[0] > start:
            points.insert(0, start)
        return max(b - a for a, b in itertools.pairwise(points))


# -- one fault --------------------------------------------------------------------------------


@dataclass
class FaultResult:
    kind: str
    victims: list[str]
    detect: float | None = None
    out_of_lb: float | None = None  # every victim out of the writer backend
    writer_killed: bool = False  # the load balancer's writer was among the victims
    green: float | None = None
    errors: int = 0
    stall: float = 0.0
    repairs: list[str] = field(default_factory=list)
    manual: str | None = None
    note: str = ""
    window: tuple[datetime, datetime] | None = None  # wall clock, as the error logs write it


def node_named(status: ClusterStatus, name: str) -> NodeStatus:
    return next(n for n in status.nodes if n.name == name)


def signal_node(pid: int, sig: signal.Signals) -> None:
    if not alive(pid) or "mariadbd" not in cmdline(pid):
        raise RuntimeError(f"pid {pid} is not a running mariadbd")
    os.kill(pid, sig)


def routed(stats_socket: Path) -> set[str] | None:
    """The servers HAProxy's writer backend has up (one `show stat`); None when it does not
    answer."""
    try:
        return {server.name for server in haproxy.servers(stats_socket, "writer") if server.up}
    except OSError:
        return None


def out_of_balancer(stats_socket: Path, victims: list[str]) -> bool:
    """Whether HAProxy's writer backend routes to none of the victims."""
    up = routed(stats_socket)
    return up is not None and not up & set(victims)


async def wait_routed(stats_socket: Path, names: list[str], timeout: float = 30) -> None:
    """Until HAProxy's writer backend has every node up again (health checks must rise after
    a repair), so that the next fault's time out of the load balancer is measured from in."""
    deadline = time.monotonic() + timeout
    while not set(names) <= (up := await asyncio.to_thread(routed, stats_socket) or set()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all of {names} back in the load balancer: up {sorted(up)}")
        await asyncio.sleep(POLL_SECONDS)


async def inject(
    handle: WorkflowHandle[Any, Any],
    writer: Writer,
    kind: str,
    rng: random.Random,
    stats_socket: Path,
) -> FaultResult:
    before = await wait_green(handle, FAULT_TIMEOUT)
    await wait_routed(stats_socket, [n.name for n in before.nodes])
    targets = list(before.nodes) if kind == "kill-all" else [rng.choice(before.nodes)]
    old_pids = {n.name: n.pid for n in targets}
    result = FaultResult(kind, [n.name for n in targets])
    result.writer_killed = before.writer in result.victims
    repairs_before = {r.id for r in before.remediations}  # the status keeps the last 20
    started = time.monotonic()
    started_wall = datetime.now()
    for target in targets:
        assert target.pid is not None, f"{target.name} has no pid while Green"
        signal_node(target.pid, FAULT_KINDS[kind])
    status = before
    try:
        while True:
            status = await status_of(handle)
            now = time.monotonic() - started
            if result.detect is None and (
                status.state is not ClusterState.GREEN
                or any(node_named(status, v).state is not NodeState.GREEN for v in result.victims)
            ):
                result.detect = now
            if result.out_of_lb is None and await asyncio.to_thread(
                out_of_balancer, stats_socket, result.victims
            ):
                result.out_of_lb = time.monotonic() - started
            if status.manual_intervention is not None:
                mi = status.manual_intervention
                result.manual = f"{mi.fault}: {mi.reason}"
                break
            restarted = all(
                node_named(status, v).pid not in (None, old_pids[v]) for v in result.victims
            )
            if result.detect is not None and restarted and green_and_idle(status):
                result.green = now
                break
            if now > FAULT_TIMEOUT:
                result.note = f"not Green and idle within {FAULT_TIMEOUT:.0f} s: {status.message}"
                break
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if kind == "hang":  # should be dead by now; never leave it stopped
            for pid in old_pids.values():
                if pid is not None and alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
    ended = time.monotonic()
    result.window = (started_wall, datetime.now())
    result.errors = writer.errors_between(started, ended)
    result.stall = writer.longest_stall(started, ended)
    result.repairs = [
        f"{r.fault}:{r.outcome}" for r in status.remediations if r.id not in repairs_before
    ]
    return result


# -- suspicions of live nodes -----------------------------------------------------------------

LISTENING = re.compile(r"\((?P<member>[0-9a-f]{8}-[0-9a-f]{4}), 'tcp://[^']+'\) listening at")
SUSPECTING = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d +\d+:\d\d:\d\d) "
    r".*suspecting node: (?P<member>[0-9a-f]{8}-[0-9a-f]{4})"
)
SLACK = timedelta(seconds=2)  # error-log timestamps have whole seconds


def false_suspicions(home: Path, names: list[str], results: list[FaultResult]) -> list[str]:
    """Suspicions (evs) of a node that no fault had hit at that moment: a live node taken for
    a dead one, what group timeouts that are too short would cause on a loaded machine."""
    logs = {n: ClusterPaths.of(home, "default", CLUSTER_NAME).node(n).error_log for n in names}
    texts = {
        n: path.read_text(errors="replace") if path.exists() else "" for n, path in logs.items()
    }
    owner = {m["member"]: n for n, text in texts.items() for m in LISTENING.finditer(text)}
    found = []
    for observer, text in texts.items():
        for line in text.splitlines():
            if not (m := SUSPECTING.match(line)):
                continue
            at = datetime.strptime(" ".join(m["at"].split()), "%Y-%m-%d %H:%M:%S")
            suspect = owner.get(m["member"], m["member"])
            explained = any(
                r.window and suspect in r.victims and r.window[0] - SLACK <= at <= r.window[1]
                for r in results
            )
            if not explained:
                found.append(f"{m['at']} {observer} suspected {suspect}")
    return found


# -- the final checks -------------------------------------------------------------------------


@dataclass
class Verdict:
    acked: int
    lost_per_node: dict[str, int]
    checksums: dict[str, int | None]
    final_state: str
    manual: str | None
    problems: list[str]

    @property
    def lost(self) -> int:
        return max(self.lost_per_node.values(), default=self.acked)

    @property
    def checksums_identical(self) -> bool:
        values = set(self.checksums.values())
        return len(values) == 1 and None not in values and len(self.checksums) > 0

    @property
    def passed(self) -> bool:
        return (
            not self.problems
            and self.lost == 0
            and self.checksums_identical
            and self.final_state == ClusterState.GREEN
            and self.manual is None
        )


def read_node(host: str, port: int, password: str) -> tuple[set[int], int | None]:
    conn = app_connection(host, port, password, read_timeout=60)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION wsrep_sync_wait=1")
            cursor.execute("SELECT id FROM chaos.acked")
            ids = {int(row[0]) for row in cursor.fetchall()}
            cursor.execute("CHECKSUM TABLE chaos.acked")
            row = cursor.fetchone()
        return ids, (int(row[1]) if row and row[1] is not None else None)
    finally:
        conn.close()


async def verify(handle: WorkflowHandle[Any, Any], writer: Writer, password: str) -> Verdict:
    problems: list[str] = []
    try:
        status = await wait_green(handle, FAULT_TIMEOUT)
    except TimeoutError as exc:
        problems.append(str(exc))
        status = await status_of(handle)
    with writer.lock:
        acked = set(writer.acked)
    lost: dict[str, int] = {}
    checksums: dict[str, int | None] = {}
    for node in status.nodes:
        try:
            ids, checksum = await asyncio.to_thread(read_node, node.host, node.port, password)
        except pymysql.err.MySQLError as exc:
            problems.append(f"{node.name}: {exc}")
            lost[node.name], checksums[node.name] = len(acked), None
            continue
        lost[node.name], checksums[node.name] = len(acked - ids), checksum
    mi = status.manual_intervention
    return Verdict(
        acked=len(acked),
        lost_per_node=lost,
        checksums=checksums,
        final_state=str(status.state),
        manual=f"{mi.fault}: {mi.reason}" if mi else None,
        problems=problems,
    )


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
            "hang": self.restart_after_kill,  # by hand: kill -9, then restart
            "stop": self.restart_after_stop,
            "kill-all": self.recover_all,
        }[kind]
        return median(measured) if measured else None


def measure_references(rounds: int) -> References:
    """The same faults on a cluster run by hand, under the same kind of writer (on node 0).

    One node (the last): SIGKILL (or SIGTERM), then `mariadbd` until Synced (IST). All nodes:
    SIGKILL, read every position (grastate.dat, `--wsrep-recover`), bootstrap the highest,
    start the others one at a time, each until Synced."""
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
        )
    )
    try:
        cluster.prepare()
        cluster.create()
        writer.start()
        if not writer.ready.wait(60):
            raise RuntimeError(f"the by-hand writer acknowledged nothing: {writer.errors[-3:]}")
        victim = cluster.names[-1]
        for _ in range(rounds):
            for sig, into in (
                (signal.SIGKILL, references.restart_after_kill),
                (signal.SIGTERM, references.restart_after_stop),
            ):
                started = time.monotonic()
                cluster.signal(victim, sig)
                cluster.start(victim)
                into.append(time.monotonic() - started)
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
        writer.stopping.set()
        writer.join(30)
        cluster.close()
    return references


# -- the benchmark ----------------------------------------------------------------------------

# Per fault kind: the most a repair may take against the by-hand floor (issue 3 sets these
# two; the others are reported without a target).
RATIO_TARGETS = {"kill": 1.5, "kill-all": 2.0}
DETECT_TARGET = 2.0  # seconds from a SIGKILL to the status
OUT_OF_LB_TARGET = 3.0  # seconds from a SIGKILL to no longer routed to
STALL_TARGET = 3.0  # seconds of write stall when the writer is killed


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def medians(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return median(known) if known else None


def report(
    results: list[FaultResult], verdict: Verdict, references: References, suspicions: list[str]
) -> list[str]:
    """Print the run; the targets it missed."""
    print()
    print(
        f"{'#':>2}  {'fault':<8}  {'victim':<22}  {'detect s':>8}  {'out of LB s':>11}  "
        f"{'Green again s':>13}  {'write errors':>12}  {'longest stall s':>15}  repairs"
    )
    for number, r in enumerate(results, 1):
        green = "MANUAL" if r.manual else seconds(r.green) if r.green is not None else "TIMEOUT"
        victims = ",".join(r.victims) + (" (writer)" if r.writer_killed else "")
        print(
            f"{number:>2}  {r.kind:<8}  {victims:<22}  {seconds(r.detect):>8}  "
            f"{seconds(r.out_of_lb):>11}  {green:>13}  {r.errors:>12}  {r.stall:>15.1f}  "
            f"{' '.join(r.repairs) or '-'}"
        )
        if r.manual:
            print(f"    manual intervention: {r.manual}")
        if r.note:
            print(f"    {r.note}")
    missed: list[str] = []
    print()
    print(
        f"{'fault':<8}  {'n':>2}  {'detect s':>8}  {'out of LB s':>11}  {'Green again s':>13}  "
        f"{'by hand s':>9}  {'ratio':>5}  target"
    )
    for kind in FAULT_KINDS:
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
            f"{kind:<8}  {len(runs):>2}  {seconds(medians([r.detect for r in runs])):>8}  "
            f"{seconds(medians([r.out_of_lb for r in runs])):>11}  {seconds(back):>13}  "
            f"{seconds(floor):>9}  {'-' if ratio is None else f'{ratio:.2f}':>5}  {verdict_text}"
        )
    kills = [r for r in results if r.kind == "kill"]
    worst_detect = max((r.detect or FAULT_TIMEOUT for r in kills), default=None)
    worst_out = max((r.out_of_lb or FAULT_TIMEOUT for r in kills), default=None)
    writer_stalls = [r.stall for r in results if r.kind == "kill" and r.writer_killed]
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
    print(f"acknowledged rows:      {verdict.acked}")
    per_node = ", ".join(f"{n} {c}" for n, c in verdict.lost_per_node.items())
    print(f"rows lost:              {verdict.lost} (must be 0; per node: {per_node})")
    sums = ", ".join(f"{n} {c}" for n, c in verdict.checksums.items())
    print(f"identical checksums:    {'yes' if verdict.checksums_identical else 'NO'} ({sums})")
    print(f"final state:            {verdict.final_state}")
    print(f"manual intervention:    {verdict.manual or 'none'}")
    for problem in verdict.problems:
        print(f"problem: {problem}")
    print(f"targets missed:         {'; '.join(missed) or 'none'}")
    print("PASS" if verdict.passed else "FAIL")
    return missed


def app_connection(
    host: str, port: int, password: str, read_timeout: float = 5
) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=host,
        port=port,
        user=APP_USER,
        password=password,
        autocommit=True,
        connect_timeout=2,
        read_timeout=read_timeout,
        write_timeout=5,
    )


async def run(faults: int, seed: int) -> tuple[list[FaultResult], Verdict, list[str]]:
    rng = random.Random(seed)
    results: list[FaultResult] = []
    with private_home("mysqlops-bench-faults-") as home:
        async with temporal_stack(home) as client:
            cluster = cluster_resource(CLUSTER_NAME)
            handle = await start_cluster(client, cluster)
            writer: Writer | None = None
            ref = ClusterRef(namespace=cluster.metadata.namespace, name=cluster.metadata.name)
            stats_socket = ClusterPaths.of(home, ref.namespace, ref.name).haproxy_socket
            try:
                started = time.monotonic()
                status = await wait_green(handle, CREATE_TIMEOUT)
                print(f"3-node cluster Green in {time.monotonic() - started:.1f} s", flush=True)
                assert status.endpoints is not None
                password = LocalRuntime(home).read_secret(ref, APP_SECRET)
                port = status.endpoints.writer_port
                writer = Writer(lambda: app_connection("127.0.0.1", port, password))
                writer.start()
                if not await asyncio.to_thread(writer.ready.wait, 60):
                    raise RuntimeError(f"the writer acknowledged nothing: {writer.errors[-3:]}")
                for number in range(1, faults + 1):
                    kind = rng.choice(list(FAULT_KINDS))
                    result = await inject(handle, writer, kind, rng, stats_socket)
                    results.append(result)
                    print(
                        f"fault {number}: {kind} {','.join(result.victims)}: detected "
                        f"{seconds(result.detect)} s, out of LB {seconds(result.out_of_lb)} s, "
                        f"Green again {seconds(result.green)} s, {result.errors} write errors, "
                        f"repairs {' '.join(result.repairs) or '-'}",
                        flush=True,
                    )
                    if result.manual or result.green is None:
                        print("stopping the injection", flush=True)
                        break
                writer.stopping.set()
                await asyncio.to_thread(writer.join, 30)
                verdict = await verify(handle, writer, password)
                suspicions = false_suspicions(home, [n.name for n in status.nodes], results)
            finally:
                if writer is not None:
                    writer.stopping.set()
                    await asyncio.to_thread(writer.join, 30)
                try:
                    await delete_cluster(handle, home, timeout=300)
                except Exception as exc:  # the clean-up below still runs
                    print(f"cleanup: delete failed: {exc!r}", file=sys.stderr)
    return results, verdict, suspicions


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=24, help="faults to inject")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault choice")
    parser.add_argument(
        "--reference-rounds", type=int, default=2, help="rounds of the by-hand references"
    )
    return parser.parse_args()


async def main(faults: int, seed: int, reference_rounds: int) -> int:
    references = await asyncio.to_thread(measure_references, reference_rounds)
    results, verdict, suspicions = await run(faults, seed)
    report(results, verdict, references, suspicions)
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    args = parse_args()
    finish(asyncio.run(main(args.faults, args.seed, args.reference_rounds)))
