"""The cluster workflow: one long-running controller per MySQL cluster.

Shape (see docs/design.md): state restored in `@workflow.init`; one main loop that waits for
work and runs one task at a time from a serialized queue; a health watcher beside it whose
long-running activity returns only when what it sees changes; passive reports from node
agents arriving as signals; commands as updates with validators; continue-as-new from the main
loop only, after every handler finished, carrying the state.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.cluster import ClusterActivities
    from activities.messages import (
        ConfigInput,
        LayoutInput,
        LoadBalancerInput,
        NodeInput,
        NodeObservation,
        Observation,
        PositionsInput,
        ProvisionInput,
        RemoveNodeInput,
        RetireInput,
        StartInput,
        StopInput,
        WaitSyncedInput,
        WatchInput,
    )
    from api.cluster import (
        ClusterStatus,
        Endpoints,
        MySQLCluster,
        MySQLClusterSpec,
        NodeStatus,
        TaskInfo,
        TaskOutcome,
        Transition,
    )
    from api.layout import ClusterLayout, ClusterRef
    from api.messages import (
        QUERY_SPEC,
        QUERY_STATUS,
        SIGNAL_NODE_REPORT,
        UPDATE_APPLY_SPEC,
        UPDATE_DELETE,
        UPDATE_START,
        UPDATE_STOP,
        ApplySpecRequest,
        ClusterMemory,
        ClusterWorkflowInput,
        CommandResult,
        LifecycleRequest,
        NodeMemory,
        NodeReport,
        QueuedTask,
    )
    from api.remediation import JoinInfo, Outcome
    from api.states import ClusterState, NodeState, Phase, TaskKind
    from galera.bootstrap import (
        BootstrapChoice,
        NoSafeBootstrap,
        can_join_by_ist,
        choose_bootstrap,
        must_keep_aside,
    )
    from galera.diagnosis import cluster_state, serves
    from workflows.backups import Backups
    from workflows.repair import Repairs, TaskFailed
    from workflows.search import CLUSTER_STATE, MANUAL_INTERVENTION

TRANSITIONS_KEPT = 50
OUTCOMES_KEPT = 20
MAX_RUN_TIME = timedelta(hours=24)  # continue-as-new at the latest after this long

SHORT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
WATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)
)


@workflow.defn(name="MySQLCluster")
class ClusterWorkflow(Repairs, Backups):
    @workflow.init
    def __init__(self, request: ClusterWorkflowInput) -> None:
        self.meta = request.cluster.metadata
        self.spec = request.cluster.spec
        memory = request.memory or ClusterMemory(phase=Phase.CREATING.value)
        self.memory = memory
        self.current: QueuedTask | None = None
        self.current_started: datetime | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.finished = False
        self.decide = False  # set by new evidence and by the end of a backoff
        self.stale = True  # no observation yet in this run: decide nothing before one
        self.changed_at = workflow.now()  # the last change of any node's state
        if request.memory is None:
            self._enqueue("create", self.spec, "resource applied")

    # -- the main loop ---------------------------------------------------------------------

    @workflow.run
    async def run(self, request: ClusterWorkflowInput) -> ClusterStatus:
        shown = MANUAL_INTERVENTION if self.memory.manual else self.memory.cluster_state
        workflow.upsert_search_attributes([CLUSTER_STATE.value_set(shown)])
        if self.memory.created:
            self._restart_watcher()
        while not self.finished:
            with contextlib.suppress(TimeoutError):  # a backoff or grace period ended
                await workflow.wait_condition(
                    lambda: (
                        bool(self.memory.queue) or self.decide or self._time_to_continue_as_new()
                    ),
                    timeout=self._time_to_next_decision(),
                )
            self.decide = False
            if self.memory.queue:
                await self._run_task(self.memory.queue.pop(0))
                self._reexamine()  # decide on what the task left behind, not on old evidence
            elif self._time_to_continue_as_new():
                await self._continue_as_new()
            else:
                self._decide()
        self._stop_watcher()
        return self._status()

    def _time_to_continue_as_new(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or (
            workflow.now() - info.start_time > MAX_RUN_TIME
        )

    async def _continue_as_new(self) -> None:
        self._stop_watcher()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            ClusterWorkflowInput(
                cluster=self._resource(),
                memory=self.memory,
            )
        )

    def _resource(self) -> MySQLCluster:
        return MySQLCluster(metadata=self.meta, spec=self.spec)

    async def _run_task(self, task: QueuedTask) -> None:
        self.current = task
        self.current_started = workflow.now()
        self._show_details()
        handler = self._tasks()[task.kind]
        workflow.logger.info("task %s started (%s)", task.id, task.reason)
        outcome, error_text = Outcome.SUCCEEDED, ""
        try:
            await handler(task)
            self.memory.message = ""
            workflow.logger.info("task %s done", task.id)
        except (ActivityError, TaskFailed, NoSafeBootstrap) as error:
            cause = error.cause if isinstance(error, ActivityError) and error.cause else error
            outcome, error_text = Outcome.FAILED, str(cause)
            self.memory.message = f"task {task.id} failed: {cause}"
            self._transition("cluster", "task", "failed", self.memory.message)
            workflow.logger.warning(self.memory.message)
        finally:
            self.memory.outcomes.append(
                TaskOutcome(
                    id=task.id,
                    kind=TaskKind(task.kind),
                    outcome=outcome,
                    error=error_text,
                    requested_at=task.requested_at,
                    started_at=self.current_started,
                    ended_at=workflow.now(),
                )
            )
            del self.memory.outcomes[:-OUTCOMES_KEPT]
            self.current = None
            self._show_details()

    def _tasks(self) -> dict[str, Callable[[QueuedTask], Awaitable[None]]]:
        return {
            "create": self._create,
            "apply": self._apply,
            "stop": self._stop,
            "start": self._start,
            "delete": self._delete,
            "remediate": self._remediate,
            "force": self._force,
            "backup": self._backup,
            "restore": self._restore,
        }

    # -- tasks -----------------------------------------------------------------------------

    async def _create(self, task: QueuedTask) -> None:
        spec = task.spec or self.spec
        self._set_phase(Phase.CREATING)
        layout = await self._layout(spec.replicas)
        await self._act(ClusterActivities.ensure_secrets, layout.cluster)
        source = spec.restore_from
        for node in layout.nodes:
            await self._act(
                ClusterActivities.provision_node,
                ProvisionInput(
                    layout=layout,
                    node=node.name,
                    spec=spec,
                    bootstrap_candidate=node.ordinal == 0 and source is None,
                ),
            )
        self._track_nodes(layout)
        self.memory.applied_spec = spec
        if source is None:
            await self._start_cluster(layout)
        else:
            await self._create_from_backup(task, layout, source)
        self.memory.created = True
        self._set_phase(Phase.RUNNING)
        if spec.backup.schedule and workflow.patched("backup-schedule"):
            await self._sync_schedule(spec.backup.schedule)

    async def _start_cluster(
        self, layout: ClusterLayout, bootstrap_from: str | None = None
    ) -> None:
        """Bootstrap from the most advanced node (or the one an operator forced), then join
        the others: together those whose position promises an IST from it, then one at a
        time those that may need a full copy (SST), sparing the donor."""
        names = [n.name for n in layout.nodes]
        unreadable: set[str] = set()  # positions that cannot be read: their data is kept aside
        incremental: list[str] = []  # same history as the bootstrap node: they can IST
        await self._survey(layout)
        running = self._running_nodes()
        if running and not self.memory.primary:
            raise TaskFailed(
                f"nodes {running} run without a Primary component; refusing to bootstrap "
                "beside them"
            )
        if not running:
            if bootstrap_from:
                choice = BootstrapChoice(bootstrap_from, f"{bootstrap_from} chosen by an operator")
            else:
                positions = await self._act(
                    ClusterActivities.node_positions, PositionsInput(layout=layout, nodes=names)
                )
                choice = choose_bootstrap(positions, {n.name: n.ordinal for n in layout.nodes})
                unreadable = {p.node for p in positions if must_keep_aside(p.position)}
                incremental = can_join_by_ist(positions, choice.node)
            self._transition("cluster", "stopped", "bootstrapping", choice.reason)
            await self._act(
                ClusterActivities.start_node,
                StartInput(layout=layout, node=choice.node, bootstrap=True),
                summary=f"bootstrap {choice.node}: {choice.reason}",
            )
            await self._act(
                ClusterActivities.ensure_users, NodeInput(layout=layout, node=choice.node)
            )
            await self._wait_synced(layout, choice.node, joining=False)
            running = [choice.node]
        await self._act(
            ClusterActivities.configure_load_balancer,
            LoadBalancerInput(layout=layout, members=names),
        )
        self._restart_watcher()
        if incremental and workflow.patched("parallel-ist-joins"):
            await self._join_together(layout, [n for n in incremental if n not in running])
            running += incremental
        for name in names:
            if name in running:
                continue
            if name in unreadable and workflow.patched("keep-unreadable-data"):
                await self._act(
                    ClusterActivities.set_aside_data, NodeInput(layout=layout, node=name)
                )
            await self._act(ClusterActivities.start_node, StartInput(layout=layout, node=name))
            await self._wait_synced(layout, name)

    async def _join_together(self, layout: ClusterLayout, nodes: list[str]) -> None:
        """Start the nodes at once and wait until each is Synced; the first failure is raised
        after all of them ended (none is left half-started behind the task's back)."""

        async def join(node: str) -> None:
            await self._act(ClusterActivities.start_node, StartInput(layout=layout, node=node))
            await self._wait_synced(layout, node)

        results = await asyncio.gather(*(join(n) for n in nodes), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _apply(self, task: QueuedTask) -> None:
        new = task.spec
        old = self.memory.applied_spec
        if new is None or old is None:
            raise TaskFailed("the cluster was never created")
        if new.mysql != old.mysql and workflow.patched("config-check"):
            refused: str | None = await self._act(
                ClusterActivities.config_errors,
                ConfigInput(layout=self._layout_or_fail(), spec=new),
            )
            if refused:
                self._keep_applied_spec(new, old)
                raise TaskFailed(f"spec.mysql refused by the server, nothing changed: {refused}")
        if new.replicas > old.replicas:
            await self._scale_up(new)
        if new.mysql != old.mysql:
            await self._rolling_restart(new, old)
        if new.replicas < old.replicas:
            await self._scale_down(new)
        if new.health != old.health:
            self._restart_watcher()
        if new.backup.schedule != old.backup.schedule:
            await self._sync_schedule(new.backup.schedule)
        self.memory.applied_spec = new
        self.memory.observed_generation = self.meta.generation

    async def _scale_up(self, spec: MySQLClusterSpec) -> None:
        layout = await self._layout(spec.replicas)
        await self._reprovision(layout, spec)
        self._track_nodes(layout)
        await self._act(
            ClusterActivities.configure_load_balancer,
            LoadBalancerInput(layout=layout, members=[n.name for n in layout.nodes]),
        )
        self._restart_watcher()
        for node in layout.nodes:
            if node.name not in self._running_nodes():
                await self._act(
                    ClusterActivities.start_node, StartInput(layout=layout, node=node.name)
                )
                await self._wait_synced(layout, node.name)

    async def _scale_down(self, spec: MySQLClusterSpec) -> None:
        layout = self._layout_or_fail()
        keep = [n for n in layout.nodes if n.ordinal < spec.replicas]
        for node in sorted(layout.nodes, key=lambda n: -n.ordinal):
            if node.ordinal < spec.replicas:
                continue
            members = [n.name for n in layout.nodes if n.ordinal < node.ordinal]
            await self._act(
                ClusterActivities.configure_load_balancer,
                LoadBalancerInput(layout=layout, members=members),
            )
            await self._act(ClusterActivities.stop_node, StopInput(layout=layout, node=node.name))
            await self._act(
                ClusterActivities.remove_node,
                RemoveNodeInput(layout=layout, node=node.name, delete_data=False),
            )
        smaller = await self._layout(spec.replicas)
        assert [n.name for n in smaller.nodes] == [n.name for n in keep]
        await self._reprovision(smaller, spec)
        self._track_nodes(smaller)
        self._restart_watcher()

    async def _rolling_restart(self, spec: MySQLClusterSpec, last: MySQLClusterSpec) -> None:
        """New server options: rewrite every my.cnf, then restart one node at a time, the
        current writer last, each back to Synced before the next. A node that does not come
        back with them goes back to the last options that worked, and the change stops."""
        layout = self._layout_or_fail()
        await self._reprovision(layout, spec)
        order = sorted(layout.nodes, key=lambda n: (n.name == self.memory.writer, n.ordinal))
        alone = len(layout.nodes) == 1
        for node in order:
            await self._act(ClusterActivities.stop_node, StopInput(layout=layout, node=node.name))
            try:
                await self._act(
                    ClusterActivities.start_node,
                    StartInput(layout=layout, node=node.name, bootstrap=alone),
                )
                await self._wait_synced(layout, node.name)
            except ActivityError as error:
                if not workflow.patched("config-rollback"):
                    raise
                cause = error.cause or error
                await self._reprovision(layout, last)
                self._keep_applied_spec(spec, spec.model_copy(update={"mysql": last.mysql}))
                await self._act(
                    ClusterActivities.start_node,
                    StartInput(layout=layout, node=node.name, bootstrap=alone),
                )
                await self._wait_synced(layout, node.name)
                raise TaskFailed(
                    f"{node.name} did not come back with the new options ({cause}): it runs "
                    "the last options that worked again, and the change stopped"
                ) from None

    def _keep_applied_spec(self, refused: MySQLClusterSpec, applied: MySQLClusterSpec) -> None:
        """A refused change leaves the cluster's spec as last applied (unless a newer one came)."""
        if self.spec == refused:
            self.spec = applied

    async def _reprovision(self, layout: ClusterLayout, spec: MySQLClusterSpec) -> None:
        for node in layout.nodes:
            await self._act(
                ClusterActivities.provision_node,
                ProvisionInput(layout=layout, node=node.name, spec=spec),
            )

    async def _stop(self, task: QueuedTask) -> None:
        await self._stop_all_nodes()
        self._set_phase(Phase.STOPPED)

    async def _start(self, task: QueuedTask) -> None:
        layout = self._layout_or_fail()
        # Configs as this version writes them (patched: histories from before replay as they ran)
        if self.memory.applied_spec is not None and workflow.patched("start-reprovisions"):
            await self._reprovision(layout, self.memory.applied_spec)
        await self._start_cluster(layout)
        self._set_phase(Phase.RUNNING)

    async def _delete(self, task: QueuedTask) -> None:
        self._set_phase(Phase.DELETING)
        layout = self.memory.layout
        if layout is not None:
            if workflow.patched("backup-schedule"):
                await self._sync_schedule(None)  # the backups themselves are kept
            await self._stop_all_nodes()
            self._stop_watcher()
            await self._act(
                ClusterActivities.retire_cluster,
                RetireInput(layout=layout, delete_data=self.spec.deletion_policy == "Delete"),
            )
        self._set_phase(Phase.DELETED)
        self.memory.queue.clear()
        self.finished = True

    async def _stop_all_nodes(self) -> None:
        """Graceful stop, the writer last: the last node down is the one safe to bootstrap."""
        layout = self._layout_or_fail()
        order = sorted(layout.nodes, key=lambda n: (n.name == self.memory.writer, -n.ordinal))
        for node in order:
            await self._act(ClusterActivities.stop_node, StopInput(layout=layout, node=node.name))

    # -- activities ------------------------------------------------------------------------

    async def _act(
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

    async def _layout(self, replicas: int) -> ClusterLayout:
        cluster = ClusterRef(namespace=self.meta.namespace, name=self.meta.name)
        layout: ClusterLayout = await self._act(
            ClusterActivities.cluster_layout, LayoutInput(cluster=cluster, replicas=replicas)
        )
        self.memory.layout = layout
        return layout

    def _layout_or_fail(self) -> ClusterLayout:
        if self.memory.layout is None:
            raise TaskFailed("the cluster has no layout yet: it was never created")
        return self.memory.layout

    async def _wait_synced(
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
        seen: NodeObservation = await self._act(
            ClusterActivities.wait_synced,
            waiting,
            timeout=timedelta(minutes=20),
            heartbeat=timedelta(seconds=30),
        )
        self._record(seen)  # a Synced node is fresh evidence too
        self.memory.primary = True
        self._update_cluster_state("probe")
        if seen.join is None:
            return None
        join = seen.join.model_copy(update={"at": workflow.now()})
        if (memory := self._node(node)) is not None:
            memory.last_join = join
        self._transition(node, "joining", f"joined by {join.method.value}", join.detail)
        return join

    # -- health ----------------------------------------------------------------------------

    def _restart_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
        if self.memory.layout is not None:
            self.watcher = asyncio.create_task(self._watch(self.memory.layout))

    async def _survey(self, layout: ClusterLayout) -> None:
        """Look at every node now, rather than act on what the watcher saw last."""
        observation: Observation = await self._act(
            ClusterActivities.watch_health, WatchInput(layout=layout, health=self.spec.health)
        )
        self._observe(observation)

    def _stop_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None

    async def _watch(self, layout: ClusterLayout) -> None:
        baseline: Observation | None = None  # the first watch re-examines everything at once
        health = self.spec.health
        while True:
            try:
                observation: Observation = await workflow.execute_activity_method(
                    ClusterActivities.watch_health,
                    WatchInput(layout=layout, health=health, baseline=baseline),
                    start_to_close_timeout=timedelta(seconds=health.resync_seconds + 120),
                    heartbeat_timeout=timedelta(seconds=10),
                    retry_policy=WATCH_RETRY,
                )
            except ActivityError as error:
                if isinstance(error.cause, CancelledError):
                    return  # replaced by a watcher with a new layout or spec
                raise
            baseline = observation
            self._observe(observation)

    def _observe(self, observation: Observation) -> None:
        self.memory.writer = observation.writer
        self.memory.serving = observation.serving
        self.memory.primary = observation.primary
        for seen in observation.nodes:
            self._record(seen)
        self._update_cluster_state("probe")
        self._show_details()
        self.stale = False
        self.decide = True

    def _record(self, seen: NodeObservation) -> None:
        node = self._node(seen.name)
        if node is None:
            return
        node.facts = seen.facts
        node.pid = seen.pid
        node.evidence_at = workflow.now()
        self._set_node_state(node, seen.state, seen.reason, "probe")

    @workflow.signal(name=SIGNAL_NODE_REPORT)
    def node_report(self, report: NodeReport) -> None:
        """A passive report: queued (bounded, oldest dropped) and merged if it is news."""
        self.memory.reports.append(report)
        capacity = self.spec.health.report_queue_capacity
        if len(self.memory.reports) > capacity:
            dropped = len(self.memory.reports) - capacity
            del self.memory.reports[:dropped]
            self.memory.reports_dropped += dropped
        node = self._node(report.node)
        if node is None:
            return
        same_agent = node.last_report_agent == report.agent_started_at
        if same_agent and report.sequence <= node.last_report_sequence:
            return  # delivered twice or out of order
        node.last_report_agent = report.agent_started_at
        node.last_report_sequence = report.sequence
        if node.evidence_at is not None and report.observed_at <= node.evidence_at:
            return  # a probe has seen something newer
        node.facts = report.facts
        node.evidence_at = report.observed_at
        self._set_node_state(node, report.state, report.reason or report.state.value, "agent")
        donor_serves = self.spec.health.serve_from_donor
        # An agent's word can take serving away at once; only the probe, which also asks the
        # load balancer, can give it back.
        self.memory.primary = any(serves(n.facts, donor_serves) for n in self.memory.nodes)
        self.memory.serving = self.memory.serving and self.memory.primary
        self._update_cluster_state("agent")
        self._show_details()
        self.decide = True

    def _set_node_state(self, node: NodeMemory, state: NodeState, reason: str, source: str) -> None:
        node.reason = reason
        if node.state is state:
            return
        self._transition(node.name, node.state.value, state.value, f"{source}: {reason}")
        node.state = state
        node.since = workflow.now()
        self.changed_at = workflow.now()
        if state is NodeState.GREEN:
            self._forget_attempts(node.name)

    def _show_details(self) -> None:
        """The one-line summary the Temporal UI shows for the running workflow."""
        green = sum(1 for n in self.memory.nodes if n.state is NodeState.GREEN)
        task = self.current.id if self.current else "idle"
        queued = f", {len(self.memory.queue)} queued" if self.memory.queue else ""
        workflow.set_current_details(
            f"**{self.memory.cluster_state}** ({self.memory.phase}): {green}/{self.spec.replicas}"
            f" nodes Green, writer {self.memory.writer or '-'}; task: {task}{queued}"
        )

    def _update_cluster_state(self, source: str) -> None:
        state = cluster_state(
            (n.state for n in self.memory.nodes), self.spec.replicas, self.memory.serving
        )
        if state.value == self.memory.cluster_state:
            return
        green = sum(1 for n in self.memory.nodes if n.state is NodeState.GREEN)
        self._transition(
            "cluster",
            self.memory.cluster_state,
            state.value,
            f"{source}: {green} of {self.spec.replicas} nodes Green, "
            f"{'serving' if self.memory.serving else 'not serving'}",
        )
        self.memory.cluster_state = state.value
        if state is ClusterState.GREEN:
            self._forget_attempts(None)
        if self.memory.manual is None:
            workflow.upsert_search_attributes([CLUSTER_STATE.value_set(state.value)])

    def _track_nodes(self, layout: ClusterLayout) -> None:
        known = {n.name: n for n in self.memory.nodes}
        self.memory.nodes = [
            known.get(n.name) or NodeMemory(name=n.name, ordinal=n.ordinal) for n in layout.nodes
        ]

    def _node(self, name: str) -> NodeMemory | None:
        return next((n for n in self.memory.nodes if n.name == name), None)

    def _running_nodes(self) -> list[str]:
        return [n.name for n in self.memory.nodes if n.facts.process_alive]

    def _transition(self, subject: str, before: str, after: str, reason: str) -> None:
        self.memory.transitions.append(
            Transition(
                at=workflow.now(), subject=subject, from_state=before, to_state=after, reason=reason
            )
        )
        del self.memory.transitions[:-TRANSITIONS_KEPT]

    def _set_phase(self, phase: Phase) -> None:
        if self.memory.phase != phase.value:
            self._transition("cluster", self.memory.phase, phase.value, "lifecycle")
            self.memory.phase = phase.value

    # -- fault handling (the decisions and repairs are in workflows/repair.py) ---------------

    def _reexamine(self) -> None:
        """Look at every node afresh (the watcher's first call returns at once)."""
        if self.memory.created and not self.finished:
            self.stale = True
            self._restart_watcher()

    # -- commands --------------------------------------------------------------------------

    def _new_task(self, kind: str, reason: str) -> QueuedTask:
        self.memory.task_counter += 1
        return QueuedTask(
            id=f"{kind}-{self.memory.task_counter}",
            kind=kind,
            requested_at=workflow.now(),
            reason=reason,
        )

    def _enqueue(self, kind: str, spec: MySQLClusterSpec | None, reason: str) -> CommandResult:
        task = self._new_task(kind, reason)
        task.spec = spec
        self.memory.queue.append(task)
        return CommandResult(accepted=True, task_id=task.id, message=f"queued as {task.id}")

    def _refuse_when_ending(self) -> None:
        if self.memory.phase in (Phase.DELETING.value, Phase.DELETED.value) or any(
            t.kind == "delete" for t in self.memory.queue
        ):
            raise ValueError("the cluster is being deleted")

    @workflow.update(name=UPDATE_APPLY_SPEC)
    def apply_spec(self, request: ApplySpecRequest) -> CommandResult:
        self.spec = request.spec
        if request.generation is not None:
            self.meta.generation = request.generation
        return self._enqueue("apply", request.spec, "spec changed")

    @apply_spec.validator
    def _validate_apply_spec(self, request: ApplySpecRequest) -> None:
        self._refuse_when_ending()
        if request.spec == self.spec:
            raise ValueError("unchanged: the cluster already has this spec")
        if request.spec.flavor != self.spec.flavor:
            raise ValueError("spec.flavor cannot change on an existing cluster")
        if request.spec.restore_from != self.spec.restore_from:
            raise ValueError(
                "spec.restoreFrom only applies when a cluster is created; to restore into an "
                "existing cluster use a MySQLRestore (mysqlops restore)"
            )

    @workflow.update(name=UPDATE_STOP)
    def stop(self, request: LifecycleRequest) -> CommandResult:
        return self._enqueue("stop", None, request.reason or "stop requested")

    @stop.validator
    def _validate_stop(self, request: LifecycleRequest) -> None:
        self._refuse_when_ending()

    @workflow.update(name=UPDATE_START)
    def start(self, request: LifecycleRequest) -> CommandResult:
        if self._being_created():
            return CommandResult(accepted=True, message="being created: it starts when done")
        return self._enqueue("start", None, request.reason or "start requested")

    @start.validator
    def _validate_start(self, request: LifecycleRequest) -> None:
        self._refuse_when_ending()
        if not self.memory.created and not self._being_created():
            raise ValueError("the cluster was never created")

    def _being_created(self) -> bool:
        tasks = [*self.memory.queue, *([self.current] if self.current else [])]
        return not self.memory.created and any(t.kind == "create" for t in tasks)

    @workflow.update(name=UPDATE_DELETE)
    def delete(self, request: LifecycleRequest) -> CommandResult:
        return self._enqueue("delete", None, request.reason or "delete requested")

    @delete.validator
    def _validate_delete(self, request: LifecycleRequest) -> None:
        self._refuse_when_ending()

    # -- queries ---------------------------------------------------------------------------

    @workflow.query(name=QUERY_SPEC)
    def current_spec(self) -> MySQLClusterSpec:
        return self.spec

    @workflow.query(name=QUERY_STATUS)
    def status(self) -> ClusterStatus:
        return self._status()

    def _status(self) -> ClusterStatus:
        layout = self.memory.layout
        addresses = {n.name: n for n in layout.nodes} if layout else {}
        current = None
        if self.current is not None:
            current = _task_info(self.current)
            current.started_at = self.current_started
        return ClusterStatus(
            workflow_id=workflow.info().workflow_id,
            phase=Phase(self.memory.phase),
            state=ClusterState(self.memory.cluster_state),
            writer=self.memory.writer,
            replicas=self.spec.replicas,
            ready_replicas=sum(1 for n in self.memory.nodes if n.state is NodeState.GREEN),
            nodes=[
                NodeStatus(
                    name=n.name,
                    host=addresses[n.name].host if n.name in addresses else "",
                    port=addresses[n.name].port if n.name in addresses else 0,
                    pid=n.pid if n.facts.process_alive else None,
                    state=n.state,
                    reason=n.reason,
                    facts=n.facts,
                    since=n.since,
                    last_join=n.last_join,
                )
                for n in self.memory.nodes
            ],
            current_task=current,
            queued_tasks=[_task_info(t) for t in self.memory.queue],
            transitions=list(self.memory.transitions),
            endpoints=Endpoints(
                host=layout.host,
                writer_port=layout.writer_port,
                reader_port=layout.reader_port,
                stats_port=layout.stats_port,
            )
            if layout
            else None,
            reports_queued=len(self.memory.reports),
            reports_dropped=self.memory.reports_dropped,
            observed_generation=self.memory.observed_generation,
            message=self.memory.message,
            outcomes=list(self.memory.outcomes),
            manual_intervention=self.memory.manual,
            remediations=list(self.memory.remediations),
            backups=list(self.memory.backups),
            restores=list(self.memory.restores),
        )


def _task_info(task: QueuedTask) -> TaskInfo:
    return TaskInfo(id=task.id, kind=task.kind, requested_at=task.requested_at, detail=task.reason)
