"""Backups and restores: the cluster's backup settings, the `MySQLBackup` and `MySQLRestore`
resources, the requests the cluster workflow takes, and what it records.

A backup is one object in a storage backend plus a manifest (JSON) beside it; the manifest is
written last, so a backup without one never completed and is never offered for a restore.
"""

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

from api.base import ApiModel, DNS1123Label, ObjectMeta, OpenAPI, Record, metadata_name_rule
from api.resource_status import BackupResourceStatus, RestoreResourceStatus
from api.states import BackupPhase

# -- schedules -----------------------------------------------------------------------------

_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
# minute, hour, day of month, month, day of week: the ranges each field accepts
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("weekday", 0, 7),
)
_CRON_ITEM = re.compile(r"^(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?$")


def _cron(value: str) -> str:
    """A five-field cron expression (as Temporal Schedules take it), or a macro like @daily."""
    text = value.strip()
    if text in _CRON_MACROS or text.startswith("@every "):
        return text
    fields = text.split()
    if len(fields) != len(_CRON_FIELDS):
        raise ValueError(
            f"{value!r} is not a cron expression: five fields (minute hour day month weekday), "
            "e.g. '0 3 * * *' for 03:00 every day, or a macro such as '@daily'"
        )
    for field, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        for item in field.split(","):
            match = _CRON_ITEM.match(item)
            if not match:
                raise ValueError(f"cron {name} field {field!r}: cannot read {item!r}")
            numbers = [int(n) for n in match.group(2, 3) if n is not None]
            if any(not low <= n <= high for n in numbers):
                raise ValueError(f"cron {name} field {field!r}: values go from {low} to {high}")
            if match.group(4) is not None and int(match.group(4)) == 0:
                raise ValueError(f"cron {name} field {field!r}: a step cannot be 0")
    return text


# The same check as one RE2 pattern for the CRD (tests compare the two): each field's numbers
# in its range, with the leading zeros int() reads, and steps that are not 0. Only whitespace
# differs: the validator splits on any Unicode space, the API server's \s is ASCII.
_CRON_NUMBERS = {
    "minute": "0*[1-5]?[0-9]",
    "hour": "0*(1?[0-9]|2[0-3])",
    "day": "0*([1-9]|[12][0-9]|3[01])",
    "month": "0*([1-9]|1[0-2])",
    "weekday": "0*[0-7]",
}


def _cron_field(number: str) -> str:
    item = rf"(\*|{number}(-{number})?)(/[0-9]*[1-9][0-9]*)?"
    return f"{item}(,{item})*"


CRON_PATTERN = (
    r"^\s*(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every .*\S|"
    + r"\s+".join(_cron_field(_CRON_NUMBERS[name]) for name, _, _ in _CRON_FIELDS)
    + r")\s*$"
)

CronExpression = Annotated[
    str, AfterValidator(_cron), OpenAPI({"pattern": CRON_PATTERN, "maxLength": 128})
]

_DURATION = re.compile(r"^(\d+)(m|h|d)$")
_DURATION_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def duration(value: str) -> timedelta:
    """'30m', '12h', '7d' as a timedelta."""
    match = _DURATION.match(value)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration: a positive number and m, h or d, e.g. '7d'")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _duration(value: str) -> str:
    duration(value)
    return value


Duration = Annotated[
    str,
    AfterValidator(_duration),
    OpenAPI({"pattern": "^[0-9]*[1-9][0-9]*[mhd]$", "maxLength": 32}),
]


class RetentionSpec(ApiModel):
    """The cluster's retention of its *scheduled* backups (trigger `schedule`), applied after
    each successful backup: keep the last `keepLast` of them, delete those older than
    `maxAge`. Manual backups (`mysqlops backup`, a `MySQLBackup`) are neither counted nor
    deleted by it: each is kept until its own `keepFor` has passed, or, without one, until it
    is deleted by hand. Whatever either rule says, the newest backup of the cluster whose
    stored object verifies (size and sha256 as its manifest says) is never deleted."""

    keep_last: int | None = Field(7, ge=1, le=10_000, description="Keep at most this many")
    max_age: Duration | None = Field(None, description="Delete backups older than this ('7d')")


class FilesystemStorage(ApiModel):
    path: str | None = Field(
        None,
        description="A directory (in Kubernetes, where the backup PVC is mounted); by default "
        "the local runtime's state directory, backups/",
        json_schema_extra={"pattern": "^/", "maxLength": 4096},  # absolute, at most PATH_MAX
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value


class BackupStorageSpec(ApiModel):
    filesystem: FilesystemStorage = Field(default_factory=FilesystemStorage)


class BackupSpec(ApiModel):
    schedule: CronExpression | None = Field(
        None, description="When to take backups (cron, UTC); none: only on demand"
    )
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    storage: BackupStorageSpec = Field(default_factory=BackupStorageSpec)


class RestoreSource(ApiModel):
    """`spec.restoreFrom`: create the cluster from a backup of a cluster (this or another one)
    in this cluster's backup storage."""

    cluster: DNS1123Label
    backup: DNS1123Label | None = Field(None, description="A backup name; none: the latest")


# -- requests and records ------------------------------------------------------------------


class BackupTrigger(StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"


class BackupRequest(ApiModel):
    name: DNS1123Label | None = Field(None, description="None: <cluster>-<UTC timestamp>")
    trigger: BackupTrigger = BackupTrigger.MANUAL
    reason: str = ""
    keep_for: Duration | None = Field(
        None,
        description="A manual backup: deleted by retention once this has passed since it was "
        "taken; none: kept until deleted by hand. Scheduled backups follow the cluster's "
        "spec.backup.retention instead",
    )


class RestoreRequest(ApiModel):
    backup: DNS1123Label | None = Field(None, description="None: the latest good backup")
    name: DNS1123Label | None = Field(
        None, description="The MySQLRestore's name: a restore by that name is done only once"
    )
    reason: str = ""


class StorageRef(Record):
    """Where a cluster's backups are: a reference, never a credential."""

    kind: Literal["filesystem"] = "filesystem"
    path: str | None = None  # None: the runtime's default place
    namespace: str
    cluster: str


class BackupManifest(Record):
    """Written beside the stored object once it is complete: what a restore relies on."""

    name: str
    backup_id: str = ""
    namespace: str
    cluster: str
    node: str
    trigger: BackupTrigger = BackupTrigger.MANUAL
    tool: str = "mariabackup"
    tool_version: str = ""
    format: str = "xbstream+zstd"
    galera_uuid: str | None = None
    galera_seqno: int | None = None
    gtid: str | None = None
    started_at: datetime
    finished_at: datetime
    stored_bytes: int  # the compressed object
    streamed_bytes: int  # the xbstream before compression
    sha256: str
    object: str  # the object's key in the storage
    location: str = ""  # for the filesystem backend, the path of the object
    # A manual backup with a `keepFor`: when retention may delete it (finished_at + keepFor).
    # None: a manual backup is kept until deleted by hand; scheduled ones follow the cluster's
    # retention, whatever this says.
    expires_at: datetime | None = None

    @property
    def position(self) -> str:
        return f"{self.galera_uuid}:{self.galera_seqno}" if self.galera_uuid else "-"


class RetentionResult(Record):
    """What one run of retention did (the `apply_retention` activity's result)."""

    deleted: list[str] = Field(default_factory=list)
    # The newest backup whose object verified (size and sha256): never deleted. None: no
    # backup verified, and then nothing at all is deleted.
    newest_good: str | None = None
    # Backups newer than `newest_good` whose object did not verify, and why (missing,
    # truncated, corrupted, unreadable): reported, never taken for good ones.
    unverified: dict[str, str] = Field(default_factory=dict)
    # Backups the rules would have deleted but that were kept, and why.
    spared: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_names(cls, value: object) -> object:
        """Recorded histories hold the old result: the bare list of deleted names."""
        return {"deleted": value} if isinstance(value, list) else value

    def summary(self) -> str:
        """One line for a transition or a log."""
        words = [f"deleted {', '.join(self.deleted)}" if self.deleted else "deleted nothing"]
        if self.newest_good:
            words.append(f"newest good backup {self.newest_good}")
        else:
            words.append("no backup verifies")
        words += [f"{name} does not verify ({why})" for name, why in self.unverified.items()]
        words += [f"{name} kept: {why}" for name, why in self.spared.items()]
        return "; ".join(words)


class TaskRecord(Record):
    """What backup and restore records share: the task, its phase, its times, its error."""

    task_id: str
    phase: BackupPhase = BackupPhase.PENDING
    requested_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    node: str | None = None
    position: str | None = None  # Galera uuid:seqno of the backup
    error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class BackupRecord(TaskRecord):
    """One backup as the cluster workflow tracks it (status, `mysqlops backup --wait`)."""

    name: str
    backup_id: str = ""  # unique per request; the manifest carries it
    trigger: BackupTrigger
    progress_bytes: int | None = None  # streamed so far (from the activity's heartbeat)
    size_bytes: int | None = None
    streamed_bytes: int | None = None
    gtid: str | None = None
    location: str | None = None
    sha256: str | None = None
    deleted_by_retention: list[str] = Field(default_factory=list)


class RestoreRecord(TaskRecord):
    """One restore; `node` is the node restored and bootstrapped, the others join by SST."""

    name: str | None = None  # the MySQLRestore's, when one asked for it
    backup: str | None  # as requested; the resolved name once verified
    set_aside: dict[str, str] = Field(default_factory=dict)  # node: where its old data is
    rollback: str | None = None  # how to go back to the data before the restore


# -- resources -----------------------------------------------------------------------------


class MySQLBackupSpec(ApiModel):
    cluster: DNS1123Label = Field(description="The MySQLCluster (same namespace) to back up")
    keep_for: Duration | None = Field(
        None,
        description="How long to keep this backup ('30d'), from when it was taken; none: "
        "until deleted by hand. The cluster's retention (keepLast, maxAge) counts and deletes "
        "only scheduled backups, never this one",
    )


class MySQLRestoreSpec(ApiModel):
    cluster: DNS1123Label = Field(description="The MySQLCluster (same namespace) to restore")
    backup: DNS1123Label | None = Field(None, description="A backup name; none: the latest")


class MySQLBackup(ApiModel):
    """A manual backup: applying one asks the cluster's workflow to take it (queued like any
    task); its status is the workflow's record of it."""

    # Its name is the backup's (BackupRequest.name): a DNS-1123 label.
    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [metadata_name_rule(63)]}
    )

    api_version: Literal["mysqlops.io/v1alpha1"] = "mysqlops.io/v1alpha1"
    kind: Literal["MySQLBackup"] = "MySQLBackup"
    metadata: ObjectMeta
    spec: MySQLBackupSpec
    status: BackupResourceStatus | None = None


class MySQLRestore(ApiModel):
    """An in-place restore of a backup into its cluster."""

    # Its name is the restore's (RestoreRequest.name): a DNS-1123 label.
    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [metadata_name_rule(63)]}
    )

    api_version: Literal["mysqlops.io/v1alpha1"] = "mysqlops.io/v1alpha1"
    kind: Literal["MySQLRestore"] = "MySQLRestore"
    metadata: ObjectMeta
    spec: MySQLRestoreSpec
    status: RestoreResourceStatus | None = None


class BackupTriggerInput(ApiModel):
    """The input of the short workflow a cluster's backup Schedule starts."""

    cluster_workflow_id: str
