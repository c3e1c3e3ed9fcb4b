"""Backup and restore tasks: in the one queue, never beside a repair, a restore or another
backup. Rules, in order:
- A backup is taken from a Green node that is not the writer (the highest ordinal), the writer
  only when nothing else is Green. The node is desynced for the duration and always resynced:
  the activity does it, and this module does it again in `finally`, which also covers a
  worker that died mid-backup.
- A scheduled run arriving while a backup is queued or running is skipped (overlap: skip).
- Retention runs after each successful backup: the cluster's policy prunes scheduled backups,
  manual ones follow their own `keepFor`, and the newest verified backup is always kept.
- A restore verifies the backup (size, sha256, disk space) and unpacks and prepares it beside
  the data of the first node while the cluster still serves; only then are the nodes stopped,
  every data directory moved aside (never deleted), the restored one installed, bootstrapped,
  and the others joined by SST. A restore asked for by name (a MySQLRestore) runs once, ever.
"""

import contextlib
import itertools
from collections.abc import Iterator
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.backup.activities import BackupActivities
    from activities.backup.messages import (
        FindBackupInput,
        InstallRestoredInput,
        ReceiveBackupInput,
        RetentionInput,
        ScheduleInput,
        TakeBackupInput,
    )
    from activities.cluster import ClusterActivities
    from activities.messages import NodeInput
    from api.backup import (
        BackupManifest,
        BackupRecord,
        BackupRequest,
        BackupTrigger,
        RestoreRecord,
        RestoreRequest,
        RestoreSource,
        RetentionResult,
        StorageRef,
        TaskRecord,
    )
    from api.layout import ClusterLayout
    from api.messages import CommandResult, NodeMemory, QueuedTask
    from api.states import BackupPhase, NodeState, Phase, TaskKind
    from workflows import lifecycle
    from workflows.context import Context
    from workflows.errors import TaskFailed

RECORDS_KEPT = 20  # ended records; those of queued or running tasks are always kept
RESTORE_NAMES_KEPT = 10_000  # names of MySQLRestores carried out: about 30 bytes each
LONG = timedelta(hours=12)  # a backup or restore of a large database
HEARTBEAT = timedelta(seconds=60)
BACKUP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), backoff_coefficient=2, maximum_attempts=3
)
ENDED = (BackupPhase.SUCCEEDED, BackupPhase.FAILED)


def choose_backup_node(nodes: list[NodeMemory], writer: str | None) -> str:
    """A Green node that is not the writer, the highest ordinal (the writer is usually 0);
    the writer itself only when it is the one Green node."""
    green = [n for n in nodes if n.state is NodeState.GREEN]
    if not green:
        raise TaskFailed("no Green node to take a backup from")
    readers = [n for n in green if n.name != writer]
    return max(readers or green, key=lambda n: n.ordinal).name


def rollback_hint(set_aside: dict[str, str]) -> str:
    moves = "; ".join(f"{node}: {path}" for node, path in sorted(set_aside.items()))
    return (
        f"the data from before the restore is kept ({moves}). To go back: `mysqlops stop`, "
        "move each node's data directory aside and that path back in its place, then "
        "`mysqlops start`"
    )


def trim(records: list[BackupRecord] | list[RestoreRecord]) -> None:
    """Keep the latest ended records and every record whose task has not ended."""
    ended = [r.task_id for r in records if r.phase in ENDED]
    gone = set(ended[:-RECORDS_KEPT])
    for index in reversed(range(len(records))):
        if records[index].task_id in gone:
            del records[index]


# -- backup --------------------------------------------------------------------------------


async def backup(ctx: Context, task: QueuedTask) -> None:
    record = _backup_record(ctx, task.id)
    record.phase = BackupPhase.RUNNING
    record.started_at = workflow.now()
    with _ending(record):
        if ctx.memory.phase is not Phase.RUNNING:
            raise TaskFailed(f"the cluster is {ctx.memory.phase}: a backup needs it running")
        layout = ctx.layout_or_fail()
        node = choose_backup_node(ctx.memory.nodes, ctx.memory.writer)
        record.node = node
        keep_for = task.backup.keep_for if task.backup else None
        manifest = await _take_backup(ctx, layout, node, record, keep_for)
    record.phase = BackupPhase.SUCCEEDED
    record.size_bytes = manifest.stored_bytes
    record.streamed_bytes = manifest.streamed_bytes
    record.position = manifest.position
    record.gtid = manifest.gtid
    record.location = manifest.location
    record.sha256 = manifest.sha256
    try:
        retained: RetentionResult = await ctx.act(
            BackupActivities.apply_retention,
            RetentionInput(storage=_storage(ctx), retention=ctx.spec.backup.retention),
            timeout=LONG,
            heartbeat=HEARTBEAT,
        )
        record.deleted_by_retention = retained.deleted
        if retained.unverified or retained.newest_good is None:
            ctx.transition("cluster", "retention", "warning", retained.summary())
    except ActivityError as error:  # the backup stands; retention runs again next time
        ctx.transition("cluster", "retention", "failed", _cause(error))


async def _take_backup(
    ctx: Context, layout: ClusterLayout, node: str, record: BackupRecord, keep_for: str | None
) -> BackupManifest:
    try:
        manifest: BackupManifest = await workflow.execute_activity_method(
            BackupActivities.take_backup,
            TakeBackupInput(
                layout=layout,
                node=node,
                name=record.name,
                backup_id=record.backup_id,
                trigger=record.trigger,
                storage=_storage(ctx),
                keep_for=keep_for,
            ),
            start_to_close_timeout=LONG,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=BACKUP_RETRY,
            summary=f"backup {record.name} from {node} (desynced for the duration)",
        )
        return manifest
    finally:
        # Whatever happened to the activity (and its worker), the node rejoins flow control.
        await ctx.act(
            BackupActivities.resync_node,
            NodeInput(layout=layout, node=node),
            summary=f"resync {node} after backup {record.name}",
        )


def _storage(ctx: Context, cluster: str | None = None) -> StorageRef:
    return StorageRef(
        path=ctx.spec.backup.storage.filesystem.path,
        namespace=ctx.meta.namespace,
        cluster=cluster or ctx.meta.name,
    )


def _backup_record(ctx: Context, task_id: str) -> BackupRecord:
    record = next((r for r in ctx.memory.backups if r.task_id == task_id), None)
    if record is None:  # trimmed by a version that trimmed records of queued tasks
        raise TaskFailed(f"the record of {task_id} is gone")
    return record


def generated_name(stem: str, taken: set[str]) -> str:
    """`stem` (`<cluster>-<UTC time to the second>`), or `stem-2`, `stem-3`... for further
    backups requested in the same second (a scheduled run and a manual one, two triggers): the
    records hold every name recent enough to collide."""
    return next(
        name for n in itertools.count(1) if (name := stem if n == 1 else f"{stem}-{n}") not in taken
    )


def queue_backup(ctx: Context, request: BackupRequest) -> CommandResult:
    task = ctx.new_task(TaskKind.BACKUP, request.reason or f"{request.trigger.value} backup")
    stem = f"{ctx.meta.name}-{workflow.now():%Y%m%d-%H%M%S}"
    name = request.name or generated_name(stem, {r.name for r in ctx.memory.backups})
    task.backup = request.model_copy(update={"name": name})
    ctx.memory.backups.append(
        BackupRecord(
            name=name,
            backup_id=str(workflow.uuid4()),
            task_id=task.id,
            trigger=request.trigger,
            requested_at=workflow.now(),
        )
    )
    trim(ctx.memory.backups)
    ctx.enqueue(task)
    return CommandResult(
        accepted=True, task_id=task.id, name=name, message=f"backup {name} queued as {task.id}"
    )


def check_backup(ctx: Context, request: BackupRequest) -> None:
    """The backup update's validator: a ValueError says why nothing was queued."""
    ctx.refuse_when_ending()
    if not ctx.memory.created and not ctx.being_created():
        raise ValueError("the cluster was never created")
    if ctx.memory.phase is Phase.STOPPED:
        raise ValueError("the cluster is stopped: a hot backup needs it running")
    if request.name and any(r.name == request.name for r in ctx.memory.backups):
        raise ValueError(f"a backup named {request.name!r} was already taken or queued")


def scheduled_backup(ctx: Context, request: BackupRequest) -> None:
    """A run of the cluster's Schedule. Skipped, with a transition saying why, when the cluster
    cannot take it or a backup is already queued or running."""
    reason = None
    if not ctx.memory.created or ctx.memory.phase is not Phase.RUNNING:
        reason = f"the cluster is {ctx.memory.phase}"
    elif ctx.has_task(TaskKind.BACKUP):
        reason = "a backup is already queued or running"
    if reason:
        ctx.transition("cluster", "scheduled backup", "skipped", reason)
        return
    queue_backup(ctx, request.model_copy(update={"trigger": BackupTrigger.SCHEDULE}))


async def sync_schedule(ctx: Context, cron: str | None) -> None:
    """The cluster's backup Schedule follows its spec; a failure leaves the task done and says
    so (the next apply tries again)."""
    try:
        result = await ctx.act(
            BackupActivities.sync_backup_schedule,
            ScheduleInput(
                cluster=ctx.layout_or_fail().cluster,
                cluster_workflow_id=workflow.info().workflow_id,
                cron=cron,
            ),
        )
        ctx.transition("cluster", "backup schedule", cron or "none", result)
    except ActivityError as error:
        ctx.transition("cluster", "backup schedule", "failed", _cause(error))


# -- restore -------------------------------------------------------------------------------


async def restore(ctx: Context, task: QueuedTask) -> None:
    record = next((r for r in ctx.memory.restores if r.task_id == task.id), None)
    if record is None:
        raise TaskFailed(f"the record of {task.id} is gone")
    await _run_restore(ctx, ctx.layout_or_fail(), record, _storage(ctx))
    ctx.set_phase(Phase.RUNNING)


async def create_from_backup(
    ctx: Context, task: QueuedTask, layout: ClusterLayout, source: RestoreSource
) -> None:
    """`spec.restoreFrom`: the new cluster's data is a backup's, not an empty one."""
    record = _restore_record(ctx, task.id, source.backup)
    await _run_restore(ctx, layout, record, _storage(ctx, source.cluster))


async def _run_restore(
    ctx: Context, layout: ClusterLayout, record: RestoreRecord, storage: StorageRef
) -> None:
    with _ending(record):
        await _restore_into(ctx, layout, record, storage)


async def _restore_into(
    ctx: Context, layout: ClusterLayout, record: RestoreRecord, storage: StorageRef
) -> None:
    """Verify and stage first (nothing stopped yet), then swap the data and bootstrap."""
    target = layout.nodes[0].name
    record.node = target
    record.phase = BackupPhase.RUNNING
    record.started_at = workflow.now()
    manifest: BackupManifest = await ctx.act(
        BackupActivities.find_backup,
        FindBackupInput(layout=layout, node=target, storage=storage, name=record.backup),
        timeout=LONG,
        heartbeat=HEARTBEAT,
        summary=f"find and verify backup {record.backup or '(latest)'}",
    )
    record.backup = manifest.name
    record.position = manifest.position
    staging: str = await ctx.act(
        BackupActivities.receive_backup,
        ReceiveBackupInput(layout=layout, node=target, storage=storage, manifest=manifest),
        timeout=LONG,
        heartbeat=HEARTBEAT,
        summary=f"unpack and prepare {manifest.name} beside {target}'s data",
    )
    ctx.transition(
        "cluster",
        ctx.memory.phase.value,
        "restoring",
        f"restoring {manifest.name} ({manifest.position}) onto {target}",
    )
    if ctx.memory.created:
        await lifecycle.stop_all_nodes(ctx)
    for node in layout.nodes:
        kept: str = await ctx.act(
            ClusterActivities.set_aside_data, NodeInput(layout=layout, node=node.name)
        )
        if kept:
            record.set_aside[node.name] = kept
            record.rollback = rollback_hint(record.set_aside)
    await ctx.act(
        BackupActivities.install_restored_data,
        InstallRestoredInput(layout=layout, node=target, staging=staging),
    )
    await lifecycle.start_cluster(ctx, layout, bootstrap_from=target)
    record.phase = BackupPhase.SUCCEEDED


def queue_restore(ctx: Context, request: RestoreRequest) -> CommandResult:
    task = ctx.new_task(TaskKind.RESTORE, request.reason or "restore requested")
    task.restore = request
    _restore_record(ctx, task.id, request.backup).name = request.name
    if request.name:
        ctx.memory.restored_names.append(request.name)
    ctx.enqueue(task)
    what = request.backup or "the latest backup"
    return CommandResult(
        accepted=True, task_id=task.id, message=f"restore of {what} queued as {task.id}"
    )


def _restore_record(ctx: Context, task_id: str, backup: str | None) -> RestoreRecord:
    record = RestoreRecord(task_id=task_id, backup=backup, requested_at=workflow.now())
    ctx.memory.restores.append(record)
    trim(ctx.memory.restores)
    return record


def check_restore(ctx: Context, request: RestoreRequest) -> None:
    """The restore update's validator. A name once restored is refused for good: the memory
    keeps every name (carried through continue-as-new), not only the latest records."""
    ctx.refuse_when_ending()
    if not ctx.memory.created:
        raise ValueError("the cluster was never created")
    if ctx.has_task(TaskKind.RESTORE, queued_only=True):
        raise ValueError("a restore is already queued")
    if request.name:
        known = set(ctx.memory.restored_names) | {r.name for r in ctx.memory.restores if r.name}
        if request.name in known:
            raise ValueError(f"the restore {request.name!r} was already requested")
        if len(ctx.memory.restored_names) >= RESTORE_NAMES_KEPT:
            raise ValueError(
                f"{RESTORE_NAMES_KEPT} named restores are remembered for this cluster: "
                "restore without a name (mysqlops restore) or recreate the cluster"
            )


@contextlib.contextmanager
def _ending(record: TaskRecord) -> Iterator[None]:
    """A backup's or restore's record ends with its task: Failed with the error when it
    fails, and its end time either way."""
    try:
        yield
    except (ActivityError, TaskFailed) as error:
        record.phase = BackupPhase.FAILED
        record.error = _cause(error)
        raise
    finally:
        record.finished_at = workflow.now()


def _cause(error: BaseException) -> str:
    cause = error.cause if isinstance(error, ActivityError) and error.cause else error
    return str(cause)
