"""Fault handling as data: fault classes, playbook actions, and the record of every repair."""

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from api.base import ApiModel, Record
from api.states import JoinMethod


class FaultClass(StrEnum):
    CLUSTER_DOWN = "ClusterDown"  # no mariadbd runs anywhere
    QUORUM_LOST = "QuorumLost"  # some run, none is in a Primary component
    STORAGE_ERROR = "StorageError"  # disk full, permissions: a human must free or fix
    CONFIG_ERROR = "ConfigError"  # the server refuses its configuration: a human must fix it
    NODE_HUNG = "NodeHung"  # alive but not answering for longer than the grace period
    NODE_CRASHED = "NodeCrashed"  # Red-unclean while the cluster serves
    NODE_STOPPED = "NodeStopped"  # Red-clean, not asked for, not in maintenance
    NODE_PARTITIONED = "NodePartitioned"  # alive, answering, cut off from the Primary component
    NODE_CANNOT_JOIN = "NodeCannotJoin"  # restarts used up: crash loop, damaged data dir
    UNKNOWN = "Unknown"  # evidence that fits no known fault
    OPERATOR_REQUEST = "OperatorRequest"  # not a fault: an operator forced an action


class Action(StrEnum):
    RESTART_NODE = "RestartNode"  # start; it rejoins by IST when it can, SST otherwise
    KILL_AND_RESTART_NODE = "KillAndRestartNode"
    RESTART_RUNNING_NODE = "RestartRunningNode"  # graceful stop, start; never its data touched
    REFORM_PRIMARY = "ReformPrimary"  # bootstrap the most advanced node, live or stopped
    BOOTSTRAP_MOST_ADVANCED = "BootstrapMostAdvanced"  # then join the others
    REPROVISION_NODE = "ReprovisionNode"  # data dir moved aside, full SST into a fresh one
    BOOTSTRAP_FROM_NODE = "BootstrapFromNode"  # operator's choice; nodes ahead of it set aside
    MANUAL_INTERVENTION = "ManualIntervention"


class Outcome(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    REFUSED = "Refused"  # a forced action found unsafe when it was about to act; nothing done


class RemediationSpec(ApiModel):
    """Limits of automatic repair; the defaults suit three nodes on one machine."""

    enabled: bool = Field(True, description="False: faults are reported, never repaired")
    max_attempts_per_node: int = Field(
        3, ge=1, le=20, description="Repairs of one node for one fault before escalating"
    )
    backoff_seconds: float = Field(
        5, ge=0, le=3600, description="Wait before a repeated attempt; doubles each time"
    )
    settle_seconds: float = Field(
        2,
        ge=0,
        le=60,
        description="Evidence must hold still this long before a repair is chosen, so that "
        "failures happening together are seen together",
    )
    hung_grace_seconds: float = Field(
        10, ge=2, le=600, description="How long a live node may not answer before it is hung"
    )
    partition_grace_seconds: float = Field(
        120,
        ge=10,
        le=3600,
        description="How long a live node may sit outside the Primary component (cut off by "
        "the network) before it is restarted; it rejoins by itself when the network heals",
    )
    maintenance: list[str] = Field(
        default_factory=list, description="Nodes stopped on purpose: never restarted"
    )


class JoinInfo(Record):
    """How a node last joined: IST or SST, and why (the positions, the donor)."""

    method: JoinMethod
    detail: str = ""
    at: datetime | None = None


class ActionRecord(Record):
    action: Action
    node: str | None = None
    started_at: datetime
    ended_at: datetime | None = None
    outcome: Outcome = Outcome.RUNNING
    detail: str = ""
    join: JoinInfo | None = None  # how the node rejoined during this action: IST or SST, why


class RemediationRecord(Record):
    """One repair: what was seen, what was done, how it ended. Kept in the status."""

    id: str
    fault: FaultClass
    nodes: list[str]
    evidence: str
    attempt: int
    started_at: datetime
    ended_at: datetime | None = None
    outcome: Outcome = Outcome.RUNNING
    actions: list[ActionRecord] = Field(default_factory=list)


class ManualIntervention(Record):
    """Automation is paused for this cluster until an operator resumes it."""

    since: datetime
    fault: FaultClass
    reason: str
    evidence: str


class ResumeRequest(ApiModel):
    reason: str = Field(min_length=1, description="Why it is safe to resume: goes to history")


class ForcedAction(StrEnum):
    """What an operator may force; each is a playbook `Action` of the same name."""

    RESTART_NODE = "RestartNode"
    KILL_AND_RESTART_NODE = "KillAndRestartNode"
    REPROVISION_NODE = "ReprovisionNode"
    BOOTSTRAP_FROM_NODE = "BootstrapFromNode"


class ForceActionRequest(ApiModel):
    """An operator's order, carried out through the cluster's task queue with a record.

    Requests that would split the cluster or cannot work are always refused; requests that
    risk availability or would replace data (always kept aside) are refused unless `force`."""

    action: ForcedAction
    node: str = Field(min_length=1)
    reason: str = Field(min_length=1, description="Why: kept in the record and the history")
    force: bool = Field(
        False,
        description="Carry out a request the safety checks call risky, e.g. bootstrapping "
        "from a node that is not the most advanced (nodes ahead of it are moved aside)",
    )
