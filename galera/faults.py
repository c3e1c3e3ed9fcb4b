"""Fault diagnosis. Pure: the same evidence always gives the same answer (what is done about
a fault is the playbook table in workflows/decide.py).

Which fault, in order of precedence (the first that applies is handled first):

| fault           | evidence                                                         |
|-----------------|------------------------------------------------------------------|
| StorageError    | a stopped node's error log shows disk full or permission denied  |
| ConfigError     | a stopped node's server refused its configuration (bad option)   |
| ClusterDown     | no node runs                                                     |
| QuorumLost      | some nodes run, none in a Primary component                      |
| NodeHung        | runs, but has not answered for `hungGraceSeconds`                |
| NodeCrashed     | Red-unclean while a Primary component exists                     |
| NodeStopped     | Red-clean while a Primary component exists, not in maintenance   |
| NodePartitioned | answers from a non-Primary component while the Primary one exists |
|                 | elsewhere, for `partitionGraceSeconds`                           |
| Unknown         | Unknown for `hungGraceSeconds` with no process evidence          |

A Yellow node (starting, joining by IST or SST, donor) is never a fault: it is not restarted
for being slow. A node cut off by the network (alive, answering, in a non-Primary component
while the others form the Primary one) is Yellow and out of the load balancer; it rejoins by
itself (IST) when the network heals, so it is only restarted after `partitionGraceSeconds`,
never reprovisioned, and when restarts do not help, handed to a human.

A dead node is not repaired while the Primary component's view still counts it: only the view
change tells whether the rest keeps its quorum (two of three down is QuorumLost, not two
crashed nodes).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from api.messages import NodeMemory
from api.mysql_options import config_error
from api.remediation import FaultClass
from api.states import NodeState

# What a stopped node's errors say when its storage needs a human: disk full (errno 28) or
# permissions (errno 13), in the wordings of MariaDB, InnoDB and Galera.
STORAGE_ERRORS = re.compile(
    r"No space left on device|Disk full|out of disk space|Permission denied"
    r"|(Errcode:|errno|error|error number):? (28|13)\b"
)


@dataclass(frozen=True)
class Fault:
    fault: FaultClass
    nodes: tuple[str, ...]
    evidence: str


def _describe(node: NodeMemory) -> str:
    facts = node.facts
    parts = [f"{node.name}={node.state.value}"]
    if facts.exit_detail:
        parts.append(facts.exit_detail)
    if facts.wsrep_state or facts.wsrep_cluster_status:
        parts.append(f"wsrep {facts.wsrep_state}/{facts.wsrep_cluster_status}")
    if facts.error:
        parts.append(facts.error)
    return " ".join(parts)


def storage_error(text: str) -> bool:
    return STORAGE_ERRORS.search(text) is not None


def _storage_error(node: NodeMemory) -> bool:
    text = f"{node.facts.exit_detail or ''} {node.facts.error or ''}"
    return node.facts.process_alive is False and storage_error(text)


def _config_error(node: NodeMemory) -> str | None:
    """The line saying the server refused a stopped node's configuration. Restarting it, or
    giving it a new copy of the data, would fail the same way."""
    if node.facts.process_alive is not False:
        return None
    return config_error(node.facts.exit_detail or "")


def diagnose(
    nodes: Sequence[NodeMemory],
    primary: bool,
    now: datetime,
    grace: timedelta,
    maintenance: Sequence[str] = (),
    resumed_from: str | None = None,
    partition_grace: timedelta = timedelta(minutes=2),
) -> Fault | None:
    """The fault to handle first, or None when nothing needs repair. `resumed_from`: the
    evidence an operator resumed automation from; storage errors in that very evidence are
    taken as dealt with (the node is then simply repaired: if the storage still fails, its
    new attempt writes new evidence)."""
    watched = [n for n in nodes if n.name not in maintenance]
    if not watched:
        return None
    evidence = "; ".join(_describe(n) for n in nodes)

    def fault(kind: FaultClass, chosen: Sequence[NodeMemory]) -> Fault:
        return Fault(kind, tuple(n.name for n in chosen), evidence)

    dealt_with = resumed_from or ""
    if storage := [n for n in watched if _storage_error(n) and _describe(n) not in dealt_with]:
        return fault(FaultClass.STORAGE_ERROR, storage)
    if broken := [n for n in watched if _config_error(n) and _describe(n) not in dealt_with]:
        line = _config_error(broken[0])
        return Fault(FaultClass.CONFIG_ERROR, (broken[0].name,), f"{line}; {evidence}")
    running = [n for n in nodes if n.facts.process_alive]
    if all(n.facts.process_alive is False for n in nodes):
        return fault(FaultClass.CLUSTER_DOWN, nodes)
    if not primary:
        outside = [
            n
            for n in running
            if (n.facts.reachable and n.facts.wsrep_cluster_status not in (None, "Primary"))
            or _long_unknown(n, now, grace)
        ]
        if outside:
            return fault(FaultClass.QUORUM_LOST, nodes)
        return None  # nodes still starting: look again on the next change
    if hung := [n for n in watched if n.facts.process_alive and _long_unknown(n, now, grace)]:
        return fault(FaultClass.NODE_HUNG, hung[:1])
    if _view_counts_the_dead(nodes):
        return None  # the Primary component has not evicted them yet: whether it keeps its
        # quorum without them is only known after that view change
    if crashed := [n for n in watched if n.state is NodeState.RED_UNCLEAN]:
        return fault(FaultClass.NODE_CRASHED, crashed[:1])
    if stopped := [n for n in watched if n.state is NodeState.RED_CLEAN]:
        return fault(FaultClass.NODE_STOPPED, stopped[:1])
    if cut := [n for n in watched if _partitioned(n) and _for(n, now, partition_grace)]:
        primary_view = [n for n in nodes if n.facts.wsrep_cluster_status == "Primary"]
        views = (
            f"{cut[0].name} sees a {cut[0].facts.wsrep_cluster_status} component of "
            f"{cut[0].facts.cluster_size or '?'} while {', '.join(n.name for n in primary_view)} "
            f"form the Primary component of {max(n.facts.cluster_size or 0 for n in primary_view)}"
        )
        return Fault(FaultClass.NODE_PARTITIONED, (cut[0].name,), f"{views}; {evidence}")
    if unknown := [n for n in watched if _long_unknown(n, now, grace)]:
        return fault(FaultClass.UNKNOWN, unknown[:1])
    return None


def _partitioned(node: NodeMemory) -> bool:
    """Alive and answering, but outside the Primary component: cut off from its peers."""
    facts = node.facts
    return bool(facts.process_alive and facts.reachable) and facts.wsrep_cluster_status not in (
        None,
        "Primary",
    )


def _for(node: NodeMemory, now: datetime, grace: timedelta) -> bool:
    return node.since is not None and now - node.since >= grace


def _view_counts_the_dead(nodes: Sequence[NodeMemory]) -> bool:
    members = [
        n.facts.cluster_size or 0
        for n in nodes
        if n.facts.reachable and n.facts.wsrep_cluster_status == "Primary"
    ]
    return bool(members) and max(members) > sum(1 for n in nodes if n.facts.process_alive)


def _long_unknown(node: NodeMemory, now: datetime, grace: timedelta) -> bool:
    return node.state is NodeState.UNKNOWN and node.since is not None and now - node.since >= grace


def next_deadline(
    nodes: Sequence[NodeMemory], grace: timedelta, partition_grace: timedelta = timedelta(minutes=2)
) -> datetime | None:
    """When an Unknown node will have been Unknown for its grace period, or a node cut off
    for its own: a time to look again."""
    times = [n.since + grace for n in nodes if n.state is NodeState.UNKNOWN and n.since]
    times += [n.since + partition_grace for n in nodes if _partitioned(n) and n.since]
    return min(times) if times else None
