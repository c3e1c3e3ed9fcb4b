"""CustomResourceDefinitions generated from the pydantic models: one source of truth.

Kubernetes wants a structural OpenAPI v3 schema: a type on every node, no `$ref`, no `anyOf`
of types, `nullable` instead of a null type, and only the keywords of its JSONSchemaProps. This
module turns the models' JSON Schema into that form. The models carry everything else: the
patterns, limits and CEL rules (`x-kubernetes-validations`) the API server checks, given with
`json_schema_extra` or `api.base.OpenAPI` so that pydantic's own validation stays as it is.

`make crds` writes them to charts/mysqlops/crds/ (`mysqlops crd --output-dir`); a test fails
when the files there differ from what the models generate.
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from api.backup import MySQLBackup, MySQLRestore
from api.cluster import API_VERSION, MySQLCluster

GROUP, VERSION = API_VERSION.split("/")
CATEGORY = "mysqlops"  # `kubectl get mysqlops` lists the three kinds
HEADER = (
    "# Generated from the pydantic models in api/ by `make crds`\n"
    "# (mysqlops crd --output-dir charts/mysqlops/crds): do not edit, change the models.\n"
)

# The keywords a node may have, in the order written (JSONSchemaProps keeps others out: some
# are refused, some are forbidden in structural schemas). A model giving any other is an error.
_KEYWORDS = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "nullable",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "x-kubernetes-validations",
)
# Formats Kubernetes checks as pydantic means them (not "duration": Go's, not ISO 8601's).
_FORMATS = frozenset({"date-time", "date", "int32", "int64", "float", "double", "byte"})
_RULE_KEYS = ("rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf")
_DROPPED = frozenset({"title", "discriminator", "$defs"})


class _FactoryDefaults(GenerateJsonSchema):
    """A field with a `default_factory` gets its default in the schema too, so that the API
    server fills in what pydantic would: `{}` for a model made with its own defaults (the API
    server then applies its fields' defaults), the value itself otherwise."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            if value == type(value)():
                return {}
            return value.model_dump(mode="json", by_alias=True, exclude_none=True)
        return value


def _description(text: str) -> str:
    return " ".join(text.split())  # docstrings and wrapped descriptions: one paragraph


def _merge(node: dict[str, Any], definitions: dict[str, Any], path: str) -> dict[str, Any]:
    """`node` with its `$ref`, `allOf` of one schema, or `anyOf` with null resolved."""
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[1]]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _merge({**target, **rest}, definitions, path)
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return _merge({**node["allOf"][0], **rest}, definitions, path)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(
                f"{path}: a union of {len(options)} types has no structural schema; give the "
                "field its CRD schema (json_schema_extra), e.g. x-kubernetes-int-or-string"
            )
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        merged = {**_merge(options[0], definitions, path), **rest}
        # Null kept only where it means something else than absent: a field with a default
        # other than None (retention.keepLast: null is "no limit", absent is 7), or none. A
        # null elsewhere is pruned by the API server, so the field is absent, which pydantic
        # reads as the None it stands for.
        null = len(options) < len(node["anyOf"])
        if null and ("default" not in node or merged.get("default") is not None):
            merged["nullable"] = True
        return merged
    return node


def _structural(node: Any, definitions: dict[str, Any], path: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        raise ValueError(f"{path}: not a schema: {node!r}")
    node = _merge(node, definitions, path)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and value is False:
            continue  # forbidden in structural schemas: the API server prunes unknown fields
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out[key.replace("exclusiveM", "m")] = value  # JSON Schema 2020-12 to OpenAPI 3.0
            out[key] = True
        elif key == "x-kubernetes-validations":
            for rule in value:
                if not set(rule) <= set(_RULE_KEYS) or "rule" not in rule:
                    raise ValueError(f"{path}: not a validation rule: {rule!r}")
            out[key] = [{k: rule[k] for k in _RULE_KEYS if k in rule} for rule in value]
        elif key == "description":
            out[key] = _description(value)
        elif key == "properties":
            out[key] = {
                name: _structural(child, definitions, f"{path}.{name}")
                for name, child in value.items()
            }
        elif key == "items":
            out[key] = _structural(value, definitions, f"{path}[]")
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = _structural(value, definitions, f"{path}{{}}")
        elif key == "format" and value not in _FORMATS:
            raise ValueError(f"{path}: format {value!r} means something else to Kubernetes")
        elif key not in _KEYWORDS:
            raise ValueError(f"{path}: {key!r} is not a keyword this generator writes")
        else:
            out[key] = value
    return {key: out[key] for key in _KEYWORDS if key in out}


def openapi_schema(model: type[BaseModel] = MySQLCluster) -> dict[str, Any]:
    """The structural schema of a resource model: `openAPIV3Schema` of its CRD."""
    schema = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_FactoryDefaults
    )
    structural = _structural(schema, schema.get("$defs", {}), "")
    properties = structural["properties"]
    # As controller-gen writes them: the API server sets apiVersion and kind, and owns
    # metadata (only name and generateName could be constrained: the root's CEL rule does).
    properties["apiVersion"] = {
        "description": "The versioned schema of this representation of an object",
        "type": "string",
    }
    properties["kind"] = {
        "description": "The REST resource this object represents",
        "type": "string",
    }
    properties["metadata"] = {"type": "object"}
    structural["required"] = [name for name in structural.get("required", []) if name != "metadata"]
    if not structural["required"]:
        del structural["required"]
    return structural


def _crd(
    model: type[BaseModel], plural: str, short: list[str], columns: list[dict[str, Any]]
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
                "categories": [CATEGORY],
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


def _column(
    name: str, path: str, kind: str = "string", description: str = "", priority: int = 0
) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if description:
        column["description"] = description
    if priority:
        column["priority"] = priority  # shown by `kubectl get -o wide` only
    return column


_AGE = _column("Age", ".metadata.creationTimestamp", "date")


def mysqlcluster_crd() -> dict[str, Any]:
    """The `MySQLCluster` CRD, with the status subresource and the columns kubectl shows."""
    return _crd(
        MySQLCluster,
        "mysqlclusters",
        ["mysql"],
        [
            _column("State", ".status.state", description="Green, Yellow or Red"),
            _column("Ready", ".status.ready", description="Green nodes of those asked for"),
            _column("Automation", ".status.automation", description="Are faults repaired?"),
            _column("Writer", ".status.writer", description="The node taking the writes"),
            _column("Last Backup", ".status.lastBackup", "date"),
            _AGE,
            _column("Phase", ".status.phase", priority=1),
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
            _column("Size", ".status.sizeBytes", "integer", "Bytes stored"),
            _AGE,
            _column("Position", ".status.position", description="Galera uuid:seqno", priority=1),
        ],
    )


def mysqlrestore_crd() -> dict[str, Any]:
    return _crd(
        MySQLRestore,
        "mysqlrestores",
        ["mysqlrestore"],
        [
            _column("Cluster", ".spec.cluster"),
            _column("Backup", ".status.backup", description="The backup restored"),
            _column("Phase", ".status.phase"),
            _AGE,
        ],
    )


def crds() -> list[dict[str, Any]]:
    return [mysqlcluster_crd(), mysqlbackup_crd(), mysqlrestore_crd()]


def crd_files() -> dict[str, str]:
    """What `make crds` writes: one file per CRD, named after it, with the HEADER."""
    return {
        f"{crd['metadata']['name']}.yaml": HEADER
        + yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=True)
        for crd in crds()
    }


def write_crds(directory: Path) -> list[Path]:
    """Write crd_files() into `directory`, removing generated files it no longer makes."""
    directory.mkdir(parents=True, exist_ok=True)
    files = crd_files()
    for stale in directory.glob("*.yaml"):
        if stale.name not in files and stale.read_text().startswith(HEADER):
            stale.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
