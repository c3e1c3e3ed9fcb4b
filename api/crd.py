"""CustomResourceDefinitions generated from the pydantic models: one source of truth.

Kubernetes wants a structural OpenAPI v3 schema: no `$ref`, no `anyOf` of types, `nullable`
instead of a null type. This module turns the models' JSON Schema into that form.
"""

from typing import Any

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


def openapi_schema() -> dict[str, Any]:
    schema = MySQLCluster.model_json_schema(by_alias=True, mode="validation")
    structural: dict[str, Any] = _structural(schema, schema.get("$defs", {}))
    properties = structural["properties"]
    # Kubernetes owns metadata; the API server validates it.
    properties["metadata"] = {"type": "object"}
    return structural


def mysqlcluster_crd() -> dict[str, Any]:
    """The `MySQLCluster` CRD, with the status subresource and the columns kubectl shows."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"mysqlclusters.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": "MySQLCluster",
                "listKind": "MySQLClusterList",
                "plural": "mysqlclusters",
                "singular": "mysqlcluster",
                "shortNames": ["mysql"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "State", "type": "string", "jsonPath": ".status.state"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
                        {"name": "Writer", "type": "string", "jsonPath": ".status.writer"},
                    ],
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }
