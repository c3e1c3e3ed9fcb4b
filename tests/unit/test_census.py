"""The worker's cluster gauges, from a census of statuses (workers/census.py)."""

from datetime import UTC, datetime, timedelta

from api.backup import BackupRecord, BackupTrigger
from api.cluster import ClusterStatus, NodeStatus, TaskInfo, Transition
from api.remediation import FaultClass, ManualIntervention
from api.states import BackupPhase, ClusterState, NodeState, Phase, TaskKind
from workers.census import CensusCollector, families
from workers.clusters import Census, Schedule

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _series(census: Census) -> Series:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families(census)
        for s in family.samples
    }


def _get(series: Series, name: str, **labels: str) -> float | None:
    want = {"cluster_namespace": "prod", "cluster": "db", **labels}
    return series.get((name, tuple(sorted(want.items()))))


def _status(**changes: object) -> ClusterStatus:
    base = ClusterStatus(
        workflow_id="mysqlcluster/prod/db",
        phase=Phase.RUNNING,
        state=ClusterState.YELLOW,
        replicas=3,
        ready_replicas=2,
        nodes=[
            NodeStatus(name="db-0", host="h", port=1, state=NodeState.GREEN),
            NodeStatus(name="db-1", host="h", port=2, state=NodeState.GREEN),
            NodeStatus(name="db-2", host="h", port=3, state=NodeState.RED_UNCLEAN),
        ],
        transitions=[
            Transition(at=T0, subject="cluster", from_state="Red", to_state="Green", reason=""),
            Transition(
                at=T0 + timedelta(seconds=5),
                subject="db-2",
                from_state="Green",
                to_state="Red-unclean",
                reason="",
            ),
            Transition(
                at=T0 + timedelta(seconds=6),
                subject="cluster",
                from_state="Green",
                to_state="Yellow",
                reason="",
            ),
            Transition(
                at=T0 + timedelta(seconds=9),
                subject="cluster",
                from_state="NodeCrashed",
                to_state="repairing",
                reason="",
            ),
        ],
        current_task=TaskInfo(id="remediate-4", kind=TaskKind.REMEDIATE, requested_at=T0),
        queued_tasks=[TaskInfo(id="backup-5", kind=TaskKind.BACKUP, requested_at=T0)],
    )
    return base.model_copy(update=changes)


def test_states_are_one_hot_and_the_change_time_is_the_last_state_change() -> None:
    series = _series(Census(statuses=[_status()]))
    states = {s.value: _get(series, "mysqlops_cluster_state", state=s.value) for s in ClusterState}
    assert states == {"Green": 0, "Yellow": 1, "Red": 0}
    assert _get(series, "mysqlops_cluster_phase", phase="Running") == 1
    assert _get(series, "mysqlops_cluster_phase", phase="Stopped") == 0
    assert _get(series, "mysqlops_node_state", node="db-2", state="Red-unclean") == 1
    assert _get(series, "mysqlops_node_state", node="db-2", state="Green") == 0
    assert _get(series, "mysqlops_cluster_nodes_green") == 2
    assert _get(series, "mysqlops_cluster_nodes_expected") == 3
    # the repair's "repairing" transition is not a state change
    changed = _get(series, "mysqlops_cluster_state_changed_timestamp_seconds")
    assert changed == (T0 + timedelta(seconds=6)).timestamp()
    assert _get(series, "mysqlops_task_running", kind="remediate") == 1
    assert _get(series, "mysqlops_task_running", kind="backup") == 0
    assert _get(series, "mysqlops_task_queue_length") == 1
    assert _get(series, "mysqlops_manual_intervention", fault="") == 0


def test_manual_intervention_carries_its_fault() -> None:
    paused = ManualIntervention(
        since=T0, fault=FaultClass.NODE_CANNOT_JOIN, reason="r", evidence="e"
    )
    series = _series(Census(statuses=[_status(manual_intervention=paused)]))
    assert _get(series, "mysqlops_manual_intervention", fault="NodeCannotJoin") == 1
    assert _get(series, "mysqlops_manual_intervention", fault="") is None


def test_backup_gauges_come_from_the_newest_success_and_a_running_schedule() -> None:
    def record(name: str, phase: BackupPhase, end: int, size: int) -> BackupRecord:
        return BackupRecord(
            task_id=name,
            name=name,
            trigger=BackupTrigger.SCHEDULE,
            phase=phase,
            requested_at=T0,
            started_at=T0 + timedelta(seconds=end - 30),
            finished_at=T0 + timedelta(seconds=end),
            size_bytes=size,
        )

    backups = [
        record("old", BackupPhase.SUCCEEDED, 100, 10),
        record("new", BackupPhase.SUCCEEDED, 200, 20),
        record("failed", BackupPhase.FAILED, 300, 0),
    ]
    census = Census(
        statuses=[_status(backups=backups)],
        schedules={"mysqlcluster/prod/db": Schedule(3600.0, T0, paused=False)},
    )
    series = _series(census)
    last = _get(series, "mysqlops_backup_last_success_timestamp_seconds")
    assert last == (T0 + timedelta(seconds=200)).timestamp()
    assert _get(series, "mysqlops_backup_last_duration_seconds") == 30
    assert _get(series, "mysqlops_backup_last_size_bytes") == 20
    assert _get(series, "mysqlops_backup_schedule_interval_seconds") == 3600
    paused = Census(
        statuses=[_status(backups=backups)],
        schedules={"mysqlcluster/prod/db": Schedule(3600.0, T0, paused=True)},
    )
    assert _get(_series(paused), "mysqlops_backup_schedule_interval_seconds") is None


def _clusters(collector: CensusCollector) -> set[str]:
    return {s.labels["cluster"] for f in collector.collect() for s in f.samples if s.labels}


def test_a_cluster_gone_leaves_no_series_one_that_did_not_answer_keeps_its_last() -> None:
    collector = CensusCollector()
    collector.update(Census(statuses=[_status()]))
    assert _clusters(collector) == {"db"}
    collector.update(Census(missed=["mysqlcluster/prod/db"]))  # listed, but no answer
    assert _clusters(collector) == {"db"}
    errors = [s.value for f in collector.collect() for s in f.samples if "errors" in s.name]
    assert errors == [1]
    collector.update(Census())  # no longer listed: deleted
    assert _clusters(collector) == set()
