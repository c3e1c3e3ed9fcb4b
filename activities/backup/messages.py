"""Inputs of the backup and restore activities: one model argument per activity."""

from activities.runtime import ClusterLayout, ClusterRef
from api.backup import BackupManifest, BackupTrigger, Duration, RetentionSpec, StorageRef
from api.base import ApiModel


class TakeBackupInput(ApiModel):
    layout: ClusterLayout
    node: str
    name: str
    backup_id: str  # unique per request: a retry finds its own finished backup by it
    trigger: BackupTrigger
    storage: StorageRef
    # The request's keepFor (a manual backup): the manifest's expires_at is the end of the
    # backup plus this. None: no expiry of its own.
    keep_for: Duration | None = None


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
    """The cluster's storage and its `spec.backup.retention`, which applies to scheduled
    backups only; manual ones carry their own expiry in their manifest (`expires_at`)."""

    storage: StorageRef
    retention: RetentionSpec


class ScheduleInput(ApiModel):
    cluster: ClusterRef
    cluster_workflow_id: str
    cron: str | None  # None: the cluster has no schedule (any existing one is removed)
