"""galera/diagnosis.py: node state, serving and cluster state, row by row."""

import pytest

from api.cluster import NodeFacts
from api.states import ClusterState, ExitKind, NodeState
from galera.diagnosis import cluster_state, node_state, serves

G, Y, RC, RU, U = (
    NodeState.GREEN,
    NodeState.YELLOW,
    NodeState.RED_CLEAN,
    NodeState.RED_UNCLEAN,
    NodeState.UNKNOWN,
)


def alive(state: str | None = None, status: str | None = None, **kw: object) -> NodeFacts:
    reachable = kw.pop("reachable", state is not None or status is not None)
    return NodeFacts(
        process_alive=True,
        reachable=reachable,
        wsrep_state=state,
        wsrep_cluster_status=status,
        **kw,
    )


@pytest.mark.parametrize(
    ("facts", "state", "in_reason"),
    [
        (NodeFacts(process_alive=False, exit_kind=ExitKind.CLEAN), RC, "cleanly"),
        (
            NodeFacts(process_alive=False, exit_kind=ExitKind.UNCLEAN, exit_detail="signal 9"),
            RU,
            "signal 9",
        ),
        (NodeFacts(process_alive=False, exit_detail="never started"), RC, "not been started"),
        (NodeFacts(process_alive=False), NodeState.UNKNOWN, "not known yet"),  # agent busy
        (alive("Synced", "Primary"), G, "Synced"),
        (alive("Synced", "Primary", wsrep_ready=False), Y, ""),
        (alive("Donor/Desynced", "Primary"), Y, "Donor/Desynced"),
        (alive("Joining", "Primary"), Y, "Joining"),
        (alive("Synced", "non-Primary"), Y, "non-Primary"),
        (alive(error="(2003) Connection refused", reachable=False), Y, "starting"),
        (alive(error="timed out", reachable=False), U, "timed out"),
        (NodeFacts(process_alive=None, error="agent unreachable"), U, "agent unreachable"),
        (NodeFacts(), U, ""),
    ],
)
def test_node_state(facts: NodeFacts, state: NodeState, in_reason: str) -> None:
    got, reason = node_state(facts)
    assert got is state
    assert in_reason in reason


@pytest.mark.parametrize(
    ("facts", "donor_serves", "expected"),
    [
        (alive("Synced", "Primary"), False, True),
        (alive("Synced", "Primary"), True, True),
        (alive("Donor/Desynced", "Primary"), False, False),
        (alive("Donor/Desynced", "Primary"), True, True),
        (alive("Joining", "Primary"), True, False),
        (alive("Synced", "non-Primary"), True, False),
        (alive("Donor/Desynced", "non-Primary"), True, False),
        (alive(error="Connection refused", reachable=False), True, False),
    ],
)
def test_serves(facts: NodeFacts, donor_serves: bool, expected: bool) -> None:
    assert serves(facts, donor_serves=donor_serves) is expected


@pytest.mark.parametrize(
    ("states", "expected", "serving", "cluster"),
    [
        ([G, G, G], 3, False, ClusterState.RED),
        ([RC, RU, U], 3, False, ClusterState.RED),
        ([G, G, G], 3, True, ClusterState.GREEN),
        ([G, G, Y], 3, True, ClusterState.YELLOW),
        ([G, RU, U], 3, True, ClusterState.YELLOW),
        ([Y, Y, Y], 3, True, ClusterState.YELLOW),
        ([G, G, G, G, G], 3, True, ClusterState.GREEN),  # scale-down in progress
        ([G], 1, True, ClusterState.GREEN),
    ],
)
def test_cluster_state(
    states: list[NodeState], expected: int, serving: bool, cluster: ClusterState
) -> None:
    assert cluster_state(iter(states), expected, serving) is cluster
