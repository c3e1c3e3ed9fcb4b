"""The counters a cluster's workflow keeps in its memory: events of its life (repairs, tasks,
backups, joins, reports), counted once each, exported by every worker's census as Prometheus
counters `mysqlops_<name>_total` (docs/observability.md).

State, not events: replay rebuilds the same numbers, a workflow task that fails and runs again
commits its count once, and the numbers go on through continue-as-new and worker restarts.
(`workflow.metric_meter()` counters, tried first, counted a task twice when its workflow task
was retried under load.) Keys are `<name>|<label>=<value>|...`, labels sorted; values are enum
values and node names, which hold neither `|` nor `=`.
"""

# name: (help, label names)
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "remediations_started": ("Repairs started", ("fault",)),
    "remediations_ended": ("Repairs ended, by outcome", ("fault", "outcome")),
    "manual_interventions": ("Times automation stopped for a human", ("fault",)),
    "tasks": ("Tasks ended, by kind and outcome", ("kind", "outcome")),
    "backups": ("Backups ended, by outcome", ("outcome",)),
    "restores": ("Restores ended, by outcome", ("outcome",)),
    "joins": ("Nodes that joined, by method (IST, SST)", ("node", "method")),
    "agent_reports_received": ("Passive reports from node agents", ()),
    "status_publishes": ("Status writes asked of Kubernetes", ()),
    "status_changes_coalesced": ("Changes folded into a later status write", ()),
}


def counter_key(name: str, labels: dict[str, str]) -> str:
    _, names = COUNTERS[name]
    if set(labels) != set(names):
        raise ValueError(f"counter {name} takes labels {names}, got {sorted(labels)}")
    return "|".join([name, *(f"{k}={labels[k]}" for k in sorted(labels))])


def parse_counter_key(key: str) -> tuple[str, dict[str, str]]:
    name, *pairs = key.split("|")
    return name, dict(pair.split("=", 1) for pair in pairs)
