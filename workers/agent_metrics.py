"""What a node agent exposes on its metrics port (docs/observability.md): the node as the agent
sees it. One agent per process, so module-level metrics on the default registry."""

from prometheus_client import Counter, Gauge, Histogram

from api.states import NodeState

LABELS = ("cluster_namespace", "cluster", "node")

NODE_STATE = Gauge(
    "mysqlops_agent_node_state", "1 for the state the agent sees the node in", [*LABELS, "state"]
)
SERVING = Gauge("mysqlops_agent_serving", "1 while HAProxy's check is answered 200", LABELS)
PROBE = Histogram(
    "mysqlops_agent_probe_duration_seconds",
    "The agent's probe of its node over the local socket",
    LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SENT = Counter("mysqlops_agent_reports_sent", "Reports delivered to the cluster workflow", LABELS)
FAILED = Counter(
    "mysqlops_agent_reports_failed", "Delivery attempts that failed (Temporal unreachable)", LABELS
)
SUPERSEDED = Counter(
    "mysqlops_agent_reports_superseded",
    "Reports replaced by a newer one before they could be delivered",
    LABELS,
)


class AgentMetrics:
    """The agent's series, bound to its node."""

    def __init__(self, namespace: str, cluster: str, node: str) -> None:
        self.ids = {"cluster_namespace": namespace, "cluster": cluster, "node": node}
        self.probe = PROBE.labels(**self.ids)
        self.sent = SENT.labels(**self.ids)
        self.failed = FAILED.labels(**self.ids)
        self.superseded = SUPERSEDED.labels(**self.ids)
        self.serving = SERVING.labels(**self.ids)

    def state(self, state: NodeState, serving: bool) -> None:
        for each in NodeState:
            NODE_STATE.labels(**self.ids, state=each.value).set(1 if each is state else 0)
        self.serving.set(1 if serving else 0)
