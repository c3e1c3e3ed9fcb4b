"""What the watcher exposes on its metrics port (docs/observability.md, "Watcher, :9465")."""

from prometheus_client import Counter, Gauge

SYNCED = Gauge(
    "mysqlops_watcher_synced", "1 once the informer listed, 0 while it relists", ["kind"]
)
EVENTS = Counter("mysqlops_watcher_events", "Watch events received", ["kind", "type"])
RELISTS = Counter(
    "mysqlops_watcher_relists", "Full lists (start, 410 Gone, resync, lost stream)", ["kind"]
)
RECONCILES = Counter("mysqlops_watcher_reconciles", "Objects reconciled", ["kind", "result"])
