"""Client-side backup operations, shared by the CLI and the benches: start one and follow it,
list what is stored, restore. Progress is read from the running backup activity's last
heartbeat (describe), so the workflow's history does not grow with it."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.backup.activities import schedule_id
from activities.backup.storage import BackupNotFound, FilesystemStorage, StorageError
from activities.local.runtime import LocalRuntime
from api.backup import (
    BackupManifest,
    BackupPhase,
    BackupRecord,
    BackupRequest,
    RestoreRecord,
    RestoreRequest,
)
from api.cluster import ClusterStatus, MySQLClusterSpec, cluster_workflow_id
from api.messages import QUERY_SPEC, UPDATE_BACKUP, UPDATE_RESTORE
from workers.control import UsageError, command, running_handle, status

ENDED = (BackupPhase.SUCCEEDED, BackupPhase.FAILED)


async def start_backup(
    client: Client, namespace: str, name: str, backup: str | None, reason: str
) -> str:
    """Queue a backup; its name (chosen by the workflow unless given)."""
    result = await command(
        client, namespace, name, UPDATE_BACKUP, BackupRequest(name=backup, reason=reason)
    )
    assert result.name is not None
    return result.name


async def start_restore(
    client: Client,
    namespace: str,
    name: str,
    backup: str | None,
    reason: str,
    resource: str | None = None,
) -> str:
    """Queue an in-place restore; the task id. A backup that is not stored is refused here,
    before anything is queued (the workflow verifies it again, end to end). `resource`: the
    MySQLRestore asking, whose restore is done once."""
    if backup is not None:
        storage = await cluster_storage(client, namespace, name)
        try:
            storage.manifest(backup)
        except (BackupNotFound, StorageError) as error:
            raise UsageError(str(error)) from None
    result = await command(
        client,
        namespace,
        name,
        UPDATE_RESTORE,
        RestoreRequest(backup=backup, name=resource, reason=reason),
    )
    assert result.task_id is not None
    return result.task_id


async def cluster_storage(client: Client, namespace: str, name: str) -> FilesystemStorage:
    """The cluster's backup storage as its spec names it (the default place for a cluster
    whose workflow has ended: its backups outlive it)."""
    try:
        handle = await running_handle(client, namespace, name)
        spec = await handle.query(QUERY_SPEC, result_type=MySQLClusterSpec)
        path = spec.backup.storage.filesystem.path
    except UsageError:
        path = None
    root = Path(path) if path else LocalRuntime().backup_root()
    return FilesystemStorage(root, namespace, name)


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


async def stored_backups(client: Client, namespace: str, name: str) -> list[BackupManifest]:
    storage = await cluster_storage(client, namespace, name)
    try:
        return storage.manifests()
    except StorageError as error:
        raise RuntimeError(str(error)) from None


async def follow_backup(
    client: Client,
    namespace: str,
    name: str,
    backup: str,
    timeout: float,
    progress: Callable[[BackupRecord], None],
) -> BackupRecord:
    """Until the backup ended (Succeeded or Failed), reporting it every few seconds."""
    deadline = time.monotonic() + timeout
    reported = 0.0
    while True:
        current = await with_progress(
            client, namespace, name, await status(client, namespace, name)
        )
        record = next((r for r in current.backups if r.name == backup), None)
        if record is None:
            raise RuntimeError(f"backup {backup} is no longer in the cluster's status")
        if record.phase in ENDED:
            return record
        if time.monotonic() - reported > 5:
            progress(record)
            reported = time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"backup {backup} not done within {timeout:.0f} s")
        await asyncio.sleep(0.5)


async def follow_restore(
    client: Client, namespace: str, name: str, task_id: str, timeout: float
) -> tuple[RestoreRecord, ClusterStatus]:
    """Until the restore ended and, when it succeeded, the cluster is Green and idle."""
    deadline = time.monotonic() + timeout
    while True:
        current = await status(client, namespace, name)
        record = next((r for r in current.restores if r.task_id == task_id), None)
        if record is None:
            raise RuntimeError(f"restore {task_id} is no longer in the cluster's status")
        settled = current.current_task is None and not current.queued_tasks
        if record.phase is BackupPhase.FAILED or (
            record.phase is BackupPhase.SUCCEEDED and settled and current.state.value == "Green"
        ):
            return record, current
        if time.monotonic() > deadline:
            raise TimeoutError(f"restore {task_id} not done within {timeout:.0f} s")
        await asyncio.sleep(0.5)


async def with_progress(
    client: Client, namespace: str, name: str, current: ClusterStatus
) -> ClusterStatus:
    """The status with the running backup's bytes streamed so far filled in."""
    for record in current.backups:
        if record.phase is BackupPhase.RUNNING:
            record.progress_bytes = await _streamed(client, namespace, name)
    return current


async def _streamed(client: Client, namespace: str, name: str) -> int | None:
    """Bytes streamed so far, from the backup activity's last heartbeat."""
    handle = client.get_workflow_handle(cluster_workflow_id(namespace, name))
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != "take_backup" or not pending.heartbeat_details.payloads:
            continue
        details = await client.data_converter.decode(pending.heartbeat_details.payloads)
        if details and isinstance(details[0], dict):
            return int(details[0].get("streamed", 0))
    return None
