"""The backup and restore activities, over a `Runtime` and a `BackupStorage`.

Idempotent like every activity: a retried backup finds its finished manifest by its id, a
retried restore step finds its work done; bad input fails at once (not retried) with words
for the user, before anything is stopped.
"""

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.backup.messages import (
    FindBackupInput,
    InstallRestoredInput,
    ReceiveBackupInput,
    RetentionInput,
    ScheduleInput,
    TakeBackupInput,
)
from activities.backup.pipeline import BLOCK, compress, heartbeating
from activities.backup.retention import retain
from activities.backup.storage import (
    OBJECT_SUFFIX,
    BackupNotFound,
    BackupStorage,
    StorageError,
    storage_for,
    verify,
)
from activities.messages import NodeInput
from activities.runtime import Runtime
from api.backup import (
    BackupManifest,
    BackupTriggerInput,
    RetentionResult,
    StorageRef,
    duration,
)

TRIGGER_WORKFLOW = "MySQLBackupTrigger"
# Runs missed while the stack was down: one is still taken within this window, not a burst.
CATCHUP = timedelta(hours=1)


def schedule_id(namespace: str, cluster: str) -> str:
    return f"mysqlcluster-backups/{namespace}/{cluster}"


class BackupActivities:
    def __init__(self, runtime: Runtime, client: Client, task_queue: str) -> None:
        self.runtime = runtime
        self.client = client
        self.task_queue = task_queue

    def _storage(self, ref: StorageRef) -> BackupStorage:
        return storage_for(ref, self.runtime.backup_root())

    # -- backup ----------------------------------------------------------------------------

    @activity.defn
    def take_backup(self, request: TakeBackupInput) -> BackupManifest:
        """Desync the node, stream mariabackup's xbstream through zstd into storage (sha256
        and sizes on the way, bytes done in heartbeats), resync it whatever happened."""
        storage = self._storage(request.storage)
        with _user_errors():
            storage.check_writable()
            try:
                existing = storage.manifest(request.name)
            except BackupNotFound:
                existing = None
            if existing is not None:
                if existing.backup_id == request.backup_id:
                    return existing  # this very backup finished before a retry
                raise ApplicationError(
                    f"a backup named {request.name!r} already exists in the storage",
                    type="BackupInvalid",
                    non_retryable=True,
                )
        tool, version = self.runtime.backup_tool()
        key = request.name + OBJECT_SUFFIX
        started = datetime.now(UTC)
        self._desync(request, True)
        try:
            with (
                _user_errors(),
                storage.open_write(key) as out,
                self.runtime.backup_stream(request.layout, request.node) as stream,
            ):
                copied = compress(stream, out)
        finally:
            try:
                self._desync(request, False)
            except Exception as error:  # the workflow's resync_node runs next in any case
                activity.logger.warning("resync of %s failed: %s", request.node, error)
        uuid, seqno = copied.galera_position()
        if uuid is None:
            storage.delete(request.name)
            raise RuntimeError("the backup stream holds no Galera position (--galera-info)")
        finished = datetime.now(UTC)
        manifest = BackupManifest(
            name=request.name,
            backup_id=request.backup_id,
            namespace=request.layout.cluster.namespace,
            cluster=request.layout.cluster.name,
            node=request.node,
            trigger=request.trigger,
            tool=tool,
            tool_version=version,
            galera_uuid=uuid,
            galera_seqno=seqno,
            gtid=copied.gtid(),
            started_at=started,
            finished_at=finished,
            expires_at=finished + duration(request.keep_for) if request.keep_for else None,
            stored_bytes=copied.stored,
            streamed_bytes=copied.streamed,
            sha256=copied.sha256,
            object=key,
            location=storage.location(key),
        )
        storage.put_manifest(manifest)
        return manifest

    @activity.defn
    def resync_node(self, request: NodeInput) -> None:
        """Give a backed-up node back to flow control. A stopped node has nothing to undo:
        wsrep_desync does not outlive the process."""
        if self.runtime.process_facts(request.layout, request.node).alive:
            self.runtime.admin_sql(request.layout, request.node, ["SET GLOBAL wsrep_desync=OFF"])

    def _desync(self, request: TakeBackupInput, on: bool) -> None:
        """Out of flow control while mariabackup holds its locks, so the cluster's writes do
        not wait for the backed-up node (Galera operators do the same for their donors)."""
        self.runtime.admin_sql(
            request.layout, request.node, [f"SET GLOBAL wsrep_desync={'ON' if on else 'OFF'}"]
        )

    @activity.defn
    def apply_retention(self, request: RetentionInput) -> RetentionResult:
        """Delete what the rules let go (`activities/backup/retention.py`): the cluster's
        retention for scheduled backups, each manual backup's own keepFor, never the newest
        backup whose object verifies. Verifying hashes objects, newest first until one is
        good: heartbeats say which one and how far. The result says what was deleted, the
        newest good backup, and what does not verify or was spared, with why."""
        storage = self._storage(request.storage)
        progress: dict[str, object] = {"verifying": None, "hashed": 0}

        def check(manifest: BackupManifest) -> None:
            progress.update(verifying=manifest.name, hashed=0)
            verify(storage, manifest, lambda done: progress.update(hashed=done))

        with _user_errors(), heartbeating(lambda: dict(progress)):
            result = retain(storage.manifests(), request.retention, datetime.now(UTC), check)
            for name in result.deleted:
                storage.delete(name)
        activity.logger.info("retention of %s: %s", request.storage.cluster, result.summary())
        return result

    # -- restore ---------------------------------------------------------------------------

    @activity.defn
    def find_backup(self, request: FindBackupInput) -> BackupManifest:
        """The backup to restore, checked end to end before anything stops: its object is
        all there and hashes to the manifest's sha256, and the node has room to unpack it."""
        storage = self._storage(request.storage)
        with _user_errors():
            if request.name is None:
                found = storage.manifests()
                if not found:
                    raise BackupNotFound(f"no backups of {request.storage.cluster} yet")
                manifest = found[-1]
            else:
                manifest = storage.manifest(request.name)
            with heartbeating(lambda: f"verifying {manifest.name}"):
                verify(storage, manifest)
            needed = int(manifest.streamed_bytes * 1.1) + (64 << 20)
            free = self.runtime.free_bytes(request.layout, request.node)
            if free < needed:
                raise StorageError(
                    f"not enough disk on {request.node} to restore {manifest.name}: "
                    f"{free >> 20} MiB free, {needed >> 20} MiB needed"
                )
        return manifest

    @activity.defn
    def receive_backup(self, request: ReceiveBackupInput) -> str:
        """Unpack and prepare the backup beside the node's data (the cluster still runs)."""
        storage = self._storage(request.storage)
        manifest = request.manifest
        digest = hashlib.sha256()

        def verified() -> Iterator[bytes]:
            yield from _read(storage, manifest.object, digest.update)
            if digest.hexdigest() != manifest.sha256:
                raise StorageError(f"backup {manifest.name} changed while it was read")

        with _user_errors(), heartbeating(lambda: f"unpacking and preparing {manifest.name}"):
            return self.runtime.receive_backup(
                request.layout, request.node, manifest.name, verified()
            )

    @activity.defn
    def install_restored_data(self, request: InstallRestoredInput) -> None:
        self.runtime.install_restored_data(request.layout, request.node, request.staging)

    # -- schedule --------------------------------------------------------------------------

    @activity.defn
    async def sync_backup_schedule(self, request: ScheduleInput) -> str:
        """Create, update or remove the cluster's backup Schedule; an operator's pause stays."""
        ident = schedule_id(request.cluster.namespace, request.cluster.name)
        handle = self.client.get_schedule_handle(ident)
        if request.cron is None:
            try:
                await handle.delete()
            except RPCError as error:
                if error.status is not RPCStatusCode.NOT_FOUND:
                    raise
            return f"no backup schedule ({ident} removed if it existed)"
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                TRIGGER_WORKFLOW,
                BackupTriggerInput(cluster_workflow_id=request.cluster_workflow_id),
                id=f"backup-trigger/{request.cluster.namespace}/{request.cluster.name}",
                task_queue=self.task_queue,
            ),
            spec=ScheduleSpec(cron_expressions=[request.cron]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP),
            state=ScheduleState(
                note=f"backups of {request.cluster.key}, each run handed to "
                f"{request.cluster_workflow_id}"
            ),
        )
        try:
            await self.client.create_schedule(ident, schedule)
            return f"schedule {ident} created: {request.cron}"
        except ScheduleAlreadyRunningError:

            def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
                schedule.state = current.description.schedule.state
                return ScheduleUpdate(schedule=schedule)

            await handle.update(keep_state)
            return f"schedule {ident} updated: {request.cron}"


def _read(storage: BackupStorage, key: str, hashed: Callable[[bytes], None]) -> Iterator[bytes]:
    """The stored object block by block, hashed on the way."""
    with storage.open_read(key) as stream:
        while block := stream.read(BLOCK):
            hashed(block)
            yield block


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Storage and lookup failures are the user's to fix: fail at once, not retried."""
    try:
        yield
    except (StorageError, BackupNotFound) as error:
        raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from None
    except PermissionError as error:
        raise ApplicationError(
            f"the backup storage is not accessible: {error}",
            type="StorageError",
            non_retryable=True,
        ) from None
