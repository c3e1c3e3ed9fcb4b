"""`mysqlops operator`: the thin watcher that turns custom resources into Temporal calls."""
