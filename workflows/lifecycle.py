"""Lifecycle tasks: create, stop, start, delete, and starting a cluster from stopped nodes."""

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.cluster import ClusterActivities
    from activities.messages import (
        LoadBalancerInput,
        NodeInput,
        PositionsInput,
        ProvisionInput,
        RetireInput,
        StartInput,
        StopInput,
    )
    from api.cluster import MySQLClusterSpec
    from api.layout import ClusterLayout
    from api.messages import QueuedTask
    from api.states import Phase
    from galera.bootstrap import (
        BootstrapChoice,
        can_join_by_ist,
        choose_bootstrap,
        must_keep_aside,
    )
    from workflows import backups
    from workflows.context import Context
    from workflows.errors import TaskFailed


async def create(ctx: Context, task: QueuedTask) -> None:
    spec = task.spec or ctx.spec
    ctx.set_phase(Phase.CREATING)
    layout = await ctx.layout(spec.replicas)
    await ctx.act(ClusterActivities.ensure_secrets, layout.cluster)
    source = spec.restore_from
    for node in layout.nodes:
        await ctx.act(
            ClusterActivities.provision_node,
            ProvisionInput(
                layout=layout,
                node=node.name,
                spec=spec,
                bootstrap_candidate=node.ordinal == 0 and source is None,
            ),
        )
    ctx.track_nodes(layout)
    ctx.memory.applied_spec = spec
    if source is None:
        await start_cluster(ctx, layout)
    else:
        await backups.create_from_backup(ctx, task, layout, source)
    ctx.memory.created = True
    ctx.memory.observed_generation = ctx.meta.generation
    ctx.set_phase(Phase.RUNNING)
    if spec.backup.schedule and workflow.patched("backup-schedule"):
        await backups.sync_schedule(ctx, spec.backup.schedule)


async def start_cluster(
    ctx: Context, layout: ClusterLayout, bootstrap_from: str | None = None
) -> None:
    """Bootstrap from the most advanced node (or the one an operator forced), then join the
    others: together those whose position promises an IST from it, then one at a time those
    that may need a full copy (SST), sparing the donor."""
    names = [n.name for n in layout.nodes]
    unreadable: set[str] = set()  # positions that cannot be read: their data is kept aside
    incremental: list[str] = []  # same history as the bootstrap node: they can IST
    await ctx.survey(layout)
    running = ctx.running_nodes()
    if running and not ctx.memory.primary:
        raise TaskFailed(
            f"nodes {running} run without a Primary component; refusing to bootstrap beside them"
        )
    if not running:
        if bootstrap_from:
            choice = BootstrapChoice(bootstrap_from, f"{bootstrap_from} chosen by an operator")
        else:
            positions = await ctx.act(
                ClusterActivities.node_positions, PositionsInput(layout=layout, nodes=names)
            )
            choice = choose_bootstrap(positions, {n.name: n.ordinal for n in layout.nodes})
            unreadable = {p.node for p in positions if must_keep_aside(p.position)}
            incremental = can_join_by_ist(positions, choice.node)
        ctx.transition("cluster", "stopped", "bootstrapping", choice.reason)
        await ctx.act(
            ClusterActivities.start_node,
            StartInput(layout=layout, node=choice.node, bootstrap=True),
            summary=f"bootstrap {choice.node}: {choice.reason}",
        )
        await ctx.act(ClusterActivities.ensure_users, NodeInput(layout=layout, node=choice.node))
        await ctx.wait_synced(layout, choice.node, joining=False)
        running = [choice.node]
    await ctx.act(
        ClusterActivities.configure_load_balancer,
        LoadBalancerInput(layout=layout, members=names),
    )
    ctx.restart_watcher()
    if incremental and workflow.patched("parallel-ist-joins"):
        await join_together(ctx, layout, [n for n in incremental if n not in running])
        running += incremental
    for name in names:
        if name in running:
            continue
        if name in unreadable and workflow.patched("keep-unreadable-data"):
            await ctx.act(ClusterActivities.set_aside_data, NodeInput(layout=layout, node=name))
        await ctx.act(ClusterActivities.start_node, StartInput(layout=layout, node=name))
        await ctx.wait_synced(layout, name)


async def join_together(ctx: Context, layout: ClusterLayout, nodes: list[str]) -> None:
    """Start the nodes at once and wait until each is Synced; the first failure is raised
    after all of them ended (none is left half-started behind the task's back)."""

    async def join(node: str) -> None:
        await ctx.act(ClusterActivities.start_node, StartInput(layout=layout, node=node))
        await ctx.wait_synced(layout, node)

    results = await asyncio.gather(*(join(n) for n in nodes), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def reprovision(ctx: Context, layout: ClusterLayout, spec: MySQLClusterSpec) -> None:
    """Every node's configuration as `spec` renders it (data directories untouched)."""
    for node in layout.nodes:
        await ctx.act(
            ClusterActivities.provision_node,
            ProvisionInput(layout=layout, node=node.name, spec=spec),
        )


async def stop(ctx: Context, task: QueuedTask) -> None:
    await stop_all_nodes(ctx)
    ctx.set_phase(Phase.STOPPED)


async def start(ctx: Context, task: QueuedTask) -> None:
    layout = ctx.layout_or_fail()
    # Configs as this version writes them (patched: histories from before replay as they ran)
    if ctx.memory.applied_spec is not None and workflow.patched("start-reprovisions"):
        await reprovision(ctx, layout, ctx.memory.applied_spec)
    await start_cluster(ctx, layout)
    ctx.set_phase(Phase.RUNNING)


async def delete(ctx: Context, task: QueuedTask) -> None:
    """Stop and retire every node (data kept unless `deletionPolicy: Delete`). Each step can
    run again: a delete that failed is retried by a new delete."""
    ctx.set_phase(Phase.DELETING)
    layout = ctx.memory.layout
    if layout is not None:
        if workflow.patched("backup-schedule"):
            await backups.sync_schedule(ctx, None)  # the backups themselves are kept
        await stop_all_nodes(ctx)
        ctx.stop_watcher()
        await ctx.act(
            ClusterActivities.retire_cluster,
            RetireInput(layout=layout, delete_data=ctx.spec.deletion_policy == "Delete"),
        )
    ctx.set_phase(Phase.DELETED)
    ctx.memory.queue.clear()


async def stop_all_nodes(ctx: Context) -> None:
    """Graceful stop, the writer last: the last node down is the one safe to bootstrap."""
    layout = ctx.layout_or_fail()
    order = sorted(layout.nodes, key=lambda n: (n.name == ctx.memory.writer, -n.ordinal))
    for node in order:
        await ctx.act(ClusterActivities.stop_node, StopInput(layout=layout, node=node.name))
