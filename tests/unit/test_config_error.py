"""api/mysql_options.config_error: a node that cannot start with its configuration is told apart,
from the `[ERROR]` lines of its last run, from one that ran out of disk, crashed or could not
join. The lines below were written by a real mariadbd 10.11 started with each mistake."""

from pathlib import Path

import pytest

from activities.local.process import last_run_errors
from api.mysql_options import config_error

SUFFIX = (
    "Unknown suffix 'l' used for variable 'max_connections' (value 'lots'). "
    "Legal suffix characters are: K, M, G, T, P, E"
)


@pytest.mark.parametrize(
    ("errors", "telling"),
    [
        ("mariadbd: unknown variable 'foo=1' | Aborting", "mariadbd: unknown variable 'foo=1'"),
        ("mariadbd: unknown option '--skip-foo' | Aborting", "unknown option '--skip-foo'"),
        (
            f"Buffered error: {SUFFIX} | Buffered error: mariadbd: Error while setting value "
            "'lots' to 'max_connections'",
            SUFFIX,
        ),
        (
            "Buffered error: Incorrect unsigned value: '-5' for max_connections | Buffered error: "
            "mariadbd: Error while setting value '-5' to 'max_connections'",
            "Incorrect unsigned value: '-5' for max_connections",
        ),
        (
            "Integer value out of range for uint64: '99999999999999999999999' for "
            "sort_buffer_size | mariadbd: Error while setting value '99999999999999999999999' to "
            "'sort_buffer_size'",
            "Integer value out of range for uint64",
        ),
        (
            "Invalid decimal value for option 'long_query_time' | mariadbd: Error while setting "
            "value 'abc' to 'long_query_time'",
            "Invalid decimal value for option 'long_query_time'",
        ),
        (
            "mariadbd: Error while setting value 'nope' to 'transaction-isolation'",
            "mariadbd: Error while setting value 'nope' to 'transaction-isolation'",
        ),
        (
            "mariadbd: Error while setting value 'NOPE' to 'sql_mode'",
            "Error while setting value 'NOPE' to 'sql_mode'",
        ),
        (
            "mariadbd: Error while setting value 'nope' to 'innodb-flush-method' | Parsing options "
            "for plugin 'InnoDB' failed. Disabling plugin | Unknown/unsupported storage engine: "
            "InnoDB | Aborting",
            "mariadbd: Error while setting value 'nope' to 'innodb-flush-method'",
        ),
        (
            "mariadbd: ambiguous option '--table=10' (table_cache, table_open_cache_instances)",
            "ambiguous option '--table=10'",
        ),
        (
            "Buffered error: mariadbd: option '--max_connections' requires an argument",
            "mariadbd: option '--max_connections' requires an argument",
        ),
        ("Unknown collation: 'nope' | Aborting", "Unknown collation: 'nope'"),
        (
            "COLLATION 'utf8mb4_general_ci' is not valid for CHARACTER SET 'latin1' | Aborting",
            "COLLATION 'utf8mb4_general_ci' is not valid for CHARACTER SET 'latin1'",
        ),
        # A Galera node joins its cluster before it rejects an unknown variable, then aborts.
        (
            "mariadbd: unknown variable 'foo=1' | Aborting | WSREP: Exception: State wait was "
            "interrupted | WSREP: View callback failed. This is unrecoverable, restart required. "
            "(FATAL)",
            "mariadbd: unknown variable 'foo=1'",
        ),
        # Untagged lines on mariadbd's stderr, which the agent sends to the error log:
        (
            "mariadbd: Character set 'nope' is not a compiled character set and is not specified "
            "in the '/usr/share/mysql/charsets/Index.xml' file\n"
            "2026-11-29 11:31:28 0 [ERROR] Aborting",
            "is not a compiled character set",
        ),
        (
            "error: Found option without preceding group in config file: /x/my.cnf at line: 1\n"
            "Fatal error in defaults handling. Program aborted",
            "error: Found option without preceding group in config file: /x/my.cnf at line: 1",
        ),
        (
            "error: Wrong group definition in config file: /x/my.cnf at line 1\n",
            "Wrong group definition in config file",
        ),
    ],
)
def test_a_configuration_error_is_recognised(errors: str, telling: str) -> None:
    found = config_error(errors)
    assert found is not None
    assert telling in found
    assert not found.startswith("Buffered error")


@pytest.mark.parametrize(
    "errors",
    [
        "Aborting",
        # a Galera node that could not reach its peers (real lines)
        "WSREP: failed to open gcomm backend connection: 110: failed to reach primary view | "
        "WSREP: ./gcs/src/gcs_core.cpp:gcs_core_open():256: Failed to open backend connection: "
        "-110 (Connection timed out) | WSREP: ./gcs/src/gcs.cpp:gcs_open():1701: Failed to open "
        "channel 'demo' at 'gcomm://127.0.0.1:34561': -110 (Connection timed out) | "
        "WSREP: gcs connect failed: Operation timed out",
        "WSREP: wsrep::connect(gcomm://127.0.0.1:34561) failed: 7 | Aborting",
        "WSREP: ./gcs/src/gcs.cpp:gcs_open():1701: Failed to open channel 'demo' at "
        "'gcomm://127.0.0.1:34561': -22 (Invalid argument) | WSREP: gcs connect failed: "
        "Invalid argument",
        "WSREP: It may not be safe to bootstrap the cluster from this node. It was not the last "
        "one to leave the cluster and may not contain all the updates. | WSREP: "
        "wsrep::connect(gcomm://) failed: 7 | Aborting",
        "WSREP: Process completed with error: wsrep_sst_mariabackup --role 'joiner' --address "
        "'127.0.0.1:34563' --datadir '/x/data/': 32 (Broken pipe) | WSREP: Failed to read "
        "uuid:seqno and wsrep_gtid_domain_id from joiner script. | WSREP: SST failed: 32 "
        "(Broken pipe)",
        # storage
        "WSREP: gcache: 28 (No space left on device) | Aborting",
        "InnoDB: Operating system error number 28 in a file operation. | InnoDB: Error number 28 "
        "means 'No space left on device' | Plugin 'InnoDB' registration as a STORAGE ENGINE "
        "failed. | Unknown/unsupported storage engine: InnoDB",
        "mariadbd: Error writing file 'mariadb-bin' (Errcode: 28 \"No space left on device\")",
        "mariadbd: Can't create/write to file '/x/data/aria_log_control' (Errcode: 13 "
        '"Permission denied") | InnoDB: Operating system error number 13 in a file operation.',
        "InnoDB: Unable to lock ./ibdata1 error: 11",
        "Can't start server: Bind on TCP/IP port. Got error: 98: Address already in use | "
        "Do you already have another server running on port: 33061 ? | Aborting",
        # a crash
        "mariadbd got signal 11 ;",
    ],
)
def test_other_failures_are_not_configuration_errors(errors: str) -> None:
    assert config_error(errors) is None


def test_a_node_refused_its_options_before_logging_its_start(tmp_path: Path) -> None:
    """Option errors come before the "Starting MariaDB" note: the run that failed has none."""
    log = tmp_path / "error.log"
    log.write_text(
        "2026-11-29 11:31:20 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source "
        "revision 5843d84 server_uid fXdYp7ZWAMMBm0PUMZFJoAcM0o0= as process 12100\n"
        "2026-11-29 11:31:21 0 [Note] mariadbd: ready for connections.\n"
        "2026-11-29 11:31:30 0 [Note] mariadbd: Shutdown complete\n"
        f"2026-11-29 11:31:37 0 [ERROR] Buffered error: {SUFFIX}\n"
        "2026-11-29 11:31:37 0 [ERROR] Buffered error: mariadbd: Error while setting value "
        "'lots' to 'max_connections'\n"
    )
    errors = last_run_errors(log)
    assert errors is not None
    assert config_error(errors) == SUFFIX
