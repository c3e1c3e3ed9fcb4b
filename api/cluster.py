"""The `MySQLCluster` resource: what the user asks for (spec) and what mysqlops reports (status)."""

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from api.backup import BackupRecord, BackupSpec, RestoreRecord, RestoreSource
from api.base import ApiModel, ObjectMeta, Quantity, Record, metadata_name_rule, quantity_bytes
from api.mysql_options import check_option, check_value, config_schema
from api.remediation import (
    JoinInfo,
    ManualIntervention,
    Outcome,
    RemediationRecord,
    RemediationSpec,
)
from api.resource_status import ClusterResourceStatus, Unwatched
from api.states import ClusterState, ExitKind, NodeState, Phase, TaskKind

API_VERSION: Literal["mysqlops.io/v1alpha1"] = "mysqlops.io/v1alpha1"

ConfigValue = str | int | float | bool


def _quantity_rule(condition: str, message: str) -> JsonDict:
    """A CEL rule on a Quantity field with the Kubernetes quantity library (1.29+). A size the
    validator takes but Kubernetes does not spell so ('1K') is left to the validator."""
    return {
        "x-kubernetes-validations": [
            {"rule": f"!isQuantity(self) || {condition}", "message": message}
        ]
    }


class MySQLSpec(ApiModel):
    innodb_buffer_pool_size: Quantity = Field(
        "64Mi",
        description="InnoDB buffer pool per node (small by default: many nodes per host)",
        json_schema_extra=_quantity_rule(
            "quantity(self).compareTo(quantity('8Mi')) >= 0", "must be at least 8Mi"
        ),
    )
    gcache_size: Quantity = Field(
        "128Mi",
        description="Galera's write-set cache per node: a node that was away for less than the "
        "writes it holds rejoins by IST (the missed writes) instead of SST (a full copy)",
        json_schema_extra=_quantity_rule(
            "quantity(self).compareTo(quantity('16Mi')) >= 0"
            " && quantity(self).compareTo(quantity('64Gi')) <= 0",
            "must be from 16Mi to 64Gi",
        ),
    )
    config: dict[str, ConfigValue] = Field(
        default_factory=dict,
        description="Extra server options (an allow-list; options mysqlops manages are refused). "
        "On Kubernetes a value is an integer or a string: write booleans and decimals as "
        "strings ('ON', '0.5')",
        json_schema_extra=config_schema(),
    )

    @field_validator("config")
    @classmethod
    def _known_options(cls, config: dict[str, ConfigValue]) -> dict[str, ConfigValue]:
        checked = {check_option(name): value for name, value in config.items()}
        for name, value in checked.items():
            check_value(name, value)
        return checked

    @field_validator("innodb_buffer_pool_size")
    @classmethod
    def _pool_floor(cls, value: str) -> str:
        if quantity_bytes(value) < 8 * 1024**2:
            raise ValueError("must be at least 8Mi")
        return value

    @field_validator("gcache_size")
    @classmethod
    def _gcache_range(cls, value: str) -> str:
        if not 16 * 1024**2 <= quantity_bytes(value) <= 64 * 1024**3:
            raise ValueError("must be from 16Mi to 64Gi")
        return value


class StorageSpec(ApiModel):
    size: Quantity = Field("1Gi", description="Data volume size per node")


class HealthSpec(ApiModel):
    probe_interval_seconds: float = Field(1.0, ge=0.2, le=10)
    probe_timeout_seconds: float = Field(1.0, ge=0.2, le=10)
    report_queue_capacity: int = Field(
        64, ge=1, le=10_000, description="Passive reports kept; the oldest drop when full"
    )
    serve_from_donor: bool = Field(
        True,
        description="Keep an SST donor in the load balancer (a mariabackup donor stays writable)",
    )
    resync_seconds: int = Field(
        600,
        ge=10,
        le=3600,
        description="Longest time between two full re-examinations while nothing changes",
    )


class MySQLClusterSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {  # _gcache_fits; has(): the API server checks the default ({}) undefaulted
                    "rule": "!has(self.mysql) || !has(self.mysql.gcacheSize) || !has(self.storage)"
                    " || !has(self.storage.size) || !isQuantity(self.mysql.gcacheSize)"
                    " || !isQuantity(self.storage.size)"
                    " || quantity(self.mysql.gcacheSize).add(quantity(self.mysql.gcacheSize))"
                    ".compareTo(quantity(self.storage.size)) <= 0",
                    "message": "mysql.gcacheSize must be at most half of storage.size: the "
                    "gcache file lives on the data volume",
                    "fieldPath": ".mysql.gcacheSize",
                },
                {  # a transition rule: checked on updates only; the workflow refuses it too
                    "rule": "has(self.restoreFrom) == has(oldSelf.restoreFrom)"
                    " && (!has(self.restoreFrom) || self.restoreFrom == oldSelf.restoreFrom)",
                    "message": "restoreFrom is immutable: it says where a new cluster's data "
                    "comes from",
                    "fieldPath": ".restoreFrom",
                },
            ]
        }
    )

    replicas: int = Field(
        3,
        description="Galera nodes: an odd number from 1 to 9",
        json_schema_extra={  # _odd_replicas
            "minimum": 1,
            "maximum": 9,
            "x-kubernetes-validations": [
                {
                    "rule": "self % 2 == 1",
                    "message": "replicas must be an odd number from 1 to 9 (a Galera quorum "
                    "needs a majority)",
                }
            ],
        },
    )
    flavor: Literal["mariadb"] = "mariadb"
    mysql: MySQLSpec = Field(default_factory=MySQLSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    health: HealthSpec = Field(default_factory=HealthSpec)
    remediation: RemediationSpec = Field(default_factory=RemediationSpec)
    backup: BackupSpec = Field(default_factory=BackupSpec)
    restore_from: RestoreSource | None = Field(
        None, description="Create the cluster's data from a backup instead of empty"
    )
    deletion_policy: Literal["Retain", "Delete"] = Field(
        "Retain", description="Retain keeps the data directories after delete"
    )

    @field_validator("replicas")
    @classmethod
    def _odd_replicas(cls, value: int) -> int:
        if not 1 <= value <= 9 or value % 2 == 0:
            raise ValueError(
                f"must be an odd number from 1 to 9 (a Galera quorum needs a majority), got {value}"
            )
        return value

    @model_validator(mode="after")
    def _gcache_fits(self) -> "MySQLClusterSpec":
        if quantity_bytes(self.mysql.gcache_size) * 2 > quantity_bytes(self.storage.size):
            raise ValueError(
                f"mysql.gcacheSize ({self.mysql.gcache_size}) must be at most half of "
                f"storage.size ({self.storage.size}): the gcache file lives on the data volume"
            )
        return self


class NodeFacts(Record):
    """What was last observed of one node, the evidence behind its state."""

    process_alive: bool | None = None
    exit_kind: ExitKind | None = None
    exit_detail: str | None = None
    reachable: bool = False
    wsrep_state: str | None = None  # wsrep_local_state_comment: Synced, Donor/Desynced, Joining...
    wsrep_cluster_status: str | None = None  # Primary, non-Primary, Disconnected
    wsrep_ready: bool | None = None
    seqno: int | None = None  # wsrep_last_committed
    cluster_size: int | None = None
    error: str | None = None


class NodeStatus(Record):
    name: str
    host: str
    port: int
    pid: int | None = None
    state: NodeState = NodeState.UNKNOWN
    reason: str = ""
    facts: NodeFacts = Field(default_factory=NodeFacts)
    since: datetime | None = None
    last_join: JoinInfo | None = None
    last_report_sequence: int = -1  # the newest report of its agent merged so far


class TaskInfo(Record):
    id: str
    kind: TaskKind
    requested_at: datetime
    started_at: datetime | None = None
    detail: str = ""


class TaskOutcome(Record):
    """How a task ended. A client waits for its task id to appear among the status's
    `outcomes` (the latest are kept) instead of reading messages."""

    id: str
    kind: TaskKind
    outcome: Outcome  # Succeeded, Failed or Refused (nothing was changed)
    error: str = ""
    requested_at: datetime
    started_at: datetime | None = None
    ended_at: datetime


class SpecProgress(Record):
    """Where the cluster is in converging to the spec last applied by a user (level-triggered:
    a failed change is retried with backoff; applying the same spec again retries at once)."""

    desired_generation: int | None = None
    observed_generation: int | None = None  # the generation fully applied
    converged: bool = True
    attempts: int = 0  # failed attempts at the desired spec so far
    retry_at: datetime | None = None  # the next attempt, after a failure
    error: str = ""  # why the last attempt failed
    refused: bool = False  # refused (e.g. by the server): not retried until applied again


class Transition(Record):
    at: datetime
    subject: str  # "cluster" or a node name
    from_state: str
    to_state: str
    reason: str


class Endpoints(Record):
    host: str
    writer_port: int
    reader_host: str | None = None  # None: `host`
    reader_port: int
    stats_port: int | None = None


class ClusterStatus(Record):
    workflow_id: str
    phase: Phase
    state: ClusterState
    writer: str | None = None
    replicas: int
    ready_replicas: int = 0
    nodes: list[NodeStatus] = Field(default_factory=list)
    current_task: TaskInfo | None = None
    queued_tasks: list[TaskInfo] = Field(default_factory=list)
    transitions: list[Transition] = Field(default_factory=list)
    endpoints: Endpoints | None = None
    reports_queued: int = 0
    reports_dropped: int = 0
    counters: dict[str, int] = Field(default_factory=dict)  # api/counters.py
    observed_generation: int | None = None
    message: str = ""
    outcomes: list[TaskOutcome] = Field(default_factory=list)  # the latest ended tasks
    spec_progress: SpecProgress = Field(default_factory=SpecProgress)
    manual_intervention: ManualIntervention | None = None
    unwatched: Unwatched | None = None
    remediations: list[RemediationRecord] = Field(default_factory=list)
    backups: list[BackupRecord] = Field(default_factory=list)
    restores: list[RestoreRecord] = Field(default_factory=list)


class MySQLCluster(ApiModel):
    """A MariaDB Galera cluster: its spec is what the user asks for, its status what the
    cluster's workflow reports."""

    # At most 45 characters, not the 63 of a DNS-1123 label: the backups the workflow names,
    # `<name>-<YYYYMMDD-HHMMSS>` and `-2`..`-9` for more in the same second, are DNS-1123 labels
    # too (a MySQLRestore names them), and 45 + 16 + 2 = 63. (A StatefulSet of the cluster's name
    # would need at most 52: its pods' controller-revision-hash label adds 11.)
    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [metadata_name_rule(45)]}
    )

    api_version: Literal["mysqlops.io/v1alpha1"] = API_VERSION
    kind: Literal["MySQLCluster"] = "MySQLCluster"
    metadata: ObjectMeta
    spec: MySQLClusterSpec = Field(default_factory=MySQLClusterSpec)
    status: ClusterResourceStatus | None = None

    @property
    def workflow_id(self) -> str:
        return cluster_workflow_id(self.metadata.namespace, self.metadata.name)


def cluster_workflow_id(namespace: str, name: str) -> str:
    """The id of the workflow that controls a cluster: `mysqlcluster/<namespace>/<name>`."""
    return f"mysqlcluster/{namespace}/{name}"
