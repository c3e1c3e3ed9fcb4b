"""The context every task body works with: the cluster's memory and spec, activities, the
record of transitions, and the merging of what is observed about nodes.

Everything durable is in `memory` (carried through continue-as-new); the few fields beside it
belong to one run. Concurrency hazard: the watcher coroutine and the handlers (signals,
updates) run between the awaits of a task. They only merge evidence, queue tasks and set
`wake`; only the main loop's task changes nodes, and only one task runs at a time.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities.cluster import ClusterActivities
    from activities.messages import (
        LayoutInput,
        NodeObservation,
        Observation,
        WaitSyncedInput,
        WatchInput,
    )
    from activities.watch import HealthWatch, watch_queue
    from api.base import ObjectMeta
    from api.cluster import MySQLClusterSpec, Transition
    from api.layout import ClusterLayout, ClusterRef
    from api.messages import ClusterMemory, NodeMemory, NodeReport, QueuedTask
    from api.remediation import JoinInfo
    from api.resource_status import Unwatched
    from api.states import ClusterState, NodeState, Phase, TaskKind
    from galera.diagnosis import cluster_state, serves
    from workflows import counters
    from workflows.errors import TaskFailed
    from workflows.phases import may_move
    from workflows.search import CLUSTER_STATE, MANUAL_INTERVENTION

TRANSITIONS_KEPT = 50
SHORT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
WATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)
)
WATCH_PICKUP = timedelta(seconds=30)  # a watch no worker takes by then: the cluster is unwatched
WATCH_FAILED_PAUSE = (timedelta(seconds=10), timedelta(minutes=10))  # doubling, between these


class Context:
    def __init__(self, meta: ObjectMeta, spec: MySQLClusterSpec, memory: ClusterMemory) -> None:
        self.meta = meta
        self.spec = spec  # desired: what the user last applied (generation in meta)
        self.memory = memory
        self.current: QueuedTask | None = None
        self.current_started: datetime | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.wake = False  # new evidence or a new command: the main loop looks again
        self.stale = True  # no observation yet in this run: decide nothing before one
        self.changed_at = workflow.now()  # the last change of any node's state
        self.unwatched: Unwatched | None = None  # no worker watches the cluster's health now

    # -- what the cluster runs -------------------------------------------------------------

    @property
    def applied(self) -> MySQLClusterSpec:
        """The spec the cluster runs with (the desired one until it was first created)."""
        return self.memory.applied_spec or self.spec

    def expected_replicas(self) -> int:
        if workflow.patched("state-counts-applied"):
            return self.applied.replicas
        return self.spec.replicas  # histories recorded before: the state counted the desired

    def layout_or_fail(self) -> ClusterLayout:
        if self.memory.layout is None:
            raise TaskFailed("the cluster has no layout yet: it was never created")
        return self.memory.layout

    def node(self, name: str) -> NodeMemory | None:
        return next((n for n in self.memory.nodes if n.name == name), None)

    def running_nodes(self) -> list[str]:
        return [n.name for n in self.memory.nodes if n.facts.process_alive]

    def is_down(self, node: str) -> bool:
        seen = self.node(node)
        return seen is not None and seen.facts.process_alive is False

    def track_nodes(self, layout: ClusterLayout) -> None:
        known = {n.name: n for n in self.memory.nodes}
        self.memory.nodes = [
            known.get(n.name) or NodeMemory(name=n.name, ordinal=n.ordinal) for n in layout.nodes
        ]

    def tasks(self) -> list[QueuedTask]:
        """Queued and running."""
        return [*self.memory.queue, *([self.current] if self.current else [])]

    def has_task(self, kind: TaskKind, queued_only: bool = False) -> bool:
        tasks = self.memory.queue if queued_only else self.tasks()
        return any(t.kind == kind for t in tasks)

    def being_created(self) -> bool:
        return not self.memory.created and self.has_task(TaskKind.CREATE)

    # -- activities ------------------------------------------------------------------------

    async def act(
        self,
        activity: Callable[..., Any],
        argument: Any,
        timeout: timedelta = timedelta(minutes=5),
        heartbeat: timedelta | None = None,
        summary: str | None = None,
    ) -> Any:
        """Run one activity; its summary (shown in the Temporal UI) says what and on which node."""
        node = getattr(argument, "node", None)
        default = activity.__name__.replace("_", " ") + (f" {node}" if node else "")
        return await workflow.execute_activity_method(
            activity,
            argument,
            start_to_close_timeout=timeout,
            heartbeat_timeout=heartbeat,
            retry_policy=SHORT,
            summary=summary or default,
        )

    async def layout(self, replicas: int) -> ClusterLayout:
        cluster = ClusterRef(namespace=self.meta.namespace, name=self.meta.name)
        layout: ClusterLayout = await self.act(
            ClusterActivities.cluster_layout, LayoutInput(cluster=cluster, replicas=replicas)
        )
        self.memory.layout = layout
        return layout

    async def wait_synced(
        self,
        layout: ClusterLayout,
        node: str,
        joining: bool = True,
        timeout: timedelta | None = None,
    ) -> JoinInfo | None:
        """Until the node is Synced; how it joined (IST or SST, and why), when it did."""
        waiting = WaitSyncedInput(layout=layout, node=node, joining=joining)
        if timeout is not None:
            waiting.timeout_seconds = timeout.total_seconds()
        seen: NodeObservation = await self.act(
            ClusterActivities.wait_synced,
            waiting,
            timeout=timedelta(minutes=20),
            heartbeat=timedelta(seconds=30),
        )
        self.record(seen)  # a Synced node is fresh evidence too
        self.memory.primary = True
        self.update_cluster_state("probe")
        if seen.join is None:
            return None
        join = seen.join.model_copy(update={"at": workflow.now()})
        if (memory := self.node(node)) is not None:
            memory.last_join = join
        self.transition(node, "joining", f"joined by {join.method.value}", join.detail)
        counters.count(self.memory, "joins", node=node, method=join.method.value)
        return join

    async def survey(self, layout: ClusterLayout) -> None:
        """Look at every node now, rather than act on what the watcher saw last."""
        observation: Observation = await self.act(
            HealthWatch.watch_health, WatchInput(layout=layout, health=self.spec.health)
        )
        self.observe(observation)

    # -- the health watcher ----------------------------------------------------------------

    def restart_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
        if self.memory.layout is not None:
            self.watcher = asyncio.create_task(self._watch(self.memory.layout))

    def stop_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None

    def reexamine(self) -> None:
        """Look at every node afresh (the watcher's first call returns at once)."""
        if self.memory.created and self.memory.phase is not Phase.DELETED:
            self.stale = True
            self.restart_watcher()

    async def _watch(self, layout: ClusterLayout) -> None:
        """Watch activities one after the other, each returning on a change; on the watch
        queue, served by workers with watch slots of their own. One that no worker takes in
        time (all full, or none running) marks the cluster unwatched, once, then waits for as
        long as it takes: the history grows with episodes, not with time."""
        baseline: Observation | None = None  # the first watch re-examines everything at once
        health = self.spec.health
        failures = 0
        while True:
            try:
                observation: Observation = await workflow.execute_activity_method(
                    HealthWatch.watch_health,
                    WatchInput(layout=layout, health=health, baseline=baseline),
                    task_queue=watch_queue(workflow.info().task_queue),
                    schedule_to_start_timeout=None if self.unwatched else WATCH_PICKUP,
                    start_to_close_timeout=timedelta(seconds=health.resync_seconds + 120),
                    heartbeat_timeout=timedelta(seconds=10),
                    retry_policy=WATCH_RETRY,
                )
            except ActivityError as error:
                if isinstance(error.cause, CancelledError):
                    return  # replaced by a watcher with a new layout or spec
                baseline = None  # the next watch reports at once when a worker takes it
                if _not_picked_up(error):
                    self.set_unwatched(
                        f"no worker took the health watch within {WATCH_PICKUP.seconds} s: "
                        "every worker's watch slots are taken, or no worker runs"
                    )
                    continue
                failures += 1
                self.set_unwatched(f"the health watch failed: {error.cause or error}")
                pause = WATCH_FAILED_PAUSE[0] * 2 ** min(failures - 1, 6)
                await workflow.sleep(min(pause, WATCH_FAILED_PAUSE[1]))
                continue
            failures = 0
            self.set_watched()
            baseline = observation
            self.observe(observation)

    def set_unwatched(self, reason: str) -> None:
        if self.unwatched is None:
            self.unwatched = Unwatched(since=workflow.now(), reason=reason)
            self.transition("cluster", "watched", "unwatched", reason)
            workflow.logger.warning("cluster unwatched: %s", reason)

    def set_watched(self) -> None:
        if self.unwatched is not None:
            since = self.unwatched.since
            self.unwatched = None
            self.transition("cluster", "unwatched", "watched", f"unwatched since {since}")

    # -- merging evidence ------------------------------------------------------------------

    def observe(self, observation: Observation) -> None:
        self.memory.writer = observation.writer
        self.memory.serving = observation.serving
        self.memory.primary = observation.primary
        for seen in observation.nodes:
            self.record(seen)
        self.update_cluster_state("probe")
        self.show_details()
        self.stale = False
        self.wake = True

    def record(self, seen: NodeObservation) -> None:
        node = self.node(seen.name)
        if node is None:
            return
        node.facts = seen.facts
        node.pid = seen.pid
        node.evidence_at = workflow.now()
        self.set_node_state(node, seen.state, seen.reason, "probe")

    def merge_report(self, report: NodeReport, ordered_by_arrival: bool) -> None:
        """A passive report, unless it is old news. Reports of one agent are ordered by its
        sequence number; against probes, by when the workflow received them (never by the
        agent's clock, which the workflow's does not have to agree with)."""
        node = self.node(report.node)
        if node is None:
            return
        same_agent = node.last_report_agent == report.agent_started_at
        if same_agent and report.sequence <= node.last_report_sequence:
            return  # delivered twice or out of order
        node.last_report_agent = report.agent_started_at
        node.last_report_sequence = report.sequence
        if ordered_by_arrival:
            node.evidence_at = workflow.now()
        else:  # histories recorded before: ordered by the agent's clock
            if node.evidence_at is not None and report.observed_at <= node.evidence_at:
                return
            node.evidence_at = report.observed_at
        node.facts = report.facts
        self.set_node_state(node, report.state, report.reason or report.state.value, "agent")
        donor_serves = self.spec.health.serve_from_donor
        # An agent's word can take serving away at once; only the probe, which also asks the
        # load balancer, can give it back.
        self.memory.primary = any(serves(n.facts, donor_serves) for n in self.memory.nodes)
        self.memory.serving = self.memory.serving and self.memory.primary
        self.update_cluster_state("agent")
        self.show_details()
        self.wake = True

    def set_node_state(self, node: NodeMemory, state: NodeState, reason: str, source: str) -> None:
        node.reason = reason
        if node.state is state:
            return
        self.transition(node.name, node.state.value, state.value, f"{source}: {reason}")
        node.state = state
        node.since = workflow.now()
        self.changed_at = workflow.now()
        if state is NodeState.GREEN:
            self.forget_attempts(node.name)

    def update_cluster_state(self, source: str) -> None:
        expected = self.expected_replicas()
        state = cluster_state((n.state for n in self.memory.nodes), expected, self.memory.serving)
        if state is self.memory.cluster_state:
            return
        green = sum(1 for n in self.memory.nodes if n.state is NodeState.GREEN)
        self.transition(
            "cluster",
            self.memory.cluster_state.value,
            state.value,
            f"{source}: {green} of {expected} nodes Green, "
            f"{'serving' if self.memory.serving else 'not serving'}",
        )
        self.memory.cluster_state = state
        if state is ClusterState.GREEN:
            self.forget_attempts(None)
        if self.memory.manual is None:
            workflow.upsert_search_attributes([CLUSTER_STATE.value_set(state.value)])

    def forget_attempts(self, node: str | None) -> None:
        """A node back to Green (or the whole cluster) clears its repair history."""
        suffix = f"/{node}" if node else ""
        for key in [k for k in self.memory.attempts if node is None or k.endswith(suffix)]:
            self.memory.attempts.pop(key, None)
            self.memory.retry_after.pop(key, None)

    # -- the record ------------------------------------------------------------------------

    def transition(self, subject: str, before: str, after: str, reason: str) -> None:
        self.memory.transitions.append(
            Transition(
                at=workflow.now(), subject=subject, from_state=before, to_state=after, reason=reason
            )
        )
        del self.memory.transitions[:-TRANSITIONS_KEPT]

    def set_phase(self, phase: Phase) -> None:
        before = self.memory.phase
        if before is phase:
            return
        if not may_move(before, phase):
            raise TaskFailed(f"the cluster is {before}: it cannot become {phase}")
        self.transition("cluster", before.value, phase.value, "lifecycle")
        self.memory.phase = phase

    def show_search_state(self) -> None:
        shown = MANUAL_INTERVENTION if self.memory.manual else self.memory.cluster_state.value
        workflow.upsert_search_attributes([CLUSTER_STATE.value_set(shown)])

    def show_details(self) -> None:
        """The one-line summary the Temporal UI shows for the running workflow."""
        green = sum(1 for n in self.memory.nodes if n.state is NodeState.GREEN)
        task = self.current.id if self.current else "idle"
        queued = f", {len(self.memory.queue)} queued" if self.memory.queue else ""
        workflow.set_current_details(
            f"**{self.memory.cluster_state}** ({self.memory.phase}): {green}/{self.spec.replicas}"
            f" nodes Green, writer {self.memory.writer or '-'}; task: {task}{queued}"
        )

    # -- the queue -------------------------------------------------------------------------

    def new_task(self, kind: TaskKind, reason: str) -> QueuedTask:
        self.memory.task_counter += 1
        return QueuedTask(
            id=f"{kind}-{self.memory.task_counter}",
            kind=kind,
            requested_at=workflow.now(),
            reason=reason,
        )

    def enqueue(self, task: QueuedTask) -> QueuedTask:
        self.memory.queue.append(task)
        return task

    def refuse_when_ending(self) -> None:
        """Validators: nothing but a delete is accepted once a delete was asked for."""
        if self.memory.phase in (Phase.DELETING, Phase.DELETED) or self.has_task(
            TaskKind.DELETE, queued_only=True
        ):
            raise ValueError("the cluster is being deleted")


def _not_picked_up(error: ActivityError) -> bool:
    cause = error.cause
    return isinstance(cause, TimeoutError) and cause.type is TimeoutType.SCHEDULE_TO_START
