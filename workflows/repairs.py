"""Repair tasks: carry out a playbook action (chosen by `workflows.decide`, or forced by an
operator) step by step, each step recorded with its outcome in a `RemediationRecord`.

`STEPS` maps each action to its step factory; a step is a coroutine returning what it found
(kept as the step's detail). The first failure ends the record.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.cluster import ClusterActivities
    from activities.messages import NodeInput, PositionsInput, StartInput, StopInput
    from activities.runtime import StopMode
    from api.layout import ClusterLayout
    from api.messages import NodeMemory, QueuedTask
    from api.remediation import (
        Action,
        ActionRecord,
        FaultClass,
        ForceActionRequest,
        JoinInfo,
        ManualIntervention,
        Outcome,
        RemediationRecord,
    )
    from api.states import TaskKind
    from galera.bootstrap import NoSafeBootstrap, choose_bootstrap, must_keep_aside
    from galera.faults import Fault
    from galera.forcing import refusal
    from galera.position import GaleraPosition, NodePosition
    from workflows import counters
    from workflows.context import Context
    from workflows.decide import PLAYBOOKS, Pause, Repair, attempt_key
    from workflows.errors import Refused, TaskFailed, failure
    from workflows.lifecycle import start_cluster
    from workflows.search import CLUSTER_STATE, MANUAL_INTERVENTION

REMEDIATIONS_KEPT = 20
REJOIN_TIMEOUT = timedelta(minutes=2)  # a restarted partitioned node that cannot join by then

Step = Callable[[], Awaitable[str | None]]  # one recorded step of a playbook action
Steps = list[tuple[str | None, Step]]  # (node, step)


# -- queueing ------------------------------------------------------------------------------


def queue_repair(ctx: Context, repair: Repair) -> None:
    ctx.memory.task_counter += 1
    fault = repair.fault
    record = RemediationRecord(
        id=f"remediate-{ctx.memory.task_counter}",
        fault=fault.fault,
        nodes=list(fault.nodes),
        evidence=fault.evidence,
        attempt=repair.attempt,
        started_at=workflow.now(),
    )
    _queue_record(ctx, TaskKind.REMEDIATE, record, f"{record.id}: {repair.action.value}")


def queue_forced(ctx: Context, request: ForceActionRequest) -> RemediationRecord:
    ctx.memory.task_counter += 1
    forced = " (forced past the safety checks)" if request.force else ""
    record = RemediationRecord(
        id=f"force-{ctx.memory.task_counter}",
        fault=FaultClass.OPERATOR_REQUEST,
        nodes=[request.node],
        evidence=f"requested by an operator{forced}: {request.reason}",
        attempt=1,
        started_at=workflow.now(),
    )
    _queue_record(ctx, TaskKind.FORCE, record, f"{request.action.value}: {request.reason}", request)
    return record


def _queue_record(
    ctx: Context,
    kind: TaskKind,
    record: RemediationRecord,
    what: str,
    forced: ForceActionRequest | None = None,
) -> None:
    """Queue the task that will carry out (and complete) this record."""
    nodes = ", ".join(record.nodes)
    ctx.enqueue(
        QueuedTask(
            id=record.id,
            kind=kind,
            requested_at=workflow.now(),
            reason=f"{record.fault.value} {nodes} (attempt {record.attempt}) {what}",
            remediation=record,
            forced=forced,
        )
    )


def pause(ctx: Context, decision: Pause) -> None:
    """Manual intervention: automation stops for this cluster; health reporting goes on."""
    fault = decision.fault
    ctx.memory.manual = ManualIntervention(
        since=workflow.now(), fault=fault.fault, reason=decision.reason, evidence=fault.evidence
    )
    ctx.transition("cluster", "automatic", "ManualIntervention", decision.reason)
    counters.count(
        ctx.memory,
        "manual_interventions",
        fault=fault.fault.value,
    )
    workflow.upsert_search_attributes([CLUSTER_STATE.value_set(MANUAL_INTERVENTION)])
    ctx.show_details()


# -- the tasks -----------------------------------------------------------------------------


async def remediate(ctx: Context, task: QueuedTask) -> None:
    record = _record_of(task)
    key = attempt_key(Fault(record.fault, tuple(record.nodes), record.evidence))
    ctx.memory.attempts[key] = record.attempt
    layout = ctx.layout_or_fail()
    action = PLAYBOOKS[record.fault].action
    await _carry_out(ctx, record, action, STEPS[action](ctx, layout, record.nodes))
    if record.outcome is Outcome.FAILED:
        backoff = ctx.spec.remediation.backoff_seconds * 2 ** (record.attempt - 1)
        ctx.memory.retry_after[key] = workflow.now() + timedelta(seconds=backoff)


async def force(ctx: Context, task: QueuedTask) -> None:
    """An operator's forced action: checked again on fresh evidence, then carried out."""
    request, record = task.forced, _record_of(task)
    if request is None:
        raise TaskFailed(f"{task.id} carries no request")
    layout = ctx.layout_or_fail()
    action = Action(request.action.value)

    async def check() -> str | None:
        await ctx.survey(layout)  # the queue may have waited: judge what is true now
        found = refusal(request, ctx.memory.nodes, ctx.memory.primary)
        if found is None:
            return "safety checks passed"
        if found.overridable and request.force:
            return f"forced past: {found.reason}"
        raise Refused(found.reason)

    steps: Steps = [(request.node, check)]
    if action is Action.BOOTSTRAP_FROM_NODE:

        async def bootstrap_from() -> str | None:
            return await _bootstrap_from(ctx, layout, request.node, request.force)

        steps.append((request.node, bootstrap_from))
    elif action is Action.RESTART_NODE and workflow.patched("forced-restart-restarts"):
        steps.append((request.node, _restart(ctx, layout, request.node, stop_first=True)))
    else:
        steps.extend(STEPS[action](ctx, layout, [request.node]))
    await _carry_out(ctx, record, action, steps)
    if record.outcome is Outcome.REFUSED:
        raise Refused(record.actions[-1].detail if record.actions else "refused")
    if record.outcome is Outcome.FAILED:
        raise TaskFailed(record.actions[-1].detail if record.actions else "failed")


def _record_of(task: QueuedTask) -> RemediationRecord:
    if task.remediation is None:
        raise TaskFailed(f"{task.id} carries no remediation record")
    return task.remediation


async def _carry_out(ctx: Context, record: RemediationRecord, action: Action, steps: Steps) -> None:
    """Run the steps in order, each recorded with its outcome; the first failure ends it."""
    record.started_at = workflow.now()
    ctx.memory.remediations.append(record)
    del ctx.memory.remediations[:-REMEDIATIONS_KEPT]
    reason = f"{record.id} {action.value} {', '.join(record.nodes)}"
    ctx.transition("cluster", record.fault.value, "repairing", reason)
    fault = record.fault.value
    counters.count(ctx.memory, "remediations_started", fault=fault)
    try:
        for node, step in steps:
            entry = ActionRecord(action=action, node=node, started_at=workflow.now())
            record.actions.append(entry)
            try:
                entry.detail = await step() or ""
                entry.outcome = Outcome.SUCCEEDED
            finally:
                entry.ended_at = workflow.now()
                entry.join = _join_during(ctx, node, entry.started_at)
                if entry.outcome is Outcome.RUNNING:
                    entry.outcome = Outcome.FAILED
        record.outcome = Outcome.SUCCEEDED
    except Exception as error:
        record.outcome, detail = failure(error)
        if record.actions:
            record.actions[-1].detail = detail
            record.actions[-1].outcome = record.outcome
    finally:
        record.ended_at = workflow.now()
        ctx.transition("cluster", "repairing", record.outcome.value, reason)
        counters.count(
            ctx.memory,
            "remediations_ended",
            fault=fault,
            outcome=record.outcome.value,
        )


def _join_during(ctx: Context, node: str | None, since: datetime) -> JoinInfo | None:
    """How the step's node rejoined, if it rejoined during the step."""
    seen = ctx.node(node) if node else None
    join = seen.last_join if seen else None
    return join if join and join.at and join.at >= since else None


# -- the steps of each action --------------------------------------------------------------


def _restart(
    ctx: Context,
    layout: ClusterLayout,
    node: str,
    kill_first: bool = False,
    stop_first: bool = False,
) -> Step:
    async def run() -> str | None:
        if kill_first or stop_first:
            mode = StopMode.KILL if kill_first else StopMode.GRACEFUL
            await ctx.act(
                ClusterActivities.stop_node, StopInput(layout=layout, node=node, mode=mode)
            )
        down = kill_first or ctx.is_down(node)
        kept = await _keep_unreadable_data(ctx, layout, node) if down else None
        await ctx.act(ClusterActivities.start_node, StartInput(layout=layout, node=node))
        try:
            join = await ctx.wait_synced(layout, node)
        except ActivityError:
            # A joiner that found no Primary must not linger half-started. It serves nothing
            # and may not heed SIGTERM while it waits for a state transfer.
            await ctx.act(
                ClusterActivities.stop_node,
                StopInput(layout=layout, node=node, mode=StopMode.KILL),
            )
            raise
        return "; ".join(text for text in (kept, join and join.detail) if text) or None

    return run


def _reprovision(ctx: Context, layout: ClusterLayout, node: str) -> Step:
    async def run() -> str | None:
        await ctx.act(ClusterActivities.stop_node, StopInput(layout=layout, node=node))
        kept: str = await ctx.act(
            ClusterActivities.set_aside_data, NodeInput(layout=layout, node=node)
        )
        await ctx.act(ClusterActivities.start_node, StartInput(layout=layout, node=node))
        join = await ctx.wait_synced(layout, node)
        how = f"; {join.detail}" if join else ""
        where = f"old data directory kept at {kept}" if kept else "no old data to keep"
        return f"{where} (SST on purpose){how}"

    return run


def _rejoin(ctx: Context, layout: ClusterLayout, node: str) -> Step:
    async def run() -> str | None:
        # Cut off from the Primary component long past the grace period: a fresh start asks
        # the group again. Its data is never touched, and if it still cannot reach the others
        # it stays up, outside the load balancer.
        await ctx.act(ClusterActivities.stop_node, StopInput(layout=layout, node=node))
        await ctx.act(ClusterActivities.start_node, StartInput(layout=layout, node=node))
        join = await ctx.wait_synced(layout, node, timeout=REJOIN_TIMEOUT)
        return join.detail if join else None

    return run


def _bootstrap(ctx: Context, layout: ClusterLayout) -> Step:
    async def run() -> str | None:
        await start_cluster(ctx, layout)
        return None

    return run


def _reform(ctx: Context, layout: ClusterLayout) -> Step:
    async def run() -> str | None:
        return await _reform_primary(ctx, layout)

    return run


STEPS: dict[Action, Callable[[Context, ClusterLayout, list[str]], Steps]] = {
    Action.RESTART_NODE: lambda ctx, layout, nodes: [(n, _restart(ctx, layout, n)) for n in nodes],
    Action.KILL_AND_RESTART_NODE: lambda ctx, layout, nodes: [
        (n, _restart(ctx, layout, n, kill_first=True)) for n in nodes
    ],
    Action.RESTART_RUNNING_NODE: lambda ctx, layout, nodes: [
        (n, _rejoin(ctx, layout, n)) for n in nodes
    ],
    Action.REPROVISION_NODE: lambda ctx, layout, nodes: [
        (n, _reprovision(ctx, layout, n)) for n in nodes
    ],
    Action.BOOTSTRAP_MOST_ADVANCED: lambda ctx, layout, nodes: [(None, _bootstrap(ctx, layout))],
    Action.REFORM_PRIMARY: lambda ctx, layout, nodes: [(None, _reform(ctx, layout))],
}


async def _keep_unreadable_data(ctx: Context, layout: ClusterLayout, node: str) -> str | None:
    """Before a stopped node starts: move its data directory aside when its committed position
    cannot be read (`galera.bootstrap.must_keep_aside`); why, and where it went."""
    if not workflow.patched("keep-unreadable-data"):
        return None  # histories from before this step replay as they ran
    seen: list[NodePosition] = await ctx.act(
        ClusterActivities.node_positions, PositionsInput(layout=layout, nodes=[node])
    )
    position = seen[0].position
    why = must_keep_aside(position)
    if why is None and position.unreadable and not position.empty:
        # The storage failed: starting would fail the same way. The next look at the node sees
        # these errors and hands the fault to a human.
        raise TaskFailed(f"{node} cannot start: {position.unreadable}")
    if why is None:
        return None
    where: str = await ctx.act(
        ClusterActivities.set_aside_data, NodeInput(layout=layout, node=node)
    )
    return f"{why}; old data directory kept at {where}"


async def _reform_primary(ctx: Context, layout: ClusterLayout) -> str:
    """Quorum lost: running nodes sit outside any Primary component, the others are down.
    Bootstrap the most advanced node: a running one in place (pc.bootstrap), or, when a
    stopped node is ahead, stop the running ones first and start the cluster from it."""
    await ctx.survey(layout)
    if ctx.memory.primary:
        return "a Primary component re-formed on its own"
    live = [n for n in ctx.memory.nodes if n.facts.process_alive]
    for silent in [n for n in live if not n.facts.reachable]:
        # Still starting or hung: it serves nothing; stopped, its position can be read.
        await ctx.act(
            ClusterActivities.stop_node,
            StopInput(layout=layout, node=silent.name, mode=StopMode.KILL),
        )
    live = [n for n in live if n.facts.reachable]
    answering = {n.name for n in live}
    dead = [n.name for n in ctx.memory.nodes if n.name not in answering]
    stored: list[NodePosition] = (
        await ctx.act(ClusterActivities.node_positions, PositionsInput(layout=layout, nodes=dead))
        if dead
        else []
    )
    positions = stored + [_committed(n) for n in live]
    # Equally advanced, a live node is Primary in place: nothing has to stop and restart.
    prefer = frozenset(answering) if workflow.patched("reform-prefers-live") else frozenset()
    choice = choose_bootstrap(positions, {n.name: n.ordinal for n in layout.nodes}, prefer)
    ctx.transition("cluster", "QuorumLost", "bootstrapping", choice.reason)
    if choice.node in dead:
        for running in live:
            await ctx.act(ClusterActivities.stop_node, StopInput(layout=layout, node=running.name))
        await start_cluster(ctx, layout)
        return choice.reason
    await ctx.act(
        ClusterActivities.bootstrap_primary,
        NodeInput(layout=layout, node=choice.node),
        summary=f"pc.bootstrap on {choice.node}: {choice.reason}",
    )
    await ctx.wait_synced(layout, choice.node, joining=False)
    for node in dead:
        await ctx.act(ClusterActivities.start_node, StartInput(layout=layout, node=node))
        await ctx.wait_synced(layout, node)
    return choice.reason


async def _bootstrap_from(ctx: Context, layout: ClusterLayout, node: str, forced: bool) -> str:
    """Start the cluster from the node an operator named. Refused, unless forced, when the
    positions do not prove it the most advanced; decided before anything is touched. Then
    every node ahead of it (or of another history) has its data directory moved aside, kept,
    so that it rejoins by SST."""
    live = [n for n in ctx.memory.nodes if n.facts.process_alive]
    silent = [n.name for n in live if not n.facts.reachable]
    if silent and not forced:
        raise Refused(f"{', '.join(silent)} run but do not answer: positions unknown")
    stopped = [n.name for n in ctx.memory.nodes if not n.facts.process_alive]
    positions: list[NodePosition] = (
        await ctx.act(
            ClusterActivities.node_positions, PositionsInput(layout=layout, nodes=stopped)
        )
        if stopped
        else []
    )
    positions += [_committed(n) for n in live if n.facts.reachable]
    if any(p.node == node and p.position.empty for p in positions):
        raise Refused(f"{node} has no data directory: there is nothing to start from")
    try:
        best = choose_bootstrap(positions, {n.name: n.ordinal for n in layout.nodes})
        verdict = best.reason
    except NoSafeBootstrap as error:
        best, verdict = None, str(error)
    if best is None or best.node != node:
        verdict = f"{node} is not proven the most advanced: {verdict}"
        if not forced:
            raise Refused(verdict)
        verdict = f"forced past: {verdict}"
    for running in live:
        mode = StopMode.KILL if running.name in silent else StopMode.GRACEFUL
        await ctx.act(
            ClusterActivities.stop_node, StopInput(layout=layout, node=running.name, mode=mode)
        )
    stored: list[NodePosition] = await ctx.act(  # all stopped: exact positions now
        ClusterActivities.node_positions,
        PositionsInput(layout=layout, nodes=[n.name for n in layout.nodes]),
    )
    mine = next(p.position for p in stored if p.node == node)
    kept = []
    for other in stored:
        theirs = other.position
        ahead = theirs.uuid != mine.uuid or theirs.seqno > mine.seqno
        ahead = ahead or must_keep_aside(theirs) is not None  # unknown: kept all the same
        if other.node != node and not theirs.empty and ahead:
            where: str = await ctx.act(
                ClusterActivities.set_aside_data, NodeInput(layout=layout, node=other.node)
            )
            kept.append(f"{other.node} (seqno {theirs.seqno}) kept at {where}")
    await start_cluster(ctx, layout, bootstrap_from=node)
    moved = f"; data of nodes ahead moved aside: {'; '.join(kept)}" if kept else ""
    return f"bootstrapped from {node} ({verdict}){moved}"


def _committed(node: NodeMemory) -> NodePosition:
    """A running node's position: its last committed seqno as the probe saw it."""
    seqno = node.facts.seqno if node.facts.seqno is not None else -1
    return NodePosition(node=node.name, position=GaleraPosition(seqno=seqno))
