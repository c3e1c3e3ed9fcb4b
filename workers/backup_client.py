"""Backups and restores from outside the workflow, shared by the CLI, the benchmarks and the
tests: queue one, follow it to its record, list what is stored, read the backup Schedule.

Progress is read from the running backup activity's last heartbeat (describe), so the
workflow's history does not grow with it.
"""

import time
from collections.abc import Callable
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from activities.backup.activities import schedule_id
from activities.backup.storage import BackupNotFound, FilesystemStorage, StorageError
from activities.local.runtime import LocalRuntime
from api.backup import BackupManifest, BackupRecord, BackupRequest, RestoreRecord, RestoreRequest
from api.cluster import ClusterStatus
from api.messages import UPDATE_BACKUP, UPDATE_RESTORE, CommandResult
from api.states import BackupPhase
from workers.client import ClusterClient, green_and_idle
from workers.errors import UsageError

PROGRESS_EVERY = 5.0  # seconds between two progress reports of a running backup


async def start_backup(
    cluster: ClusterClient, name: str | None, reason: str, keep_for: str | None = None
) -> CommandResult:
    """Queue a manual backup: `name` (the workflow chooses one otherwise) kept for `keep_for`
    (a duration such as '30d'; None: until deleted by hand). The result names the backup and
    its task."""
    request = BackupRequest(name=name, reason=reason, keep_for=keep_for)
    return await cluster.command(UPDATE_BACKUP, request)


async def finished_backup(
    cluster: ClusterClient,
    task_id: str,
    timeout: float,
    progress: Callable[[BackupRecord], None] | None = None,
) -> BackupRecord:
    """The record of the backup once its task has ended, Succeeded or Failed; `progress` is
    shown the running record every PROGRESS_EVERY seconds meanwhile."""
    reported = 0.0

    async def report(current: ClusterStatus) -> None:
        nonlocal reported
        record = _backup(current, task_id)
        if progress is None or record is None or record.phase is not BackupPhase.RUNNING:
            return
        if time.monotonic() - reported > PROGRESS_EVERY:
            record.progress_bytes = await streamed_bytes(cluster)
            progress(record)
            reported = time.monotonic()

    await cluster.wait_for_task(task_id, timeout, check=False, watch=report)
    record = _backup(await cluster.status(), task_id)
    if record is None:
        raise RuntimeError(f"the record of backup task {task_id} is no longer in the status")
    return record


def _backup(status: ClusterStatus, task_id: str) -> BackupRecord | None:
    return next((r for r in status.backups if r.task_id == task_id), None)


async def start_restore(
    cluster: ClusterClient,
    backup: str | None,
    reason: str,
    resource: str | None = None,
) -> CommandResult:
    """Queue an in-place restore of `backup` (None: the latest). A backup that is not stored is
    refused here, before anything is queued (the workflow verifies it again, end to end).
    `resource`: the MySQLRestore asking, whose restore is done once."""
    if backup is not None:
        storage = await storage_of(cluster)
        try:
            storage.manifest(backup)
        except (BackupNotFound, StorageError) as error:
            raise UsageError(str(error)) from None
    request = RestoreRequest(backup=backup, name=resource, reason=reason)
    return await cluster.command(UPDATE_RESTORE, request)


async def finished_restore(
    cluster: ClusterClient, task_id: str, timeout: float
) -> tuple[RestoreRecord, ClusterStatus]:
    """The restore's record once its task has ended and, when it succeeded, the cluster is
    Green and idle again; and that status."""
    deadline = time.monotonic() + timeout
    await cluster.wait_for_task(task_id, timeout, check=False)
    current = await cluster.status()
    record = next((r for r in current.restores if r.task_id == task_id), None)
    if record is None:
        raise RuntimeError(f"the record of restore task {task_id} is no longer in the status")
    if record.phase is BackupPhase.SUCCEEDED:
        left = max(deadline - time.monotonic(), 0.0)
        current = await cluster.wait_until(green_and_idle, left, "Green after the restore")
    return record, current


async def cluster_storage(client: Client, namespace: str, name: str) -> FilesystemStorage:
    """The cluster's backup storage as its spec names it (the default place for a cluster
    whose workflow has ended: its backups outlive it)."""
    try:
        cluster = await ClusterClient.attach(client, namespace, name)
    except UsageError:
        return FilesystemStorage(LocalRuntime().backup_root(), namespace, name)
    return await storage_of(cluster)


async def storage_of(cluster: ClusterClient) -> FilesystemStorage:
    """The backup storage the cluster's spec names."""
    path = (await cluster.spec()).backup.storage.filesystem.path
    root = Path(path) if path else LocalRuntime().backup_root()
    return FilesystemStorage(root, cluster.namespace, cluster.name)


async def stored_backups(client: Client, namespace: str, name: str) -> list[BackupManifest]:
    storage = await cluster_storage(client, namespace, name)
    try:
        return storage.manifests()
    except StorageError as error:
        raise RuntimeError(str(error)) from None


async def schedule_summary(client: Client, namespace: str, name: str) -> str | None:
    """The cluster's backup Schedule in one line (none when it has no schedule)."""
    handle = client.get_schedule_handle(schedule_id(namespace, name))
    try:
        described = await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    upcoming = described.info.next_action_times
    state = "paused" if described.schedule.state.paused else "active"
    following = f"next run {upcoming[0]:%Y-%m-%d %H:%M} UTC" if upcoming else "no next run"
    return f"schedule {handle.id}: {state}, {following}, {described.info.num_actions} runs so far"


async def with_progress(cluster: ClusterClient, current: ClusterStatus) -> ClusterStatus:
    """The status with the running backup's bytes streamed so far filled in."""
    for record in current.backups:
        if record.phase is BackupPhase.RUNNING:
            record.progress_bytes = await streamed_bytes(cluster)
    return current


async def streamed_bytes(cluster: ClusterClient) -> int | None:
    """Bytes the running backup has streamed so far, from its activity's last heartbeat."""
    description = await cluster.handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != "take_backup" or not pending.heartbeat_details.payloads:
            continue
        details = await pydantic_data_converter.decode(pending.heartbeat_details.payloads)
        if details and isinstance(details[0], dict):
            return int(details[0].get("streamed", 0))
    return None
