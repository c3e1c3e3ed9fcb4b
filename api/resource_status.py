"""What the custom resources show in Kubernetes: the `status` of `MySQLCluster`, `MySQLBackup`
and `MySQLRestore` objects, their conditions, and the Events written about them.

The cluster workflow's own status (`ClusterStatus`, the `status` query) holds everything it
remembers; an object's status is a short summary of it, small enough to write on every change
and to read with `kubectl get`. The workflow computes it (`workflows.publish`), an activity
writes it, merging the conditions' `lastTransitionTime` with what the object already has.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field

from api.base import Record
from api.states import BackupPhase, ClusterState, NodeState, Phase

CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
# metav1.Condition's type: an optional DNS subdomain prefix, then a CamelCase name
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)


class ConditionType(StrEnum):
    READY = "Ready"  # serving through the load balancer
    PROGRESSING = "Progressing"  # a task runs or the spec is not applied yet
    DEGRADED = "Degraded"  # serving with fewer nodes than asked, or not serving
    MANUAL_INTERVENTION = "ManualIntervention"  # automation paused for a human
    BACKUP_FAILING = "BackupFailing"  # the latest backup failed


class Condition(Record):
    """A Kubernetes condition (metav1.Condition). The workflow leaves `lastTransitionTime`
    empty; the writer keeps the object's time while `status` stays the same."""

    # The CRD's schema is metav1.Condition's: what the API server holds has every field but
    # observedGeneration (the writer sets lastTransitionTime).
    model_config = ConfigDict(
        json_schema_extra={
            "required": ["type", "status", "reason", "message", "lastTransitionTime"]
        }
    )

    type: str = Field(
        description="The aspect of the object: Ready, Progressing, Degraded, ...",
        json_schema_extra={"pattern": CONDITION_TYPE_PATTERN, "maxLength": 316},
    )
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(
        pattern=CONDITION_REASON_PATTERN,
        max_length=1024,
        description="Why, in CamelCase",
        json_schema_extra={"minLength": 1},
    )
    message: str = Field("", max_length=32768, description="Why, for a person")
    last_transition_time: datetime | None = Field(
        None, description="When status last changed (the writer sets it)"
    )
    observed_generation: int | None = Field(
        None,
        ge=0,
        description="The metadata.generation the condition was set for",
        json_schema_extra={"format": "int64"},
    )


def _conditions(what: str) -> Any:
    """A status's `conditions`: a list-map keyed by type, as Kubernetes conditions are."""
    return Field(
        default_factory=list,
        description=f"The latest observations of the {what}'s state",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class Automation(StrEnum):
    ACTIVE = "Active"  # faults are repaired
    MANUAL_INTERVENTION = "ManualIntervention"  # paused on a fault until `mysqlops resume`
    PAUSED = "Paused"  # spec.remediation.enabled is false: faults are reported only


class Unwatched(Record):
    """No worker watches the cluster's health: failures are not noticed until one does."""

    since: datetime
    reason: str


class NodeSummary(Record):
    name: str
    state: NodeState
    reason: str = ""


class ClusterResourceStatus(Record):
    """`MySQLCluster.status`."""

    observed_generation: int | None = Field(
        None, description="The newest metadata.generation fully applied to the nodes"
    )
    workflow_id: str = Field(description="The cluster's controller in Temporal")
    phase: Phase
    state: ClusterState
    automation: Automation
    ready: str = Field(description="Green nodes of those asked for, e.g. 3/3")
    ready_replicas: int = 0
    replicas: int
    writer: str | None = None
    last_backup: datetime | None = Field(None, description="When the newest good backup ended")
    last_backup_name: str | None = None
    nodes: list[NodeSummary] = Field(default_factory=list)
    message: str = ""
    unwatched: Unwatched | None = None
    conditions: list[Condition] = _conditions("cluster")


class BackupResourceStatus(Record):
    """`MySQLBackup.status`: the cluster workflow's record of the backup, summarised."""

    observed_generation: int | None = None
    phase: BackupPhase = BackupPhase.PENDING
    task_id: str | None = None
    progress: str = ""
    size_bytes: int | None = None
    node: str | None = None
    position: str | None = Field(None, description="Galera uuid:seqno the backup holds")
    location: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    conditions: list[Condition] = _conditions("backup")


class RestoreResourceStatus(Record):
    """`MySQLRestore.status`."""

    observed_generation: int | None = None
    phase: BackupPhase = BackupPhase.PENDING
    task_id: str | None = None
    progress: str = ""
    backup: str | None = Field(None, description="The backup restored, once resolved")
    node: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    set_aside: dict[str, str] = Field(
        default_factory=dict, description="Where each node's data before the restore is kept"
    )
    rollback: str | None = None
    conditions: list[Condition] = _conditions("restore")


class EventNote(Record):
    """A Kubernetes Event (events.k8s.io/v1) to write about an object. Notes with the same
    object, type, reason and note form a series: counted on one Event, not repeated."""

    kind: Literal["MySQLCluster", "MySQLBackup", "MySQLRestore"] = "MySQLCluster"
    name: str
    type: Literal["Normal", "Warning"] = "Normal"
    reason: str = Field(pattern=CONDITION_REASON_PATTERN, max_length=128)
    action: str = Field(pattern=CONDITION_REASON_PATTERN, max_length=128)
    note: str = Field(max_length=1024)
    at: datetime


class ObjectRef(Record):
    """The object a cluster workflow writes to, as the watcher started it."""

    namespace: str
    name: str
    uid: str


class PublishRequest(Record):
    """One coalesced write of what changed: the cluster's status, the status of the
    `MySQLBackup` / `MySQLRestore` objects the workflow holds records of, and new Events."""

    cluster: ObjectRef
    status: ClusterResourceStatus
    backups: dict[str, BackupResourceStatus] = Field(default_factory=dict)
    restores: dict[str, RestoreResourceStatus] = Field(default_factory=dict)
    events: list[EventNote] = Field(default_factory=list)
