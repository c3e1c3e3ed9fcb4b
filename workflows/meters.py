"""Counters workflow code records (docs/observability.md, "Worker, :9463").

Through `workflow.metric_meter()` only: it records nothing while a workflow replays, so a
worker restart or a cache eviction never counts an event twice. (A prometheus-client counter
here would count every replay again, and one made at import time breaks the sandbox, which
re-imports this module.) The SDK adds `_total` and the unit suffix when it exports them.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import MetricMeter

with workflow.unsafe.imports_passed_through():
    from api.base import ObjectMeta


# mysqlops_<name>_total: what each counts.
COUNTERS = {
    "remediations_started": "Repairs started",
    "remediations_ended": "Repairs ended, by outcome",
    "manual_interventions": "Times automation stopped for a human",
    "tasks": "Tasks ended, by kind and outcome",
    "backups": "Backups ended, by outcome",
    "restores": "Restores ended, by outcome",
    "joins": "Nodes that joined, by method (IST, SST)",
    "agent_reports_received": "Passive reports from node agents",
    "agent_reports_dropped": "Reports dropped by the bounded queue (evidence lost)",
    "status_publishes": "Status writes asked of Kubernetes",
    "status_changes_coalesced": "Changes folded into a later status write",
}
BACKUP_DURATION = "mysqlops_backup_duration"


def declare(meter: MetricMeter) -> None:
    """Every counter at zero on the worker's own meter (outside workflows), so that its name
    is on the endpoint before the first event: alerts and panels find it."""
    for name, text in COUNTERS.items():
        meter.create_counter(f"mysqlops_{name}", text).add(0)


def _meter(meta: ObjectMeta) -> MetricMeter:
    return workflow.metric_meter().with_additional_attributes(
        {"cluster_namespace": meta.namespace, "cluster": meta.name}
    )


def count(meta: ObjectMeta, name: str, amount: int = 1, **labels: str) -> None:
    """Add to the cluster's counter `mysqlops_<name>_total` (a name of COUNTERS)."""
    if amount > 0:
        _meter(meta).create_counter(f"mysqlops_{name}", COUNTERS[name]).add(amount, labels)


def backup_took(meta: ObjectMeta, took: timedelta) -> None:
    _meter(meta).create_histogram_timedelta(
        BACKUP_DURATION, "How long successful backups took"
    ).record(took)
