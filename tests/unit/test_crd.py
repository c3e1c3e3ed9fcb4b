"""The CRD is generated from the API models and is a structural schema Kubernetes accepts."""

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from api.backup import MySQLBackup, MySQLRestore
from api.cluster import MySQLCluster
from api.crd import crds, mysqlcluster_crd, openapi_schema

UNTYPED_OK = ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string")


def nodes(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        yield path, schema
        for name, child in schema.get("properties", {}).items():
            yield from nodes(child, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                yield from nodes(schema[key], f"{path}[{key}]")


@pytest.mark.parametrize("model", [MySQLCluster, MySQLBackup, MySQLRestore])
def test_schema_is_structural(model: type[BaseModel]) -> None:
    for path, node in nodes(openapi_schema(model)):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        assert node.get("additionalProperties") is not False, path
        assert "type" in node or any(node.get(k) for k in UNTYPED_OK), path


def test_schema_follows_the_models() -> None:
    spec = openapi_schema()["properties"]["spec"]["properties"]
    assert spec["replicas"]["default"] == 3
    assert spec["deletionPolicy"]["enum"] == ["Retain", "Delete"]
    assert spec["health"]["properties"]["reportQueueCapacity"]["maximum"] == 10_000
    status = openapi_schema()["properties"]["status"]["properties"]
    assert {"state", "writer", "nodes"} <= status.keys()


def test_crd_names_and_status_subresource() -> None:
    crd = mysqlcluster_crd()
    assert crd["metadata"]["name"] == "mysqlclusters.mysqlops.io"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}


def test_backup_resources_have_their_own_crds() -> None:
    names = [crd["metadata"]["name"] for crd in crds()]
    assert names == [
        "mysqlclusters.mysqlops.io",
        "mysqlbackups.mysqlops.io",
        "mysqlrestores.mysqlops.io",
    ]
    backup = openapi_schema(MySQLBackup)["properties"]
    assert backup["spec"]["required"] == ["cluster"]
    assert {"phase", "sizeBytes", "position", "error"} <= backup["status"]["properties"].keys()
    cluster = openapi_schema()["properties"]["spec"]["properties"]
    assert {"schedule", "retention", "storage"} <= cluster["backup"]["properties"].keys()
