"""What a cluster from Kubernetes writes there: the summary, its conditions, the Events."""

from datetime import UTC, datetime, timedelta

from api.backup import BackupRecord, BackupTrigger, RestoreRecord
from api.cluster import (
    ClusterStatus,
    MySQLClusterSpec,
    NodeStatus,
    SpecProgress,
    TaskInfo,
    TaskOutcome,
    Transition,
)
from api.remediation import (
    Action,
    ActionRecord,
    FaultClass,
    ManualIntervention,
    Outcome,
    RemediationRecord,
    RemediationSpec,
)
from api.resource_status import Automation
from api.states import BackupPhase, ClusterState, NodeState, Phase, TaskKind
from workflows.publish import (
    camel,
    changed_backups,
    changed_restores,
    events_since,
    resource_status,
)

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def status(**changes: object) -> ClusterStatus:
    base = ClusterStatus(
        workflow_id="mysqlcluster/default/demo",
        phase=Phase.RUNNING,
        state=ClusterState.GREEN,
        writer="demo-0",
        replicas=3,
        ready_replicas=3,
        nodes=[
            NodeStatus(name=f"demo-{i}", host="h", port=1, state=NodeState.GREEN) for i in range(3)
        ],
        observed_generation=2,
        spec_progress=SpecProgress(desired_generation=2, observed_generation=2, converged=True),
    )
    return base.model_copy(update=changes)


def conditions_of(current: ClusterStatus, spec: MySQLClusterSpec | None = None) -> dict[str, str]:
    summary = resource_status(current, spec or MySQLClusterSpec(), 2)
    return {c.type: f"{c.status}/{c.reason}" for c in summary.conditions}


def test_a_green_idle_cluster_is_ready_and_nothing_else() -> None:
    summary = resource_status(status(), MySQLClusterSpec(), 2)
    assert (summary.ready, summary.writer, summary.automation) == (
        "3/3",
        "demo-0",
        Automation.ACTIVE,
    )
    assert summary.observed_generation == 2
    assert conditions_of(status()) == {
        "Ready": "True/Serving",
        "Progressing": "False/Idle",
        "Degraded": "False/AllNodesGreen",
        "ManualIntervention": "False/Automatic",
        "BackupFailing": "False/NoBackup",
    }
    assert all(c.observed_generation == 2 for c in summary.conditions)


def test_fewer_nodes_is_degraded_but_ready_and_red_is_neither_ready() -> None:
    yellow = status(state=ClusterState.YELLOW, ready_replicas=2)
    assert conditions_of(yellow)["Ready"] == "True/Serving"
    assert conditions_of(yellow)["Degraded"] == "True/FewerNodesGreen"
    red = status(state=ClusterState.RED, ready_replicas=0)
    assert conditions_of(red)["Ready"] == "False/NotServing"
    assert conditions_of(red)["Degraded"] == "True/NotServing"


def test_a_stopped_cluster_is_not_ready_and_not_degraded() -> None:
    stopped = status(phase=Phase.STOPPED, state=ClusterState.RED, ready_replicas=0)
    assert conditions_of(stopped)["Ready"] == "False/Stopped"
    assert conditions_of(stopped)["Degraded"] == "False/Stopped"


def test_progressing_names_the_task_or_the_spec_not_applied() -> None:
    task = TaskInfo(id="t-7", kind=TaskKind.APPLY, requested_at=T0, detail="spec changed")
    assert conditions_of(status(current_task=task))["Progressing"] == "True/TaskRunning"
    behind = SpecProgress(desired_generation=3, observed_generation=2, converged=False)
    assert conditions_of(status(spec_progress=behind))["Progressing"] == "True/SpecNotApplied"


def test_automation_paused_or_waiting_for_a_human() -> None:
    off = MySQLClusterSpec(remediation=RemediationSpec(enabled=False))
    assert resource_status(status(), off, 1).automation is Automation.PAUSED
    manual = ManualIntervention(
        since=T0, fault=FaultClass.QUORUM_LOST, reason="no node is Primary", evidence="e"
    )
    summary = resource_status(status(manual_intervention=manual), MySQLClusterSpec(), 1)
    assert summary.automation is Automation.MANUAL_INTERVENTION
    assert conditions_of(status(manual_intervention=manual))["ManualIntervention"] == (
        "True/QuorumLost"
    )


def backup(name: str, phase: BackupPhase, ended: float, **changes: object) -> BackupRecord:
    return BackupRecord(
        task_id=f"t-{name}",
        name=name,
        trigger=BackupTrigger.MANUAL,
        phase=phase,
        requested_at=at(ended - 10),
        started_at=at(ended - 5),
        finished_at=at(ended) if phase in (BackupPhase.SUCCEEDED, BackupPhase.FAILED) else None,
        **changes,
    )


def test_the_last_backup_is_the_newest_good_one_and_a_failed_latest_is_failing() -> None:
    records = [
        backup("b1", BackupPhase.SUCCEEDED, 100, size_bytes=10),
        backup("b2", BackupPhase.FAILED, 200, error="disk full"),
    ]
    summary = resource_status(status(backups=records), MySQLClusterSpec(), 1)
    assert (summary.last_backup, summary.last_backup_name) == (at(100), "b1")
    assert conditions_of(status(backups=records))["BackupFailing"] == "True/BackupFailed"
    recovered = [*records, backup("b3", BackupPhase.SUCCEEDED, 300)]
    assert conditions_of(status(backups=recovered))["BackupFailing"] == "False/BackupSucceeded"


def test_the_summary_does_not_change_with_time_alone() -> None:
    """Two snapshots of an unchanged cluster compare equal: nothing to write."""
    assert resource_status(status(), MySQLClusterSpec(), 2) == resource_status(
        status(), MySQLClusterSpec(), 2
    )


def test_only_backups_and_restores_changed_since_the_last_write_are_sent() -> None:
    done = backup("old", BackupPhase.SUCCEEDED, 100)
    running = backup("new", BackupPhase.RUNNING, 300)
    scheduled = backup("sched", BackupPhase.RUNNING, 300).model_copy(
        update={"trigger": BackupTrigger.SCHEDULE}
    )
    current = status(backups=[done, running, scheduled])
    assert set(changed_backups(current, at(200))) == {"new"}
    assert set(changed_backups(current, None)) == {"old", "new"}
    assert changed_backups(current, at(200))["new"].progress.startswith("streaming")
    restore = RestoreRecord(
        task_id="t-r",
        name="r1",
        backup="old",
        phase=BackupPhase.SUCCEEDED,
        requested_at=at(400),
        finished_at=at(450),
        node="demo-0",
    )
    unnamed = RestoreRecord(task_id="t-x", backup="old", requested_at=at(400))
    restores = changed_restores(status(restores=[restore, unnamed]), at(200))
    assert list(restores) == ["r1"] and restores["r1"].phase is BackupPhase.SUCCEEDED


def test_events_cover_transitions_repairs_pauses_and_tasks_after_the_cursor() -> None:
    repair = RemediationRecord(
        id="r-1",
        fault=FaultClass.NODE_CRASHED,
        nodes=["demo-1"],
        evidence="SIGKILL",
        attempt=1,
        started_at=at(11),
        ended_at=at(14),
        outcome=Outcome.SUCCEEDED,
        actions=[
            ActionRecord(
                action=Action.RESTART_NODE,
                node="demo-1",
                started_at=at(11),
                ended_at=at(14),
                outcome=Outcome.SUCCEEDED,
                detail="IST",
            )
        ],
    )
    current = status(
        transitions=[
            Transition(
                at=at(1), subject="demo-1", from_state="Green", to_state="Green", reason="old news"
            ),
            Transition(
                at=at(10),
                subject="demo-1",
                from_state="Green",
                to_state="Red-unclean",
                reason="killed by SIGKILL",
            ),
            Transition(
                at=at(10), subject="cluster", from_state="Green", to_state="Yellow", reason="2/3"
            ),
            Transition(
                at=at(12),
                subject="cluster",
                from_state="task",
                to_state="failed",
                reason="said by the outcome",
            ),
        ],
        remediations=[repair],
        outcomes=[
            TaskOutcome(
                id="t-9",
                kind=TaskKind.BACKUP,
                outcome=Outcome.FAILED,
                error="disk",
                requested_at=at(12),
                ended_at=at(13),
            ),
            TaskOutcome(
                id="r-1",
                kind=TaskKind.REMEDIATE,
                outcome=Outcome.SUCCEEDED,
                requested_at=at(11),
                ended_at=at(14),
            ),
        ],
    )
    notes = events_since(current, "demo", at(5))
    reasons = [(n.reason, n.type) for n in notes]
    assert reasons == [
        ("NodeRedUnclean", "Warning"),
        ("ClusterYellow", "Warning"),
        ("RepairStarted", "Normal"),
        ("RepairStep", "Normal"),
        ("BackupFailed", "Warning"),
        ("RepairStep", "Normal"),
        ("RepairSucceeded", "Normal"),
    ]
    assert all(n.name == "demo" and n.at > at(5) for n in notes)
    assert "killed by SIGKILL" in notes[0].note
    assert events_since(current, "demo", at(14)) == []


def test_reasons_are_words_kubernetes_accepts() -> None:
    assert camel("Red-unclean") == "RedUnclean"
    assert camel("unwatched") == "Unwatched"
