"""The cluster workflow: one long-running controller per MySQL cluster.

Shape (docs/design.md): state restored in `@workflow.init`, all of it in one serializable
`ClusterMemory`; one main loop that waits for work and runs one task at a time from a
serialized queue, then decides (`workflows.decide`, pure) what the evidence calls for; a
health watcher and a report drain beside it, which only merge evidence; commands as updates
with validators; continue-as-new from the main loop only, after every handler finished.

Task bodies live in modules named for what they do (lifecycle, converge, repairs, backups)
and take the `Context`; this class keeps what Temporal needs on it: the loop and handlers.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from api.backup import BackupRequest, RestoreRequest
    from api.cluster import (
        ClusterStatus,
        Endpoints,
        MySQLCluster,
        MySQLClusterSpec,
        NodeStatus,
        SpecProgress,
        TaskInfo,
        TaskOutcome,
    )
    from api.messages import (
        QUERY_SPEC,
        QUERY_STATUS,
        SIGNAL_NODE_REPORT,
        SIGNAL_SCHEDULED_BACKUP,
        UPDATE_APPLY_SPEC,
        UPDATE_BACKUP,
        UPDATE_DELETE,
        UPDATE_FORCE_ACTION,
        UPDATE_RESTORE,
        UPDATE_RESUME,
        UPDATE_START,
        UPDATE_STOP,
        ApplySpecRequest,
        ClusterMemory,
        ClusterWorkflowInput,
        CommandResult,
        LifecycleRequest,
        NodeReport,
        QueuedTask,
    )
    from api.remediation import ForceActionRequest, Outcome, ResumeRequest
    from api.states import NodeState, Phase, TaskKind
    from galera.faults import next_deadline
    from galera.forcing import refusal
    from workflows import backups, converge, counters, lifecycle, publish, repairs
    from workflows.context import Context
    from workflows.decide import Evidence, Pause, Repair, Wait, decide
    from workflows.errors import failure
    from workflows.search import CLUSTER_STATE

OUTCOMES_KEPT = 20
REPORTS_KEPT = 256  # at most: a report is about 375 bytes, the memory must stay far below 2 MB
MAX_RUN_TIME = timedelta(hours=24)  # continue-as-new at the latest after this long

Task = Callable[[Context, QueuedTask], Awaitable[None]]
TASKS: dict[TaskKind, Task] = {
    TaskKind.CREATE: lifecycle.create,
    TaskKind.APPLY: converge.apply,
    TaskKind.STOP: lifecycle.stop,
    TaskKind.START: lifecycle.start,
    TaskKind.DELETE: lifecycle.delete,
    TaskKind.REMEDIATE: repairs.remediate,
    TaskKind.FORCE: repairs.force,
    TaskKind.BACKUP: backups.backup,
    TaskKind.RESTORE: backups.restore,
}


@workflow.defn(name="MySQLCluster")
class ClusterWorkflow:
    @workflow.init
    def __init__(self, request: ClusterWorkflowInput) -> None:
        memory = request.memory or ClusterMemory(phase=Phase.CREATING)
        self.ctx = Context(request.cluster.metadata, request.cluster.spec, memory)
        if request.memory is None:
            task = self.ctx.new_task(TaskKind.CREATE, "resource applied")
            task.spec = self.ctx.spec
            self.ctx.enqueue(task)

    # -- the main loop ---------------------------------------------------------------------

    @workflow.run
    async def run(self, request: ClusterWorkflowInput) -> ClusterStatus:
        ctx, memory = self.ctx, self.ctx.memory
        ctx.show_search_state()
        if memory.created:
            ctx.restart_watcher()
        drain = asyncio.create_task(self._drain_reports())
        publisher = (
            asyncio.create_task(publish.publish_changes(ctx, self._status))
            if ctx.meta.uid
            else None
        )
        while memory.phase is not Phase.DELETED:
            with contextlib.suppress(TimeoutError):  # a backoff or grace period ended
                await workflow.wait_condition(
                    lambda: bool(memory.queue) or ctx.wake or self._time_to_continue_as_new(),
                    timeout=self._next_look(),
                )
            ctx.wake = False
            if self._time_to_continue_as_new() and (
                # Between two tasks, carrying the queue: a steady stream of commands must not
                # put the switch off for ever (histories from before ran the queue dry first).
                not memory.queue or workflow.patched("continue-as-new-between-tasks")
            ):
                drain.cancel()
                if publisher is not None:
                    publisher.cancel()
                await self._continue_as_new()
            elif memory.queue:
                await self._run_task(memory.queue.pop(0))
                ctx.reexamine()  # decide on what the task left behind, not on old evidence
            else:
                self._decide()
                self._converge()
        drain.cancel()
        if publisher is not None:
            publisher.cancel()
        ctx.stop_watcher()
        return self._status()

    def _time_to_continue_as_new(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or (
            workflow.now() - info.start_time > MAX_RUN_TIME
        )

    async def _continue_as_new(self) -> None:
        self.ctx.stop_watcher()
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._merge_reports()
        workflow.continue_as_new(
            ClusterWorkflowInput(
                cluster=MySQLCluster(metadata=self.ctx.meta, spec=self.ctx.spec),
                memory=self.ctx.memory,
            )
        )

    async def _run_task(self, task: QueuedTask) -> None:
        ctx = self.ctx
        ctx.current = task
        ctx.current_started = workflow.now()
        ctx.show_details()
        workflow.logger.info("task %s started (%s)", task.id, task.reason)
        outcome, error_text = Outcome.SUCCEEDED, ""
        try:
            await TASKS[task.kind](ctx, task)
            ctx.memory.message = ""
            workflow.logger.info("task %s done", task.id)
        except Exception as error:
            outcome, error_text = failure(error)
        finally:
            ctx.memory.outcomes.append(
                TaskOutcome(
                    id=task.id,
                    kind=task.kind,
                    outcome=outcome,
                    error=error_text,
                    requested_at=task.requested_at,
                    started_at=ctx.current_started,
                    ended_at=workflow.now(),
                )
            )
            del ctx.memory.outcomes[:-OUTCOMES_KEPT]
            ctx.current = None
            ctx.show_details()
            _count_task(ctx, task.kind, outcome)
        if outcome is not Outcome.SUCCEEDED:
            ctx.memory.message = f"task {task.id} {outcome.value.lower()}: {error_text}"
            ctx.transition("cluster", "task", outcome.value.lower(), ctx.memory.message)
            workflow.logger.warning(ctx.memory.message)

    # -- deciding --------------------------------------------------------------------------

    def _decision(self) -> Repair | Pause | Wait | None:
        ctx, memory = self.ctx, self.ctx.memory
        evidence = Evidence(
            phase=memory.phase,
            nodes=memory.nodes,
            primary=memory.primary,
            changed_at=ctx.changed_at,
            stale=ctx.stale,
            paused=memory.manual is not None,
            resumed_from=memory.resumed_from,
        )
        return decide(
            evidence, memory.attempts, memory.retry_after, workflow.now(), ctx.spec.remediation
        )

    def _decide(self) -> None:
        decision = self._decision()
        if isinstance(decision, Repair):
            repairs.queue_repair(self.ctx, decision)
        elif isinstance(decision, Pause):
            repairs.pause(self.ctx, decision)

    def _converge(self) -> None:
        """Retry the desired spec once a failed attempt's backoff ended."""
        ctx, memory = self.ctx, self.ctx.memory
        if self._spec_retry_at() != workflow.now() or not workflow.patched("spec-retries"):
            return
        progress = memory.spec_progress
        task = ctx.new_task(
            TaskKind.APPLY,
            f"retry {progress.attempts + 1} of generation {ctx.meta.generation}: {progress.error}",
        )
        task.spec = ctx.spec
        ctx.enqueue(task)

    def _spec_retry_at(self) -> datetime | None:
        ctx, memory = self.ctx, self.ctx.memory
        if (
            memory.phase is not Phase.RUNNING
            or memory.applied_spec in (None, ctx.spec)
            or ctx.has_task(TaskKind.APPLY)
        ):
            return None
        return converge.next_attempt(memory.spec_progress, ctx.applied.remediation, workflow.now())

    def _next_look(self) -> timedelta | None:
        """How long the loop may sleep when nothing arrives: until a backoff, a settling or a
        grace period ends. None when nothing is pending, in every phase: the history grows
        with changes, never with time."""
        if not workflow.patched("decide-waits"):
            return self._legacy_next_look()
        now = workflow.now()
        moments = [m for m in (self._spec_retry_at(),) if m is not None]
        if isinstance(decision := self._decision(), Wait):
            moments.append(decision.until)
        return min(moments) - now if moments and min(moments) > now else None

    def _legacy_next_look(self) -> timedelta | None:
        """As histories recorded before the decide step computed it (past moments included)."""
        ctx, rules = self.ctx, self.ctx.spec.remediation
        settle = ctx.changed_at + timedelta(seconds=rules.settle_seconds)
        moments = list(ctx.memory.retry_after.values())
        if workflow.now() < settle:
            moments.append(settle)
        grace = timedelta(seconds=rules.hung_grace_seconds)
        cut_off = timedelta(seconds=rules.partition_grace_seconds)
        if (unknown := next_deadline(ctx.memory.nodes, grace, cut_off)) is not None:
            moments.append(unknown)
        if not moments or ctx.memory.manual:
            return None
        return max(min(moments) - workflow.now(), timedelta(milliseconds=100))

    # -- passive reports -------------------------------------------------------------------

    @workflow.signal(name=SIGNAL_NODE_REPORT)
    def node_report(self, report: NodeReport) -> None:
        """A passive report: queued (bounded, the oldest dropped when full: evidence lost),
        drained in order as soon as the workflow runs."""
        memory = self.ctx.memory
        memory.reports.append(report)
        counters.count(self.ctx.memory, "agent_reports_received")
        capacity = min(self.ctx.spec.health.report_queue_capacity, REPORTS_KEPT)
        if len(memory.reports) > capacity:
            dropped = len(memory.reports) - capacity
            del memory.reports[:dropped]
            memory.reports_dropped += dropped
        if not workflow.patched("report-queue"):
            self.ctx.merge_report(report, ordered_by_arrival=False)  # as recorded before

    async def _drain_reports(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.ctx.memory.reports))
            self._merge_reports()

    def _merge_reports(self) -> None:
        if not workflow.patched("report-queue"):
            self.ctx.memory.reports.clear()  # merged by the handler
            return
        while self.ctx.memory.reports:
            self.ctx.merge_report(self.ctx.memory.reports.pop(0), ordered_by_arrival=True)

    @workflow.signal(name=SIGNAL_SCHEDULED_BACKUP)
    def scheduled_backup(self, request: BackupRequest) -> None:
        backups.scheduled_backup(self.ctx, request)

    # -- commands --------------------------------------------------------------------------

    def _queue(self, kind: TaskKind, reason: str) -> CommandResult:
        task = self.ctx.enqueue(self.ctx.new_task(kind, reason))
        return CommandResult(accepted=True, task_id=task.id, message=f"queued as {task.id}")

    @workflow.update(name=UPDATE_APPLY_SPEC)
    def apply_spec(self, request: ApplySpecRequest) -> CommandResult:
        """The desired spec changes at once; the apply task converges the cluster to it."""
        ctx = self.ctx
        ctx.spec = request.spec
        if request.generation is not None:
            ctx.meta.generation = request.generation
        if workflow.patched("desired-spec"):
            ctx.memory.spec_progress = SpecProgress()
            queued = next((t for t in ctx.memory.queue if t.kind is TaskKind.APPLY), None)
            if queued is not None:
                return CommandResult(
                    accepted=True, task_id=queued.id, message=f"{queued.id} will apply it"
                )
            if ctx.memory.phase is Phase.STOPPED:
                return CommandResult(
                    accepted=True, message="the cluster is stopped: applied when it starts"
                )
        task = ctx.new_task(TaskKind.APPLY, "spec changed")
        task.spec = request.spec
        ctx.enqueue(task)
        return CommandResult(accepted=True, task_id=task.id, message=f"queued as {task.id}")

    @apply_spec.validator
    def _validate_apply_spec(self, request: ApplySpecRequest) -> None:
        ctx = self.ctx
        ctx.refuse_when_ending()
        if request.spec == ctx.spec and ctx.spec == ctx.applied:
            raise ValueError("unchanged: the cluster already has this spec")
        if request.spec.flavor != ctx.spec.flavor:
            raise ValueError("spec.flavor cannot change on an existing cluster")
        if request.spec.restore_from != ctx.spec.restore_from:
            raise ValueError(
                "spec.restoreFrom only applies when a cluster is created; to restore into an "
                "existing cluster use a MySQLRestore (mysqlops restore)"
            )

    @workflow.update(name=UPDATE_STOP)
    def stop(self, request: LifecycleRequest) -> CommandResult:
        return self._queue(TaskKind.STOP, request.reason or "stop requested")

    @stop.validator
    def _validate_stop(self, request: LifecycleRequest) -> None:
        self.ctx.refuse_when_ending()

    @workflow.update(name=UPDATE_START)
    def start(self, request: LifecycleRequest) -> CommandResult:
        if self.ctx.being_created():
            return CommandResult(accepted=True, message="being created: it starts when done")
        return self._queue(TaskKind.START, request.reason or "start requested")

    @start.validator
    def _validate_start(self, request: LifecycleRequest) -> None:
        self.ctx.refuse_when_ending()
        if not self.ctx.memory.created and not self.ctx.being_created():
            raise ValueError("the cluster was never created")

    @workflow.update(name=UPDATE_DELETE)
    def delete(self, request: LifecycleRequest) -> CommandResult:
        return self._queue(TaskKind.DELETE, request.reason or "delete requested")

    @delete.validator
    def _validate_delete(self, request: LifecycleRequest) -> None:
        """A delete that failed left the phase Deleting: a new delete runs it again."""
        if self.ctx.memory.phase is Phase.DELETED:
            raise ValueError("the cluster is deleted")
        if self.ctx.has_task(TaskKind.DELETE):
            raise ValueError("the cluster is being deleted")

    @workflow.update(name=UPDATE_FORCE_ACTION)
    def force_action(self, request: ForceActionRequest) -> CommandResult:
        record = repairs.queue_forced(self.ctx, request)
        return CommandResult(accepted=True, task_id=record.id, message=f"queued as {record.id}")

    @force_action.validator
    def _validate_force_action(self, request: ForceActionRequest) -> None:
        memory = self.ctx.memory
        self.ctx.refuse_when_ending()
        if memory.phase is not Phase.RUNNING:
            raise ValueError(f"the cluster is {memory.phase}: start it first")
        found = refusal(request, memory.nodes, memory.primary)
        if found is not None and not (found.overridable and request.force):
            hint = " (add force to carry it out anyway)" if found.overridable else ""
            raise ValueError(f"{found.reason}{hint}")

    @workflow.update(name=UPDATE_RESUME)
    def resume(self, request: ResumeRequest) -> CommandResult:
        ctx, memory = self.ctx, self.ctx.memory
        paused = memory.manual
        if paused is None:  # the validator refuses this; kept for the type checker
            raise ValueError("automation is not paused: nothing to resume")
        memory.manual = None
        memory.resumed_from = paused.evidence
        ctx.forget_attempts(None)
        ctx.transition("cluster", "ManualIntervention", "automatic", request.reason)
        workflow.upsert_search_attributes([CLUSTER_STATE.value_set(memory.cluster_state.value)])
        ctx.wake = True
        ctx.show_details()
        return CommandResult(accepted=True, message=f"automation resumed after {paused.fault}")

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        if self.ctx.memory.manual is None:
            raise ValueError("automation is not paused: nothing to resume")

    @workflow.update(name=UPDATE_BACKUP)
    def backup(self, request: BackupRequest) -> CommandResult:
        return backups.queue_backup(self.ctx, request)

    @backup.validator
    def _validate_backup(self, request: BackupRequest) -> None:
        backups.check_backup(self.ctx, request)

    @workflow.update(name=UPDATE_RESTORE)
    def restore(self, request: RestoreRequest) -> CommandResult:
        return backups.queue_restore(self.ctx, request)

    @restore.validator
    def _validate_restore(self, request: RestoreRequest) -> None:
        backups.check_restore(self.ctx, request)

    # -- queries ---------------------------------------------------------------------------

    @workflow.query(name=QUERY_SPEC)
    def current_spec(self) -> MySQLClusterSpec:
        """The desired spec: what the user last applied."""
        return self.ctx.spec

    @workflow.query(name=QUERY_STATUS)
    def status(self) -> ClusterStatus:
        return self._status()

    def _status(self) -> ClusterStatus:
        ctx, memory = self.ctx, self.ctx.memory
        layout = memory.layout
        addresses = {n.name: n for n in layout.nodes} if layout else {}
        current = None
        if ctx.current is not None:
            current = _task_info(ctx.current)
            current.started_at = ctx.current_started
        progress = memory.spec_progress.model_copy(
            update={
                "desired_generation": ctx.meta.generation,
                "observed_generation": memory.observed_generation,
                "converged": memory.applied_spec is not None and memory.applied_spec == ctx.spec,
            }
        )
        return ClusterStatus(
            workflow_id=workflow.info().workflow_id,
            phase=memory.phase,
            state=memory.cluster_state,
            writer=memory.writer,
            replicas=ctx.spec.replicas,
            ready_replicas=sum(1 for n in memory.nodes if n.state is NodeState.GREEN),
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
                    last_report_sequence=n.last_report_sequence,
                )
                for n in memory.nodes
            ],
            current_task=current,
            queued_tasks=[_task_info(t) for t in memory.queue],
            transitions=list(memory.transitions),
            endpoints=Endpoints(
                host=layout.host,
                writer_port=layout.writer_port,
                reader_host=layout.reader_host,
                reader_port=layout.reader_port,
                stats_port=layout.stats_port,
            )
            if layout
            else None,
            reports_queued=len(memory.reports),
            reports_dropped=memory.reports_dropped,
            counters=dict(memory.counters),
            observed_generation=memory.observed_generation,
            message=memory.message,
            outcomes=list(memory.outcomes),
            spec_progress=progress,
            manual_intervention=memory.manual,
            unwatched=ctx.unwatched,
            remediations=list(memory.remediations),
            backups=list(memory.backups),
            restores=list(memory.restores),
        )


def _count_task(ctx: Context, kind: TaskKind, outcome: Outcome) -> None:
    counters.count(ctx.memory, "tasks", kind=kind.value, outcome=outcome.value)
    if kind is TaskKind.BACKUP:
        counters.count(ctx.memory, "backups", outcome=outcome.value)
    elif kind is TaskKind.RESTORE:
        counters.count(ctx.memory, "restores", outcome=outcome.value)


def _task_info(task: QueuedTask) -> TaskInfo:
    return TaskInfo(id=task.id, kind=task.kind, requested_at=task.requested_at, detail=task.reason)
