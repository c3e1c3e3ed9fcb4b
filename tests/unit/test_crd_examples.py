"""Objects through the generated CRDs as the API server takes them: nulls pruned, defaults
applied, the schema checked (with `jsonschema`, unknown fields refused as `kubectl apply`'s
strict field validation refuses them), then the CEL rules evaluated (with cel-python and the
Kubernetes functions they use, when it is installed). The examples in examples/k8s/ pass both
the CRDs and the models; bad objects are refused by the CRDs, and by the models too."""

import copy
import functools
import importlib
import re
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from activities.kubernetes.status import merge_conditions
from api.backup import MySQLBackup, MySQLRestore
from api.cluster import MySQLCluster
from api.crd import crds
from api.mysql_options import MANAGED, TUNABLE, VALUE_TYPES, Integer, check_option, check_value
from api.resource_status import (
    Automation,
    BackupResourceStatus,
    ClusterResourceStatus,
    Condition,
    NodeSummary,
    RestoreResourceStatus,
)
from api.states import BackupPhase, ClusterState, NodeState, Phase

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "k8s"
MODELS: dict[str, type[BaseModel]] = {
    "MySQLCluster": MySQLCluster,
    "MySQLBackup": MySQLBackup,
    "MySQLRestore": MySQLRestore,
}
SCHEMAS = {
    crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for crd in crds()
}

# Imported by name: neither has type information here (Any).
jsonschema: Any = importlib.import_module("jsonschema")
celpy: Any = importlib.import_module("celpy")
celtypes: Any = importlib.import_module("celpy.celtypes")


# -- the structural schema as JSON Schema ------------------------------------------------------


def json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """A structural OpenAPI v3 node as JSON Schema: `nullable` allows null,
    x-kubernetes-int-or-string is integer or string, an object with properties has no others
    (strict field validation: `kubectl apply` refuses unknown fields by default; other clients
    would see them pruned), the x-kubernetes-* extensions are left to the CEL step."""
    out: dict[str, Any] = {}
    kinds = ["integer", "string"] if node.get("x-kubernetes-int-or-string") else []
    if "type" in node:
        kinds = [node["type"]]
    if kinds and node.get("nullable"):
        kinds.append("null")
    if kinds:
        out["type"] = kinds if len(kinds) > 1 else kinds[0]
    if "enum" in node:
        out["enum"] = [*node["enum"], *([None] if node.get("nullable") else [])]
    for key in (
        "format",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
    ):
        if key in node:
            out[key] = node[key]
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if node.get(key):
            out[key] = out.pop(key.replace("exclusiveM", "m"))
    if "properties" in node:
        out["properties"] = {name: json_schema(child) for name, child in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = json_schema(node["additionalProperties"])
    if "items" in node:
        out["items"] = json_schema(node["items"])
    return out


def prune_nulls(value: Any, node: dict[str, Any]) -> Any:
    """The API server drops a null where the schema does not say `nullable`."""
    if isinstance(value, dict):
        children = node.get("properties", {})
        extra = node.get("additionalProperties")
        pruned = {}
        for name, item in value.items():
            child = children.get(name, extra if isinstance(extra, dict) else {})
            if item is None and not child.get("nullable"):
                continue
            pruned[name] = prune_nulls(item, child)
        return pruned
    if isinstance(value, list):
        return [prune_nulls(item, node.get("items", {})) for item in value]
    return value


def apply_defaults(value: Any, node: dict[str, Any]) -> Any:
    """The API server's defaulting: a missing property takes its default, then every present
    property (defaulted or not) gets its own defaults."""
    if isinstance(value, dict):
        value = dict(value)
        for name, child in node.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(value[name], child)
    if isinstance(value, list) and "items" in node:
        value = [apply_defaults(item, node["items"]) for item in value]
    return value


# -- CEL with the Kubernetes functions the rules use -------------------------------------------

# Kubernetes' resource.Quantity grammar: a signed decimal, then a binary or decimal SI suffix
# or a decimal exponent.
_K8S_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_SUFFIXES: dict[str | None, Fraction] = {
    None: Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    **{s: Fraction(1000**i) for i, s in enumerate("kMGTPE", start=1)},
    **{f"{s}i": Fraction(1024**i) for i, s in enumerate("KMGTPE", start=1)},
}


class Quantity:
    def __init__(self, text: str) -> None:
        match = _K8S_QUANTITY.match(text)
        if not match:
            raise ValueError(f"quantities must match the regular expression: {text!r}")
        number, suffix = match.groups()
        factor = _SUFFIXES.get(suffix)
        if factor is None:  # an exponent
            factor = Fraction(10) ** int(suffix[1:])
        self.value = Fraction(number) * factor


def _add(left: Quantity, right: Quantity) -> Quantity:
    total = Quantity("0")
    total.value = left.value + right.value
    return total


def _compare(left: Quantity, right: Quantity) -> Any:
    return celtypes.IntType((left.value > right.value) - (left.value < right.value))


def _functions() -> dict[str, Any]:
    string = celtypes.StringType
    return {
        # the strings extension (cel-go ext.Strings) Kubernetes includes
        "lowerAscii": lambda s: string("".join(c.lower() if c.isascii() else c for c in s)),
        "trim": lambda s: string(s.strip()),
        "replace": lambda s, old, new: string(s.replace(old, new)),
        # the Kubernetes quantity library (1.29+)
        "isQuantity": lambda s: celtypes.BoolType(_K8S_QUANTITY.match(s) is not None),
        "quantity": Quantity,
        "add": _add,
        "compareTo": _compare,
    }


@functools.cache
def program(rule: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule), functions=_functions())


def cel_errors(node: dict[str, Any], value: Any, old: Any, path: str) -> list[str]:
    """The messages of the rules that fail, at `node` and below: a rule false or an error
    refuses the object, as the API server does. A transition rule (oldSelf) runs only on
    updates where the old object has the value too."""
    errors = []
    for rule in node.get("x-kubernetes-validations", []):
        uses_old = "oldSelf" in rule["rule"]
        if uses_old and old is None:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if uses_old:
            activation["oldSelf"] = celpy.json_to_cel(old)
        try:
            result = program(rule["rule"]).evaluate(activation)
        except Exception as error:  # an evaluation error refuses the object too
            result = error
        if result is not True and result != celtypes.BoolType(True):
            errors.append(f"{path or '<root>'}: {rule['message']} ({result!r})"[:300])
    if isinstance(value, dict):
        for name, child in node.get("properties", {}).items():
            if name in value:
                previous = old.get(name) if isinstance(old, dict) else None
                errors += cel_errors(child, value[name], previous, f"{path}.{name}")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                errors += cel_errors(extra, item, None, f"{path}.{name}")
    if isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            errors += cel_errors(node["items"], item, None, f"{path}[{index}]")
    return errors


def admit(
    obj: dict[str, Any], old: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """What the API server stores of `obj` (a create, or an update of `old`) and its errors."""
    schema = SCHEMAS[obj["kind"]]
    stored = apply_defaults(prune_nulls(obj, schema), schema)
    validator = jsonschema.Draft202012Validator(
        json_schema(schema), format_checker=jsonschema.FormatChecker()
    )
    errors = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(stored)
    ]
    if not errors:
        previous = apply_defaults(prune_nulls(old, schema), schema) if old else None
        errors = cel_errors(schema, stored, previous, "")
    return stored, errors


# -- the examples ------------------------------------------------------------------------------


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return loaded


@pytest.mark.parametrize("name", ["mysqlcluster.yaml", "mysqlbackup.yaml", "mysqlrestore.yaml"])
def test_example_passes_the_crd_and_the_model(name: str) -> None:
    obj = example(name)
    stored, errors = admit(obj)
    assert errors == []
    model = MODELS[obj["kind"]]
    # the model reads the object as given and as the API server stores it, alike: the CRD's
    # defaults are the model's
    as_given = model.model_validate(obj).model_dump(mode="json", by_alias=True, exclude_none=True)
    as_stored = model.model_validate(stored).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    assert as_given == as_stored


def test_examples_are_one_story() -> None:
    """A 3-node cluster `demo` in `default` with a daily backup; a manual backup of it; a
    restore of that backup."""
    cluster = MySQLCluster.model_validate(example("mysqlcluster.yaml"))
    backup = MySQLBackup.model_validate(example("mysqlbackup.yaml"))
    restore = MySQLRestore.model_validate(example("mysqlrestore.yaml"))
    assert (cluster.metadata.name, cluster.metadata.namespace) == ("demo", "default")
    assert cluster.spec.replicas == 3 and cluster.spec.backup.schedule == "0 3 * * *"
    assert backup.spec.cluster == restore.spec.cluster == "demo"
    assert backup.metadata.namespace == restore.metadata.namespace == "default"
    assert restore.spec.backup == backup.metadata.name
    for name in ("mysqlcluster.yaml", "mysqlbackup.yaml", "mysqlrestore.yaml"):
        assert (EXAMPLES / name).read_text().startswith("#"), f"{name}: say what it is"


@pytest.mark.parametrize("kind", list(MODELS))
def test_api_server_defaults_are_the_models(kind: str) -> None:
    """The smallest object, defaulted by the CRD, is what the model makes of it."""
    obj: dict[str, Any] = {
        "apiVersion": "mysqlops.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "demo", "namespace": "default"},
    }
    if kind != "MySQLCluster":
        obj["spec"] = {"cluster": "demo"}
    stored, errors = admit(obj)
    assert errors == []
    model = (
        MODELS[kind].model_validate(obj).model_dump(mode="json", by_alias=True, exclude_none=True)
    )
    del model["metadata"], stored["metadata"]  # Kubernetes' own, not in the schema
    assert stored == model
    if kind == "MySQLCluster":
        assert stored["spec"]["mysql"]["gcacheSize"] == "128Mi"
        assert stored["spec"]["backup"]["retention"] == {"keepLast": 7}


def test_null_means_what_it_means_to_the_model() -> None:
    """keepLast: null is kept ("no limit"); a null elsewhere is dropped (absent: the same None)."""
    obj = example("mysqlcluster.yaml")
    obj["spec"]["backup"]["retention"]["keepLast"] = None
    obj["spec"]["backup"]["schedule"] = None
    stored, errors = admit(obj)
    assert errors == []
    assert stored["spec"]["backup"]["retention"]["keepLast"] is None
    assert "schedule" not in stored["spec"]["backup"]
    model = MySQLCluster.model_validate(stored).spec.backup
    assert model.retention.keep_last is None and model.schedule is None


# -- bad objects are refused -------------------------------------------------------------------


def changed(name: str, path: str, value: Any) -> dict[str, Any]:
    """The example `name` with the dotted `path` set to `value`."""
    obj = example(name)
    *parents, last = path.split(".")
    node = obj
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return obj


CLUSTER = "mysqlcluster.yaml"
BAD_FOR_THE_SCHEMA = [
    ("even replicas", changed(CLUSTER, "spec.replicas", 4), None),
    ("2 replicas", changed(CLUSTER, "spec.replicas", 2), None),
    ("0 replicas", changed(CLUSTER, "spec.replicas", 0), "minimum"),
    ("11 replicas", changed(CLUSTER, "spec.replicas", 11), "maximum"),
    ("replicas as text", changed(CLUSTER, "spec.replicas", "three"), "type"),
    ("unknown spec field", changed(CLUSTER, "spec.replica", 3), "Additional properties"),
    ("unknown nested field", changed(CLUSTER, "spec.mysql.gcache", "1Gi"), "Additional properties"),
    ("bad quantity", changed(CLUSTER, "spec.storage.size", "10GB"), "does not match"),
    ("quantity with a space", changed(CLUSTER, "spec.mysql.gcacheSize", "1 Gi"), "does not match"),
    ("bad cron", changed(CLUSTER, "spec.backup.schedule", "0 25 * * *"), "does not match"),
    (
        "cron of six fields",
        changed(CLUSTER, "spec.backup.schedule", "0 0 3 * * *"),
        "does not match",
    ),
    ("bad duration", changed(CLUSTER, "spec.backup.retention.maxAge", "2w"), "does not match"),
    ("keepLast 0", changed(CLUSTER, "spec.backup.retention.keepLast", 0), "minimum"),
    ("bad deletionPolicy", changed(CLUSTER, "spec.deletionPolicy", "Destroy"), "is not one of"),
    ("bad flavor", changed(CLUSTER, "spec.flavor", "mysql"), "is not one of"),
    ("relative backup path", changed(CLUSTER, "spec.backup.storage.filesystem.path", "b"), "match"),
    ("restoreFrom a bad name", changed(CLUSTER, "spec.restoreFrom", {"cluster": "Demo"}), "match"),
    ("restoreFrom no cluster", changed(CLUSTER, "spec.restoreFrom", {"backup": "b"}), "required"),
    ("probe interval 0", changed(CLUSTER, "spec.health.probeIntervalSeconds", 0), "minimum"),
    ("backup of no cluster", changed("mysqlbackup.yaml", "spec.cluster", None), "required"),
    ("backup keepFor 0d", changed("mysqlbackup.yaml", "spec.keepFor", "0d"), "does not match"),
    ("restore bad backup", changed("mysqlrestore.yaml", "spec.backup", "a_b"), "does not match"),
    (
        "unknown backup field",
        changed("mysqlbackup.yaml", "spec.node", "demo-0"),
        "Additional properties",
    ),
]
BAD_FOR_CEL = [
    ("even replicas", changed(CLUSTER, "spec.replicas", 4), "odd number"),
    ("2 replicas", changed(CLUSTER, "spec.replicas", 2), "odd number"),
    ("unknown config key", changed(CLUSTER, "spec.mysql.config.max_conections", 10), "unknown"),
    ("managed config key", changed(CLUSTER, "spec.mysql.config.datadir", "/tmp"), "unknown"),
    (
        "config value out of range",
        changed(CLUSTER, "spec.mysql.config.max_connections", 5),
        "10 to",
    ),
    ("config value of a bad kind", changed(CLUSTER, "spec.mysql.config.sql_mode", 1), "sql_mode"),
    (
        "config value not a choice",
        changed(CLUSTER, "spec.mysql.config.slow_query_log", "yes"),
        "ON",
    ),
    ("config value of two lines", changed(CLUSTER, "spec.mysql.config.sql_mode", "A\nB"), "line"),
    ("pool below 8Mi", changed(CLUSTER, "spec.mysql.innodbBufferPoolSize", "4Mi"), "8Mi"),
    ("gcache above 64Gi", changed(CLUSTER, "spec.mysql.gcacheSize", "65Gi"), "64Gi"),
    ("gcache over half the storage", changed(CLUSTER, "spec.mysql.gcacheSize", "6Gi"), "half"),
    ("name with a dot", changed(CLUSTER, "metadata.name", "demo.eu"), "DNS-1123"),
    ("backup name with a dot", changed("mysqlbackup.yaml", "metadata.name", "a.b"), "DNS-1123"),
    ("backup name of 64", changed("mysqlbackup.yaml", "metadata.name", "b" * 64), "63"),
]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [pytest.param(obj, expected, id=why) for why, obj, expected in BAD_FOR_THE_SCHEMA],
)
def test_the_schema_refuses(obj: dict[str, Any], expected: str | None) -> None:
    schema = SCHEMAS[obj["kind"]]
    stored = apply_defaults(prune_nulls(obj, schema), schema)
    validator = jsonschema.Draft202012Validator(json_schema(schema))
    messages = [error.message for error in validator.iter_errors(stored)]
    if expected is None:  # no keyword can say it: a CEL rule does (BAD_FOR_CEL)
        assert messages == []
    else:
        assert messages and any(expected in message for message in messages), messages
    with pytest.raises(ValidationError):  # and the model refuses it too
        MODELS[obj["kind"]].model_validate(obj)


@pytest.mark.parametrize(
    ("obj", "expected"), [pytest.param(obj, expected, id=why) for why, obj, expected in BAD_FOR_CEL]
)
def test_the_cel_rules_refuse(obj: dict[str, Any], expected: str) -> None:
    _, errors = admit(obj)
    assert errors and any(expected in error for error in errors), errors
    with pytest.raises(ValidationError):
        MODELS[obj["kind"]].model_validate(obj)


def test_the_cluster_name_leaves_room_for_backup_names() -> None:
    """45 characters: `<name>-YYYYMMDD-HHMMSS-9`, the longest name the workflow gives a
    backup, is then still a DNS-1123 label. (The model takes 63: the schema is stricter.)"""
    assert admit(changed(CLUSTER, "metadata.name", "c" * 45))[1] == []
    assert admit(changed(CLUSTER, "metadata.name", "c" * 46))[1]
    assert len("c" * 45 + "-20260101-000000-9") == 63


def test_restore_from_is_immutable() -> None:
    source = {"cluster": "demo", "backup": "demo-before-upgrade"}
    created = changed(CLUSTER, "spec.restoreFrom", source)
    assert admit(created)[1] == []  # a transition rule: nothing to compare with on create
    same = copy.deepcopy(created)
    same["spec"]["replicas"] = 5
    assert admit(same, old=created)[1] == []
    other = changed(CLUSTER, "spec.restoreFrom", {**source, "backup": "another"})
    removed = example(CLUSTER)
    for update, old in ((other, created), (removed, created), (created, removed)):
        errors = admit(update, old=old)[1]
        assert errors and "restoreFrom is immutable" in errors[0], errors
    assert admit(example(CLUSTER), old=example(CLUSTER))[1] == []


def test_rules_hold_for_what_the_api_server_defaults() -> None:
    """The rules are checked on defaults too, before any nested default is applied: `spec: {}`
    must pass as it is (has() guards), and once defaulted."""
    for kind, schema in SCHEMAS.items():
        for path, node in _defaulted_nodes(schema, ""):
            assert cel_errors(node, node["default"], None, path) == [], kind
            filled = apply_defaults(node["default"], node)
            assert cel_errors(node, filled, None, path) == [], kind


def _defaulted_nodes(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)] if "default" in node else []
    for name, child in node.get("properties", {}).items():
        found += _defaulted_nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _defaulted_nodes(node["items"], f"{path}[]")
    return found


# -- spec.mysql.config: the CEL rules are check_option and check_value -------------------------

INTEGER_FORM = re.compile(r"[+-]?[0-9]+[KMGTPE]?", re.IGNORECASE)
KEYS = [
    "max_connections",
    "Max-Connections",
    " max_connections ",
    "MAX_CONNECTIONS",
    "max_conections",
    "datadir",
    "wsrep-provider",
    "innodb_buffer_pool_size",
    "",
]
VALUES: list[int | str] = [
    0,
    1,
    2,
    -1,
    10,
    512,
    513,
    100_000,
    100_001,
    2**31,
    2**40,
    "0",
    "1",
    "10",
    "+20",
    " 64 ",
    "64M",
    "64m",
    "1G",
    "1X",
    "1.5",
    "0.5",
    ".5",
    "5.",
    "1e3",
    "-0.5",
    "40000000",
    "ON",
    "off",
    " True ",
    "yes",
    "",
    "abc",
    "utf8mb4",
    "UTF8MB4",
    "utf8mb4_general_ci",
    "Latin1_Swedish_CI",
    "binary",
    "klingon_ci",
    "READ-COMMITTED",
    "serializable",
    "read committed",
    "O_DIRECT",
    "fsync",
    "STRICT_TRANS_TABLES,NO_ZERO_DATE",
    "strict_trans_tables",
    "STRICT_TRANS_TABLES, NO_ZERO_DATE",
    "ANSI,",
    "a#b",
    "ON\n",
]


CONFIG = SCHEMAS["MySQLCluster"]["properties"]["spec"]["properties"]["mysql"]["properties"][
    "config"
]


def config_errors(config: dict[str, Any], option: str | None = None) -> list[str]:
    """The config rules' errors; with `option`, of the rules that can fail for it only (the
    others hold for any value of it: the test is quicker)."""
    node = CONFIG
    if option is not None:
        kept = [
            rule
            for rule in CONFIG["x-kubernetes-validations"]
            if "!= '" not in rule["rule"] or f"!= '{option}'" in rule["rule"]
        ]
        assert len(kept) == 3  # the allow-list, one line, the option's own
        node = {**CONFIG, "x-kubernetes-validations": kept}
    return cel_errors(node, config, None, "config")


def accepted(option: str, value: Any) -> bool:
    try:
        check_value(option, value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("key", KEYS)
def test_config_keys_as_check_option(key: str) -> None:
    try:
        check_option(key)
        allowed = True
    except ValueError:
        allowed = False
    errors = [e for e in config_errors({key: 100}) if "unknown MySQL option" in e]
    assert (not errors) == allowed, (key, errors)


@pytest.mark.parametrize("option", sorted(VALUE_TYPES))
def test_config_values_as_check_value(option: str) -> None:
    """For every value a Kubernetes object can hold (an integer or a string), the rules refuse
    what check_value refuses, and take what it takes. One exception, by design: the range of
    an integer option given as a string (with a suffix, '64M') is left to the watcher."""
    kind = VALUE_TYPES[option]
    values = list(VALUES)
    if isinstance(kind, Integer):
        values += [
            kind.low,
            kind.low - 1,
            *([kind.high, kind.high + 1] if kind.high < 2**63 else []),
        ]
    for value in values:
        refused = bool(config_errors({option: value}, option))
        expected = accepted(option, value)
        if expected or not (isinstance(kind, Integer) and isinstance(value, str)):
            assert refused == (not expected), (option, value)
        elif not INTEGER_FORM.fullmatch(value.strip()):
            assert refused, (option, value)  # an integer's form is the rules' check


def test_too_many_config_options_are_refused() -> None:
    """maxProperties bounds the rules' cost; more keys than options are spellings of the same."""
    config = {f"Max_Connections{' ' * n}": 100 for n in range(len(TUNABLE) + 1)}
    _, errors = admit(changed(CLUSTER, "spec.mysql.config", config))
    assert any("too many properties" in error for error in errors), errors


def test_booleans_and_decimals_are_strings_on_kubernetes() -> None:
    """int-or-string: the model takes `true` and `0.5`; the CRD wants 'ON' and '0.5' (what
    the server and check_value take as well) so that its CEL rules can see the map."""
    for value in (True, 0.5):
        obj = changed(CLUSTER, "spec.mysql.config.slow_query_log", value)
        assert admit(obj)[1], value
    assert accepted("slow_query_log", "ON") and accepted("long_query_time", "0.5")
    assert not MANAGED & TUNABLE


# -- what the workflow writes into status passes the status schema -----------------------------


def test_statuses_the_writer_writes_pass_the_schema() -> None:
    """Each status model, its conditions stamped by the writer (activities/kubernetes/status),
    is what the status schema takes; a condition without its time is not (metav1.Condition)."""
    now = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    conditions = [
        Condition(type="Ready", status="True", reason="Serving", message="3/3 nodes Green"),
        Condition(type="BackupFailing", status="False", reason="BackupSucceeded"),
    ]
    stamped = merge_conditions([], conditions, now)
    statuses = {
        "MySQLCluster": ClusterResourceStatus(
            observed_generation=2,
            workflow_id="mysqlcluster/default/demo",
            phase=Phase.RUNNING,
            state=ClusterState.GREEN,
            automation=Automation.ACTIVE,
            ready="3/3",
            ready_replicas=3,
            replicas=3,
            writer="demo-0",
            last_backup=now,
            last_backup_name="demo-20261129-030000",
            nodes=[NodeSummary(name=f"demo-{i}", state=NodeState.GREEN) for i in range(3)],
        ),
        "MySQLBackup": BackupResourceStatus(
            phase=BackupPhase.SUCCEEDED, task_id="t-7", size_bytes=1 << 20, started_at=now
        ),
        "MySQLRestore": RestoreResourceStatus(
            phase=BackupPhase.RUNNING, backup="demo-before-upgrade", set_aside={"demo-0": "/x"}
        ),
    }
    names = {"MySQLCluster": CLUSTER, "MySQLBackup": "mysqlbackup.yaml"}
    for kind, status in statuses.items():
        obj = example(names.get(kind, "mysqlrestore.yaml"))
        obj["status"] = {**status.dump(), "conditions": stamped}
        _, errors = admit(obj)
        assert errors == [], kind
        unstamped = [c.dump() for c in conditions]
        obj["status"]["conditions"] = unstamped
        _, errors = admit(obj)
        assert any("lastTransitionTime" in error for error in errors), kind
