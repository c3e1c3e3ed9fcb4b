"""The decide step of the controller: from the evidence to what to do next. Pure: the same
inputs always give the same answer, so it is tested case by case (tests/unit/test_decide.py).

The loop is gather (the watcher's observations and the agents' reports, merged into the
memory) -> `decide` -> act (a queued repair task, a pause for a human, or a wake-up time).
In precedence order:

1. not Running, automation paused or disabled, no fresh look at the nodes yet: nothing.
2. the evidence changed less than `settleSeconds` ago: Wait until it has held still, so that
   failures happening together are seen together.
3. `galera.faults.diagnose` names the fault to handle first, or none (then Wait for the next
   grace period to end, if one is running, else nothing).
4. the fault's playbook (`PLAYBOOKS`): a human's fault -> Pause; attempts used up -> escalate
   to the playbook's next fault, or Pause when there is none.
5. a failed attempt's backoff still running -> Wait until it ends; otherwise Repair.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from api.messages import NodeMemory
from api.remediation import Action, FaultClass, RemediationSpec
from api.states import Phase
from galera.faults import Fault, diagnose, next_deadline


@dataclass(frozen=True)
class Playbook:
    action: Action
    escalate_to: FaultClass | None  # when attempts are used up; None: manual intervention
    max_attempts: int | None = None  # None: the spec's `maxAttemptsPerNode`


PLAYBOOKS: dict[FaultClass, Playbook] = {
    FaultClass.CLUSTER_DOWN: Playbook(Action.BOOTSTRAP_MOST_ADVANCED, None),
    FaultClass.QUORUM_LOST: Playbook(Action.REFORM_PRIMARY, None),
    FaultClass.NODE_HUNG: Playbook(Action.KILL_AND_RESTART_NODE, FaultClass.NODE_CANNOT_JOIN),
    FaultClass.NODE_CRASHED: Playbook(Action.RESTART_NODE, FaultClass.NODE_CANNOT_JOIN),
    FaultClass.NODE_STOPPED: Playbook(Action.RESTART_NODE, FaultClass.NODE_CANNOT_JOIN),
    FaultClass.NODE_PARTITIONED: Playbook(Action.RESTART_RUNNING_NODE, None),
    # A full copy costs the donor; once is enough to tell whether the data was the problem.
    FaultClass.NODE_CANNOT_JOIN: Playbook(Action.REPROVISION_NODE, None, max_attempts=1),
    FaultClass.STORAGE_ERROR: Playbook(Action.MANUAL_INTERVENTION, None),
    FaultClass.CONFIG_ERROR: Playbook(Action.MANUAL_INTERVENTION, None),
    FaultClass.UNKNOWN: Playbook(Action.MANUAL_INTERVENTION, None),
}


@dataclass(frozen=True)
class Evidence:
    """What the controller knows when it decides, as the memory holds it."""

    phase: Phase
    nodes: Sequence[NodeMemory]
    primary: bool  # a node serves from a Primary component
    changed_at: datetime  # the last change of any node's state
    stale: bool = False  # no observation since the last task: decide nothing before one
    paused: bool = False  # manual intervention
    resumed_from: str | None = None  # the evidence an operator resumed automation from


@dataclass(frozen=True)
class Repair:
    fault: Fault
    attempt: int  # 1 for the first

    @property
    def action(self) -> Action:
        return PLAYBOOKS[self.fault.fault].action


@dataclass(frozen=True)
class Pause:
    fault: Fault
    reason: str


@dataclass(frozen=True)
class Wait:
    until: datetime
    why: str


Decision = Repair | Pause | Wait | None


def attempt_key(fault: Fault) -> str:
    """Attempts count per fault class and node ("*" for the whole cluster)."""
    nodes = fault.nodes if len(fault.nodes) == 1 else ("*",)
    return f"{fault.fault.value}/{nodes[0]}"


def decide(
    evidence: Evidence,
    attempts: Mapping[str, int],
    retry_after: Mapping[str, datetime],
    now: datetime,
    rules: RemediationSpec,
) -> Decision:
    """What to do next; a Wait is the moment to look again when nothing new arrives."""
    if evidence.phase is not Phase.RUNNING or evidence.paused or not rules.enabled:
        return None
    if evidence.stale:
        return None  # the watcher's first look wakes the loop
    settled = evidence.changed_at + timedelta(seconds=rules.settle_seconds)
    if now < settled:
        return Wait(settled, "the evidence is settling")
    grace = timedelta(seconds=rules.hung_grace_seconds)
    cut_off = timedelta(seconds=rules.partition_grace_seconds)
    fault = diagnose(
        evidence.nodes,
        evidence.primary,
        now,
        grace,
        rules.maintenance,
        evidence.resumed_from,
        cut_off,
    )
    if fault is None:
        watched = [n for n in evidence.nodes if n.name not in rules.maintenance]
        deadline = next_deadline(watched, grace, cut_off)
        return Wait(deadline, "a grace period ends") if deadline and deadline > now else None
    while True:
        playbook = PLAYBOOKS[fault.fault]
        if playbook.action is Action.MANUAL_INTERVENTION:
            return Pause(fault, f"{fault.fault.value} needs a human")
        tried = attempts.get(attempt_key(fault), 0)
        limit = playbook.max_attempts or rules.max_attempts_per_node
        if tried < limit:
            break
        if playbook.escalate_to is None:
            return Pause(fault, f"{fault.fault.value} not repaired after {tried} attempt(s)")
        fault = Fault(
            playbook.escalate_to,
            fault.nodes,
            f"{fault.fault.value} not repaired after {tried} attempt(s); {fault.evidence}",
        )
    key = attempt_key(fault)
    backoff = retry_after.get(key)
    if backoff is not None and now < backoff:
        return Wait(backoff, f"backoff after a failed {fault.fault.value} repair")
    return Repair(fault, attempts.get(key, 0) + 1)
