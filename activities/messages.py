"""Inputs and results of the cluster activities: one model argument per activity."""

from activities.runtime import ClusterLayout, ClusterRef, StopMode
from api.base import ApiModel, Record
from api.cluster import HealthSpec, MySQLClusterSpec, NodeFacts
from api.remediation import JoinInfo
from api.states import NodeState


class LayoutInput(ApiModel):
    cluster: ClusterRef
    replicas: int


class ProvisionInput(ApiModel):
    layout: ClusterLayout
    node: str
    spec: MySQLClusterSpec
    bootstrap_candidate: bool = False


class ConfigInput(ApiModel):
    layout: ClusterLayout
    spec: MySQLClusterSpec


class StartInput(ApiModel):
    layout: ClusterLayout
    node: str
    bootstrap: bool = False


class StopInput(ApiModel):
    layout: ClusterLayout
    node: str
    mode: StopMode = StopMode.GRACEFUL
    timeout_seconds: float = 120


class NodeInput(ApiModel):
    layout: ClusterLayout
    node: str


class WaitSyncedInput(ApiModel):
    layout: ClusterLayout
    node: str
    joining: bool = True  # False for a bootstrapped node, which has no one to join
    timeout_seconds: float = 900


class LoadBalancerInput(ApiModel):
    layout: ClusterLayout
    members: list[str]


class RetireInput(ApiModel):
    layout: ClusterLayout
    delete_data: bool


class RemoveNodeInput(ApiModel):
    layout: ClusterLayout
    node: str
    delete_data: bool


class PositionsInput(ApiModel):
    layout: ClusterLayout
    nodes: list[str]


class NodeObservation(Record):
    name: str
    pid: int | None = None
    state: NodeState
    reason: str
    facts: NodeFacts
    join: JoinInfo | None = None  # how it joined, when this observation ends a join


class Observation(Record):
    nodes: list[NodeObservation]
    writer: str | None = None
    serving: bool = False  # the load balancer routes to at least one node
    primary: bool = False  # at least one node is Synced (or a donor) in a Primary component
    resync: bool = False  # returned because the watch ran its full time, not for a change

    def signature(self) -> tuple[object, ...]:
        """What counts as a change: states and their causes, not counters like seqno."""
        return (
            self.writer,
            self.serving,
            self.primary,
            tuple(
                (
                    n.name,
                    n.pid,
                    n.state,
                    n.facts.process_alive,
                    n.facts.exit_kind,
                    n.facts.wsrep_state,
                    n.facts.wsrep_cluster_status,
                    n.facts.cluster_size,
                )
                for n in self.nodes
            ),
        )


class WatchInput(ApiModel):
    layout: ClusterLayout
    health: HealthSpec
    baseline: Observation | None = None
