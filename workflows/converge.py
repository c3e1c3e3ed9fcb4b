"""Desired vs applied spec: the apply task converges the running cluster to the spec the user
last applied, and `next_attempt` decides (pure) when a change that failed is tried again.

Level-triggered, as Kubernetes controllers are: the desired spec and its generation are kept
apart from the applied one; a change that failed is retried with backoff (doubling, at most
`maxAttemptsPerNode` times) and shown in the status; a change the server refused, or that a
node could not run with, is not retried until it is applied again (the same spec applied
again retries it at once). `observedGeneration` is the generation fully applied. A change to
a stopped cluster waits until it starts.
"""

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.cluster import ClusterActivities
    from activities.messages import (
        ConfigInput,
        LoadBalancerInput,
        RemoveNodeInput,
        StartInput,
        StopInput,
    )
    from api.cluster import MySQLClusterSpec, SpecProgress
    from api.messages import QueuedTask
    from api.remediation import RemediationSpec
    from api.states import Phase
    from workflows import backups
    from workflows.context import Context
    from workflows.errors import Refused, TaskFailed
    from workflows.lifecycle import reprovision


def next_attempt(progress: SpecProgress, rules: RemediationSpec, now: datetime) -> datetime | None:
    """When a failed change may be tried again: now or later; None when it may not."""
    if progress.refused or progress.attempts >= rules.max_attempts_per_node:
        return None
    return progress.retry_at if progress.retry_at and progress.retry_at > now else now


def after_failure(
    progress: SpecProgress, error: str, refused: bool, rules: RemediationSpec, now: datetime
) -> SpecProgress:
    attempts = progress.attempts + 1
    backoff = timedelta(seconds=rules.backoff_seconds * 2 ** (attempts - 1))
    return SpecProgress(attempts=attempts, retry_at=now + backoff, error=error, refused=refused)


async def apply(ctx: Context, task: QueuedTask) -> None:
    """Converge to the desired spec as it is when the task runs (a newer one may have come).
    What each step completed counts as applied, even when a later step fails."""
    new = ctx.spec if workflow.patched("apply-desired") else task.spec
    if new is None or ctx.memory.applied_spec is None:
        raise TaskFailed("the cluster was never created")
    if ctx.memory.phase is not Phase.RUNNING and workflow.patched("apply-waits-for-start"):
        raise Refused(f"the cluster is {ctx.memory.phase}: the change is applied when it starts")
    try:
        await _apply(ctx, new)
    except TaskFailed as error:
        ctx.memory.spec_progress = after_failure(
            ctx.memory.spec_progress,
            str(error),
            isinstance(error, Refused),
            ctx.applied.remediation,
            workflow.now(),
        )
        raise
    ctx.memory.applied_spec = new
    ctx.memory.observed_generation = ctx.meta.generation
    ctx.memory.spec_progress = SpecProgress()


async def _apply(ctx: Context, new: MySQLClusterSpec) -> None:
    old = ctx.applied
    if new.mysql != old.mysql and workflow.patched("config-check"):
        refused: str | None = await ctx.act(
            ClusterActivities.config_errors,
            ConfigInput(layout=ctx.layout_or_fail(), spec=new),
        )
        if refused:
            raise Refused(f"spec.mysql refused by the server, nothing changed: {refused}")
    if new.replicas > old.replicas:
        await _scale_up(ctx, new)
        _applied(ctx, replicas=new.replicas)
    if new.mysql != old.mysql:
        await _rolling_restart(ctx, new, old)
        _applied(ctx, mysql=new.mysql)
    if new.replicas < old.replicas:
        await _scale_down(ctx, new)
        _applied(ctx, replicas=new.replicas)
    if new.health != old.health:
        ctx.restart_watcher()
    if new.backup.schedule != old.backup.schedule:
        await backups.sync_schedule(ctx, new.backup.schedule)


def _applied(ctx: Context, **done: object) -> None:
    ctx.memory.applied_spec = ctx.applied.model_copy(update=done)


async def _scale_up(ctx: Context, spec: MySQLClusterSpec) -> None:
    layout = await ctx.layout(spec.replicas)
    await reprovision(ctx, layout, spec)
    ctx.track_nodes(layout)
    await ctx.act(
        ClusterActivities.configure_load_balancer,
        LoadBalancerInput(layout=layout, members=[n.name for n in layout.nodes]),
    )
    ctx.restart_watcher()
    for node in layout.nodes:
        if node.name not in ctx.running_nodes():
            await ctx.act(ClusterActivities.start_node, StartInput(layout=layout, node=node.name))
            await ctx.wait_synced(layout, node.name)


async def _scale_down(ctx: Context, spec: MySQLClusterSpec) -> None:
    layout = ctx.layout_or_fail()
    keep = [n.name for n in layout.nodes if n.ordinal < spec.replicas]
    for node in sorted(layout.nodes, key=lambda n: -n.ordinal):
        if node.ordinal < spec.replicas:
            continue
        members = [n.name for n in layout.nodes if n.ordinal < node.ordinal]
        await ctx.act(
            ClusterActivities.configure_load_balancer,
            LoadBalancerInput(layout=layout, members=members),
        )
        await ctx.act(ClusterActivities.stop_node, StopInput(layout=layout, node=node.name))
        await ctx.act(
            ClusterActivities.remove_node,
            RemoveNodeInput(layout=layout, node=node.name, delete_data=False),
        )
    smaller = await ctx.layout(spec.replicas)
    if [n.name for n in smaller.nodes] != keep:
        raise TaskFailed(f"the layout after scaling down is not {keep}")
    await reprovision(ctx, smaller, spec)
    ctx.track_nodes(smaller)
    ctx.restart_watcher()


async def _rolling_restart(ctx: Context, spec: MySQLClusterSpec, last: MySQLClusterSpec) -> None:
    """New server options: rewrite every my.cnf, then restart one node at a time, the current
    writer last, each back to Synced before the next. A node that does not come back with them
    goes back to the last options that worked, and the change stops (refused: not retried)."""
    layout = ctx.layout_or_fail()
    await reprovision(ctx, layout, spec)
    order = sorted(layout.nodes, key=lambda n: (n.name == ctx.memory.writer, n.ordinal))
    alone = len(layout.nodes) == 1
    for node in order:
        await ctx.act(ClusterActivities.stop_node, StopInput(layout=layout, node=node.name))
        try:
            await ctx.act(
                ClusterActivities.start_node,
                StartInput(layout=layout, node=node.name, bootstrap=alone),
            )
            await ctx.wait_synced(layout, node.name)
        except ActivityError as error:
            if not workflow.patched("config-rollback"):
                raise
            cause = error.cause or error
            await reprovision(ctx, layout, last)
            await ctx.act(
                ClusterActivities.start_node,
                StartInput(layout=layout, node=node.name, bootstrap=alone),
            )
            await ctx.wait_synced(layout, node.name)
            raise Refused(
                f"{node.name} did not come back with the new options ({cause}): it runs the "
                "last options that worked again, and the change stopped"
            ) from None
