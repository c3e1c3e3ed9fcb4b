"""CustomResourceDefinitions generated from the pydantic models: one source of truth.

Kubernetes wants a structural OpenAPI v3 schema: no `$ref`, no `anyOf` of types, `nullable`
instead of a null type. This module turns the models' JSON Schema into that form.
"""

from typing import Any

from pydantic import BaseModel

from api.backup import MySQLBackup, MySQLRestore
from api.cluster import API_VERSION, MySQLCluster

GROUP, VERSION = API_VERSION.split("/")
_DROPPED = {"title", "discriminator"}


def _structural(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, definitions)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        nullable = len(options) < len(node["anyOf"])
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            merged = {**_structural(options[0], definitions), **_structural(rest, definitions)}
        else:  # scalars of several types (config values): the API server keeps them as given
            merged = {
                **_structural(rest, definitions),
                "x-kubernetes-preserve-unknown-fields": True,
            }
            merged.pop("type", None)
        if nullable:
            merged["nullable"] = True
        return merged
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key == "$defs":
            continue
        if key == "additionalProperties" and value is False:
            continue  # not allowed in structural schemas; the API server prunes unknown fields
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {name: _structural(v, definitions) for name, v in value.items()}
        else:
            out[key] = _structural(value, definitions)
    if out.get("default") is None:
        out.pop("default", None)
    return out


def openapi_schema(model: type[BaseModel] = MySQLCluster) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    structural: dict[str, Any] = _structural(schema, schema.get("$defs", {}))
    properties = structural["properties"]
    # Kubernetes owns metadata; the API server validates it.
    properties["metadata"] = {"type": "object"}
    return structural


def _crd(
    model: type[BaseModel], plural: str, short: list[str], columns: list[dict[str, str]]
) -> dict[str, Any]:
    kind = model.__name__
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                }
            ],
        },
    }


def _column(name: str, path: str, kind: str = "string") -> dict[str, str]:
    return {"name": name, "type": kind, "jsonPath": path}


def mysqlcluster_crd() -> dict[str, Any]:
    """The `MySQLCluster` CRD, with the status subresource and the columns kubectl shows."""
    return _crd(
        MySQLCluster,
        "mysqlclusters",
        ["mysql"],
        [
            _column("State", ".status.state"),
            _column("Phase", ".status.phase"),
            _column("Ready", ".status.readyReplicas", "integer"),
            _column("Writer", ".status.writer"),
        ],
    )


def mysqlbackup_crd() -> dict[str, Any]:
    return _crd(
        MySQLBackup,
        "mysqlbackups",
        ["mysqlbackup"],
        [
            _column("Cluster", ".spec.cluster"),
            _column("Phase", ".status.phase"),
            _column("Size", ".status.sizeBytes", "integer"),
            _column("Position", ".status.position"),
        ],
    )


def mysqlrestore_crd() -> dict[str, Any]:
    return _crd(
        MySQLRestore,
        "mysqlrestores",
        ["mysqlrestore"],
        [
            _column("Cluster", ".spec.cluster"),
            _column("Backup", ".status.backup"),
            _column("Phase", ".status.phase"),
        ],
    )


def crds() -> list[dict[str, Any]]:
    return [mysqlcluster_crd(), mysqlbackup_crd(), mysqlrestore_crd()]
