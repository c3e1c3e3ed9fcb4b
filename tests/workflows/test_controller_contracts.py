"""What the controller promises in the corners a code audit found: a failed delete can be
retried, a stopped cluster keeps a change for its start, history stays still in every phase,
a bug in a task fails that task only, a forced restart restarts."""

import asyncio

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from api.cluster import ClusterStatus, TaskOutcome
from api.messages import (
    UPDATE_APPLY_SPEC,
    UPDATE_DELETE,
    UPDATE_FORCE_ACTION,
    UPDATE_START,
    UPDATE_STOP,
    ApplySpecRequest,
    CommandResult,
    LifecycleRequest,
)
from api.remediation import (
    Action,
    ForceActionRequest,
    ForcedAction,
    Outcome,
    RemediationSpec,
)
from api.states import NodeState, Phase
from tests.workflows.harness import Harness, green_and_idle, spec_with, status, until
from workflows import repairs

FAST = {"backoffSeconds": 0.5, "hungGraceSeconds": 2, "settleSeconds": 0.5}
Handle = WorkflowHandle[object, object]


def ended(current: ClusterStatus, task_id: str | None) -> TaskOutcome | None:
    return next((o for o in current.outcomes if o.id == task_id), None)


async def command(handle: Handle, update: str, request: object) -> CommandResult:
    result: CommandResult = await handle.execute_update(update, request, result_type=CommandResult)
    return result


async def history_length(handle: Handle) -> int:
    return len((await handle.fetch_history()).events)


async def still(handle: Handle, seconds: float = 4) -> tuple[int, int]:
    """The history's length before and after a quiet while, once the last task's aftermath
    (the watcher's fresh look at every node) is in."""
    await asyncio.sleep(2)
    before = await history_length(handle)
    await asyncio.sleep(seconds)
    return before, await history_length(handle)


async def repair_failed(harness: Harness, handle: Handle) -> str:
    """A node crashes and cannot start again: its first repair fails, a backoff is pending."""
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[2].name
    harness.runtime.failing.add(victim)
    harness.runtime.crash(victim)
    failed = await until(
        handle, lambda s: bool(s.remediations) and s.remediations[-1].outcome is Outcome.FAILED
    )
    assert failed.remediations[-1].nodes == [victim]
    return victim


async def test_a_failed_delete_can_be_retried(harness: Harness) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    harness.runtime.retire_fails = True
    first = await command(handle, UPDATE_DELETE, LifecycleRequest(reason="first try"))
    failed = await until(handle, lambda s: ended(s, first.task_id) is not None)
    outcome = ended(failed, first.task_id)
    assert outcome is not None and outcome.outcome is Outcome.FAILED
    assert "device or resource busy" in outcome.error
    assert failed.phase is Phase.DELETING
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await command(handle, UPDATE_START, LifecycleRequest())
    assert "being deleted" in str(refused.value.cause)

    harness.runtime.retire_fails = False
    await command(handle, UPDATE_DELETE, LifecycleRequest(reason="again"))
    final = ClusterStatus.model_validate(await asyncio.wait_for(handle.result(), 30))
    assert final.phase is Phase.DELETED
    assert [c for c in harness.runtime.calls if c[0] == "retire"] == [("retire", False)] * 2


async def test_a_change_to_a_stopped_cluster_waits_for_its_start(harness: Harness) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    await command(handle, UPDATE_STOP, LifecycleRequest())
    await until(handle, lambda s: s.phase is Phase.STOPPED and not s.current_task)
    before = len(harness.runtime.calls)
    bigger = spec_with(5)
    result = await command(handle, UPDATE_APPLY_SPEC, ApplySpecRequest(spec=bigger, generation=2))
    assert result.task_id is None and "applied when it starts" in result.message
    waiting = await status(handle)
    assert waiting.spec_progress.desired_generation == 2
    assert not waiting.spec_progress.converged and not waiting.queued_tasks
    await asyncio.sleep(1)
    assert harness.runtime.calls[before:] == []  # nothing started, nothing rewritten

    await command(handle, UPDATE_START, LifecycleRequest())
    done = await until(handle, lambda s: green_and_idle(s) and len(s.nodes) == 5, timeout=60)
    assert done.spec_progress.converged and done.observed_generation == 2
    assert done.ready_replicas == 5


async def test_history_stays_still_when_a_stopped_cluster_had_a_failed_repair(
    harness: Harness,
) -> None:
    handle = await harness.start(remediation={**FAST, "backoffSeconds": 1})
    await repair_failed(harness, handle)
    await command(handle, UPDATE_STOP, LifecycleRequest())
    await until(handle, lambda s: s.phase is Phase.STOPPED and not s.current_task)
    before, after = await still(handle)
    assert after == before, "a stopped cluster's history grew with time"


async def test_history_stays_still_with_a_node_in_maintenance_after_a_failed_repair(
    harness: Harness,
) -> None:
    handle = await harness.start(remediation={**FAST, "backoffSeconds": 1})
    victim = await repair_failed(harness, handle)
    spec = spec_with(3)
    spec.remediation = RemediationSpec.model_validate(
        {**FAST, "backoffSeconds": 1, "maintenance": [victim]}
    )
    await command(handle, UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec))
    await until(handle, lambda s: s.spec_progress.converged and not s.current_task)
    before, after = await still(handle)
    assert after == before, "a cluster with a node in maintenance grew its history with time"


async def test_history_stays_still_in_manual_intervention(harness: Harness) -> None:
    handle = await harness.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[1].name
    harness.runtime.crash(victim, detail="Errcode: 28 No space left on device")
    await until(handle, lambda s: s.manual_intervention is not None)
    before, after = await still(handle)
    assert after == before, "a paused cluster's history grew with time"


async def test_a_bug_in_a_step_fails_the_task_and_the_controller_goes_on(
    unsandboxed: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> list[tuple[str | None, repairs.Step]]:
        async def step() -> str | None:
            raise AssertionError("a bug")

        return [(None, step)]

    handle = await unsandboxed.start(remediation=FAST)
    ready = await until(handle, green_and_idle)
    monkeypatch.setitem(repairs.STEPS, Action.RESTART_NODE, broken)
    unsandboxed.runtime.crash(ready.nodes[2].name)
    failed = await until(
        handle, lambda s: bool(s.remediations) and s.remediations[-1].outcome is Outcome.FAILED
    )
    assert failed.remediations[-1].actions[-1].detail == "internal error: AssertionError('a bug')"
    monkeypatch.undo()  # fixed: the next attempt, after its backoff, repairs the node
    done = await until(handle, green_and_idle, timeout=30)
    assert done.remediations[-1].outcome is Outcome.SUCCEEDED


async def test_a_forced_restart_of_a_running_node_restarts_it(harness: Harness) -> None:
    handle = await harness.start(remediation={**FAST, "enabled": False})
    ready = await until(handle, green_and_idle)
    target = ready.nodes[1]
    request = ForceActionRequest(
        action=ForcedAction.RESTART_NODE, node=target.name, reason="apply a kernel patch"
    )
    queued = await command(handle, UPDATE_FORCE_ACTION, request)
    done = await until(handle, lambda s: ended(s, queued.task_id) is not None and green_and_idle(s))
    outcome = ended(done, queued.task_id)
    assert outcome is not None and outcome.outcome is Outcome.SUCCEEDED
    calls = [c for c in harness.runtime.calls if c[1:2] == (target.name,)]
    assert calls[-2:] == [("stop", target.name, "graceful"), ("start", target.name, False)]
    assert done.nodes[1].pid != target.pid and done.nodes[1].state is NodeState.GREEN
    assert harness.runtime.nodes[target.name].exit_kind is None  # running again
