"""Automatic fault handling in the cluster workflow, on the scripted runtime."""

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from api.cluster import ClusterStatus
from api.messages import (
    UPDATE_APPLY_SPEC,
    UPDATE_FORCE_ACTION,
    UPDATE_RESUME,
    ApplySpecRequest,
    CommandResult,
)
from api.remediation import (
    FaultClass,
    ForceActionRequest,
    ForcedAction,
    Outcome,
    RemediationSpec,
    ResumeRequest,
)
from api.states import ExitKind, JoinMethod, NodeState
from tests.workflows.harness import (
    Harness,
    green_and_idle,
    spec_with,
    status,
    until,
)
from workflows.search import CLUSTER_STATE

SETTLE_SECONDS = 2  # the default of remediation.settleSeconds
FAST = {"backoffSeconds": 0.5, "hungGraceSeconds": 2}


async def test_a_crashed_node_is_restarted_and_the_repair_recorded(harness: Harness) -> None:
    handle = await harness.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[2].name
    harness.runtime.crash(victim, detail="killed by SIGKILL")
    healed = await until(handle, lambda s: green_and_idle(s) and bool(s.remediations))
    record = healed.remediations[-1]
    assert (record.fault, record.nodes, record.outcome) == (
        FaultClass.NODE_CRASHED,
        [victim],
        Outcome.SUCCEEDED,
    )
    assert f"{victim}=Red-unclean" in record.evidence
    join = record.actions[-1].join  # how it rejoined: in the record and the node's status
    assert join is not None and join.method is JoinMethod.IST
    assert healed.nodes[2].last_join == join
    assert any(t.to_state == "joined by IST" and t.subject == victim for t in healed.transitions)
    assert [c for c in harness.runtime.calls if c[:2] == ("start", victim)][-1] == (
        "start",
        victim,
        False,
    )


async def test_a_crashed_node_whose_position_is_unreadable_keeps_its_data_aside(
    harness: Harness,
) -> None:
    handle = await harness.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[1].name
    harness.runtime.nodes[victim].damaged = True
    harness.runtime.crash(victim, detail="killed by SIGKILL")
    healed = await until(handle, lambda s: green_and_idle(s) and bool(s.remediations))
    record = healed.remediations[-1]
    assert (record.fault, record.outcome) == (FaultClass.NODE_CRASHED, Outcome.SUCCEEDED)
    assert "kept at /aside/" in record.actions[-1].detail  # before the SST could empty it
    join = record.actions[-1].join
    assert join is not None and join.method is JoinMethod.SST
    calls = harness.runtime.calls
    restarted = max(i for i, call in enumerate(calls) if call == ("start", victim, False))
    assert ("set-aside", victim) in calls[:restarted]


async def test_whole_cluster_down_bootstraps_the_most_advanced_node(harness: Harness) -> None:
    handle = await harness.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    names = [n.name for n in ready.nodes]
    for seqno, name in zip((7, 9, 8), names, strict=True):
        harness.runtime.nodes[name].seqno = seqno
        harness.runtime.crash(name)
    healed = await until(handle, lambda s: green_and_idle(s) and bool(s.remediations), 60)
    assert healed.remediations[-1].fault is FaultClass.CLUSTER_DOWN
    boots = [c for c in harness.runtime.calls if c[0] == "start" and c[2]]
    assert boots[-1] == ("start", names[1], True)  # the highest seqno, and only that one
    assert any("highest committed seqno" in t.reason for t in healed.transitions)
    for joiner in (names[0], names[2]):  # same history: both by IST from the bootstrap node
        last = next(n for n in healed.nodes if n.name == joiner).last_join
        assert last is not None and last.method is JoinMethod.IST


async def test_quorum_lost_reforms_a_primary_on_the_most_advanced_survivor(
    harness: Harness,
) -> None:
    handle = await harness.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    survivor, *dead = [n.name for n in ready.nodes]
    for name, seqno in zip((survivor, *dead), (10, 5, 7), strict=True):
        harness.runtime.nodes[name].seqno = seqno
    harness.runtime.non_primary.add(survivor)
    for name in dead:
        harness.runtime.crash(name)
    healed = await until(handle, lambda s: green_and_idle(s) and bool(s.remediations), 60)
    record = healed.remediations[-1]
    assert (record.fault, record.outcome) == (FaultClass.QUORUM_LOST, Outcome.SUCCEEDED)
    assert ("pc.bootstrap", survivor) in harness.runtime.calls
    assert not [c for c in harness.runtime.calls if c[0] == "start" and c[2] and c[1] in dead]


async def test_a_node_that_cannot_rejoin_is_reprovisioned_then_handed_to_a_human(
    harness: Harness,
) -> None:
    handle = await harness.start(remediation={**FAST, "maxAttemptsPerNode": 2})
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[1].name
    harness.runtime.failing.add(victim)
    harness.runtime.crash(victim)
    paused = await until(handle, lambda s: s.manual_intervention is not None, 60)
    faults = [(r.fault, r.outcome) for r in paused.remediations]
    assert faults == [
        (FaultClass.NODE_CRASHED, Outcome.FAILED),
        (FaultClass.NODE_CRASHED, Outcome.FAILED),
        (FaultClass.NODE_CANNOT_JOIN, Outcome.FAILED),
    ]
    assert ("set-aside", victim) in harness.runtime.calls  # data moved aside, not deleted
    assert paused.manual_intervention is not None
    assert paused.manual_intervention.fault is FaultClass.NODE_CANNOT_JOIN
    assert (await handle.describe()).typed_search_attributes.get(CLUSTER_STATE) == (
        "ManualIntervention"
    )
    harness.runtime.failing.discard(victim)
    await handle.execute_update(UPDATE_RESUME, ResumeRequest(reason="disk replaced"))
    healed = await until(handle, green_and_idle, 60)
    assert healed.manual_intervention is None
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(UPDATE_RESUME, ResumeRequest(reason="again"))
    assert "automation is not paused" in str(refused.value.cause)


async def test_a_hung_node_is_killed_after_the_grace_period(harness: Harness) -> None:
    handle = await harness.start(remediation={**FAST, "hungGraceSeconds": 5})
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[0].name
    harness.runtime.hung.add(victim)
    seen = await until(handle, lambda s: s.nodes[0].state is NodeState.UNKNOWN)
    assert not seen.remediations  # a blip shorter than the grace period triggers nothing
    healed = await until(handle, lambda s: green_and_idle(s) and bool(s.remediations), 30)
    assert healed.remediations[-1].fault is FaultClass.NODE_HUNG
    assert ("stop", victim, "kill") in harness.runtime.calls


async def test_disk_full_goes_to_a_human_with_the_evidence(harness: Harness) -> None:
    handle = await harness.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[1].name
    harness.runtime.crash(victim, ExitKind.UNCLEAN, "Errcode: 28 No space left on device")
    paused = await until(handle, lambda s: s.manual_intervention is not None)
    assert paused.manual_intervention is not None
    assert paused.manual_intervention.fault is FaultClass.STORAGE_ERROR
    assert "No space left" in paused.manual_intervention.evidence
    assert not paused.remediations  # nothing was tried


async def test_maintenance_nodes_stay_down(harness: Harness) -> None:
    handle = await harness.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[2].name
    spec = spec_with(3)
    spec.remediation = RemediationSpec.model_validate({**FAST, "maintenance": [victim]})
    await handle.execute_update(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec))
    await until(handle, green_and_idle)
    harness.runtime.crash(victim, ExitKind.CLEAN)
    down = await until(handle, lambda s: s.nodes[2].state is NodeState.RED_CLEAN)
    await asyncio.sleep(4 * SETTLE_SECONDS)  # well past the settle time a repair waits for
    later = await status(handle)
    assert later.nodes[2].state is NodeState.RED_CLEAN and not later.remediations
    assert down.state.value == "Yellow"


async def test_forced_bootstrap_from_a_node_behind_is_refused_unless_forced(
    harness: Harness,
) -> None:
    handle = await harness.start(remediation={**FAST, "enabled": False})
    ready = await until(handle, green_and_idle)
    names = [n.name for n in ready.nodes]
    for seqno, name in zip((5, 9, 7), names, strict=True):
        harness.runtime.nodes[name].seqno = seqno
        harness.runtime.crash(name)
    await until(handle, lambda s: s.state.value == "Red" and s.ready_replicas == 0)
    behind = ForceActionRequest(
        action=ForcedAction.BOOTSTRAP_FROM_NODE, node=names[0], reason="operator's hunch"
    )
    queued = await handle.execute_update(UPDATE_FORCE_ACTION, behind, result_type=CommandResult)
    refused = await until(handle, lambda s: ended(s, queued.task_id))
    record = refused.remediations[-1]
    assert (record.fault, record.outcome) == (FaultClass.OPERATOR_REQUEST, Outcome.REFUSED)
    assert f"{names[1]} has the highest committed seqno" in record.actions[-1].detail
    assert not [c for c in harness.runtime.calls if c[0] in ("start", "set-aside")][3:]
    assert refused.ready_replicas == 0  # nothing was started

    forced = behind.model_copy(update={"force": True, "reason": "node 1 and 2 disks lost"})
    queued = await handle.execute_update(UPDATE_FORCE_ACTION, forced, result_type=CommandResult)
    done = await until(handle, lambda s: ended(s, queued.task_id) and green_and_idle(s), 30)
    record = done.remediations[-1]
    assert record.outcome is Outcome.SUCCEEDED, record
    assert "forced past" in record.actions[-1].detail
    assert ("set-aside", names[1]) in harness.runtime.calls  # ahead of node 0: kept aside
    assert ("set-aside", names[2]) in harness.runtime.calls
    assert [c for c in harness.runtime.calls if c[0] == "start" and c[2]][-1] == (
        "start",
        names[0],
        True,
    )
    assert "kept at /aside/" in record.actions[-1].detail


async def test_unsafe_forced_actions_are_refused_before_anything_is_written(
    harness: Harness,
) -> None:
    handle = await harness.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    names = [n.name for n in ready.nodes]
    accepted = await updates_accepted(handle)
    for request, words in (
        (ForceActionRequest(action="BootstrapFromNode", node=names[1], reason="x"), "splits"),
        (
            ForceActionRequest(action="BootstrapFromNode", node=names[1], reason="x", force=True),
            "splits",
        ),
        (ForceActionRequest(action="RestartNode", node="nope", reason="x"), "no node 'nope'"),
        (ForceActionRequest(action="ReprovisionNode", node=names[2], reason="x"), "force"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(UPDATE_FORCE_ACTION, request)
        assert words in str(refused.value.cause), request
    assert await updates_accepted(handle) == accepted  # refusals leave no trace
    assert not (await status(handle)).queued_tasks

    reprovision = ForceActionRequest(
        action="ReprovisionNode", node=names[2], reason="suspect pages", force=True
    )
    queued = await handle.execute_update(
        UPDATE_FORCE_ACTION, reprovision, result_type=CommandResult
    )
    done = await until(handle, lambda s: ended(s, queued.task_id) and green_and_idle(s), 30)
    assert done.remediations[-1].outcome is Outcome.SUCCEEDED
    assert ("set-aside", names[2]) in harness.runtime.calls

    restart = ForceActionRequest(action="KillAndRestartNode", node=names[0], reason="leak")
    queued = await handle.execute_update(UPDATE_FORCE_ACTION, restart, result_type=CommandResult)
    done = await until(handle, lambda s: ended(s, queued.task_id) and green_and_idle(s), 30)
    assert done.remediations[-1].outcome is Outcome.SUCCEEDED
    assert ("stop", names[0], "kill") in harness.runtime.calls


def ended(current: ClusterStatus, record_id: str | None) -> bool:
    return any(r.id == record_id and r.ended_at is not None for r in current.remediations)


async def updates_accepted(handle: WorkflowHandle[object, object]) -> int:
    history = await handle.fetch_history()
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    return sum(1 for event in history.events if event.event_type == accepted)


async def test_a_refused_forced_bootstrap_leaves_running_nodes_alone(harness: Harness) -> None:
    handle = await harness.start(remediation={**FAST, "enabled": False})
    ready = await until(handle, green_and_idle)
    survivor, *dead = [n.name for n in ready.nodes]
    for name, seqno in zip((survivor, *dead), (5, 9, 7), strict=True):
        harness.runtime.nodes[name].seqno = seqno
    harness.runtime.non_primary.add(survivor)
    down = [NodeState.RED_UNCLEAN] * len(dead)
    for name in dead:
        harness.runtime.crash(name)
    await until(handle, lambda s: [n.state for n in s.nodes] == [NodeState.YELLOW, *down])
    calls = len(harness.runtime.calls)
    request = ForceActionRequest(action="BootstrapFromNode", node=survivor, reason="hunch")
    queued = await handle.execute_update(UPDATE_FORCE_ACTION, request, result_type=CommandResult)
    refused = await until(handle, lambda s: ended(s, queued.task_id))
    assert refused.remediations[-1].outcome is Outcome.REFUSED
    assert (
        f"{dead[0]} has the highest committed seqno" in refused.remediations[-1].actions[-1].detail
    )
    assert not [c for c in harness.runtime.calls[calls:] if c[0] in ("stop", "start", "set-aside")]
    assert harness.runtime.nodes[survivor].running


async def test_a_node_whose_server_refuses_its_configuration_goes_to_a_human_at_once(
    harness: Harness,
) -> None:
    handle = await harness.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[1].name
    starts = len([c for c in harness.runtime.calls if c[0] == "start"])
    refusal = "configuration refused by the server: mariadbd: unknown variable 'foo=1'"
    harness.runtime.crash(victim, detail=refusal)
    paused = await until(handle, lambda s: s.manual_intervention is not None)
    assert paused.manual_intervention is not None
    assert paused.manual_intervention.fault is FaultClass.CONFIG_ERROR
    assert paused.manual_intervention.evidence.startswith(refusal)  # the error line first
    assert len([c for c in harness.runtime.calls if c[0] == "start"]) == starts  # no restart
    assert not paused.remediations and ("set-aside", victim) not in harness.runtime.calls


async def test_a_partition_that_heals_within_its_grace_needs_no_repair(harness: Harness) -> None:
    handle = await harness.start(remediation={**FAST, "partitionGraceSeconds": 10})
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[1].name
    harness.runtime.non_primary.add(victim)
    cut = await until(handle, lambda s: s.nodes[1].state is NodeState.YELLOW)
    assert "not in the Primary component" in cut.nodes[1].reason
    await asyncio.sleep(3)
    harness.runtime.non_primary.discard(victim)  # the network heals: it rejoins by itself
    healed = await until(handle, green_and_idle)
    assert not healed.remediations
    assert not [
        c for c in harness.runtime.calls if c[:2] in (("stop", victim), ("set-aside", victim))
    ]


async def test_a_node_cut_off_past_its_grace_is_restarted_never_reprovisioned(
    harness: Harness,
) -> None:
    handle = await harness.start(remediation={**FAST, "partitionGraceSeconds": 10})
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[2].name
    harness.runtime.non_primary.add(victim)
    healed = await until(handle, lambda s: green_and_idle(s) and bool(s.remediations), 40)
    record = healed.remediations[-1]
    assert (record.fault, record.nodes, record.outcome) == (
        FaultClass.NODE_PARTITIONED,
        [victim],
        Outcome.SUCCEEDED,
    )
    assert record.evidence.startswith(f"{victim} sees a non-Primary component")
    assert ("stop", victim, "graceful") in harness.runtime.calls
    assert ("set-aside", victim) not in harness.runtime.calls


async def test_quorum_lost_with_equal_positions_keeps_the_survivor_running(
    harness: Harness,
) -> None:
    handle = await harness.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    *dead, survivor = [n.name for n in ready.nodes]  # the lowest ordinals died
    harness.runtime.non_primary.add(survivor)
    for name in dead:
        harness.runtime.crash(name)
    healed = await until(handle, lambda s: green_and_idle(s) and bool(s.remediations), 60)
    assert healed.remediations[-1].fault is FaultClass.QUORUM_LOST
    assert ("pc.bootstrap", survivor) in harness.runtime.calls  # Primary in place
    assert not [c for c in harness.runtime.calls if c[:2] == ("stop", survivor)]
