"""The worker's cluster gauges: a census of every running cluster, taken every few seconds.

State is read from the workflows (a status query each, `workers.clusters`), never counted from
workflow code: a replay cannot count it again, and the series of a cluster that is gone vanish
with the next census. Each census replaces the whole snapshot; a scrape reads the last one.
`families` is pure (tests/unit/test_census.py).
"""

import asyncio
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from temporalio.client import Client

from api.cluster import ClusterStatus
from api.counters import COUNTERS, parse_counter_key
from api.states import BackupPhase, ClusterState, NodeState, Phase, TaskKind
from workers.clusters import Census, cluster_of, take_census

log = structlog.get_logger()

IDS = ["cluster_namespace", "cluster"]
CENSUS_EVERY = 10.0  # seconds, at the most often
CENSUS_SHARE = 3.0  # idle this many times as long as the last census took, at least


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


def state_changed_at(status: ClusterStatus) -> datetime | None:
    """When the cluster's state last changed, from its kept transitions."""
    states = {s.value for s in ClusterState}
    changes = [
        t.at
        for t in status.transitions
        if t.subject == "cluster" and t.to_state in states and t.from_state in states
    ]
    return max(changes, default=None)


def families(census: Census) -> list[Metric]:
    """The gauges of one census (docs/observability.md, "Worker, :9464")."""

    def gauge(name: str, text: str, extra: Iterable[str] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, labels=[*IDS, *extra])

    state = gauge("mysqlops_cluster_state", "1 for the cluster's state", ["state"])
    phase = gauge("mysqlops_cluster_phase", "1 for the cluster's lifecycle phase", ["phase"])
    changed = gauge(
        "mysqlops_cluster_state_changed_timestamp_seconds", "When the cluster's state last changed"
    )
    expected = gauge("mysqlops_cluster_nodes_expected", "Nodes the applied spec asks for")
    green = gauge("mysqlops_cluster_nodes_green", "Nodes Green now")
    node_state = gauge("mysqlops_node_state", "1 for the node's state", ["node", "state"])
    manual = gauge(
        "mysqlops_manual_intervention",
        "1 while automation waits for a human, with the fault it stopped at",
        ["fault"],
    )
    unwatched = gauge("mysqlops_cluster_unwatched", "1 while no worker watches the cluster")
    queue = gauge("mysqlops_task_queue_length", "Tasks waiting behind the current one")
    running = gauge("mysqlops_task_running", "1 for the kind of the task running now", ["kind"])
    reports = gauge("mysqlops_agent_reports_queued", "Agent reports received, not merged yet")
    last_success = gauge(
        "mysqlops_backup_last_success_timestamp_seconds",
        "When the newest successful backup finished",
    )
    last_duration = gauge(
        "mysqlops_backup_last_duration_seconds", "How long the newest successful backup took"
    )
    last_size = gauge("mysqlops_backup_last_size_bytes", "What the newest successful backup stored")
    interval = gauge(
        "mysqlops_backup_schedule_interval_seconds", "Time between two scheduled backups"
    )
    scheduled = gauge(
        "mysqlops_backup_schedule_created_timestamp_seconds", "When the backup schedule was made"
    )

    for status in census.statuses:
        ids = list(cluster_of(status.workflow_id))
        for each in ClusterState:
            state.add_metric([*ids, each.value], 1 if status.state is each else 0)
        for each_phase in Phase:
            phase.add_metric([*ids, each_phase.value], 1 if status.phase is each_phase else 0)
        if (moment := state_changed_at(status)) is not None:
            changed.add_metric(ids, _seconds(moment))
        expected.add_metric(ids, status.replicas)
        green.add_metric(ids, status.ready_replicas)
        for node in status.nodes:
            for each_state in NodeState:
                node_state.add_metric(
                    [*ids, node.name, each_state.value], 1 if node.state is each_state else 0
                )
        paused = status.manual_intervention
        manual.add_metric([*ids, paused.fault.value if paused else ""], 1 if paused else 0)
        unwatched.add_metric(ids, 1 if status.unwatched else 0)
        queue.add_metric(ids, len(status.queued_tasks))
        current = status.current_task.kind if status.current_task else None
        for kind in TaskKind:
            running.add_metric([*ids, kind.value], 1 if kind is current else 0)
        reports.add_metric(ids, status.reports_queued)
        done = [
            b
            for b in status.backups
            if b.phase is BackupPhase.SUCCEEDED and b.finished_at is not None
        ]
        if done:
            newest = max(done, key=lambda b: b.finished_at or b.requested_at)
            assert newest.finished_at is not None
            last_success.add_metric(ids, _seconds(newest.finished_at))
            if newest.started_at is not None:
                took = (newest.finished_at - newest.started_at).total_seconds()
                last_duration.add_metric(ids, took)
            if newest.size_bytes is not None:
                last_size.add_metric(ids, newest.size_bytes)
        schedule = census.schedules.get(status.workflow_id)
        if schedule is not None and not schedule.paused:
            if schedule.interval_seconds is not None:
                interval.add_metric(ids, schedule.interval_seconds)
            if schedule.created_at is not None:
                scheduled.add_metric(ids, _seconds(schedule.created_at))
    return [
        *_counters(census),
        state,
        phase,
        changed,
        expected,
        green,
        node_state,
        manual,
        unwatched,
        queue,
        running,
        reports,
        last_success,
        last_duration,
        last_size,
        interval,
        scheduled,
    ]


def _counters(census: Census) -> list[Metric]:
    """The counters each workflow keeps in its memory (api/counters.py), and its dropped
    reports."""
    found = {
        name: CounterMetricFamily(f"mysqlops_{name}", text, labels=[*IDS, *labels])
        for name, (text, labels) in COUNTERS.items()
    }
    dropped = CounterMetricFamily(
        "mysqlops_agent_reports_dropped",
        "Reports dropped by the bounded queue (evidence lost)",
        labels=IDS,
    )
    for status in census.statuses:
        ids = list(cluster_of(status.workflow_id))
        for key, value in status.counters.items():
            name, labels = parse_counter_key(key)
            if name in found:  # a counter a newer worker added is left to that worker
                found[name].add_metric([*ids, *(labels[n] for n in COUNTERS[name][1])], value)
        dropped.add_metric(ids, status.reports_dropped)
    return [*found.values(), dropped]


class CensusCollector(Collector):
    """Serves the last census; `run` takes a new one every `every` seconds."""

    def __init__(self) -> None:
        self.census = Census()
        self.errors = 0
        self.duration = 0.0

    def collect(self) -> Iterator[Metric]:
        yield from families(self.census)
        clusters = GaugeMetricFamily("mysqlops_census_clusters", "Clusters in the last census")
        clusters.add_metric([], len(self.census.statuses))
        yield clusters
        errors = CounterMetricFamily(
            "mysqlops_census_errors", "Clusters the census could not query"
        )
        errors.add_metric([], self.errors)
        yield errors
        took = GaugeMetricFamily("mysqlops_census_duration_seconds", "How long the census took")
        took.add_metric([], self.duration)
        yield took

    def update(self, census: Census) -> None:
        """The new census; a cluster that did not answer this time keeps its last values (its
        alerts hold), where a deleted one, no longer listed, vanishes."""
        earlier = {s.workflow_id: s for s in self.census.statuses}
        for missed in census.missed:
            if missed in earlier:
                census.statuses.append(earlier[missed])
                if missed in self.census.schedules:
                    census.schedules[missed] = self.census.schedules[missed]
        census.statuses.sort(key=lambda s: s.workflow_id)
        self.census = census
        self.errors += len(census.missed)
        if census.missed:
            log.warning("clusters did not answer the census", missed=census.missed)

    async def run(self, client: Client, every: float = CENSUS_EVERY) -> None:
        while True:
            started = time.monotonic()
            try:
                census = await take_census(client)
            except Exception as error:  # Temporal unreachable: keep the last census
                log.warning("census failed", error=str(error)[:200])
                self.errors += 1
            else:
                self.update(census)
            self.duration = time.monotonic() - started
            # Never more than a quarter of the time querying: with many clusters the census
            # comes less often rather than taking the worker's core from repairs.
            await asyncio.sleep(max(every - self.duration, CENSUS_SHARE * self.duration))
