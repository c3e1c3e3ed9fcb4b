"""Inputs of the backup and restore activities: one model argument per activity."""

from activities.runtime import ClusterLayout, ClusterRef
from api.backup import BackupManifest, BackupTrigger, RetentionSpec, StorageRef
from api.base import ApiModel


class TakeBackupInput(ApiModel):
    layout: ClusterLayout
    node: str
    name: str
    backup_id: str  # unique per request: a retry finds its own finished backup by it
    trigger: BackupTrigger
    storage: StorageRef


class FindBackupInput(ApiModel):
    """Find a backup (None: the latest) and check it can be restored on `node`."""

    layout: ClusterLayout
    node: str
    storage: StorageRef
    name: str | None = None


class ReceiveBackupInput(ApiModel):
    layout: ClusterLayout
    node: str
    storage: StorageRef
    manifest: BackupManifest


class InstallRestoredInput(ApiModel):
    layout: ClusterLayout
    node: str
    staging: str


class RetentionInput(ApiModel):
    storage: StorageRef
    retention: RetentionSpec


class ScheduleInput(ApiModel):
    cluster: ClusterRef
    cluster_workflow_id: str
    cron: str | None  # None: the cluster has no schedule (any existing one is removed)
