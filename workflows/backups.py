"""Backups and restores in the cluster workflow: tasks in the one queue, never beside a repair,
a restore or another backup.

A mixin of `ClusterWorkflow` (workflows/cluster.py), like `Repairs`. Rules, in order:
- A backup is taken from a Green node that is not the writer (the highest ordinal), the writer
  only when nothing else is Green. The node is desynced for the duration and always resynced:
  the activity does it, and this workflow does it again in `finally`, which also covers a
  worker that died mid-backup.
- A scheduled run arriving while a backup is queued or running is skipped (overlap: skip).
- Retention runs after each successful backup and never removes the newest.
- A restore verifies the backup (size, sha256, disk space) and unpacks and prepares it beside
  the data of the first node while the cluster still serves; only then are the nodes stopped,
  every data directory moved aside (never deleted), the restored one installed, bootstrapped,
  and the others joined by SST.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

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
        BackupPhase,
        BackupRecord,
        BackupRequest,
        BackupTrigger,
        RestoreRecord,
        RestoreRequest,
        RestoreSource,
        RetentionResult,
        StorageRef,
    )
    from api.base import ObjectMeta
    from api.cluster import MySQLClusterSpec
    from api.layout import ClusterLayout
    from api.messages import (
        SIGNAL_SCHEDULED_BACKUP,
        UPDATE_BACKUP,
        UPDATE_RESTORE,
        ClusterMemory,
        CommandResult,
        NodeMemory,
        QueuedTask,
    )
    from api.states import NodeState, Phase
    from workflows.repair import TaskFailed

RECORDS_KEPT = 20
LONG = timedelta(hours=12)  # a backup or restore of a large database
HEARTBEAT = timedelta(seconds=60)
BACKUP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), backoff_coefficient=2, maximum_attempts=3
)


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


class Backups:
    """Backup and restore tasks for the cluster workflow; the host class provides the rest."""

    memory: ClusterMemory
    spec: MySQLClusterSpec
    meta: ObjectMeta
    current: QueuedTask | None

    if TYPE_CHECKING:

        async def _act(
            self,
            activity: Callable[..., Any],
            argument: Any,
            timeout: timedelta = ...,
            heartbeat: timedelta | None = ...,
            summary: str | None = ...,
        ) -> Any: ...

        async def _start_cluster(
            self, layout: ClusterLayout, bootstrap_from: str | None = ...
        ) -> None: ...

        async def _stop_all_nodes(self) -> None: ...

        def _layout_or_fail(self) -> ClusterLayout: ...

        def _transition(self, subject: str, before: str, after: str, reason: str) -> None: ...

        def _set_phase(self, phase: Phase) -> None: ...

        def _refuse_when_ending(self) -> None: ...

        def _being_created(self) -> bool: ...

        def _new_task(self, kind: str, reason: str) -> QueuedTask: ...

    # -- backup ----------------------------------------------------------------------------

    async def _backup(self, task: QueuedTask) -> None:
        record = self._backup_record(task.id)
        record.phase = BackupPhase.RUNNING
        record.started_at = workflow.now()
        try:
            if self.memory.phase != Phase.RUNNING.value:
                raise TaskFailed(f"the cluster is {self.memory.phase}: a backup needs it running")
            layout = self._layout_or_fail()
            node = choose_backup_node(self.memory.nodes, self.memory.writer)
            record.node = node
            keep_for = task.backup.keep_for if task.backup else None
            manifest = await self._take_backup(layout, node, record, keep_for)
        except (ActivityError, TaskFailed) as error:
            record.phase = BackupPhase.FAILED
            record.error = _cause(error)
            raise
        finally:
            record.finished_at = workflow.now()
        record.phase = BackupPhase.SUCCEEDED
        record.size_bytes = manifest.stored_bytes
        record.streamed_bytes = manifest.streamed_bytes
        record.position = manifest.position
        record.gtid = manifest.gtid
        record.location = manifest.location
        record.sha256 = manifest.sha256
        try:
            retained: RetentionResult = await self._act(
                BackupActivities.apply_retention,
                RetentionInput(storage=self._storage(), retention=self.spec.backup.retention),
                timeout=LONG,
                heartbeat=HEARTBEAT,
            )
            record.deleted_by_retention = retained.deleted
            if retained.unverified or retained.newest_good is None:
                self._transition("cluster", "retention", "warning", retained.summary())
        except ActivityError as error:  # the backup stands; retention runs again next time
            self._transition("cluster", "retention", "failed", _cause(error))

    async def _take_backup(
        self, layout: ClusterLayout, node: str, record: BackupRecord, keep_for: str | None = None
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
                    storage=self._storage(),
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
            await self._act(
                BackupActivities.resync_node,
                NodeInput(layout=layout, node=node),
                summary=f"resync {node} after backup {record.name}",
            )

    def _storage(self, cluster: str | None = None) -> StorageRef:
        return StorageRef(
            path=self.spec.backup.storage.filesystem.path,
            namespace=self.meta.namespace,
            cluster=cluster or self.meta.name,
        )

    def _backup_record(self, task_id: str) -> BackupRecord:
        record = next((r for r in self.memory.backups if r.task_id == task_id), None)
        if record is None:  # kept records are bounded; a long queue may have outlived one
            raise TaskFailed(f"the record of {task_id} is gone")
        return record

    def _queue_backup(self, request: BackupRequest) -> CommandResult:
        task = self._new_task("backup", request.reason or f"{request.trigger.value} backup")
        name = request.name or f"{self.meta.name}-{workflow.now():%Y%m%d-%H%M%S}"
        task.backup = request.model_copy(update={"name": name})
        self.memory.backups.append(
            BackupRecord(
                name=name,
                backup_id=str(workflow.uuid4()),
                task_id=task.id,
                trigger=request.trigger,
                requested_at=workflow.now(),
            )
        )
        del self.memory.backups[:-RECORDS_KEPT]
        self.memory.queue.append(task)
        return CommandResult(
            accepted=True, task_id=task.id, name=name, message=f"backup {name} queued as {task.id}"
        )

    def _backup_busy(self) -> bool:
        tasks = [*self.memory.queue, *([self.current] if self.current else [])]
        return any(t.kind == "backup" for t in tasks)

    @workflow.update(name=UPDATE_BACKUP)
    def backup(self, request: BackupRequest) -> CommandResult:
        return self._queue_backup(request)

    @backup.validator
    def _validate_backup(self, request: BackupRequest) -> None:
        self._refuse_when_ending()
        if not self.memory.created and not self._being_created():
            raise ValueError("the cluster was never created")
        if self.memory.phase == Phase.STOPPED.value:
            raise ValueError("the cluster is stopped: a hot backup needs it running")
        if request.name and any(r.name == request.name for r in self.memory.backups):
            raise ValueError(f"a backup named {request.name!r} was already taken or queued")

    @workflow.signal(name=SIGNAL_SCHEDULED_BACKUP)
    def scheduled_backup(self, request: BackupRequest) -> None:
        """A run of the cluster's Schedule. Skipped, with a transition saying why, when the
        cluster cannot take it or a backup is already queued or running."""
        reason = None
        if not self.memory.created or self.memory.phase != Phase.RUNNING.value:
            reason = f"the cluster is {self.memory.phase}"
        elif self._backup_busy():
            reason = "a backup is already queued or running"
        if reason:
            self._transition("cluster", "scheduled backup", "skipped", reason)
            return
        self._queue_backup(request.model_copy(update={"trigger": BackupTrigger.SCHEDULE}))

    async def _sync_schedule(self, cron: str | None) -> None:
        """The cluster's backup Schedule follows its spec; a failure leaves the task done and
        says so (the next apply tries again)."""
        try:
            result = await self._act(
                BackupActivities.sync_backup_schedule,
                ScheduleInput(
                    cluster=self._layout_or_fail().cluster,
                    cluster_workflow_id=workflow.info().workflow_id,
                    cron=cron,
                ),
            )
            self._transition("cluster", "backup schedule", cron or "none", result)
        except ActivityError as error:
            self._transition("cluster", "backup schedule", "failed", _cause(error))

    # -- restore ---------------------------------------------------------------------------

    async def _restore(self, task: QueuedTask) -> None:
        record = next((r for r in self.memory.restores if r.task_id == task.id), None)
        if record is None:
            raise TaskFailed(f"the record of {task.id} is gone")
        await self._run_restore(self._layout_or_fail(), record, self._storage())
        self._set_phase(Phase.RUNNING)

    async def _create_from_backup(
        self, task: QueuedTask, layout: ClusterLayout, source: RestoreSource
    ) -> None:
        """`spec.restoreFrom`: the new cluster's data is a backup's, not an empty one."""
        record = self._restore_record(task.id, source.backup)
        await self._run_restore(layout, record, self._storage(source.cluster))

    async def _run_restore(
        self, layout: ClusterLayout, record: RestoreRecord, storage: StorageRef
    ) -> None:
        try:
            await self._restore_into(layout, record, storage)
        except (ActivityError, TaskFailed) as error:
            record.phase = BackupPhase.FAILED
            record.error = _cause(error)
            raise
        finally:
            record.finished_at = workflow.now()

    async def _restore_into(
        self, layout: ClusterLayout, record: RestoreRecord, storage: StorageRef
    ) -> None:
        """Verify and stage first (nothing stopped yet), then swap the data and bootstrap."""
        target = layout.nodes[0].name
        record.node = target
        record.phase = BackupPhase.RUNNING
        record.started_at = workflow.now()
        manifest: BackupManifest = await self._act(
            BackupActivities.find_backup,
            FindBackupInput(layout=layout, node=target, storage=storage, name=record.backup),
            timeout=LONG,
            heartbeat=HEARTBEAT,
            summary=f"find and verify backup {record.backup or '(latest)'}",
        )
        record.backup = manifest.name
        record.position = manifest.position
        staging: str = await self._act(
            BackupActivities.receive_backup,
            ReceiveBackupInput(layout=layout, node=target, storage=storage, manifest=manifest),
            timeout=LONG,
            heartbeat=HEARTBEAT,
            summary=f"unpack and prepare {manifest.name} beside {target}'s data",
        )
        self._transition(
            "cluster",
            self.memory.phase,
            "restoring",
            f"restoring {manifest.name} ({manifest.position}) onto {target}",
        )
        if self.memory.created:
            await self._stop_all_nodes()
        for node in layout.nodes:
            kept: str = await self._act(
                ClusterActivities.set_aside_data, NodeInput(layout=layout, node=node.name)
            )
            if kept:
                record.set_aside[node.name] = kept
                record.rollback = rollback_hint(record.set_aside)
        await self._act(
            BackupActivities.install_restored_data,
            InstallRestoredInput(layout=layout, node=target, staging=staging),
        )
        await self._start_cluster(layout, bootstrap_from=target)
        record.phase = BackupPhase.SUCCEEDED

    def _queue_restore(self, request: RestoreRequest) -> CommandResult:
        task = self._new_task("restore", request.reason or "restore requested")
        task.restore = request
        self._restore_record(task.id, request.backup).name = request.name
        self.memory.queue.append(task)
        what = request.backup or "the latest backup"
        return CommandResult(
            accepted=True, task_id=task.id, message=f"restore of {what} queued as {task.id}"
        )

    def _restore_record(self, task_id: str, backup: str | None) -> RestoreRecord:
        record = RestoreRecord(task_id=task_id, backup=backup, requested_at=workflow.now())
        self.memory.restores.append(record)
        del self.memory.restores[:-RECORDS_KEPT]
        return record

    @workflow.update(name=UPDATE_RESTORE)
    def restore(self, request: RestoreRequest) -> CommandResult:
        return self._queue_restore(request)

    @restore.validator
    def _validate_restore(self, request: RestoreRequest) -> None:
        self._refuse_when_ending()
        if not self.memory.created:
            raise ValueError("the cluster was never created")
        if any(t.kind == "restore" for t in self.memory.queue):
            raise ValueError("a restore is already queued")
        if request.name and any(r.name == request.name for r in self.memory.restores):
            raise ValueError(f"the restore {request.name!r} was already requested")


def _cause(error: BaseException) -> str:
    cause = error.cause if isinstance(error, ActivityError) and error.cause else error
    return str(cause)
