"""Which MySQL server options a user may set in `spec.mysql.config`, and which mysqlops owns.

Options that place files, wire up Galera or define durability contracts are managed: changing
them would break the cluster or the guarantees of the platform. Everything else must be a known
server variable from the allow-list, so a typo is an error rather than a silently ignored line.
"""

MANAGED: frozenset[str] = frozenset(
    {
        "basedir",
        "bind_address",
        "binlog_format",
        "datadir",
        "default_storage_engine",
        "gtid_domain_id",  # with the four below: one GTID stream per cluster (backups)
        "innodb_autoinc_lock_mode",
        "innodb_buffer_pool_size",  # spec.mysql.innodbBufferPoolSize
        "innodb_flush_log_at_trx_commit",  # 1: acknowledged commits survive crashes
        "log_bin",
        "log_error",
        "log_slave_updates",
        "pid_file",
        "port",
        "server_id",
        "socket",
        "user",
        "wsrep_cluster_address",
        "wsrep_cluster_name",
        "wsrep_gtid_domain_id",
        "wsrep_gtid_mode",
        "wsrep_node_address",
        "wsrep_node_name",
        "wsrep_on",
        "wsrep_provider",
        "wsrep_provider_options",
        "wsrep_sst_auth",
        "wsrep_sst_method",
        "wsrep_sst_receive_address",
    }
)

TUNABLE: frozenset[str] = frozenset(
    {
        "binlog_expire_logs_seconds",
        "character_set_server",
        "collation_server",
        "connect_timeout",
        "innodb_flush_method",
        "innodb_io_capacity",
        "innodb_lock_wait_timeout",
        "innodb_log_buffer_size",
        "innodb_log_file_size",
        "interactive_timeout",
        "join_buffer_size",
        "lock_wait_timeout",
        "long_query_time",
        "max_allowed_packet",
        "max_binlog_size",
        "max_connect_errors",
        "max_connections",
        "max_heap_table_size",
        "performance_schema",
        "slow_query_log",
        "sort_buffer_size",
        "sql_mode",
        "sync_binlog",
        "table_definition_cache",
        "table_open_cache",
        "thread_cache_size",
        "tmp_table_size",
        "transaction_isolation",
        "wait_timeout",
        "wsrep_slave_threads",
        "wsrep_sync_wait",
    }
)


def normalize(option: str) -> str:
    """MySQL treats '-' and '_' alike in option names; we store the '_' spelling."""
    return option.strip().lower().replace("-", "_")


def check_option(option: str) -> str:
    """The normalized option name, or ValueError saying why it may not be set."""
    name = normalize(option)
    if name in MANAGED:
        raise ValueError(f"option {option!r} is managed by mysqlops and cannot be overridden")
    if name not in TUNABLE:
        raise ValueError(f"unknown MySQL option {option!r}; allowed: {', '.join(sorted(TUNABLE))}")
    return name


def check_value(option: str, value: object) -> None:
    """A value must stay on its own line of my.cnf: no line breaks, no comment marks."""
    if isinstance(value, str) and any(c in value for c in "\n\r#"):
        raise ValueError(f"value of {option!r} must be one line without '#'")
