"""The fault kinds, and one fault injected and measured from the outside: the status the
workflow answers, HAProxy's writer backend, the writer's acknowledgements and every node's
error log (each state transfer a node received during the fault, victim or not).

    kill              SIGKILL of one random node
    stop              SIGTERM of one random node
    hang              SIGSTOP of one random node (the controller kills and restarts it)
    kill-two          SIGKILL of two random nodes
    kill-all          SIGKILL of every node
    partition         one random node's Galera traffic cut from the others' (it keeps running
                      and answering SQL), held, then healed
    partition-writer  the same for the node HAProxy's writer backend routes to
    partition-all     every node cut from every other, held, then healed
"""

import asyncio
import contextlib
import os
import random
import re
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from activities.local.process import alive, cmdline
from api.cluster import ClusterStatus
from api.remediation import Action, RemediationRecord
from api.states import ClusterState, NodeState
from galera.log import last_join
from workers.chaos.cluster import LocalCluster
from workers.chaos.netfault import CutNode, NetFault
from workers.chaos.writer import Writer

SIGNALS = {
    "kill": signal.SIGKILL,
    "stop": signal.SIGTERM,
    "hang": signal.SIGSTOP,
    "kill-two": signal.SIGKILL,
    "kill-all": signal.SIGKILL,
}
PARTITIONS = ("partition", "partition-writer", "partition-all")
KINDS = (*SIGNALS, *PARTITIONS)
POLL_SECONDS = 0.2


@dataclass
class Rejoin:
    node: str
    method: str | None  # "IST", "SST", or None: no state transfer in its log
    detail: str
    on_purpose: bool = False  # a repair set the node's data aside to have it copied anew


# Each state transfer a joiner asks for starts with this line (galera/log.py).
_TRANSFER = re.compile(r"State transfer required:")
# Repairs that give a node a fresh data directory, so that its SST is what they asked for.
_FRESH_COPY = (Action.REPROVISION_NODE, Action.BOOTSTRAP_FROM_NODE)


def joins_in(log_text: str) -> list[tuple[str, str]]:
    """Every state transfer the log shows, oldest first: (method, detail). A node may join
    more than once during one fault (a failed join, then a repair)."""
    starts = [m.start() for m in _TRANSFER.finditer(log_text)]
    found = []
    for start, end in zip(starts, [*starts[1:], len(log_text)], strict=False):
        join = last_join(log_text[start:end])
        if join is not None:
            found.append((join.method.value, join.detail))
    return found


def fresh_copies(records: list[RemediationRecord]) -> set[str]:
    """Nodes whose data directory these repairs moved aside: their SST was asked for."""
    return {
        a.node
        for r in records
        for a in r.actions
        if a.node is not None
        and (a.action in _FRESH_COPY or "old data directory kept at" in a.detail)
    }


@dataclass
class FaultResult:
    """Seconds are counted from the injection."""

    number: int
    kind: str
    victims: list[str]
    writer: str | None  # the node HAProxy's writer backend routed to before the fault
    detected: float | None = None  # a victim, or the cluster, no longer Green in the status
    out_of_lb: float | None = None  # every victim out of HAProxy's writer backend
    healed: float | None = None  # partitions: when the rules were removed
    green: float | None = None  # Green with no task, every victim (killed ones restarted)
    errors: int = 0  # the writer's failed statements and reconnects
    stall: float = 0.0  # the writer's longest time without an acknowledgement
    rejoins: list[Rejoin] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)  # fault:outcome of new repair records
    manual: str | None = None
    note: str = ""
    rules: list[str] = field(default_factory=list)  # partitions: the iptables rules added
    started_at: datetime | None = None  # wall clock, local time as the error logs write it
    ended_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "victims": self.victims,
            "writer": self.writer,
            "startedAt": self.started_at.isoformat() if self.started_at else None,
            "endedAt": self.ended_at.isoformat() if self.ended_at else None,
            "detectedSeconds": _rounded(self.detected),
            "outOfLoadBalancerSeconds": _rounded(self.out_of_lb),
            "healedSeconds": _rounded(self.healed),
            "greenSeconds": _rounded(self.green),
            "writeErrors": self.errors,
            "longestStallSeconds": _rounded(self.stall),
            "rejoins": [
                {"node": r.node, "method": r.method, "detail": r.detail, "onPurpose": r.on_purpose}
                for r in self.rejoins
            ],
            "repairs": self.repairs,
            "manualIntervention": self.manual,
            "note": self.note,
            "rules": self.rules,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def green_and_idle(status: ClusterStatus) -> bool:
    return (
        status.state is ClusterState.GREEN
        and status.current_task is None
        and not status.queued_tasks
    )


async def wait_ready(cluster: LocalCluster, timeout: float) -> ClusterStatus:
    """Until the cluster is Green with no task running or queued and HAProxy's writer backend
    has every node up (health checks rise a few seconds after a repair)."""
    deadline = time.monotonic() + timeout
    while True:
        status = await cluster.status()
        if green_and_idle(status):
            routed = await asyncio.to_thread(cluster.routed) or set()
            if {n.name for n in status.nodes} <= routed:
                return status
        if status.manual_intervention is not None:
            raise RuntimeError(f"manual intervention: {status.manual_intervention.reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"not Green, idle and every node in HAProxy within {timeout:.0f} s: "
                f"{status.message}"
            )
        await asyncio.sleep(POLL_SECONDS)


def choose_victims(
    kind: str, nodes: list[str], writer: str | None, rng: random.Random
) -> list[str]:
    if kind in ("kill-all", "partition-all"):
        return list(nodes)
    if kind == "kill-two":
        return sorted(rng.sample(nodes, 2))
    if kind == "partition-writer":
        if writer is None:
            raise RuntimeError("HAProxy's writer backend routes to no node")
        return [writer]
    return [rng.choice(nodes)]


def _signal(pid: int | None, sig: signal.Signals) -> None:
    if pid is None or not alive(pid) or "mariadbd" not in cmdline(pid):
        raise RuntimeError(f"pid {pid} is not a running mariadbd")
    os.kill(pid, sig)


async def inject(
    cluster: LocalCluster,
    writer: Writer,
    net: NetFault | None,
    number: int,
    kind: str,
    rng: random.Random,
    partition_seconds: float,
    timeout: float,
) -> FaultResult:
    """Wait until the cluster is ready, inject one fault, measure until Green again (a
    partition is healed after `partition_seconds`), or `timeout`, or manual intervention."""
    before = await wait_ready(cluster, timeout)
    names = [n.name for n in before.nodes]
    routed_writer = await asyncio.to_thread(cluster.writer)
    victims = choose_victims(kind, names, routed_writer, rng)
    result = FaultResult(number, kind, victims, routed_writer)
    old_pids = {n.name: n.pid for n in before.nodes if n.name in victims}
    offsets = {n: cluster.log_size(n) for n in names}  # every node: others may rejoin too
    repairs_before = {r.id for r in before.remediations}  # the status keeps the last ones
    partition = kind in PARTITIONS
    if partition and net is None:
        raise RuntimeError(f"{kind} needs the network fault injector")
    started = time.monotonic()
    result.started_at = datetime.now().astimezone()
    status = before
    cut: dict[str, CutNode] = {}  # partitions: each victim as last cut
    try:
        if partition:
            assert net is not None
            cut = {v: cluster.cut_node(v) for v in victims}
            result.rules = net.cut(list(cut.values()))
        else:
            for victim in victims:
                _signal(old_pids[victim], SIGNALS[kind])
        while True:
            status = await cluster.status()
            now = time.monotonic() - started
            if result.detected is None and (
                status.state is not ClusterState.GREEN
                or any(n.state is not NodeState.GREEN for n in status.nodes if n.name in victims)
            ):
                result.detected = now
            if result.out_of_lb is None:
                routed = await asyncio.to_thread(cluster.routed)
                if routed is not None and not routed & set(victims):
                    result.out_of_lb = time.monotonic() - started
            if status.manual_intervention is not None:
                mi = status.manual_intervention
                result.manual = f"{mi.fault}: {mi.reason}"
                break
            if partition:  # healed before this status was read
                back = result.healed is not None
            else:  # every victim on a new process
                new = [
                    n.pid not in (None, old_pids[n.name]) for n in status.nodes if n.name in victims
                ]
                back = result.detected is not None and all(new)
            if back and green_and_idle(status):
                result.green = now
                break
            if now > timeout:
                result.note = f"not Green and idle within {timeout:.0f} s: {status.message}"
                break
            if partition and result.healed is None:
                assert net is not None
                if now >= partition_seconds:
                    net.heal()
                    result.healed = time.monotonic() - started
                else:  # a victim restarted by the controller stays cut
                    moved = [v for v in victims if cluster.pid(v) not in (None, cut[v].pid)]
                    for victim in moved:
                        cut[victim] = cluster.cut_node(victim)
                    if moved:
                        result.rules += net.cut([cut[v] for v in moved])
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if partition and net is not None and result.healed is None:
            net.heal()
            result.healed = time.monotonic() - started
        if kind == "hang":  # should be dead by now; never leave it stopped
            for pid in old_pids.values():
                if pid is not None and alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
    ended = time.monotonic()
    result.ended_at = datetime.now().astimezone()
    result.errors = writer.errors_between(started, ended)
    result.stall = writer.longest_stall(started, ended)
    new_repairs = [r for r in status.remediations if r.id not in repairs_before]
    result.repairs = [f"{r.fault}:{r.outcome}" for r in new_repairs]
    asked = fresh_copies(new_repairs)
    for node in [*victims, *(n for n in names if n not in victims)]:  # victims first
        joins = joins_in(cluster.log_since(node, offsets[node]))
        if not joins and node in victims:
            result.rejoins.append(Rejoin(node, None, "no state transfer in its log"))
        for method, detail in joins:
            on_purpose = method == "SST" and node in asked
            result.rejoins.append(Rejoin(node, method, detail, on_purpose))
    return result
