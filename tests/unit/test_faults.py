"""Fault diagnosis: the evidence of a moment maps to one fault class, or to none."""

from datetime import UTC, datetime, timedelta

import pytest

from api.cluster import NodeFacts
from api.messages import NodeMemory
from api.remediation import Action, FaultClass
from api.states import ExitKind, NodeState
from galera.faults import diagnose, next_deadline
from workflows.decide import PLAYBOOKS

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=10)

GREEN = (
    NodeState.GREEN,
    NodeFacts(
        process_alive=True, reachable=True, wsrep_state="Synced", wsrep_cluster_status="Primary"
    ),
)
CRASHED = (
    NodeState.RED_UNCLEAN,
    NodeFacts(process_alive=False, exit_kind=ExitKind.UNCLEAN, exit_detail="killed by SIGKILL"),
)
STOPPED = (NodeState.RED_CLEAN, NodeFacts(process_alive=False, exit_kind=ExitKind.CLEAN))
DISK_FULL = (
    NodeState.RED_UNCLEAN,
    NodeFacts(
        process_alive=False,
        exit_kind=ExitKind.UNCLEAN,
        exit_detail='exit status 1; error log: Errcode: 28 "No space left on device"',
    ),
)
HUNG = (NodeState.UNKNOWN, NodeFacts(process_alive=True, error="timed out"))
STARTING = (NodeState.YELLOW, NodeFacts(process_alive=True, error="connection refused"))
JOINING = (
    NodeState.YELLOW,
    NodeFacts(
        process_alive=True, reachable=True, wsrep_state="Joining", wsrep_cluster_status="Primary"
    ),
)
NON_PRIMARY = (
    NodeState.YELLOW,
    NodeFacts(
        process_alive=True,
        reachable=True,
        wsrep_state="Initialized",
        wsrep_cluster_status="non-Primary",
    ),
)


def nodes(*states: tuple[NodeState, NodeFacts], age: float = 60) -> list[NodeMemory]:
    return [
        NodeMemory(
            name=f"n-{i}", ordinal=i, state=state, facts=facts, since=NOW - timedelta(seconds=age)
        )
        for i, (state, facts) in enumerate(states)
    ]


@pytest.mark.parametrize(
    ("states", "serving", "fault", "chosen"),
    [
        ((GREEN, GREEN, GREEN), True, None, ()),
        ((GREEN, CRASHED, GREEN), True, FaultClass.NODE_CRASHED, ("n-1",)),
        ((GREEN, STOPPED, GREEN), True, FaultClass.NODE_STOPPED, ("n-1",)),
        ((GREEN, HUNG, GREEN), True, FaultClass.NODE_HUNG, ("n-1",)),
        ((GREEN, JOINING, GREEN), True, None, ()),  # slow joins are never restarted
        ((GREEN, STARTING, GREEN), True, None, ()),
        ((CRASHED, CRASHED, STOPPED), False, FaultClass.CLUSTER_DOWN, ("n-0", "n-1", "n-2")),
        ((NON_PRIMARY, CRASHED, CRASHED), False, FaultClass.QUORUM_LOST, ("n-0", "n-1", "n-2")),
        ((STARTING, CRASHED, CRASHED), False, None, ()),  # still starting: wait
        ((GREEN, DISK_FULL, GREEN), True, FaultClass.STORAGE_ERROR, ("n-1",)),
        ((DISK_FULL, CRASHED, CRASHED), False, FaultClass.STORAGE_ERROR, ("n-0",)),
        ((GREEN, CRASHED, STOPPED), True, FaultClass.NODE_CRASHED, ("n-1",)),  # one at a time
    ],
)
def test_diagnosis(
    states: tuple[tuple[NodeState, NodeFacts], ...],
    serving: bool,
    fault: FaultClass | None,
    chosen: tuple[str, ...],
) -> None:
    found = diagnose(nodes(*states), serving, NOW, GRACE)
    assert (found.fault if found else None) == fault
    if found:
        assert found.nodes == chosen
        assert "n-1=" in found.evidence  # every node's facts are part of the evidence


def test_no_node_repair_before_the_view_change() -> None:
    stale_view = GREEN[1].model_copy(update={"cluster_size": 3})
    evicted = GREEN[1].model_copy(update={"cluster_size": 2})
    waiting = nodes((NodeState.GREEN, stale_view), CRASHED, (NodeState.GREEN, stale_view))
    assert diagnose(waiting, True, NOW, GRACE) is None
    settled = nodes((NodeState.GREEN, evicted), CRASHED, (NodeState.GREEN, evicted))
    assert diagnose(settled, True, NOW, GRACE).fault is FaultClass.NODE_CRASHED  # type: ignore[union-attr]


def test_a_short_blip_is_not_a_fault() -> None:
    assert diagnose(nodes(GREEN, HUNG, GREEN, age=3), True, NOW, GRACE) is None
    assert next_deadline(nodes(GREEN, HUNG, GREEN, age=3), GRACE) == NOW + timedelta(seconds=7)


def test_maintenance_nodes_are_left_alone() -> None:
    assert diagnose(nodes(GREEN, STOPPED, GREEN), True, NOW, GRACE, maintenance=["n-1"]) is None


def test_every_fault_has_a_playbook_and_escalation_ends_with_a_human() -> None:
    diagnosed = set(FaultClass) - {FaultClass.OPERATOR_REQUEST}  # records forced actions
    assert set(PLAYBOOKS) == diagnosed
    for fault in diagnosed:
        seen = set()
        while (playbook := PLAYBOOKS[fault]).escalate_to is not None:
            assert fault not in seen
            seen.add(fault)
            fault = playbook.escalate_to
    assert PLAYBOOKS[FaultClass.STORAGE_ERROR].action is Action.MANUAL_INTERVENTION


@pytest.mark.parametrize(
    ("errors", "storage"),
    [
        ("InnoDB: preallocating 12582912 bytes for file ./ibtmp1 failed with error 28", True),
        ("mariadbd: Can't create/write to file './x' (Errcode: 13 \"Permission denied\")", True),
        ("WSREP: gcache: 28 (No space left on device)", True),
        ("InnoDB: Operating system error number 13 in a file operation.", True),
        ("InnoDB: Database page corruption on disk or a failed read of file './ibdata1'", False),
        ("Table 'x' has 281 columns", False),
    ],
)
def test_storage_errors_are_told_by_their_words(errors: str, storage: bool) -> None:
    facts = NodeFacts(process_alive=False, exit_kind=ExitKind.UNCLEAN, exit_detail=errors)
    found = diagnose(nodes(GREEN, (NodeState.RED_UNCLEAN, facts), GREEN), True, NOW, GRACE)
    assert found is not None
    assert (found.fault is FaultClass.STORAGE_ERROR) is storage


def test_storage_errors_an_operator_resumed_from_are_repaired_not_paused_again() -> None:
    seen = nodes(GREEN, DISK_FULL, GREEN)
    paused = diagnose(seen, True, NOW, GRACE)
    assert paused is not None and paused.fault is FaultClass.STORAGE_ERROR
    again = diagnose(seen, True, NOW, GRACE, resumed_from=paused.evidence)
    assert again is not None and again.fault is FaultClass.NODE_CRASHED
    worse = nodes(GREEN, DISK_FULL, DISK_FULL)  # a new node with the same words is news
    news = diagnose(worse, True, NOW, GRACE, resumed_from=paused.evidence)
    assert news is not None and news.fault is FaultClass.STORAGE_ERROR


CUT_OFF = (
    NodeState.YELLOW,
    NodeFacts(
        process_alive=True,
        reachable=True,
        wsrep_state="Initialized",
        wsrep_cluster_status="non-Primary",
        cluster_size=1,
    ),
)
MAJORITY = (GREEN[0], GREEN[1].model_copy(update={"cluster_size": 2}))


def test_a_partitioned_node_is_left_to_heal_within_its_grace_period() -> None:
    seen = nodes(MAJORITY, CUT_OFF, MAJORITY, age=30)
    grace = timedelta(seconds=120)
    assert diagnose(seen, True, NOW, GRACE, partition_grace=grace) is None
    assert next_deadline(seen, GRACE, grace) == NOW + timedelta(seconds=90)  # then look again
    later = diagnose(seen, True, NOW + timedelta(seconds=90), GRACE, partition_grace=grace)
    assert later is not None and later.fault is FaultClass.NODE_PARTITIONED
    assert later.nodes == ("n-1",)
    # The record names both views: the node's own and the majority's.
    assert later.evidence.startswith(
        "n-1 sees a non-Primary component of 1 while n-0, n-2 form the Primary component of 2"
    )


def test_a_partitioned_node_is_never_reprovisioned() -> None:
    playbook = PLAYBOOKS[FaultClass.NODE_PARTITIONED]
    assert playbook.action is Action.RESTART_RUNNING_NODE
    assert playbook.escalate_to is None  # used-up restarts go to a human, not to a new copy


def test_no_primary_anywhere_is_quorum_lost_not_partitions() -> None:
    alone = CUT_OFF
    found = diagnose(nodes(alone, alone, alone), False, NOW, GRACE)
    assert found is not None and found.fault is FaultClass.QUORUM_LOST


@pytest.mark.parametrize(
    "detail",
    [
        "configuration refused by the server: mariadbd: unknown variable 'foo=1'",
        "exit status 1; errors: Unknown suffix 'l' used for variable 'max_connections' "
        "(value 'lots'). Legal suffix characters are: K, M, G, T, P, E",
    ],
)
def test_a_configuration_the_server_refuses_goes_to_a_human(detail: str) -> None:
    facts = NodeFacts(process_alive=False, exit_kind=ExitKind.UNCLEAN, exit_detail=detail)
    found = diagnose(nodes(GREEN, (NodeState.RED_UNCLEAN, facts), GREEN), True, NOW, GRACE)
    assert found is not None and found.fault is FaultClass.CONFIG_ERROR
    assert PLAYBOOKS[FaultClass.CONFIG_ERROR].action is Action.MANUAL_INTERVENTION
