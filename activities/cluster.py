"""The cluster activities: every side effect the cluster workflow has, over a `Runtime`.

Each one is idempotent, so a retry after a timeout or a worker crash never does harm twice.
Long ones heartbeat, so a dead worker is noticed within seconds rather than at a timeout.
"""

import contextlib
import time
from collections.abc import Callable, Iterator

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory, CancelledError

from activities.messages import (
    ConfigInput,
    LayoutInput,
    LoadBalancerInput,
    NodeInput,
    NodeObservation,
    PositionsInput,
    ProvisionInput,
    RemoveNodeInput,
    RetireInput,
    StartInput,
    StopInput,
    WaitSyncedInput,
)
from activities.observe import Observer
from activities.runtime import ClusterLayout, ClusterRef, NodeFailed, Runtime
from activities.users import APP_SECRET, MONITOR_SECRET
from api.states import NodeState
from galera.diagnosis import serves
from galera.position import NodePosition


class ClusterActivities:
    def __init__(self, runtime: Runtime, observer: Observer) -> None:
        self.runtime = runtime
        self.observer = observer

    @activity.defn
    def cluster_layout(self, request: LayoutInput) -> ClusterLayout:
        return self.runtime.layout(request.cluster, request.replicas)

    @activity.defn
    def ensure_secrets(self, cluster: ClusterRef) -> None:
        for key in (APP_SECRET, MONITOR_SECRET):
            self.runtime.ensure_secret(cluster, key)

    @activity.defn
    def provision_node(self, request: ProvisionInput) -> None:
        self.runtime.provision_node(
            request.layout, request.node, request.spec, request.bootstrap_candidate
        )

    @activity.defn
    def config_errors(self, request: ConfigInput) -> str | None:
        return self.runtime.config_errors(request.layout, request.spec)

    @activity.defn
    def start_node(self, request: StartInput) -> int:
        with _node_failures():
            return self.runtime.start_node(request.layout, request.node, request.bootstrap)

    @activity.defn
    def stop_node(self, request: StopInput) -> None:
        self.runtime.stop_node(request.layout, request.node, request.mode, request.timeout_seconds)

    @activity.defn
    def node_positions(self, request: PositionsInput) -> list[NodePosition]:
        return [
            NodePosition(node=node, position=self.runtime.galera_position(request.layout, node))
            for node in request.nodes
        ]

    @activity.defn
    def ensure_users(self, request: NodeInput) -> None:
        """Create (or reset to the stored passwords) the application and monitoring users."""
        _until(
            lambda: self.runtime.ensure_users(request.layout, request.node),
            timeout=120,
            what=f"creating users on {request.node}",
        )

    @activity.defn
    def wait_synced(self, request: WaitSyncedInput) -> NodeObservation:
        """Wait until the node is Green; heartbeats while it joins (an SST can take long)."""
        deadline = time.monotonic() + request.timeout_seconds
        targets = self.observer.targets(request.layout)
        target = targets.pop(request.node)
        without_primary = 0
        while True:
            observed = self.observer.node(request.layout, request.node, target, timeout=2)
            if request.joining and observed.state is not NodeState.GREEN:
                # A joiner needs a Primary component to take its state from.
                primary = any(
                    serves(self.observer.node(request.layout, name, peer, timeout=1).facts, True)
                    for name, peer in targets.items()
                )
                without_primary = 0 if primary else without_primary + 1
                if without_primary >= 20:  # ten seconds
                    raise ApplicationError(
                        f"{request.node} cannot join: no other node is in a Primary component",
                        type="NodeFailed",
                        non_retryable=True,
                    )
            if observed.facts.process_alive is False:
                raise ApplicationError(
                    f"{request.node} stopped while joining: {observed.reason}",
                    type="NodeFailed",
                    non_retryable=True,
                )
            if observed.state is NodeState.GREEN:
                if request.joining and (
                    join := self.runtime.last_join(request.layout, request.node)
                ):
                    observed.join = join.info()
                return observed
            if time.monotonic() > deadline:
                raise TimeoutError(f"{request.node} not Synced after {request.timeout_seconds} s")
            activity.heartbeat(observed.reason)
            _pause(0.5)

    @activity.defn
    def bootstrap_primary(self, request: NodeInput) -> None:
        """Make a running node outside any Primary component the new Primary. The workflow
        has proven it the most advanced and every other node stopped or non-Primary."""
        self.runtime.admin_sql(
            request.layout,
            request.node,
            ["SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"],
        )

    @activity.defn
    def set_aside_data(self, request: NodeInput) -> str:
        """Move a stopped node's data directory aside (kept, never deleted); where it went."""
        return self.runtime.set_aside_data(request.layout, request.node)

    @activity.defn
    def configure_load_balancer(self, request: LoadBalancerInput) -> None:
        self.runtime.configure_load_balancer(request.layout, request.members)

    @activity.defn
    def remove_node(self, request: RemoveNodeInput) -> None:
        self.runtime.remove_node(request.layout, request.node, request.delete_data)

    @activity.defn
    def retire_cluster(self, request: RetireInput) -> None:
        self.runtime.retire_cluster(request.layout, request.delete_data)


def worker_shutting_down() -> ApplicationError:
    """What an activity ends with when its worker stops: a failure, retried by another worker
    (a cancel would end it for good). Expected, so logged at debug level only."""
    return ApplicationError(
        "worker shutting down; retried elsewhere", category=ApplicationErrorCategory.BENIGN
    )


def _pause(seconds: float) -> None:
    """Sleep between two looks, but end the activity at once when it is cancelled (a replaced
    watcher) or the worker shuts down (a new worker retries it): threads do not stop by
    themselves, and a worker waits for its activities before it exits."""
    activity.wait_for_cancelled_sync(timeout=seconds)
    if activity.is_cancelled():
        raise CancelledError("cancelled")
    if activity.is_worker_shutdown():
        raise worker_shutting_down()


@contextlib.contextmanager
def _node_failures() -> Iterator[None]:
    """A failure of the node itself is final for this activity: no immediate retry."""
    try:
        yield
    except NodeFailed as error:
        raise ApplicationError(str(error), type="NodeFailed", non_retryable=True) from None


def _until(action: Callable[[], None], timeout: float, what: str) -> None:
    """Retry `action` with heartbeats until it succeeds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            action()
            return
        except Exception as error:
            text = str(error)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: {text}") from None
            activity.heartbeat(f"{what}: {text}")
            _pause(0.5)
