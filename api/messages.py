"""Typed payloads of the cluster workflow's input, signals, queries and updates.

Workflow id: `mysqlcluster/<namespace>/<name>` (see `api.cluster.cluster_workflow_id`).

| name          | kind   | payload              | result          |
|---------------|--------|----------------------|-----------------|
| `status`      | query  | -                    | `ClusterStatus` |
| `spec`        | query  | -                    | `MySQLClusterSpec` |
| `node_report` | signal | `NodeReport`         | -               |
| `apply_spec`  | update | `ApplySpecRequest`   | `CommandResult` |
| `stop`        | update | `LifecycleRequest`   | `CommandResult` |
| `start`       | update | `LifecycleRequest`   | `CommandResult` |
| `delete`      | update | `LifecycleRequest`   | `CommandResult` |
| `resume`      | update | `ResumeRequest`      | `CommandResult` |
| `force_action`| update | `ForceActionRequest` | `CommandResult` |
| `backup`      | update | `BackupRequest`      | `CommandResult` (`name`: the backup) |
| `restore`     | update | `RestoreRequest`     | `CommandResult` |
| `scheduled_backup` | signal | `BackupRequest` | - (from the cluster's backup Schedule) |

No payload carries a secret: credentials are referenced by name and read inside activities.
"""

from datetime import datetime

from pydantic import Field

from api.backup import BackupRecord, BackupRequest, RestoreRecord, RestoreRequest
from api.base import ApiModel, Record
from api.cluster import (
    MySQLCluster,
    MySQLClusterSpec,
    NodeFacts,
    SpecProgress,
    TaskOutcome,
    Transition,
)
from api.layout import ClusterLayout
from api.remediation import (
    ForceActionRequest,
    JoinInfo,
    ManualIntervention,
    RemediationRecord,
)
from api.resource_status import ClusterResourceStatus
from api.states import ClusterState, NodeState, Phase, TaskKind

QUERY_STATUS = "status"
QUERY_SPEC = "spec"
SIGNAL_NODE_REPORT = "node_report"
UPDATE_APPLY_SPEC = "apply_spec"
UPDATE_STOP = "stop"
UPDATE_START = "start"
UPDATE_DELETE = "delete"
UPDATE_RESUME = "resume"
UPDATE_FORCE_ACTION = "force_action"
UPDATE_BACKUP = "backup"
UPDATE_RESTORE = "restore"
SIGNAL_SCHEDULED_BACKUP = "scheduled_backup"


class NodeReport(Record):
    """A passive report from a node agent: sent on a transition, never as a heartbeat stream."""

    node: str
    state: NodeState
    reason: str = ""
    facts: NodeFacts
    observed_at: datetime
    sequence: int = Field(
        0, description="Per-agent counter: a report older than one seen is dropped"
    )
    agent_started_at: datetime | None = None


class ApplySpecRequest(ApiModel):
    spec: MySQLClusterSpec
    generation: int | None = None


class LifecycleRequest(ApiModel):
    reason: str = ""


class CommandResult(Record):
    accepted: bool
    task_id: str | None = None
    message: str = ""
    name: str | None = None  # what the task makes, when it has a name (a backup)


class NodeMemory(Record):
    """What the workflow remembers of one node across continue-as-new."""

    name: str
    ordinal: int
    state: NodeState = NodeState.UNKNOWN
    reason: str = ""
    facts: NodeFacts = Field(default_factory=NodeFacts)
    since: datetime | None = None
    pid: int | None = None
    evidence_at: datetime | None = None  # when the facts were observed (probe or agent)
    last_report_sequence: int = -1
    last_report_agent: datetime | None = None
    last_join: JoinInfo | None = None


class QueuedTask(Record):
    id: str
    kind: TaskKind
    requested_at: datetime
    spec: MySQLClusterSpec | None = None
    reason: str = ""
    remediation: RemediationRecord | None = None
    forced: ForceActionRequest | None = None
    backup: BackupRequest | None = None
    restore: RestoreRequest | None = None


class ClusterMemory(Record):
    """The state carried from one run of the cluster workflow to the next (continue-as-new)."""

    phase: Phase
    created: bool = False
    task_counter: int = 0
    queue: list[QueuedTask] = Field(default_factory=list)
    nodes: list[NodeMemory] = Field(default_factory=list)
    transitions: list[Transition] = Field(default_factory=list)
    reports: list[NodeReport] = Field(default_factory=list)  # received, not merged yet
    reports_dropped: int = 0  # evidence lost: the oldest reports of a full queue
    cluster_state: ClusterState = ClusterState.RED
    writer: str | None = None
    observed_generation: int | None = None
    layout: ClusterLayout | None = None
    applied_spec: MySQLClusterSpec | None = None  # what the nodes run with now
    spec_progress: SpecProgress = Field(default_factory=SpecProgress)  # toward the desired
    serving: bool = False  # reachable through the load balancer
    primary: bool = False  # a node serves from a Primary component (whatever the balancer)
    message: str = ""
    outcomes: list[TaskOutcome] = Field(default_factory=list)  # the latest ended tasks
    manual: ManualIntervention | None = None
    resumed_from: str | None = None  # the evidence of the last manual intervention resumed
    remediations: list[RemediationRecord] = Field(default_factory=list)
    attempts: dict[str, int] = Field(default_factory=dict)  # "<fault>/<node>": repairs so far
    retry_after: dict[str, datetime] = Field(default_factory=dict)  # same keys: backoff
    backups: list[BackupRecord] = Field(default_factory=list)  # the latest, newest last
    restores: list[RestoreRecord] = Field(default_factory=list)
    restored_names: list[str] = Field(default_factory=list)  # every MySQLRestore carried out
    published: ClusterResourceStatus | None = None  # last written to the Kubernetes object
    published_at: datetime | None = None
    counters: dict[str, int] = Field(default_factory=dict)  # api/counters.py: keys, meaning


class ClusterWorkflowInput(ApiModel):
    cluster: MySQLCluster
    memory: ClusterMemory | None = None
