"""Diagnosis: from the evidence about nodes to named node and cluster states. Pure functions.

Node state, from the facts one probe (or one agent report) gathered:

| process       | SQL probe                   | wsrep                       | node state    |
|---------------|-----------------------------|-----------------------------|---------------|
| exited        | -                           | -                           | Red-clean (1) |
| never started | -                           | -                           | Red-clean     |
| exited, how not (yet) known | -             | -                           | Unknown       |
| alive         | answers                     | Primary and Synced          | Green         |
| alive         | answers                     | Joining, Donor, non-Primary | Yellow        |
| alive         | refused (starting, SST)     | -                           | Yellow        |
| alive         | times out, or suspended     | -                           | Unknown       |
| unknown       | -                           | -                           | Unknown       |

(1) after exit status 0; after any other status or a signal (kill, OOM): Red-unclean.

Cluster state: Red when no node is serving (no Primary component reachable through the load
balancer); otherwise Green when at least the expected number of nodes is Green, else Yellow.
"""

from collections.abc import Iterable

from api.cluster import NodeFacts
from api.states import ClusterState, ExitKind, NodeState

NEVER_STARTED = "never started"
SYNCED = "Synced"
DONOR = "Donor/Desynced"
PRIMARY = "Primary"


def node_state(facts: NodeFacts) -> tuple[NodeState, str]:
    """The node's state and the reason, in words a human reads in the status."""
    if facts.process_alive is False:
        if facts.exit_kind is ExitKind.UNCLEAN:
            return NodeState.RED_UNCLEAN, f"mariadbd exited uncleanly ({facts.exit_detail or '?'})"
        if facts.exit_kind is ExitKind.CLEAN:
            return NodeState.RED_CLEAN, "mariadbd shut down cleanly"
        if facts.exit_detail == NEVER_STARTED:
            return NodeState.RED_CLEAN, "mariadbd has not been started"
        return NodeState.UNKNOWN, "mariadbd exited; how is not known yet"
    if facts.process_alive is None:
        return NodeState.UNKNOWN, facts.error or "process state unknown"
    if not facts.reachable:
        if facts.error and "refused" in facts.error:
            return NodeState.YELLOW, "starting: not accepting connections yet"
        return NodeState.UNKNOWN, f"not answering: {facts.error or 'no reply'}"
    if facts.wsrep_cluster_status != PRIMARY:
        return NodeState.YELLOW, f"not in the Primary component ({facts.wsrep_cluster_status})"
    if facts.wsrep_state == SYNCED and facts.wsrep_ready is not False:
        return NodeState.GREEN, "Synced, Primary"
    return NodeState.YELLOW, f"in the cluster, not serving ({facts.wsrep_state})"


def serves(facts: NodeFacts, donor_serves: bool = False) -> bool:
    """Whether the load balancer routes to this node: Synced (or Donor, if allowed) in Primary."""
    if not facts.reachable or facts.wsrep_cluster_status != PRIMARY:
        return False
    return facts.wsrep_state == SYNCED or (donor_serves and facts.wsrep_state == DONOR)


def cluster_state(states: Iterable[NodeState], expected: int, serving: bool) -> ClusterState:
    """Red when nothing serves; Green when `expected` nodes are Green; Yellow in between."""
    if not serving:
        return ClusterState.RED
    green = sum(1 for state in states if state is NodeState.GREEN)
    return ClusterState.GREEN if green >= expected else ClusterState.YELLOW
