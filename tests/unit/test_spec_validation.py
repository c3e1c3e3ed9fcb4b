"""api/cluster.py: what `MySQLCluster.model_validate` accepts and how it names what it refuses."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from api.base import quantity_bytes
from api.cluster import MySQLCluster, MySQLClusterSpec
from api.messages import ClusterMemory

DEMO: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[2] / "examples" / "demo-cluster.yaml").read_text()
)


def with_value(path: str, value: object) -> dict[str, Any]:
    """The demo resource with `value` set at the dotted wire path (camelCase keys)."""
    doc = copy.deepcopy(DEMO)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


def errors_of(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        MySQLCluster.model_validate(doc)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in info.value.errors()]


def test_demo_is_valid() -> None:
    cluster = MySQLCluster.model_validate(DEMO)
    assert cluster.metadata.name == "demo"
    assert cluster.spec.replicas == 3
    assert cluster.spec.mysql.innodb_buffer_pool_size == "64Mi"
    assert cluster.spec.deletion_policy == "Retain"
    assert cluster.spec.mysql.config == {"max_connections": 200}


@pytest.mark.parametrize(
    ("path", "value", "location"),
    [
        ("spec.replicaz", 3, "spec.replicaz"),
        ("spec.mysql.bufferPool", "64Mi", "spec.mysql.bufferPool"),
        *[("spec.replicas", n, "spec.replicas") for n in (2, 4, 0, 11, -1)],
        *[("metadata.name", n, "metadata.name") for n in ("Demo", "my_cluster", "-x", "a" * 64)],
        *[
            (field, size, field)
            for field in ("spec.mysql.innodbBufferPoolSize", "spec.storage.size")
            for size in ("64MB", "lots", "-1Mi")
        ],
        ("spec.deletionPolicy", "Destroy", "spec.deletionPolicy"),
    ],
)
def test_rejected_field_is_named(path: str, value: object, location: str) -> None:
    assert location in [loc for loc, _ in errors_of(with_value(path, value))]


@pytest.mark.parametrize(
    ("option", "word"),
    [
        ("wsrep_provider", "managed"),
        ("datadir", "managed"),
        ("wsrep-provider", "managed"),
        ("max_conections", "unknown"),
    ],
)
def test_refused_mysql_options(option: str, word: str) -> None:
    errors = errors_of(with_value("spec.mysql.config", {option: "x"}))
    assert [loc for loc, _ in errors] == ["spec.mysql.config"]
    assert word in errors[0][1]
    assert option in errors[0][1]


def test_allowed_option_is_normalized() -> None:
    cluster = MySQLCluster.model_validate(with_value("spec.mysql.config", {"max-connections": 100}))
    assert cluster.spec.mysql.config == {"max_connections": 100}


def config_error_of(option: str, value: object) -> str:
    """The one message for a refused `spec.mysql.config` value."""
    errors = errors_of(with_value("spec.mysql.config", {option: value}))
    assert [loc for loc, _ in errors] == ["spec.mysql.config"]
    return errors[0][1]


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("max_connections", "lots", "'lots' is not an integer (10..100000, suffixes K/M/G"),
        ("max_connections", 0, "0 is out of range (10..100000"),  # the server would clamp to 10
        ("max_connections", "1M", "'1M' is out of range"),
        ("max_connections", "10x", "is not an integer"),
        ("max_connections", "1 000", "is not an integer"),
        ("max_connections", 150.5, "is not an integer"),
        ("max_connections", True, "is not an integer"),
        ("wsrep_sync_wait", 16, "out of range (0..15"),
        ("sort_buffer_size", "-1", "out of range"),
        ("sort_buffer_size", "100E", "out of range"),  # past 2**64: the server wraps silently
        ("long_query_time", "soon", "'soon' is not a number (0..31536000"),
        ("long_query_time", "1s", "is not a number"),
        ("long_query_time", -1, "out of range"),
        ("long_query_time", float("nan"), "is not a number"),
        ("slow_query_log", "yes", "'yes' is not a boolean (ON/OFF"),  # the server: OFF, a warning
        ("performance_schema", 2, "is not a boolean"),
        ("transaction_isolation", "READ COMMITTED", "is not one of READ-UNCOMMITTED, READ-COMM"),
        ("transaction_isolation", "serial", "is not one of"),  # the server takes the prefix
        ("innodb_flush_method", "direct", "is not one of fsync, O_DSYNC"),
        ("sql_mode", "STRICT_ALL_TABLES, ANSI", "unknown modes ' ANSI'"),  # the server: no spaces
        ("sql_mode", "STRICT", "unknown modes 'STRICT'"),
        ("sql_mode", 3, "is not a comma-separated list"),
        ("character_set_server", "utf-8", "is not one of"),
        ("collation_server", "general_ci", "is not a collation"),
        ("max_connections", "100 # many", "one line without '#'"),
        ("sql_mode", "ANSI\ninit_file=/tmp/x", "one line"),
    ],
)
def test_refused_values_name_the_option_and_what_it_takes(
    option: str, value: object, says: str
) -> None:
    message = config_error_of(option, value)
    assert option in message
    assert says in message


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_connections", 10),
        ("max_connections", 100000),
        ("max_connections", "1K"),
        ("max_connections", "+500"),
        ("max_allowed_packet", "64m"),
        ("max_allowed_packet", "1G"),
        ("innodb_log_file_size", "2G"),
        ("tmp_table_size", "15E"),  # just below 2**64
        ("thread_cache_size", "0"),
        ("long_query_time", 0.5),
        ("long_query_time", 2),
        ("long_query_time", "0.25"),
        ("long_query_time", "1e3"),
        ("slow_query_log", True),
        ("slow_query_log", "ON"),
        ("slow_query_log", "off"),
        ("slow_query_log", "TRUE"),
        ("slow_query_log", 0),
        ("performance_schema", "1"),
        ("transaction_isolation", "READ-COMMITTED"),
        ("transaction_isolation", "serializable"),
        ("innodb_flush_method", "O_DIRECT"),
        ("innodb_flush_method", "fsync"),
        ("sql_mode", ""),
        ("sql_mode", "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"),
        ("sql_mode", "ansi"),
        ("character_set_server", "utf8mb4"),
        ("character_set_server", "UTF8"),
        ("collation_server", "utf8mb4_unicode_520_ci"),
        ("collation_server", "binary"),
    ],
)
def test_values_the_server_takes_are_accepted(option: str, value: object) -> None:
    cluster = MySQLCluster.model_validate(with_value("spec.mysql.config", {option: value}))
    assert cluster.spec.mysql.config == {option: value}


@pytest.mark.parametrize(
    ("quantity", "size"),
    [("128Mi", 134217728), ("1G", 10**9), ("1Gi", 2**30), ("512", 512), ("1.5Ki", 1536)],
)
def test_quantity_bytes(quantity: str, size: int) -> None:
    assert quantity_bytes(quantity) == size


def test_records_from_another_version_still_read_but_resources_stay_strict() -> None:
    memory = ClusterMemory.model_validate(
        {"phase": "Running", "nodes": [{"name": "db-0", "ordinal": 0, "retired": 1}], "gone": 2}
    )
    assert memory.nodes[0].name == "db-0"  # fields this version does not know are ignored
    with pytest.raises(ValidationError):
        MySQLClusterSpec.model_validate({"replicas": 3, "replicaz": 3})
