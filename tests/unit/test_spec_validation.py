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
