"""Benchmark: hundreds of clusters on one worker process, and on a second one when the first dies.

Targets (issue 11), all measured in one run:
  - `--clusters` clusters (default 500; 3 replicas, default spec: probe interval 1 s,
    remediation on) all Green and idle; the time it takes is printed;
  - every cluster has exactly one running health watch (its workflow's pending activities: one
    `watch_health`, STARTED);
  - `--crashes` nodes (default 10) in as many random clusters crashed at once: the slowest
    repair at most 2x the repair time of a cluster alone on the worker (the median of 3);
  - the workflow tasks' schedule-to-start latency (WORKFLOW_TASK_SCHEDULED to its
    WORKFLOW_TASK_STARTED, from the histories of the crashed clusters and of HISTORY_SAMPLE
    others) during those crashes: p95 under 1 s;
  - a second worker process started, the first SIGKILLed: every cluster's watch STARTED again on
    the second within 30 s; then `--crashes` crashes in other clusters all repaired.
Printed beside them, with no target:
  - during an idle window of `--idle-seconds` (nothing polled): the first worker's CPU (percent
    of one core, and ms of CPU per cluster per second) and RSS (and its growth per cluster over
    its RSS with one cluster); the node probes answered per second, against one per node per
    probe interval (a watch starts a round each interval; a round that outlasts the interval
    shows here as fewer); where the rest of the machine's time went: this process (it serves the
    scripted runtime to the workers), the dev server, everything else (a test suite beside);
  - each repair's record (its start and end after the crash, workflow time): detection, the
    `settleSeconds` wait and the repair itself, apart from the client's polling;
  - schedule-to-start of workflow tasks, of activities on the task queue and of watches on the
    watch queue, in the creation phase and during each round of crashes.

The clusters run on the scripted in-memory runtime (activities/scripted), served from this
process to real worker processes (`python -m workers.worker --runtime scripted`) over a local
socket: the workflows, the Temporal dev server, the task and watch queues and the probing rhythm
are the real ones; only mariadbd is simulated. A crash is planted in the runtime (the node's
process is gone, as after SIGKILL) and timed from then until the cluster is Green and idle
again with the node running under a new pid and a new remediation record (as a client polling
its status every REPAIR_POLL seconds sees it).

Run from the repository root:
    .venv/bin/python -m bench.scale [--clusters 500] [--crashes 10] [--seed 1]
        [--idle-seconds 60] [--concurrency 50] [--keep-logs DIR]
`--concurrency` clusters are created at once (each from its workflow's start until Green and
idle), so as not to flood the dev server; `--keep-logs` keeps the workers' logs.
Exit status 0 when every target is met, 1 otherwise. Every process it starts (the dev server,
the worker processes) is stopped and its temporary home removed at the end, also on failure or
Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.probe import Target
from activities.scripted.runtime import ScriptedRuntime
from activities.scripted.shared import Shared, share
from activities.watch import watch_queue
from api.cluster import ClusterStatus, MySQLClusterSpec, NodeFacts, cluster_workflow_id
from api.remediation import Outcome, RemediationRecord
from api.states import NodeState
from bench.common import REPO, cluster_resource, finish, median, start_cluster
from workers.client import ClusterClient, green_and_idle
from workers.sandbox import dev_server, private_home
from workers.temporal import TASK_QUEUE

NAMESPACE = "default"
SPEC = MySQLClusterSpec(replicas=3)  # defaults: probe every 1 s, remediation on
BASELINE_CRASHES = 3
CREATE_TIMEOUT = 900.0  # seconds, one cluster from its start to Green and idle
CREATE_POLL = 2.0  # seconds between two status reads of a cluster being created
REPAIR_POLL = 0.5  # seconds between two status reads of a crashed cluster
REPAIR_TIMEOUT = 180.0
SETTLE = 2.0  # seconds a cluster rests, its watch running, before a crash
SWEEP_PERIOD = 2.0  # seconds between two sweeps over every cluster
SWEEP_CONCURRENCY = 25  # calls to Temporal at once during a sweep
WORKER_READY_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 20.0
TAKEOVER_TIMEOUT = 180.0
HISTORY_SAMPLE = 50  # clusters beside the crashed ones whose histories are read

REPAIR_RATIO_TARGET = 2.0  # slowest of the simultaneous repairs over the lone cluster's median
LATENCY_P95_TARGET = 1.0  # seconds, workflow-task schedule-to-start, during the crashes
TAKEOVER_TARGET = 30.0  # seconds, from the first worker's SIGKILL to every watch on the second

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


# -- processes: the workers, and what /proc says of every process ----------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds every core spent on anything but idling, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS  # guest time is already counted in user


def children_with(word: str) -> list[int]:
    """This process's children whose command line holds `word` (the dev server the Temporal
    test library started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if ppid == os.getpid() and word in command:
                found.append(int(entry.name))
    return found


@dataclass
class WorkerProcess:
    """`python -m workers.worker --runtime scripted`, its output in a log file."""

    label: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, label: str, home: Path, env: dict[str, str]) -> WorkerProcess:
        log = home / f"worker-{label}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "workers.worker", "--runtime", "scripted"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches this script only, which stops it
            )
        return cls(label, process, log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def owns(self, identity: str) -> bool:
        """A Temporal worker identity of this process (the default, `<pid>@<host>`)."""
        return identity.startswith(f"{self.pid}@")

    def check(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"worker {self.label} exited ({code}): {self.tail()}")

    def tail(self, lines: int = 8) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def ready(self) -> None:
        """Until it logs that both its Temporal workers poll."""
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while "worker started" not in self.log.read_text(errors="replace"):
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.label} not started: {self.tail()}")
            await asyncio.sleep(0.2)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited in WORKER_STOP_TIMEOUT."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"cleanup: worker {self.label} ignored SIGTERM: killed", file=sys.stderr)
            self.kill()


class ProbeCount:
    """Probes the shared runtime answered (every worker's watches and surveys): whether each
    cluster's nodes are still probed every interval at scale."""

    def __init__(self, runtime: ScriptedRuntime) -> None:
        self.count = 0
        self.lock = threading.Lock()
        answer = runtime.probe

        def probe(target: Target, timeout: float) -> NodeFacts:
            with self.lock:
                self.count += 1
            return answer(target, timeout)

        setattr(runtime, "probe", probe)  # noqa: B010 (served by name)

    def __call__(self) -> int:
        with self.lock:
            return self.count


@dataclass(frozen=True)
class Usage:
    """CPU seconds of the processes that matter, and of the whole machine, at one moment."""

    at: float
    worker: float
    bench: float
    server: float
    machine: float

    @classmethod
    def now(cls, worker: int, server: int | None) -> Usage:
        return cls(
            at=time.monotonic(),
            worker=cpu_seconds(worker),
            bench=cpu_seconds(os.getpid()),
            server=cpu_seconds(server) if server else 0.0,
            machine=machine_busy_seconds(),
        )


# -- sweeps over many clusters ----------------------------------------------------------------


async def bounded(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Every call, at most `limit` at once; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


def cluster_client(client: Client, name: str, poll: float = REPAIR_POLL) -> ClusterClient:
    return ClusterClient.of(client, NAMESPACE, name, poll)


async def status_or_none(client: Client, name: str) -> ClusterStatus | None:
    try:
        return await cluster_client(client, name).status()
    except (RPCError, RuntimeError):  # a query that timed out, a worker that went away
        return None


async def statuses(client: Client, names: Sequence[str]) -> dict[str, ClusterStatus | None]:
    found = await bounded([partial(status_or_none, client, n) for n in names], SWEEP_CONCURRENCY)
    return dict(zip(names, found, strict=True))


@dataclass(frozen=True)
class Watch:
    """A cluster's pending `watch_health` activities, from its workflow's description."""

    count: int  # pending watch_health activities
    started: int  # of which STARTED
    identity: str  # the worker that took the last STARTED one
    started_at: datetime | None
    detail: str  # every pending one: id, state, attempt, worker, last failure

    @property
    def running(self) -> bool:
        """Exactly one STARTED: another pending one can only be a replaced watch whose
        cancellation its worker has not taken yet (it learns of it at its next heartbeat)."""
        return self.started == 1


def pending_text(activity: PendingActivityInfo) -> str:
    state = PendingActivityState.Name(activity.state).removeprefix("PENDING_ACTIVITY_STATE_")
    scheduled = (
        activity.scheduled_time.ToDatetime(tzinfo=UTC)
        if activity.HasField("scheduled_time")
        else None
    )
    failure = activity.last_failure.message if activity.HasField("last_failure") else ""
    return (
        f"[id {activity.activity_id} {state} attempt {activity.attempt} "
        f"scheduled {scheduled:%H:%M:%S.%f} worker {activity.last_worker_identity or '-'}"
        + (f" last failure {failure!r}" if failure else "")
        + "]"
        if scheduled
        else f"[id {activity.activity_id} {state} attempt {activity.attempt}]"
    )


async def watch_of(client: Client, name: str) -> Watch | None:
    try:
        described = await client.get_workflow_handle(
            cluster_workflow_id(NAMESPACE, name)
        ).describe()
    except RPCError:
        return None
    watches = [
        a
        for a in described.raw_description.pending_activities
        if a.activity_type.name == "watch_health"
    ]
    detail = " ".join(pending_text(a) for a in watches)
    started = [a for a in watches if a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED]
    if not started:
        return Watch(len(watches), 0, "", None, detail)
    last = started[-1]
    at = (
        last.last_started_time.ToDatetime(tzinfo=UTC)
        if last.HasField("last_started_time")
        else None
    )
    return Watch(len(watches), len(started), last.last_worker_identity, at, detail)


async def watches(client: Client, names: Sequence[str]) -> dict[str, Watch | None]:
    found = await bounded([partial(watch_of, client, n) for n in names], SWEEP_CONCURRENCY)
    return dict(zip(names, found, strict=True))


# -- creating clusters ------------------------------------------------------------------------


@dataclass
class Creation:
    green: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime = field(default_factory=lambda: datetime.now(UTC))


async def create_cluster(client: Client, name: str) -> None:
    """What `mysqlops apply` does, then until the cluster is Green with nothing to do."""
    applied = await start_cluster(client, cluster_resource(name, SPEC))
    applied.cluster.poll_seconds = CREATE_POLL
    await applied.until_green(timeout=CREATE_TIMEOUT)


async def create_many(
    client: Client, names: Sequence[str], concurrency: int, worker: WorkerProcess
) -> Creation:
    """Every cluster, at most `concurrency` of them being created at once; progress printed."""
    creation = Creation()
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)

    async def one(name: str) -> None:
        async with gate:
            try:
                await create_cluster(client, name)
                creation.green += 1
            except Exception as error:  # the others go on; the count is judged at the end
                creation.failed[name] = f"{type(error).__name__}: {error}"

    creating = asyncio.gather(*(one(n) for n in names))

    async def progress() -> None:
        while True:
            await asyncio.sleep(20)
            if worker.process.poll() is not None:
                creating.cancel()  # nothing would create them any more
                return
            print(
                f"  {time.monotonic() - started:5.0f} s: {creation.green} Green and idle, "
                f"{len(creation.failed)} failed, of {len(names)}",
                flush=True,
            )

    reporter = asyncio.create_task(progress())
    try:
        await creating
    except asyncio.CancelledError:
        worker.check()  # it died: say so, with its log's tail
        raise
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    creation.seconds = time.monotonic() - started
    creation.ended_at = datetime.now(UTC)
    return creation


# -- crashes and repairs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Repair:
    cluster: str
    node: str
    writer: bool  # the node was the cluster's writer
    seconds: float | None  # None: not repaired within REPAIR_TIMEOUT
    problem: str = ""
    began: float | None = None  # its repair record's start, seconds after the crash
    ended: float | None = None  # and its end (workflow time)


def repaired(
    status: ClusterStatus, node: str, old_pid: int | None, known: set[str]
) -> RemediationRecord | None:
    """The new repair record, once it succeeded, the node runs again (a new pid, Green) and the
    cluster is Green with nothing to do."""
    seen = next((n for n in status.nodes if n.name == node), None)
    new = [r for r in status.remediations if r.id not in known and r.outcome is Outcome.SUCCEEDED]
    if (
        seen is not None
        and seen.pid not in (None, old_pid)
        and seen.state is NodeState.GREEN
        and new
        and green_and_idle(status)
    ):
        return new[-1]
    return None


@dataclass(frozen=True)
class Victim:
    cluster: str
    node: str
    pid: int | None
    writer: bool
    known: set[str]  # repair records before the crash


async def choose_victim(client: Client, cluster: str, rng: random.Random) -> Victim:
    status = await cluster_client(client, cluster).status()
    if not green_and_idle(status):
        raise RuntimeError(f"{cluster} is not Green and idle before its crash: {status.message}")
    node = rng.choice(status.nodes)
    return Victim(
        cluster,
        node.name,
        node.pid,
        node.name == status.writer,
        {r.id for r in status.remediations},
    )


async def until_repaired(
    client: Client, victim: Victim, crashed_at: float, crashed_wall: datetime
) -> Repair:
    cluster = cluster_client(client, victim.cluster)
    last = "no status read"
    while time.monotonic() - crashed_at < REPAIR_TIMEOUT:
        try:
            status = await cluster.status()
        except (RPCError, RuntimeError) as error:
            last = f"status: {error}"
        else:
            record = repaired(status, victim.node, victim.pid, victim.known)
            if record is not None:
                ended = record.ended_at or record.started_at
                return Repair(
                    victim.cluster,
                    victim.node,
                    victim.writer,
                    time.monotonic() - crashed_at,
                    began=(record.started_at - crashed_wall).total_seconds(),
                    ended=(ended - crashed_wall).total_seconds(),
                )
            last = f"{status.state.value}: {status.message}"
        await asyncio.sleep(REPAIR_POLL)
    return Repair(victim.cluster, victim.node, victim.writer, None, last)


async def crash_and_repair(
    client: Client, runtime: ScriptedRuntime, clusters: Sequence[str], rng: random.Random
) -> tuple[list[Repair], datetime, datetime]:
    """One node of each cluster crashed at the same moment; each timed until repaired. Also
    the wall-clock window from the crashes to the last repair."""
    victims = [await choose_victim(client, c, rng) for c in clusters]
    began = datetime.now(UTC)
    crashed_at = time.monotonic()
    for victim in victims:
        runtime.crash(victim.node, detail="killed by SIGKILL")
    repairs = await asyncio.gather(*(until_repaired(client, v, crashed_at, began) for v in victims))
    return list(repairs), began, datetime.now(UTC)


async def until_watched(client: Client, cluster: str, timeout: float = 60) -> None:
    """Until the cluster's health watch runs (a crash is only seen by a running watch)."""
    deadline = time.monotonic() + timeout
    while not ((found := await watch_of(client, cluster)) and found.running):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{cluster}: no running watch within {timeout:.0f} s: {found}")
        await asyncio.sleep(0.5)


def repair_lines(repairs: Sequence[Repair]) -> list[str]:
    """Each repair: seen done by the client; its record's start and end after the crash."""
    return [
        f"    {r.node:<8} ({'writer' if r.writer else 'replica'}): "
        + (
            f"{r.seconds:.1f} s (repair record from {r.began:.1f} s to {r.ended:.1f} s)"
            if r.seconds is not None and r.began is not None and r.ended is not None
            else f"NOT repaired ({r.problem})"
        )
        for r in repairs
    ]


# -- workflow-task latency from the histories ------------------------------------------------


def event_time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


async def every_run(client: Client, workflow_id: str) -> list[list[HistoryEvent]]:
    """The events of each run of the workflow, the latest first, back through its
    continue-as-new chain to the first run."""
    runs: list[list[HistoryEvent]] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        events = list(history.events)
        runs.append(events)
        started = events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return runs
        run_id = started.continued_execution_run_id


WORKFLOW_TASK = "workflow task"
Latencies = list[tuple[str, datetime, float]]  # (what, scheduled at, seconds until started)


def task_latencies(runs: Sequence[Sequence[HistoryEvent]]) -> Latencies:
    """Schedule-to-start of every workflow task in the runs (WORKFLOW_TASK), and of every
    activity's first attempt (what: "activity on <task queue>")."""
    found: Latencies = []
    for events in runs:
        scheduled: dict[int, tuple[str, datetime]] = {}
        for e in events:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                scheduled[e.event_id] = (WORKFLOW_TASK, event_time(e))
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                queue = e.activity_task_scheduled_event_attributes.task_queue.name
                scheduled[e.event_id] = (f"activity on {queue}", event_time(e))
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                key = e.workflow_task_started_event_attributes.scheduled_event_id
                if key in scheduled:
                    what, at = scheduled[key]
                    found.append((what, at, (event_time(e) - at).total_seconds()))
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = e.activity_task_started_event_attributes
                if started.scheduled_event_id in scheduled and started.attempt == 1:
                    what, at = scheduled[started.scheduled_event_id]
                    found.append((what, at, (event_time(e) - at).total_seconds()))
    return found


@dataclass(frozen=True)
class Latency:
    count: int
    p50: float
    p95: float
    highest: float

    def __str__(self) -> str:
        if not self.count:
            return "none"
        return (
            f"p50 {self.p50 * 1000:.0f} ms, p95 {self.p95 * 1000:.0f} ms, "
            f"max {self.highest * 1000:.0f} ms ({self.count})"
        )


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest rank."""
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def latency_in(latencies: Latencies, what: str, since: datetime, until: datetime) -> Latency:
    values = sorted(s for kind, at, s in latencies if kind == what and since <= at <= until)
    if not values:
        return Latency(0, 0.0, 0.0, 0.0)
    return Latency(len(values), percentile(values, 0.5), percentile(values, 0.95), values[-1])


async def latencies_of(client: Client, names: Sequence[str]) -> Latencies:
    async def one(name: str) -> Latencies:
        return task_latencies(await every_run(client, cluster_workflow_id(NAMESPACE, name)))

    found = await bounded([partial(one, n) for n in names], SWEEP_CONCURRENCY)
    return [x for xs in found for x in xs]


# -- the report -------------------------------------------------------------------------------


class Summary:
    """Every figure once, with its target and PASS/FAIL (or none: informational)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failed: list[str] = []

    def figure(
        self, label: str, value: str, target: str | None = None, met: bool | None = None
    ) -> None:
        if target is None:
            self.lines.append(f"  {label:<44} {value}")
            return
        verdict = "PASS" if met else "FAIL"
        self.lines.append(f"  {label:<44} {value}  (target {target})  {verdict}")
        if not met:
            self.failed.append(label)

    def missing(self, label: str, target: str) -> None:
        """A target the run never reached: failed."""
        self.lines.append(f"  {label:<44} not measured  (target {target})  FAIL")
        self.failed.append(label)

    def print(self, title: str) -> None:
        print()
        print(f"== {title}")
        for line in self.lines:
            print(line)
        verdict = "all targets met" if not self.failed else f"MISSED: {', '.join(self.failed)}"
        print(f"== {verdict}")


def slowest(repairs: Sequence[Repair]) -> float | None:
    times = [r.seconds for r in repairs]
    return None if any(t is None for t in times) else max(t for t in times if t is not None)


def mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Stack:
    """What the run started, for the clean-up."""

    env: WorkflowEnvironment | None = None
    shared: Shared | None = None
    workers: list[WorkerProcess] = field(default_factory=list)


async def run(args: argparse.Namespace, home: Path, stack: Stack, summary: Summary) -> None:
    rng = random.Random(args.seed)
    names = [f"s{i:03d}" for i in range(args.clusters)]
    targets = {
        "create": f"all {args.clusters} Green and idle",
        "watch": f"{args.clusters}/{args.clusters}",
        "crash": f"<= {REPAIR_RATIO_TARGET:g}x single",
        "latency": f"p95 < {LATENCY_P95_TARGET * 1000:.0f} ms",
        "takeover": f"<= {TAKEOVER_TARGET:.0f} s",
        "after": f"{args.crashes}/{args.crashes} repaired",
    }
    pending = dict(targets)  # targets not judged yet: missing if the run stops short

    def judge(key: str, label: str, value: str, met: bool) -> None:
        pending.pop(key, None)
        summary.figure(label, value, targets[key], met)

    try:
        await _run(args, home, stack, summary, rng, names, judge)
    finally:
        labels = {
            "create": "clusters Green and idle",
            "watch": "clusters with exactly one running watch",
            "crash": f"{args.crashes} simultaneous repairs, slowest",
            "latency": "workflow-task schedule-to-start, crashes",
            "takeover": "watches on worker B after A's SIGKILL",
            "after": f"{args.crashes} repairs on worker B",
        }
        for key, target in pending.items():
            summary.missing(labels[key], target)


async def _run(
    args: argparse.Namespace,
    home: Path,
    stack: Stack,
    summary: Summary,
    rng: random.Random,
    names: list[str],
    judge: Callable[[str, str, str, bool], None],
) -> None:
    began = time.monotonic()
    runtime = ScriptedRuntime()  # takes no backup: no backup directory is made
    probes = ProbeCount(runtime)
    stack.env = await dev_server()
    client = stack.env.client
    server_pids = children_with("start-dev")
    server = server_pids[0] if server_pids else None
    stack.shared = share(runtime, home)
    metrics_base = random.Random().randrange(30000, 32700, 10)  # below the ephemeral ports
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        **stack.shared.env,
        "MYSQLOPS_METRICS_ADDRESS": "" if args.no_census else f"127.0.0.1:{metrics_base}",
        "MYSQLOPS_SDK_METRICS_ADDRESS": f"127.0.0.1:{metrics_base + 1}",
    }
    worker_a = WorkerProcess.start("a", home, env)
    stack.workers.append(worker_a)
    await worker_a.ready()
    print(
        f"dev server pid {server}, worker A pid {worker_a.pid}, home {home}; "
        f"{os.cpu_count()} cores",
        flush=True,
    )

    # -- baseline: one cluster alone
    base = names[0]
    started = time.monotonic()
    await create_cluster(client, base)
    print(f"baseline cluster {base} Green in {time.monotonic() - started:.1f} s", flush=True)
    alone: list[Repair] = []
    for _ in range(BASELINE_CRASHES):
        await until_watched(client, base)
        await asyncio.sleep(SETTLE)
        repairs, _, _ = await crash_and_repair(client, runtime, [base], rng)
        alone.extend(repairs)
        print("\n".join(repair_lines(repairs)), flush=True)
    if any(r.seconds is None for r in alone):
        raise RuntimeError("the lone cluster was not repaired: nothing to compare with")
    single = median([r.seconds for r in alone if r.seconds is not None])
    summary.figure(
        "single-cluster repair (median of 3)",
        f"{single:.1f} s ({', '.join(f'{r.seconds:.1f}' for r in alone if r.seconds)})",
    )
    await asyncio.sleep(SETTLE)
    rss_one = rss_bytes(worker_a.pid)

    # -- creation of the others
    others = names[1:]
    print(
        f"creating {len(others)} more clusters, {args.concurrency} at a time "
        f"(RSS of worker A with one cluster: {mib(rss_one)})",
        flush=True,
    )
    creation = await create_many(client, others, args.concurrency, worker_a)
    green = creation.green + 1
    judge(
        "create",
        "clusters Green and idle",
        f"{green}/{args.clusters} in {creation.seconds:.0f} s "
        f"({creation.green / creation.seconds:.1f} per second)",
        not creation.failed,
    )
    for name, problem in list(creation.failed.items())[:5]:
        print(f"  {name}: {problem}", flush=True)
    if creation.failed:
        raise RuntimeError(f"{len(creation.failed)} clusters not created")
    worker_a.check()

    # -- one watch each
    seen = await watches(client, names)
    first = sum(1 for w in seen.values() if w and w.running)
    for _ in range(3):  # a watch between two activities (it returned on a change) is no fault
        missing = [n for n, w in seen.items() if not (w and w.running)]
        if not missing:
            break
        await asyncio.sleep(SWEEP_PERIOD)
        seen.update(await watches(client, missing))
    running = [n for n, w in seen.items() if w and w.running]
    on_a = sum(1 for n in running if (w := seen[n]) and worker_a.owns(w.identity))
    cancelling = sum(1 for w in seen.values() if w and w.count > w.started)
    judge(
        "watch",
        "clusters with exactly one running watch",
        f"{len(running)}/{args.clusters} (first sweep {first}; on worker A {on_a}; "
        f"{cancelling} with a replaced watch still pending)",
        len(running) == args.clusters,
    )
    for name in [n for n in names if n not in running][:10]:
        found = seen[name]
        print(f"  {name}: {found.detail if found else 'no description'}", flush=True)

    # -- the idle window
    print(f"idle window: {args.idle_seconds:.0f} s, nothing polled", flush=True)
    before, probed = Usage.now(worker_a.pid, server), probes()
    await asyncio.sleep(args.idle_seconds)
    after, probed = Usage.now(worker_a.pid, server), probes() - probed
    rss_many = rss_bytes(worker_a.pid)
    window = after.at - before.at
    n = args.clusters

    def percent(used: float) -> str:
        return f"{100 * used / window:.0f}% of a core"

    cpu_a = after.worker - before.worker
    summary.figure(
        f"worker A CPU, idle, {n} clusters",
        f"{percent(cpu_a)}; {1000 * cpu_a / window / n:.2f} ms per cluster per second",
    )
    summary.figure(
        "worker A RSS",
        f"{mib(rss_many)} ({mib(rss_one)} with one cluster; "
        f"+{(rss_many - rss_one) / max(1, n - 1) / 1024:.0f} KiB per cluster)",
    )
    expected = n * SPEC.replicas / SPEC.health.probe_interval_seconds
    summary.figure(
        "node probes, idle",
        f"{probed / window:.0f}/s (every node each interval: {expected:.0f}/s; fewer when "
        "rounds outlast the interval)",
    )
    bench_cpu, server_cpu = after.bench - before.bench, after.server - before.server
    rest = (after.machine - before.machine) - cpu_a - bench_cpu - server_cpu
    summary.figure("this process (scripted runtime), idle", percent(bench_cpu))
    summary.figure("dev server, idle", percent(server_cpu) if server else "pid not found")
    summary.figure("everything else on the machine, idle", percent(max(0.0, rest)))
    if not args.no_census:
        summary.figure("census of worker A, the last", census_figure(env))
    after_idle = await statuses(client, names)
    still = sum(1 for s in after_idle.values() if s and green_and_idle(s))
    unwatched = sum(1 for s in after_idle.values() if s and s.unwatched)
    repaired_idle = sum(
        1 for name, s in after_idle.items() if s and s.remediations and name != base
    )
    summary.figure(
        "after the idle window",
        f"{still}/{n} Green and idle, {unwatched} unwatched, {repaired_idle} with a repair record",
    )

    # -- simultaneous crashes on worker A
    crashed = rng.sample(others, min(args.crashes, len(others)))
    print(f"crashing a node in {len(crashed)} clusters at once", flush=True)
    repairs, crash_began, crash_ended = await crash_and_repair(client, runtime, crashed, rng)
    print("\n".join(repair_lines(repairs)), flush=True)
    worst = slowest(repairs)
    judge(
        "crash",
        f"{len(crashed)} simultaneous repairs, slowest",
        "not all repaired"
        if worst is None
        else f"{worst:.1f} s = {worst / single:.2f}x single (median "
        f"{median([r.seconds for r in repairs if r.seconds is not None]):.1f} s)",
        worst is not None and worst <= REPAIR_RATIO_TARGET * single,
    )

    # -- a second worker; the first killed
    worker_b = WorkerProcess.start("b", home, env)
    stack.workers.append(worker_b)
    await worker_b.ready()
    await asyncio.sleep(SETTLE)  # its pollers are in
    print(f"worker B pid {worker_b.pid} started; SIGKILL to worker A", flush=True)
    killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
    worker_a.kill()
    moved: dict[str, datetime | None] = {}
    waiting = list(names)
    seen_all = 0.0
    while waiting and time.monotonic() - killed_at < TAKEOVER_TIMEOUT:
        sweep = time.monotonic()
        seen = await watches(client, waiting)
        for name, w in seen.items():
            if w and w.running and worker_b.owns(w.identity):
                moved[name] = w.started_at
        waiting = [n for n in waiting if n not in moved]
        seen_all = time.monotonic() - killed_at
        print(f"  {seen_all:5.1f} s: {len(moved)}/{n} watches on worker B", flush=True)
        if waiting:
            await asyncio.sleep(max(0.0, SWEEP_PERIOD - (time.monotonic() - sweep)))
    starts = [(at - killed_wall).total_seconds() for at in moved.values() if at is not None]
    takeover = max(starts) if starts and not waiting else None
    judge(
        "takeover",
        "watches on worker B after A's SIGKILL",
        f"{len(moved)}/{n}; last STARTED {takeover:.1f} s after the kill (all seen by "
        f"{seen_all:.1f} s)"
        if takeover is not None
        else f"{len(moved)}/{n} within {TAKEOVER_TIMEOUT:.0f} s",
        takeover is not None and takeover <= TAKEOVER_TARGET,
    )
    worker_b.check()

    # -- crashes on worker B
    spare = [c for c in others if c not in crashed]
    later = rng.sample(spare, min(args.crashes, len(spare)))
    print(f"crashing a node in {len(later)} other clusters at once (worker B)", flush=True)
    for name in later:
        await until_watched(client, name)
    repairs_b, b_began, b_ended = await crash_and_repair(client, runtime, later, rng)
    print("\n".join(repair_lines(repairs_b)), flush=True)
    worst_b = slowest(repairs_b)
    done_b = sum(1 for r in repairs_b if r.seconds is not None)
    judge(
        "after",
        f"{len(later)} repairs on worker B",
        f"{done_b}/{len(later)}, slowest "
        + (f"{worst_b:.1f} s = {worst_b / single:.2f}x single" if worst_b else "-"),
        done_b == len(later),
    )

    # -- workflow-task latency, from the histories
    rest_names = [c for c in others if c not in crashed and c not in later]
    sample = rng.sample(rest_names, min(HISTORY_SAMPLE, len(rest_names)))
    print(
        f"reading the histories of {len(crashed) + len(later) + len(sample)} clusters", flush=True
    )
    crash_sample = await latencies_of(client, [*crashed, *sample])
    later_sample = await latencies_of(client, later)
    slack = timedelta(seconds=1)
    every = crash_sample + later_sample
    during = latency_in(every, WORKFLOW_TASK, crash_began, crash_ended + slack)
    judge(
        "latency",
        "workflow-task schedule-to-start, crashes",
        str(during),
        during.count > 0 and during.p95 < LATENCY_P95_TARGET,
    )
    windows = {
        "creation phase": (creation.started_at, creation.ended_at),
        "crashes on worker A": (crash_began, crash_ended + slack),
        "crashes on worker B": (b_began, b_ended + slack),
    }
    queues = (WORKFLOW_TASK, f"activity on {TASK_QUEUE}", f"activity on {watch_queue(TASK_QUEUE)}")
    for phase, (since, until) in windows.items():
        summary.figure(f"schedule-to-start, {phase}:", "")
        for what in queues:
            summary.figure(f"  {what}", str(latency_in(every, what, since, until)))
    summary.figure("run took", f"{(time.monotonic() - began) / 60:.1f} min")


async def main(args: argparse.Namespace) -> int:
    summary = Summary()
    stack = Stack()
    task = asyncio.current_task()
    if task is not None:  # SIGTERM stops the run as Ctrl-C does: through every clean-up
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with private_home(prefix="mysqlops-bench-scale-") as home:
        try:
            await run(args, home, stack, summary)
        except Exception as error:
            print(f"run stopped: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        finally:
            for worker in stack.workers:
                worker.stop()
            if args.keep_logs is not None:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for worker in stack.workers:
                    shutil.copy(worker.log, args.keep_logs / worker.log.name)
            if stack.shared is not None:
                stack.shared.stop()
            if stack.env is not None:
                await stack.env.shutdown()
    summary.print(f"scale: {args.clusters} clusters, {args.crashes} crashes, seed {args.seed}")
    return 0 if not summary.failed else 1


def census_figure(env: dict[str, str]) -> str:
    """How long worker A's last census of every cluster took, from its metrics."""
    address = env["MYSQLOPS_METRICS_ADDRESS"]
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        samples = {
            s.name: s.value
            for family in text_string_to_metric_families(answer.read().decode())
            for s in family.samples
        }
    return (
        f"{samples.get('mysqlops_census_clusters', 0):.0f} clusters in "
        f"{samples.get('mysqlops_census_duration_seconds', 0):.2f} s, "
        f"{samples.get('mysqlops_census_errors_total', 0):.0f} missed"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=500, help="clusters in all (at least 2)")
    parser.add_argument("--crashes", type=int, default=10, help="simultaneous crashes per round")
    parser.add_argument("--seed", type=int, default=1, help="seed of the choice of victims")
    parser.add_argument("--idle-seconds", type=float, default=60, help="the idle window")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="clusters being created at once"
    )
    parser.add_argument("--keep-logs", type=Path, help="copy the workers' logs here at the end")
    parser.add_argument(
        "--no-census",
        action="store_true",
        help="workers without their metrics endpoint, hence without the census (its cost)",
    )
    args = parser.parse_args()
    if args.crashes < 1 or args.concurrency < 1:
        parser.error("--crashes and --concurrency must be at least 1")
    if args.clusters < 2 * args.crashes + 1:
        parser.error("--clusters must be at least 2 x --crashes + 1 (two rounds, the baseline)")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    try:
        code = asyncio.run(main(arguments))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; everything started was stopped", file=sys.stderr)
        code = 130
    finish(code)
