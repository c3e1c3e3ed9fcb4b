"""The cluster workflow against a real Temporal dev server, with a scripted in-memory runtime."""

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from api.cluster import ClusterStatus, MySQLCluster, MySQLClusterSpec, NodeFacts, TaskOutcome
from api.messages import (
    QUERY_SPEC,
    SIGNAL_NODE_REPORT,
    UPDATE_APPLY_SPEC,
    UPDATE_DELETE,
    ApplySpecRequest,
    ClusterMemory,
    ClusterWorkflowInput,
    CommandResult,
    LifecycleRequest,
    NodeMemory,
    NodeReport,
)
from api.remediation import Outcome
from api.states import ExitKind, NodeState, Phase, TaskKind
from tests.conftest import start_temporal
from tests.workflows.harness import (
    Harness,
    green_and_idle,
    history_json,
    running_harness,
    spec_with,
    status,
    until,
)
from workers.worker import Workers
from workflows.cluster import ClusterWorkflow
from workflows.search import CLUSTER_STATE


async def test_create_bootstraps_first_node_then_joins_the_rest(harness: Harness) -> None:
    handle = await harness.start()
    done = await until(handle, green_and_idle)
    assert [n.state for n in done.nodes] == [NodeState.GREEN] * 3
    assert done.phase.value == "Running" and done.writer == done.nodes[0].name
    names = [n.name for n in done.nodes]
    starts = [c for c in harness.runtime.calls if c[0] == "start"]
    assert starts == [
        ("start", names[0], True),
        ("start", names[1], False),
        ("start", names[2], False),
    ], (harness.runtime.calls, done.remediations, done.transitions)
    calls = harness.runtime.calls
    users = calls.index(("users", names[0]))
    assert calls.index(starts[0]) < users < calls.index(starts[1])  # users ride the SSTs
    description = await handle.describe()
    assert description.typed_search_attributes.get(CLUSTER_STATE) == "Green"


async def test_commands_wait_their_turn_and_are_visible(harness: Harness) -> None:
    handle = await harness.start()
    first = await until(handle, lambda s: len(s.nodes) == 3)
    harness.runtime.gated_node = first.nodes[2].name  # the last join blocks
    bigger = spec_with(5)
    result = await handle.execute_update(
        UPDATE_APPLY_SPEC, ApplySpecRequest(spec=bigger), result_type=CommandResult
    )
    queued = await status(handle)
    assert queued.current_task is not None and queued.current_task.kind == "create"
    assert [t.id for t in queued.queued_tasks] == [result.task_id]
    harness.runtime.gate.set()
    done = await until(handle, lambda s: green_and_idle(s) and len(s.nodes) == 5)
    assert done.replicas == 5 and done.ready_replicas == 5


async def history_length(handle: WorkflowHandle[object, object]) -> int:
    return len((await handle.fetch_history()).events)


async def test_refused_update_writes_nothing(harness: Harness) -> None:
    handle = await harness.start(replicas=1)
    await until(handle, green_and_idle)
    await asyncio.sleep(1)  # the watcher's fresh look after the create is in
    same = (await status(handle)).replicas
    before = await history_length(handle)
    spec = spec_with(same)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec))
    assert "unchanged: the cluster already has this spec" in str(refused.value.cause)
    assert await history_length(handle) == before  # not one event, of any kind


def report_of(
    node: str, sequence: int, agent: datetime, observed_at: datetime | None = None
) -> NodeReport:
    return NodeReport(
        node=node,
        state=NodeState.RED_UNCLEAN,
        facts=NodeFacts(process_alive=False, exit_kind=ExitKind.UNCLEAN),
        observed_at=observed_at or datetime.now(UTC),
        sequence=sequence,
        agent_started_at=agent,
    )


async def test_a_fresh_report_counts_whatever_the_agents_clock_says(harness: Harness) -> None:
    handle = await harness.start(remediation={"enabled": False})
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[1].name
    agent = datetime.now(UTC)
    # The agent's clock is decades behind the workflow's: its report is news all the same.
    await handle.signal(
        SIGNAL_NODE_REPORT, report_of(victim, 1, agent, datetime(2000, 1, 1, tzinfo=UTC))
    )
    seen = await until(handle, lambda s: s.nodes[1].last_report_sequence == 1)
    assert any(
        t.subject == victim and t.to_state == "Red-unclean" and t.reason.startswith("agent")
        for t in seen.transitions
    )
    # The same report delivered again (or an older one) changes nothing.
    green = report_of(victim, 1, agent).model_copy(
        update={"state": NodeState.GREEN, "facts": ready.nodes[1].facts}
    )
    await handle.signal(SIGNAL_NODE_REPORT, green)
    await handle.signal(SIGNAL_NODE_REPORT, report_of(victim, 2, agent))
    seen = await until(handle, lambda s: s.nodes[1].last_report_sequence == 2)
    agent_lines = [t for t in seen.transitions if t.subject == victim and "agent" in t.reason]
    assert {t.to_state for t in agent_lines} == {"Red-unclean"}  # the duplicate was not merged
    assert (seen.reports_queued, seen.reports_dropped) == (0, 0)  # drained, nothing lost


async def test_reports_beyond_the_queue_capacity_lose_the_oldest(harness: Harness) -> None:
    """Signals that arrive while no worker runs the workflow are delivered in one batch: the
    queue keeps the newest `reportQueueCapacity`, counts the others as lost, merges in order."""
    cluster = MySQLCluster.model_validate(
        {
            "metadata": {"name": f"q{uuid.uuid4().hex[:8]}"},
            "spec": {"replicas": 3, "health": {"reportQueueCapacity": 3}},
        }
    )
    names = [f"{cluster.metadata.name}-{i}" for i in range(3)]
    memory = ClusterMemory(
        phase=Phase.STOPPED, nodes=[NodeMemory(name=n, ordinal=i) for i, n in enumerate(names)]
    )
    queue = f"paused-{uuid.uuid4().hex[:8]}"
    handle = await harness.client.start_workflow(
        ClusterWorkflow.run,
        ClusterWorkflowInput(cluster=cluster, memory=memory),
        id=cluster.workflow_id,
        task_queue=queue,
    )
    agent = datetime.now(UTC)
    for sequence in range(1, 6):
        await handle.signal(SIGNAL_NODE_REPORT, report_of(names[2], sequence, agent))
    async with Workers(harness.client, harness.runtime, queue, probe=harness.runtime.probe):
        seen = await until(handle, lambda s: s.nodes[2].last_report_sequence == 5)
        assert (seen.reports_queued, seen.reports_dropped) == (0, 2)
        assert seen.nodes[2].state is NodeState.RED_UNCLEAN
        await handle.terminate("test over")


async def test_a_killed_node_is_red_unclean_and_the_cluster_yellow(harness: Harness) -> None:
    handle = await harness.start(remediation={"enabled": False})
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[0].name
    harness.runtime.crash(victim)
    seen = await until(handle, lambda s: s.nodes[0].state is NodeState.RED_UNCLEAN)
    assert seen.state.value == "Yellow"
    assert seen.writer != victim
    assert any(t.subject == victim and t.to_state == "Red-unclean" for t in seen.transitions)
    description = await handle.describe()
    assert description.typed_search_attributes.get(CLUSTER_STATE) == "Yellow"


async def test_scale_down_removes_highest_ordinals_one_at_a_time(harness: Harness) -> None:
    handle = await harness.start()
    ready = await until(handle, green_and_idle)
    names = [n.name for n in ready.nodes]
    one = spec_with(1)
    await handle.execute_update(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=one))
    done = await until(handle, lambda s: green_and_idle(s) and len(s.nodes) == 1)
    assert [n.name for n in done.nodes] == names[:1]
    removed = [c for c in harness.runtime.calls if c[0] in ("stop", "remove")]
    assert removed == [
        ("stop", names[2], "graceful"),
        ("remove", names[2], False),
        ("stop", names[1], "graceful"),
        ("remove", names[1], False),
    ]


async def test_delete_stops_gracefully_keeps_data_and_ends(harness: Harness) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    await handle.execute_update(UPDATE_DELETE, LifecycleRequest(reason="test"))
    final = await asyncio.wait_for(handle.result(), 30)
    assert ClusterStatus.model_validate(final).phase.value == "Deleted"
    calls = harness.runtime.calls
    assert [c for c in calls if c[0] == "stop"] and all(
        c[2] == "graceful" for c in calls if c[0] == "stop"
    )
    assert calls[-1] == ("retire", False)


async def test_no_secret_reaches_the_history(harness: Harness) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    text = await history_json(handle)
    assert harness.runtime.secrets
    for secret in harness.runtime.secrets.values():
        assert secret not in text


MAX_REPORTS = 400


def reports_merged(node: int, sent: int) -> Callable[[ClusterStatus], bool]:
    return lambda s: s.nodes[node].last_report_sequence == sent and s.reports_queued == 0


async def test_continue_as_new_carries_state_and_loses_no_signal() -> None:
    env = await start_temporal(
        "--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=60"
    )
    try:
        async for h in running_harness(env):
            handle = await h.start()
            ready = await until(handle, green_and_idle)
            latest = h.client.get_workflow_handle(handle.id)
            first_run = (await latest.describe()).run_id
            agent = datetime.now(UTC)
            sent = 0
            # Signals grow the history until the server suggests continue-as-new; a few more
            # arrive around the switch. None may be lost.
            while sent < MAX_REPORTS:
                sent += 1
                await handle.signal(
                    SIGNAL_NODE_REPORT,
                    NodeReport(
                        node=ready.nodes[2].name,
                        state=NodeState.GREEN,
                        facts=ready.nodes[2].facts,
                        observed_at=datetime.now(UTC),
                        sequence=sent,
                        agent_started_at=agent,
                    ),
                )
                if sent % 10 == 0 and (await latest.describe()).run_id != first_run:
                    break
            # While signals keep coming the server refuses the switch (they would be lost);
            # once they pause, the workflow must continue as new.
            deadline = time.monotonic() + 30
            while (await latest.describe()).run_id == first_run:
                assert time.monotonic() < deadline, "never continued as new"
                await asyncio.sleep(0.2)
            after = await until(latest, reports_merged(2, sent))  # the newest is never lost
            assert after.state.value == "Green" and len(after.nodes) == 3
            assert any(t.to_state == "Running" for t in after.transitions)
    finally:
        await env.shutdown()


def with_options(**options: object) -> MySQLClusterSpec:
    spec = spec_with(3)
    return spec.model_copy(update={"mysql": spec.mysql.model_copy(update={"config": options})})


async def test_options_the_server_refuses_change_nothing(harness: Harness) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    harness.runtime.refused_options.add("max_connections")
    before = len(harness.runtime.calls)
    wanted = with_options(max_connections=500)
    result = await handle.execute_update(
        UPDATE_APPLY_SPEC, ApplySpecRequest(spec=wanted, generation=2), result_type=CommandResult
    )
    done = await until(handle, lambda s: ended(s, result.task_id) and green_and_idle(s))
    outcome = ended(done, result.task_id)
    assert outcome is not None and outcome.outcome is Outcome.REFUSED
    assert "unknown variable 'max_connections=1'" in outcome.error  # the server's own words
    touched = [c for c in harness.runtime.calls[before:] if c[0] in ("provision", "stop", "start")]
    assert touched == []  # no my.cnf rewritten, no node restarted
    # The desired spec stays what the user applied; it is not applied, and not retried.
    assert await handle.query(QUERY_SPEC, result_type=MySQLClusterSpec) == wanted
    progress = done.spec_progress
    assert (progress.desired_generation, progress.observed_generation) == (2, None)
    assert progress.refused and not progress.converged and "max_connections" in progress.error

    # Applying the same spec again retries it: the server accepts it now.
    harness.runtime.refused_options.clear()
    again = await handle.execute_update(
        UPDATE_APPLY_SPEC, ApplySpecRequest(spec=wanted, generation=2), result_type=CommandResult
    )
    done = await until(handle, lambda s: ended(s, again.task_id) and green_and_idle(s))
    outcome = ended(done, again.task_id)
    assert outcome is not None and outcome.outcome is Outcome.SUCCEEDED
    assert done.spec_progress.converged and done.observed_generation == 2
    assert all(
        spec.mysql.config == {"max_connections": 500} for spec in harness.runtime.configs.values()
    )


def ended(current: ClusterStatus, task_id: str | None) -> TaskOutcome | None:
    return next((o for o in current.outcomes if o.id == task_id), None)


async def test_a_node_that_fails_with_new_options_goes_back_and_the_change_stops(
    harness: Harness,
) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    harness.runtime.crashing_options.add("max_connections")
    before = len(harness.runtime.calls)
    await handle.execute_update(
        UPDATE_APPLY_SPEC,
        ApplySpecRequest(spec=with_options(max_connections=500)),
        result_type=CommandResult,
    )
    done = await until(handle, lambda s: "did not come back" in s.message and green_and_idle(s))
    calls = harness.runtime.calls[before:]
    stopped = [c[1] for c in calls if c[0] == "stop"]
    assert len(stopped) == 1  # the first node only: the change stopped there
    assert all(not spec.mysql.config for spec in harness.runtime.configs.values())  # rolled back
    assert not done.remediations  # not a crash to repair: no restart loop, no SST, nothing aside
    assert ("set-aside", stopped[0]) not in calls
    assert not done.spec_progress.converged and done.spec_progress.refused  # not retried
    assert [o.outcome for o in done.outcomes if o.kind is TaskKind.APPLY] == [Outcome.REFUSED]
