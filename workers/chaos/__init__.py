"""`mysqlops chaos`: faults injected one at a time into a running local cluster under a
recorded writer, each measured, and the data checked on every node at the end."""
