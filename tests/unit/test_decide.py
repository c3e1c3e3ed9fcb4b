"""workflows/decide.py: what the controller does next, case by case, in precedence order."""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from api.cluster import NodeFacts
from api.messages import NodeMemory
from api.remediation import Action, FaultClass, RemediationSpec
from api.states import ExitKind, NodeState, Phase
from workflows.decide import (
    PLAYBOOKS,
    Decision,
    Evidence,
    Pause,
    Repair,
    Wait,
    attempt_key,
    decide,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(minutes=10)
RULES = RemediationSpec.model_validate(
    {"settleSeconds": 2, "hungGraceSeconds": 10, "partitionGraceSeconds": 120}
)


def green(name: str, ordinal: int) -> NodeMemory:
    return NodeMemory(
        name=name,
        ordinal=ordinal,
        state=NodeState.GREEN,
        since=LONG_AGO,
        facts=NodeFacts(
            process_alive=True,
            reachable=True,
            wsrep_state="Synced",
            wsrep_cluster_status="Primary",
            wsrep_ready=True,
            cluster_size=2,
            seqno=10,
        ),
    )


def crashed(name: str, ordinal: int, since: datetime = LONG_AGO, detail: str = "") -> NodeMemory:
    return NodeMemory(
        name=name,
        ordinal=ordinal,
        state=NodeState.RED_UNCLEAN,
        since=since,
        facts=NodeFacts(process_alive=False, exit_kind=ExitKind.UNCLEAN, exit_detail=detail),
    )


def unknown(name: str, ordinal: int, since: datetime) -> NodeMemory:
    return NodeMemory(
        name=name,
        ordinal=ordinal,
        state=NodeState.UNKNOWN,
        since=since,
        facts=NodeFacts(process_alive=True, reachable=False, error="timed out"),
    )


def one_down(**changes: object) -> Evidence:
    """Two Green nodes whose view already excludes the crashed third."""
    evidence = Evidence(
        phase=Phase.RUNNING,
        nodes=[green("n0", 0), green("n1", 1), crashed("n2", 2)],
        primary=True,
        changed_at=LONG_AGO,
    )
    return replace(evidence, **changes)  # type: ignore[arg-type]


@dataclass
class Case:
    name: str
    evidence: Evidence
    expect: type | None  # Repair, Pause, Wait or None
    attempts: dict[str, int] = field(default_factory=dict)
    retry_after: dict[str, datetime] = field(default_factory=dict)
    rules: RemediationSpec = field(default_factory=lambda: RULES)
    fault: FaultClass | None = None
    until: datetime | None = None


CASES = [
    Case("healthy: nothing to do, nothing to wait for", one_down(nodes=[green("n0", 0)]), None),
    Case("stopped cluster: nothing, whatever the nodes", one_down(phase=Phase.STOPPED), None),
    Case("deleting: nothing", one_down(phase=Phase.DELETING), None),
    Case("creating: nothing", one_down(phase=Phase.CREATING), None),
    Case("paused for a human: nothing", one_down(paused=True), None),
    Case(
        "remediation disabled: nothing",
        one_down(),
        None,
        rules=RULES.model_copy(update={"enabled": False}),
    ),
    Case("no fresh look since the last task: nothing", one_down(stale=True), None),
    Case(
        "evidence still settling: wait until it held still",
        one_down(changed_at=NOW - timedelta(seconds=1)),
        Wait,
        until=NOW + timedelta(seconds=1),
    ),
    Case("a crashed node: restart it", one_down(), Repair, fault=FaultClass.NODE_CRASHED),
    Case(
        "a crashed node in maintenance: nothing",
        one_down(),
        None,
        rules=RULES.model_copy(update={"maintenance": ["n2"]}),
    ),
    Case(
        "backoff after a failed attempt: wait for it",
        one_down(),
        Wait,
        attempts={"NodeCrashed/n2": 1},
        retry_after={"NodeCrashed/n2": NOW + timedelta(seconds=5)},
        until=NOW + timedelta(seconds=5),
    ),
    Case(
        "backoff over: the next attempt",
        one_down(),
        Repair,
        attempts={"NodeCrashed/n2": 1},
        retry_after={"NodeCrashed/n2": NOW - timedelta(seconds=1)},
        fault=FaultClass.NODE_CRASHED,
    ),
    Case(
        "restarts used up: escalate to a reprovision",
        one_down(),
        Repair,
        attempts={"NodeCrashed/n2": 3},
        fault=FaultClass.NODE_CANNOT_JOIN,
    ),
    Case(
        "the reprovision's own limit is one attempt: then a human",
        one_down(),
        Pause,
        attempts={"NodeCrashed/n2": 3, "NodeCannotJoin/n2": 1},
        fault=FaultClass.NODE_CANNOT_JOIN,
    ),
    Case(
        "disk full: a human at once",
        one_down(
            nodes=[green("n0", 0), green("n1", 1), crashed("n2", 2, detail="Errcode: 28")],
        ),
        Pause,
        fault=FaultClass.STORAGE_ERROR,
    ),
    Case(
        "Unknown for less than its grace: wait for the grace to end",
        one_down(nodes=[green("n0", 0), green("n1", 1), unknown("n2", 2, NOW)]),
        Wait,
        until=NOW + timedelta(seconds=10),
    ),
    Case(
        "Unknown long past its grace: a hung node is killed and restarted",
        one_down(nodes=[green("n0", 0), green("n1", 1), unknown("n2", 2, LONG_AGO)]),
        Repair,
        fault=FaultClass.NODE_HUNG,
    ),
    Case(
        "Unknown in maintenance: no deadline to wake for",
        one_down(nodes=[green("n0", 0), green("n1", 1), unknown("n2", 2, NOW)]),
        None,
        rules=RULES.model_copy(update={"maintenance": ["n2"]}),
    ),
    Case(
        "every node down: bootstrap the most advanced",
        one_down(nodes=[crashed("n0", 0), crashed("n1", 1)], primary=False),
        Repair,
        fault=FaultClass.CLUSTER_DOWN,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decide(case: Case) -> None:
    decision: Decision = decide(case.evidence, case.attempts, case.retry_after, NOW, case.rules)
    if case.expect is None:
        assert decision is None
        return
    assert isinstance(decision, case.expect), decision
    if isinstance(decision, Wait):
        assert decision.until == case.until and decision.until > NOW
    if isinstance(decision, Repair | Pause) and case.fault is not None:
        assert decision.fault.fault is case.fault


def test_a_repair_counts_its_attempt_and_names_its_action() -> None:
    decision = decide(one_down(), {"NodeCrashed/n2": 1}, {}, NOW, RULES)
    assert isinstance(decision, Repair)
    assert (decision.attempt, decision.action) == (2, Action.RESTART_NODE)
    assert attempt_key(decision.fault) == "NodeCrashed/n2"


def test_a_wait_is_never_for_a_moment_already_past() -> None:
    """Past backoffs and deadlines wake nothing (they used to fire a timer every 100 ms)."""
    stopped = one_down(phase=Phase.STOPPED)
    past = {"NodeCrashed/n2": NOW - timedelta(hours=1)}
    assert decide(stopped, {"NodeCrashed/n2": 1}, past, NOW, RULES) is None
    long_unknown = one_down(nodes=[green("n0", 0), unknown("n1", 1, LONG_AGO)])
    maintenance = RULES.model_copy(update={"maintenance": ["n1"]})
    assert decide(long_unknown, {}, {}, NOW, maintenance) is None


def test_every_playbook_ends_with_a_human_and_limits_its_attempts() -> None:
    for fault, playbook in PLAYBOOKS.items():
        seen = {fault}
        while playbook.escalate_to is not None:
            assert playbook.escalate_to not in seen, f"{fault} escalates in a circle"
            seen.add(playbook.escalate_to)
            playbook = PLAYBOOKS[playbook.escalate_to]
        assert playbook.max_attempts is None or playbook.max_attempts >= 1
