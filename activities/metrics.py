"""What activities count in the worker process (docs/observability.md, "Worker, :9464").

Activities run once per attempt, never on replay, so plain prometheus-client metrics are right
here. Never import this from workflow code: counting there repeats on every replay.
"""

from prometheus_client import Counter, Gauge, Histogram

PROBE = Histogram(
    "mysqlops_probe_duration_seconds",
    "One SQL probe of a node by a health watch or a task's survey",
    ["cluster_namespace", "cluster", "node"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
WATCHES = Gauge("mysqlops_watches_running", "Health watches this worker runs")
WATCH_SLOTS = Gauge("mysqlops_watch_slots", "Health watches this worker may run (--max-watches)")
STATUS_WRITES = Counter(
    "mysqlops_status_writes",
    "Status writes to the Kubernetes API server, by object kind and what became of them",
    ["kind", "result"],
)
EVENTS_WRITTEN = Counter("mysqlops_events_written", "Kubernetes Events written or counted again")
