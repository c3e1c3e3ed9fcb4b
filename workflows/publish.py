"""What a cluster created from a Kubernetes object shows there: the object's status, the status
of its `MySQLBackup` / `MySQLRestore` objects, and Events.

Only clusters whose metadata carries an API server's `uid` publish (the watcher starts them);
a cluster applied with `mysqlops apply -f` has nothing to write to. Writes are coalesced: the
publisher waits for a change (a new summary, or something worth an Event), then for the rest
of `PUBLISH_EVERY` since its last write, and writes the newest state at once. So the API server
sees one write per change at most every few seconds, never a stream of health reports, and
the history grows with changes, not with time.

Everything here but `publish_changes` is pure: tested in tests/unit/test_publish.py.
"""

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.kubernetes.publish import KubernetesActivities
    from api.backup import BackupRecord, BackupTrigger, RestoreRecord
    from api.cluster import ClusterStatus, MySQLClusterSpec
    from api.remediation import Outcome
    from api.resource_status import (
        Automation,
        BackupResourceStatus,
        ClusterResourceStatus,
        Condition,
        ConditionType,
        EventNote,
        NodeSummary,
        ObjectRef,
        PublishRequest,
        RestoreResourceStatus,
    )
    from api.states import BackupPhase, ClusterState, NodeState, Phase, TaskKind
    from workflows import counters
    from workflows.context import Context

PUBLISH_EVERY = timedelta(seconds=5)
PUBLISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
NOTE_LIMIT = 1024
WARNING_STATES = {
    NodeState.RED_CLEAN.value,
    NodeState.RED_UNCLEAN.value,
    NodeState.UNKNOWN.value,
    ClusterState.RED.value,
    ClusterState.YELLOW.value,
    "unwatched",
}


def camel(text: str) -> str:
    """'Red-unclean' -> 'RedUnclean': a word Kubernetes takes as a reason."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text))


# -- the summary -------------------------------------------------------------------------------


def automation(status: ClusterStatus, spec: MySQLClusterSpec) -> Automation:
    if status.manual_intervention is not None:
        return Automation.MANUAL_INTERVENTION
    return Automation.ACTIVE if spec.remediation.enabled else Automation.PAUSED


def last_good_backup(status: ClusterStatus) -> BackupRecord | None:
    done = [b for b in status.backups if b.phase is BackupPhase.SUCCEEDED and b.finished_at]
    return max(done, key=lambda b: b.finished_at or b.requested_at, default=None)


def conditions(status: ClusterStatus, generation: int | None) -> list[Condition]:
    """Ready, Progressing, Degraded, ManualIntervention, BackupFailing; each says why."""

    def condition(kind: ConditionType, true: bool, reason: str, message: str) -> Condition:
        return Condition(
            type=kind.value,
            status="True" if true else "False",
            reason=reason,
            message=message[:NOTE_LIMIT],
            observed_generation=generation,
        )

    ready = f"{status.ready_replicas}/{status.replicas}"
    serving = status.state is not ClusterState.RED and status.phase is Phase.RUNNING
    if status.phase is not Phase.RUNNING:
        ready_reason, degraded_reason = camel(status.phase.value), camel(status.phase.value)
    else:
        ready_reason = "Serving" if serving else "NotServing"
        degraded_reason = {
            ClusterState.GREEN: "AllNodesGreen",
            ClusterState.YELLOW: "FewerNodesGreen",
            ClusterState.RED: "NotServing",
        }[status.state]
    writer = f", writer {status.writer}" if status.writer else ""
    task = status.current_task or (status.queued_tasks[0] if status.queued_tasks else None)
    progress = status.spec_progress
    if task is not None:
        progressing = condition(
            ConditionType.PROGRESSING, True, "TaskRunning", f"{task.id}: {task.detail}"
        )
    elif not progress.converged:
        why = progress.error or f"generation {progress.desired_generation} not applied yet"
        progressing = condition(ConditionType.PROGRESSING, True, "SpecNotApplied", why)
    else:
        progressing = condition(ConditionType.PROGRESSING, False, "Idle", "nothing to do")
    paused = status.manual_intervention
    backups = sorted(status.backups, key=lambda b: b.requested_at)
    ended = [b for b in backups if b.phase in (BackupPhase.SUCCEEDED, BackupPhase.FAILED)]
    latest = ended[-1] if ended else None
    failing = latest is not None and latest.phase is BackupPhase.FAILED
    return [
        condition(ConditionType.READY, serving, ready_reason, f"{ready} nodes Green{writer}"),
        progressing,
        condition(
            ConditionType.DEGRADED,
            status.phase is Phase.RUNNING and status.state is not ClusterState.GREEN,
            degraded_reason,
            f"{status.state.value}: {ready} nodes Green",
        ),
        condition(
            ConditionType.MANUAL_INTERVENTION,
            paused is not None,
            camel(paused.fault.value) if paused else "Automatic",
            f"{paused.reason} (resume with `mysqlops resume`)"
            if paused
            else "faults are repaired automatically",
        ),
        condition(
            ConditionType.BACKUP_FAILING,
            failing,
            "BackupFailed" if failing else ("BackupSucceeded" if latest else "NoBackup"),
            (f"{latest.name}: {latest.error or 'failed'}" if failing else f"{latest.name} ok")
            if latest
            else "no backup has ended yet",
        ),
    ]


def resource_status(
    status: ClusterStatus, spec: MySQLClusterSpec, generation: int | None
) -> ClusterResourceStatus:
    """The object's status: a summary of the workflow's, free of anything that changes with
    time alone (so comparing two tells whether there is something new to write)."""
    backup = last_good_backup(status)
    return ClusterResourceStatus(
        observed_generation=status.observed_generation,
        workflow_id=status.workflow_id,
        phase=status.phase,
        state=status.state,
        automation=automation(status, spec),
        ready=f"{status.ready_replicas}/{status.replicas}",
        ready_replicas=status.ready_replicas,
        replicas=status.replicas,
        writer=status.writer,
        last_backup=backup.finished_at if backup else None,
        last_backup_name=backup.name if backup else None,
        nodes=[NodeSummary(name=n.name, state=n.state, reason=n.reason) for n in status.nodes],
        message=status.message,
        unwatched=status.unwatched,
        conditions=conditions(status, generation),
    )


# -- MySQLBackup / MySQLRestore objects ------------------------------------------------------


def _newer(since: datetime | None, *moments: datetime | None) -> bool:
    return since is None or any(m is not None and m > since for m in moments)


def backup_status(record: BackupRecord) -> BackupResourceStatus:
    progress = {
        BackupPhase.PENDING: "queued",
        BackupPhase.RUNNING: f"streaming from {record.node or 'a node'}",
        BackupPhase.SUCCEEDED: f"stored at {record.location}",
        BackupPhase.FAILED: "failed",
    }[record.phase]
    return BackupResourceStatus(
        phase=record.phase,
        task_id=record.task_id,
        progress=progress,
        size_bytes=record.size_bytes,
        node=record.node,
        position=record.position,
        location=record.location,
        started_at=record.started_at,
        finished_at=record.finished_at,
        error=record.error,
    )


def restore_status(record: RestoreRecord) -> RestoreResourceStatus:
    progress = {
        BackupPhase.PENDING: "queued",
        BackupPhase.RUNNING: f"restoring {record.backup or 'the latest backup'}",
        BackupPhase.SUCCEEDED: f"restored {record.backup} on {record.node}",
        BackupPhase.FAILED: "failed" + (f": {record.rollback}" if record.rollback else ""),
    }[record.phase]
    return RestoreResourceStatus(
        phase=record.phase,
        task_id=record.task_id,
        progress=progress,
        backup=record.backup,
        node=record.node,
        started_at=record.started_at,
        finished_at=record.finished_at,
        error=record.error,
        set_aside=record.set_aside,
        rollback=record.rollback,
    )


def changed_backups(
    status: ClusterStatus, since: datetime | None
) -> dict[str, BackupResourceStatus]:
    """Manual backups whose record changed since the last write (a MySQLBackup may be
    named for them; the writer skips names with no object)."""
    return {
        b.name: backup_status(b)
        for b in status.backups
        if b.trigger is BackupTrigger.MANUAL
        and _newer(since, b.requested_at, b.started_at, b.finished_at)
    }


def changed_restores(
    status: ClusterStatus, since: datetime | None
) -> dict[str, RestoreResourceStatus]:
    return {
        r.name: restore_status(r)
        for r in status.restores
        if r.name is not None and _newer(since, r.requested_at, r.started_at, r.finished_at)
    }


# -- Events ------------------------------------------------------------------------------------


def events_since(status: ClusterStatus, name: str, since: datetime | None) -> list[EventNote]:
    """An Event for every state transition, repair step, pause for a human, backup and restore
    (every ended task) recorded after `since`, oldest first."""
    notes: list[EventNote] = []

    def note(at: datetime, reason: str, action: str, text: str, warning: bool = False) -> None:
        if since is None or at > since:
            notes.append(
                EventNote(
                    name=name,
                    type="Warning" if warning else "Normal",
                    reason=reason,
                    action=action,
                    note=text[:NOTE_LIMIT],
                    at=at,
                )
            )

    for t in status.transitions:
        if t.from_state == "task":
            continue  # a task's end is its own Event below
        subject = "Cluster" if t.subject == "cluster" else "Node"
        text = f"{t.subject}: {t.from_state} -> {t.to_state}: {t.reason}"
        note(t.at, subject + camel(t.to_state), "Observe", text, t.to_state in WARNING_STATES)
    for r in status.remediations:
        where = ", ".join(r.nodes) or "the cluster"
        note(
            r.started_at,
            "RepairStarted",
            "Repair",
            f"{r.id}: {r.fault.value} on {where}: {r.evidence}",
        )
        for a in r.actions:
            step = f"{r.id}: {a.action.value}" + (f" {a.node}" if a.node else "")
            note(a.started_at, "RepairStep", "Repair", f"{step} started")
            if a.ended_at is not None:
                failed = a.outcome is not Outcome.SUCCEEDED
                detail = f": {a.detail}" if a.detail else ""
                note(
                    a.ended_at, "RepairStep", "Repair", f"{step} {a.outcome.value}{detail}", failed
                )
        if r.ended_at is not None:
            failed = r.outcome is not Outcome.SUCCEEDED
            note(
                r.ended_at,
                f"Repair{r.outcome.value}",
                "Repair",
                f"{r.id}: {r.outcome.value}",
                failed,
            )
    if (paused := status.manual_intervention) is not None:
        note(
            paused.since,
            "ManualIntervention",
            "Pause",
            f"{paused.fault.value}: {paused.reason}; evidence: {paused.evidence}",
            warning=True,
        )
    for b in status.backups:
        if b.started_at is not None:
            note(
                b.started_at, "BackupStarted", "Backup", f"{b.name} ({b.trigger.value}) on {b.node}"
            )
    for o in status.outcomes:
        if o.kind is TaskKind.REMEDIATE:
            continue  # the repair's own Events say it
        failed = o.outcome is not Outcome.SUCCEEDED
        text = f"{o.id} ({o.kind.value}) {o.outcome.value.lower()}" + (
            f": {o.error}" if o.error else ""
        )
        note(o.ended_at, camel(o.kind.value) + o.outcome.value, camel(o.kind.value), text, failed)
    return sorted(notes, key=lambda n: n.at)


# -- the publisher -----------------------------------------------------------------------------


def publish_request(ctx: Context, status: ClusterStatus, since: datetime | None) -> PublishRequest:
    meta = ctx.meta
    return PublishRequest(
        cluster=ObjectRef(namespace=meta.namespace, name=meta.name, uid=meta.uid or ""),
        status=resource_status(status, ctx.spec, meta.generation),
        backups=changed_backups(status, since),
        restores=changed_restores(status, since),
        events=events_since(status, meta.name, since),
    )


async def publish_changes(ctx: Context, snapshot: Callable[[], ClusterStatus]) -> None:
    """Runs beside the main loop of a cluster started from a Kubernetes object, until cancelled
    (continue-as-new, deletion). A write that fails for good is logged and left: the next
    change writes the newest state again."""
    memory = ctx.memory

    def pending() -> bool:
        request = publish_request(ctx, snapshot(), memory.published_at)
        return request.status != memory.published or bool(request.events)

    while True:
        await workflow.wait_condition(pending)
        if memory.published_at is not None:
            wait = memory.published_at + PUBLISH_EVERY - workflow.now()
            if wait > timedelta(0):
                await workflow.sleep(wait)
        at = workflow.now()
        request = publish_request(ctx, snapshot(), memory.published_at)
        since = memory.published_at
        changes = sum(1 for t in memory.transitions if since is None or t.at > since)
        counters.count(ctx.memory, "status_publishes")
        counters.count(
            ctx.memory,
            "status_changes_coalesced",
            amount=changes - 1,
        )
        try:
            await workflow.execute_activity_method(
                KubernetesActivities.publish_to_kubernetes,
                request,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=PUBLISH_RETRY,
                summary=f"status {request.status.state.value}, {len(request.events)} events",
            )
        except ActivityError as error:
            workflow.logger.warning("status not written to Kubernetes: %s", error.cause or error)
        memory.published, memory.published_at = request.status, at
