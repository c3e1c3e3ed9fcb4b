"""Long-running processes: the Temporal worker, the node agent, and the `mysqlops` CLI."""
