"""Every side effect of mysqlops: Temporal activities over the `Runtime` interface."""
