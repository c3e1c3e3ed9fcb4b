"""Looking at a cluster's nodes: the process as the runtime sees it, then a SQL probe.

Blocking, like the Runtime: the watch runs these in its probe threads, the task activities in
their own thread.
"""

from collections.abc import Callable

from activities.messages import NodeObservation, Observation
from activities.metrics import PROBE
from activities.probe import Target
from activities.runtime import ClusterLayout, LoadBalancerView, Runtime
from activities.users import MONITOR_SECRET, MONITOR_USER
from api.cluster import NodeFacts
from galera.diagnosis import node_state, serves

Probe = Callable[[Target, float], NodeFacts]


class Observer:
    def __init__(self, runtime: Runtime, probe: Probe) -> None:
        self.runtime = runtime
        self.probe = probe

    def target(self, layout: ClusterLayout, node: str) -> Target:
        address = layout.node(node)
        password = self.runtime.read_secret(layout.cluster, MONITOR_SECRET)
        return Target(user=MONITOR_USER, password=password, host=address.host, port=address.port)

    def targets(self, layout: ClusterLayout) -> dict[str, Target]:
        return {n.name: self.target(layout, n.name) for n in layout.nodes}

    def node(
        self, layout: ClusterLayout, node: str, target: Target, timeout: float
    ) -> NodeObservation:
        process = self.runtime.process_facts(layout, node)
        if not process.alive:
            facts = NodeFacts(
                process_alive=False, exit_kind=process.exit_kind, exit_detail=process.exit_detail
            )
        elif process.stopped:
            facts = NodeFacts(process_alive=True, error="process suspended (SIGSTOP)")
        else:
            cluster = layout.cluster
            with PROBE.labels(cluster.namespace, cluster.name, node).time():
                facts = self.probe(target, timeout)
            facts.process_alive = True
        state, reason = node_state(facts)
        return NodeObservation(name=node, pid=process.pid, state=state, reason=reason, facts=facts)

    def load_balancer(self, layout: ClusterLayout) -> LoadBalancerView:
        return self.runtime.load_balancer_view(layout)


def observation(
    nodes: list[NodeObservation], view: LoadBalancerView, serve_from_donor: bool
) -> Observation:
    return Observation(
        nodes=nodes,
        writer=view.writer,
        serving=bool(view.up),
        primary=any(serves(n.facts, serve_from_donor) for n in nodes),
    )
