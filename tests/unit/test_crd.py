"""The CRDs are generated from the API models, committed, and structural schemas Kubernetes
accepts: typed everywhere, only the keywords of JSONSchemaProps, defaults equal to the models',
the validation rules on the models present in the schema. (tests/unit/test_crd_examples.py
runs objects through the schemas and their CEL rules.)"""

import asyncio
import copy
import importlib
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from api import crd as crd_module
from api.backup import (
    CRON_PATTERN,
    MySQLBackup,
    MySQLRestore,
    _cron,
    _duration,
)
from api.base import _dns1123_label, _quantity
from api.cluster import MySQLCluster
from api.crd import (
    HEADER,
    crd_files,
    crds,
    mysqlbackup_crd,
    mysqlcluster_crd,
    mysqlrestore_crd,
    openapi_schema,
)
from api.mysql_options import MANAGED, TUNABLE
from api.resource_status import (
    BackupResourceStatus,
    ClusterResourceStatus,
    RestoreResourceStatus,
)

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "charts" / "mysqlops" / "crds"
MODELS: list[type[BaseModel]] = [MySQLCluster, MySQLBackup, MySQLRestore]

# JSONSchemaProps' fields a structural schema may use (no $ref, definitions, patternProperties,
# dependencies, additionalItems, allOf/anyOf/oneOf/not of types, uniqueItems).
STRUCTURAL_KEYWORDS = {
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
    "multipleOf",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}
TYPES = {"object", "array", "string", "integer", "number", "boolean"}


def nodes(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The node at a dotted path of property names, e.g. 'spec.mysql.config'."""
    for name in path.split("."):
        schema = schema["properties"][name]
    return schema


def rules(node: dict[str, Any]) -> list[str]:
    return [rule["rule"] for rule in node.get("x-kubernetes-validations", [])]


def with_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """`value` with the schema's nested defaults applied, as the API server applies them."""
    value = copy.deepcopy(value)
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = with_defaults(value[name], child)
    if isinstance(value, list) and "items" in schema:
        value = [with_defaults(item, schema["items"]) for item in value]
    return value


# -- generated and committed -------------------------------------------------------------------


def test_committed_crds_are_what_the_models_generate() -> None:
    expected = crd_files()
    committed = {path.name: path.read_text() for path in sorted(CRD_DIR.glob("*.yaml"))}
    stale = sorted(committed.keys() - expected.keys())
    missing = sorted(expected.keys() - committed.keys())
    changed = sorted(
        name for name in expected.keys() & committed.keys() if expected[name] != committed[name]
    )
    assert not (stale or missing or changed), (
        f"charts/mysqlops/crds/ is not what api/ generates (missing {missing}, changed "
        f"{changed}, not generated {stale}): run `make crds` and commit the result"
    )


def test_each_file_is_one_crd_with_the_header() -> None:
    for name, text in crd_files().items():
        assert text.startswith(HEADER) and "make crds" in HEADER
        docs = list(yaml.safe_load_all(text))
        assert len(docs) == 1 and f"{docs[0]['metadata']['name']}.yaml" == name


def test_write_crds_writes_the_files_and_removes_stale_generated_ones(tmp_path: Path) -> None:
    (tmp_path / "old.mysqlops.io.yaml").write_text(HEADER + "kind: Gone\n")
    (tmp_path / "hand-written.yaml").write_text("kind: Kept\n")
    written = crd_module.write_crds(tmp_path)
    assert {path.name for path in written} == set(crd_files())
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [*crd_files(), "hand-written.yaml"]
    )
    for path in written:
        assert path.read_text() == crd_files()[path.name]


def test_crd_command_prints_or_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workers import cli

    args = cli.parser().parse_args(["crd"])
    assert asyncio.run(args.func(args)) == 0
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    assert printed == crds()
    args = cli.parser().parse_args(["crd", "--output-dir", str(tmp_path / "crds")])
    assert asyncio.run(args.func(args)) == 0
    assert sorted(p.name for p in (tmp_path / "crds").iterdir()) == sorted(crd_files())


# -- structural, as the API server demands -----------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_schema_is_structural(model: type[BaseModel]) -> None:
    schema = openapi_schema(model)
    assert schema["type"] == "object"
    for path, node in nodes(schema):
        assert set(node) <= STRUCTURAL_KEYWORDS, (path, set(node) - STRUCTURAL_KEYWORDS)
        untyped_ok = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        assert node.get("type") in TYPES or untyped_ok, path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties", True) is not False, path
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), path
        if "enum" in node:
            assert node["type"] == "string" and all(isinstance(v, str) for v in node["enum"])
        for name in node.get("required", []):
            assert name in node["properties"], (path, name)
        if "format" in node:
            assert node["format"] in {"date-time", "int64"}, path
        if "pattern" in node:
            re.compile(node["pattern"])
            assert "\\d" not in node["pattern"], f"{path}: RE2's \\d is not Python's"
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item["required"] and item["properties"][key]["type"] == "string"
        for rule in node.get("x-kubernetes-validations", []):
            assert set(rule) <= {"rule", "message", "fieldPath", "reason"}, (path, rule)
            assert rule["message"] and rule["rule"]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_untyped_values_only_where_intended(model: type[BaseModel]) -> None:
    """No x-kubernetes-preserve-unknown-fields anywhere (CEL rules could not see such values);
    x-kubernetes-int-or-string only on spec.mysql.config's values."""
    for path, node in nodes(openapi_schema(model)):
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert path == ".spec.mysql.config{}" and "type" not in node


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_root_is_what_kubernetes_owns(model: type[BaseModel]) -> None:
    schema = openapi_schema(model)
    properties = schema["properties"]
    assert properties["metadata"] == {"type": "object"}
    assert properties["apiVersion"]["type"] == properties["kind"]["type"] == "string"
    assert set(properties) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert "metadata" not in schema.get("required", [])
    assert "nullable" not in properties["status"]


def test_crds_are_valid_kubernetes_objects() -> None:
    """kubernetes-validate (the API's own OpenAPI) refuses unknown fields of a CRD, e.g. a
    JSON Schema keyword that JSONSchemaProps has not."""
    validator = importlib.import_module("kubernetes_validate")
    for crd in crds():
        for version in ("1.29.0", "1.33.0"):  # the quantity CEL library needs 1.29
            validator.validate(crd, version, strict=True)


def test_the_generator_refuses_what_has_no_structural_schema() -> None:
    class Union(BaseModel):
        value: str | int

    with pytest.raises(ValueError, match="x-kubernetes-int-or-string"):
        openapi_schema(Union)

    class Unknown(BaseModel):
        value: int = 0
        model_config = {"json_schema_extra": {"examples": [1]}}

    with pytest.raises(ValueError, match="examples"):
        openapi_schema(Unknown)


# -- names, columns, subresource ---------------------------------------------------------------


def test_names_and_status_subresource() -> None:
    assert [crd["metadata"]["name"] for crd in crds()] == [
        "mysqlclusters.mysqlops.io",
        "mysqlbackups.mysqlops.io",
        "mysqlrestores.mysqlops.io",
    ]
    for crd, short in zip(crds(), ["mysql", "mysqlbackup", "mysqlrestore"], strict=True):
        spec = crd["spec"]
        assert spec["group"] == "mysqlops.io" and spec["scope"] == "Namespaced"
        assert spec["names"]["shortNames"] == [short]
        assert spec["names"]["singular"] == spec["names"]["kind"].lower()
        [version] = spec["versions"]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
        assert version["subresources"] == {"status": {}}


def columns(crd: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (c["name"], c["jsonPath"], c["type"])
        for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
        if not c.get("priority")
    ]


def test_printer_columns() -> None:
    age = ("Age", ".metadata.creationTimestamp", "date")
    assert columns(mysqlcluster_crd()) == [
        ("State", ".status.state", "string"),
        ("Ready", ".status.ready", "string"),
        ("Automation", ".status.automation", "string"),
        ("Writer", ".status.writer", "string"),
        ("Last Backup", ".status.lastBackup", "date"),
        age,
    ]
    assert columns(mysqlbackup_crd()) == [
        ("Cluster", ".spec.cluster", "string"),
        ("Phase", ".status.phase", "string"),
        ("Size", ".status.sizeBytes", "integer"),
        age,
    ]
    assert columns(mysqlrestore_crd()) == [
        ("Cluster", ".spec.cluster", "string"),
        ("Backup", ".status.backup", "string"),
        ("Phase", ".status.phase", "string"),
        age,
    ]


@pytest.mark.parametrize("crd", crds(), ids=lambda c: c["metadata"]["name"])
def test_every_column_points_at_a_field_of_its_type(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
        path = column["jsonPath"].lstrip(".")
        if path == "metadata.creationTimestamp":
            continue
        node = at(schema, path)
        expected = {"date": ("string", "date-time"), "integer": ("integer", None)}.get(
            column["type"], ("string", None)
        )
        assert (node["type"], node.get("format")) == expected, column


# -- the models are the source: defaults, statuses, rules --------------------------------------


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (itself, in a list or dict, or optional), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict):
        found = [model_of(arg) for arg in typing.get_args(annotation)]
        return next((m for m in found if m is not None), None)
    if typing.get_origin(annotation) is typing.Annotated:
        return model_of(typing.get_args(annotation)[0])
    return None


def defaults(model: type[BaseModel], schema: dict[str, Any], path: str) -> Iterator[Any]:
    """(path, the schema's default with nested defaults applied, the model's default)."""
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    for name, node in schema.get("properties", {}).items():
        field = fields[name]
        if "default" in node:
            value = field.get_default(call_default_factory=True)
            if isinstance(value, BaseModel):
                value = value.model_dump(mode="json", by_alias=True, exclude_none=True)
            elif hasattr(value, "value"):
                value = value.value  # an enum member
            yield f"{path}.{name}", with_defaults(node["default"], node), value
        inner = model_of(field.annotation)
        if inner is not None:
            child = node.get("items") or node.get("additionalProperties") or node
            yield from defaults(inner, child if isinstance(child, dict) else node, f"{path}.{name}")


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_schema_defaults_are_the_models(model: type[BaseModel]) -> None:
    found = list(defaults(model, openapi_schema(model), ""))
    assert len(found) > (15 if model is MySQLCluster else 3)
    for path, schema_default, model_default in found:
        assert schema_default == model_default, path


def test_a_default_only_where_null_is_absent_or_means_the_default() -> None:
    """An optional field is nullable only where null means something of its own: keepLast's
    null is "no limit", absent is 7. Elsewhere the API server prunes null: absent is None."""
    spec = openapi_schema()["properties"]["spec"]
    nullable = [path for path, node in nodes(spec) if node.get("nullable")]
    assert nullable == [".backup.retention.keepLast"]
    assert at(spec, "backup.retention.keepLast")["default"] == 7


@pytest.mark.parametrize(
    ("model", "status"),
    [
        (MySQLCluster, ClusterResourceStatus),
        (MySQLBackup, BackupResourceStatus),
        (MySQLRestore, RestoreResourceStatus),
    ],
    ids=["cluster", "backup", "restore"],
)
def test_status_is_the_resource_status_model(
    model: type[BaseModel], status: type[BaseModel]
) -> None:
    schema = openapi_schema(model)["properties"]["status"]
    aliases = [field.alias or name for name, field in status.model_fields.items()]
    assert list(schema["properties"]) == aliases
    required = [field.alias or n for n, field in status.model_fields.items() if field.is_required()]
    assert schema.get("required", []) == required
    conditions = schema["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    condition = conditions["items"]
    # metav1.Condition
    assert condition["required"] == ["type", "status", "reason", "message", "lastTransitionTime"]
    properties = condition["properties"]
    assert properties["status"]["enum"] == ["True", "False", "Unknown"]
    assert properties["reason"]["pattern"] == r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    assert (properties["reason"]["minLength"], properties["reason"]["maxLength"]) == (1, 1024)
    assert properties["message"]["maxLength"] == 32768
    assert properties["type"]["maxLength"] == 316
    assert re.search(properties["type"]["pattern"], "Ready")
    assert re.search(properties["type"]["pattern"], "mysqlops.io/BackupFailing")
    assert not re.search(properties["type"]["pattern"], "not ready")
    assert properties["lastTransitionTime"] == {
        "description": properties["lastTransitionTime"]["description"],
        "type": "string",
        "format": "date-time",
    }
    assert properties["observedGeneration"]["minimum"] == 0
    assert properties["observedGeneration"]["format"] == "int64"


def test_validation_is_in_the_schema() -> None:
    spec = openapi_schema()["properties"]["spec"]
    replicas = at(spec, "replicas")
    assert (replicas["minimum"], replicas["maximum"], rules(replicas)) == (1, 9, ["self % 2 == 1"])
    assert at(spec, "deletionPolicy")["enum"] == ["Retain", "Delete"]
    assert at(spec, "flavor")["enum"] == ["mariadb"]
    assert at(spec, "health.reportQueueCapacity")["maximum"] == 10_000
    assert at(spec, "remediation.partitionGraceSeconds")["minimum"] == 10
    for path in ("mysql.innodbBufferPoolSize", "mysql.gcacheSize", "storage.size"):
        assert at(spec, path)["pattern"].startswith("^([0-9]+") and at(spec, path)["maxLength"]
    assert "quantity('8Mi')" in rules(at(spec, "mysql.innodbBufferPoolSize"))[0]
    assert "quantity('64Gi')" in rules(at(spec, "mysql.gcacheSize"))[0]
    assert at(spec, "backup.schedule")["pattern"] == CRON_PATTERN
    assert at(spec, "backup.retention.maxAge")["pattern"] == "^[0-9]*[1-9][0-9]*[mhd]$"
    assert at(spec, "backup.storage.filesystem.path")["pattern"] == "^/"
    for path in ("restoreFrom.cluster", "restoreFrom.backup"):
        assert at(spec, path)["maxLength"] == 63
    spec_rules = rules(spec)
    assert any("quantity(self.storage.size)" in rule for rule in spec_rules)
    [transition] = [rule for rule in spec_rules if "oldSelf" in rule]
    assert "self.restoreFrom == oldSelf.restoreFrom" in transition
    assert "has(self.restoreFrom) == has(oldSelf.restoreFrom)" in transition


def test_config_rules_follow_the_allow_list() -> None:
    config = at(openapi_schema()["properties"]["spec"], "mysql.config")
    assert config["additionalProperties"]["x-kubernetes-int-or-string"] is True
    assert config["maxProperties"] == len(TUNABLE)
    allow, one_line, *per_option = rules(config)
    listed = set(re.findall(r"'([a-z0-9_]+)'", allow.split(" in ", 1)[1]))
    assert listed == TUNABLE and not listed & MANAGED
    assert "'#'" in one_line
    assert len(per_option) == len(TUNABLE)
    for name in TUNABLE:
        assert sum(f"!= '{name}'" in rule for rule in per_option) == 1, name


@pytest.mark.parametrize(
    ("model", "limit"), [(MySQLCluster, 45), (MySQLBackup, 63), (MySQLRestore, 63)]
)
def test_root_rule_limits_the_name(model: type[BaseModel], limit: int) -> None:
    assert rules(openapi_schema(model)) == [
        f"self.metadata.name.size() <= {limit} && !self.metadata.name.contains('.')"
    ]


# -- the schema's patterns take what the validators take ---------------------------------------


def agrees(pattern: str, validator: Any, samples: list[str]) -> None:
    for sample in samples:
        try:
            validator(sample)
            valid = True
        except ValueError:
            valid = False
        assert bool(re.search(pattern, sample)) == valid, sample


def test_dns_label_pattern_is_the_validator() -> None:
    node = at(openapi_schema(MySQLBackup)["properties"]["spec"], "cluster")
    samples = ["demo", "a", "0", "a-b", "-a", "a-", "A", "a.b", "a_b", "", "a" * 63, "db-01"]
    agrees(node["pattern"], _dns1123_label, [s for s in samples if len(s) <= 63])


def test_quantity_pattern_is_the_validator() -> None:
    node = at(openapi_schema()["properties"]["spec"], "storage.size")
    samples = ["1Gi", "128Mi", "1.5Gi", "1", "0", "1K", "1k", "1Ki", "1Pi", "1E", "1e3", "-1Gi"]
    agrees(node["pattern"], _quantity, [*samples, "Gi", "1 Gi", "1.Gi", ".5Gi", "1gi", "1Mb"])


def test_duration_pattern_is_the_validator() -> None:
    node = at(openapi_schema()["properties"]["spec"], "backup.retention.maxAge")
    samples = ["7d", "30m", "12h", "01d", "0d", "00h", "1s", "1w", "d", "1.5d", "-1d", "10d "]
    agrees(node["pattern"], _duration, samples)


def test_cron_pattern_is_the_validator() -> None:
    samples = [
        "0 3 * * *",
        "*/15 * * * *",
        "0 0 1 1 0",
        "59 23 31 12 7",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * 0 *",
        "* * * * 8",
        "0,30 8-18/2 * * 1-5",
        "5-1 * * * *",
        "*/0 * * * *",
        "*/00 * * * *",
        "007 03 * * *",
        "0 3 * *",
        "0 3 * * * *",
        "a * * * *",
        "*-5 * * * *",
        "1,,2 * * * *",
        "  0 3 * * *  ",
        "0\t3 * * *\t*",
        "@daily",
        " @hourly ",
        "@weekly x",
        "@every 1h",
        "@every  90m",
        "@every",
        "@everyday",
        "@sometimes",
        "",
    ]
    agrees(CRON_PATTERN, _cron, samples)
