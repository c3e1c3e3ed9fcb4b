"""The Helm chart (charts/mysqlops) and the image's Dockerfile.

The chart is rendered with the project's helm (.tools/bin/helm, from scripts/setup.sh) with its
default values and with non-default ones, and every manifest is validated against the
Kubernetes 1.33 schemas (kubernetes-validate, strict). ServiceMonitor and PrometheusRule are
Prometheus Operator kinds those schemas do not know: they are checked by structure here.
"""

import importlib
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.chart.rbac import (
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    ROOT,
    helm,
    render,
    rendered_rbac_rules,
    template,
)

# Every toggle on, a watched namespace, TLS from a Secret, three workers.
NON_DEFAULT: dict[str, Any] = {
    "watchNamespace": "databases",
    "networkPolicy": {"enabled": True},
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    },
    "temporal": {
        "address": "temporal.example.com:7443",
        "namespace": "production",
        "uiAddress": "https://temporal.example.com/",
        "tls": {"secretName": "temporal-client-tls"},
    },
    "workers": {"replicas": 3, "limits": {"maxWatches": 500}},
}
TLS_SECRET = "temporal-client-tls"

# The RBAC rules, per ServiceAccount role (tests/kube/test_operator.py checks them against the
# calls the code makes).
RESOURCES = ["mysqlclusters", "mysqlbackups", "mysqlrestores"]
STATUS = {"apiGroups": ["mysqlops.io"], "resources": [f"{r}/status" for r in RESOURCES]}
EVENTS = {"apiGroups": ["events.k8s.io"], "resources": ["events"]}
EXPECTED_RULES: dict[str, list[dict[str, list[str]]]] = {
    "operator": [
        {
            "apiGroups": ["mysqlops.io"],
            "resources": ["mysqlclusters"],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {
            "apiGroups": ["mysqlops.io"],
            "resources": ["mysqlbackups", "mysqlrestores"],
            "verbs": ["list", "watch"],
        },
        {**STATUS, "verbs": ["get", "patch"]},
        {**EVENTS, "verbs": ["create", "get", "patch"]},
    ],
    "worker": [
        {**STATUS, "verbs": ["get", "patch"]},
        {**EVENTS, "verbs": ["create", "get", "patch"]},
    ],
}

# Kinds the Kubernetes schemas do not know (CRDs of the Prometheus Operator).
STRUCTURAL_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
DEFAULT_KINDS = {
    "ServiceAccount": 2,
    "ClusterRole": 3,  # the operator's, the worker's, the worker's Kubernetes runtime's
    "ClusterRoleBinding": 3,
    "Service": 2,
    "Deployment": 2,
    "PersistentVolumeClaim": 1,  # the workers' backups
}
TOGGLES = {  # value path -> what it renders when on
    "metrics.serviceMonitor.enabled": ["PodMonitor", "ServiceMonitor"],
    "metrics.prometheusRule.enabled": ["PrometheusRule"],
    "metrics.grafanaDashboard.enabled": ["ConfigMap"],
    # the chart's pods; the workers to the clusters' pods (tests/chart/test_runtime_values.py)
    "networkPolicy.enabled": ["NetworkPolicy", "NetworkPolicy"],
}


def nested(path: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} for "a.b"."""
    result: dict[str, Any] = {}
    node = result
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return result


@pytest.fixture(scope="module")
def default_manifests() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def custom_manifests() -> list[dict[str, Any]]:
    return render(NON_DEFAULT)


@pytest.fixture(params=["default", "non-default"])
def manifests(
    request: pytest.FixtureRequest,
    default_manifests: list[dict[str, Any]],
    custom_manifests: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    return default_manifests if request.param == "default" else custom_manifests


def of_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests if doc["kind"] == kind]


def by_component(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc
        for doc in of_kind(manifests, kind)
    }


def containers(
    manifests: list[dict[str, Any]],
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) of every container the chart runs."""
    for doc in manifests:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
            spec = doc["spec"]["template"]["spec"]
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                yield doc["metadata"]["name"], spec, container


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes LabelSelector selects these labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


# -- helm itself, lint -------------------------------------------------------------------------


def test_helm_runs() -> None:
    result = helm("version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("v"), result.stdout


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "mysqlops"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == "0.1.0"
    assert chart["kubeVersion"] == ">=1.29.0-0"


def test_older_kubernetes_is_refused() -> None:
    result = helm("template", RELEASE, str(CHART), "--kube-version", "1.28.0")
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr or "1.29" in result.stderr, result.stderr


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
@pytest.mark.parametrize(
    "values",
    [{}, NON_DEFAULT, {"runtime": "local", "workers": {"replicas": 1}}],
    ids=["default", "non-default", "local"],
)
def test_lint(strict: bool, values: dict[str, Any]) -> None:
    flags = ["--strict"] if strict else []
    result = helm("lint", str(CHART), *flags, "--kube-version", KUBE_VERSION, values=values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


# -- every manifest valid for Kubernetes 1.33 --------------------------------------------------


def kubernetes_validate() -> ModuleType:
    # Imported by name: the package has no type information (its functions are Any here).
    module = importlib.import_module("kubernetes_validate")
    versions = module.utils.all_versions()
    assert KUBE_VERSION in versions, f"kubernetes-validate lacks {KUBE_VERSION}: {versions}"
    return module


def test_manifests_are_valid_kubernetes(manifests: list[dict[str, Any]]) -> None:
    validator = kubernetes_validate()
    errors = []
    for doc in manifests:
        if doc["kind"] in STRUCTURAL_KINDS:
            continue  # test_service_monitor, test_prometheus_rule
        try:
            validator.validate(doc, KUBE_VERSION, strict=True)
        except validator.ValidationError as error:
            path = "/".join(str(part) for part in error.absolute_path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']} at {path}: {error.message}")
        except validator.SchemaNotFoundError as error:
            errors.append(error.message)
    assert not errors, "\n".join(errors)


def test_default_renders_only_the_base_objects(default_manifests: list[dict[str, Any]]) -> None:
    kinds: dict[str, int] = {}
    for doc in default_manifests:
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    assert kinds == DEFAULT_KINDS


def test_every_object_is_labelled(manifests: list[dict[str, Any]]) -> None:
    for doc in manifests:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "mysqlops", doc["metadata"]
        assert labels["app.kubernetes.io/instance"] == RELEASE, doc["metadata"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", doc["metadata"]
    for kind in ("Deployment", "ServiceAccount", "Service"):
        assert set(by_component(manifests, kind)) == {"operator", "worker"}, kind


def test_crds_are_shipped() -> None:
    """The chart installs the CRDs (crds/, generated by `mysqlops crd`), each valid, each with
    the status subresource the RBAC rules grant."""
    directory = CHART / "crds"
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    assert files, (
        f"no CRDs in {directory.relative_to(ROOT)} (generated by `mysqlops crd`): the chart "
        "would install none"
    )
    docs = [doc for path in files for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert {doc["metadata"]["name"] for doc in docs} == {
        "mysqlclusters.mysqlops.io",
        "mysqlbackups.mysqlops.io",
        "mysqlrestores.mysqlops.io",
    }
    validator = kubernetes_validate()
    for doc in docs:
        validator.validate(doc, KUBE_VERSION, strict=True)
        served = [version for version in doc["spec"]["versions"] if version["served"]]
        assert [version["name"] for version in served] == ["v1alpha1"], doc["metadata"]["name"]
        assert "status" in served[0].get("subresources", {}), doc["metadata"]["name"]


# -- values: the schema refuses bad ones -------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"workers": {"replicas": -1}}, "workers/replicas"),
        ({"workers": {"replicas": "three"}}, "workers/replicas"),
        ({"bogus": True}, "bogus"),
        ({"workers": {"replica": 3}}, "replica"),
        ({"image": {"pullPolicy": "Sometimes"}}, "image/pullPolicy"),
        ({"metrics": {"serviceMonitor": {"enabled": "yes"}}}, "metrics/serviceMonitor/enabled"),
        ({"metrics": {"ports": {"worker": 70000}}}, "metrics/ports/worker"),
        ({"temporal": {"address": "temporal-frontend"}}, "temporal/address"),
        ({"watchNamespace": "Not_A_Namespace"}, "watchNamespace"),
        ({"logLevel": "LOUD"}, "logLevel"),
        ({"workers": {"limits": {"maxWatches": 0}}}, "workers/limits/maxWatches"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else "",
)
def test_bad_values_fail(values: dict[str, Any], field: str) -> None:
    result = template(values)
    assert result.returncode != 0, f"{values} was accepted"
    assert "schema" in result.stderr, result.stderr
    assert field in result.stderr or field.replace("/", ".") in result.stderr, result.stderr


def test_bad_values_fail_install() -> None:
    result = helm(
        "install", RELEASE, str(CHART), "--dry-run=client", values={"workers": {"replicas": -1}}
    )
    assert result.returncode != 0
    assert "workers/replicas" in result.stderr, result.stderr


def test_values_file_matches_the_schema() -> None:
    """Every default value is declared in the schema, and the main sections are closed."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) <= set(schema["properties"])
    sections = ("image", "temporal", "operator", "workers", "nodes", "backups", "metrics")
    for section in (*sections, "networkPolicy"):
        assert schema["properties"][section]["additionalProperties"] is False, section
        assert set(values[section]) == set(schema["properties"][section]["properties"]), section


# -- toggles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("toggle", sorted(TOGGLES))
def test_toggle_renders_its_object_only_when_on(
    toggle: str, default_manifests: list[dict[str, Any]]
) -> None:
    off = render(nested(toggle, False))
    assert off == default_manifests
    on = render(nested(toggle, True))
    added = [doc for doc in on if doc not in default_manifests]
    assert [doc["kind"] for doc in added] == TOGGLES[toggle]
    assert [doc for doc in on if doc not in added] == default_manifests


def test_service_monitor(custom_manifests: list[dict[str, Any]]) -> None:
    [monitor] = of_kind(custom_manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "prometheus"  # its labels value
    spec = monitor["spec"]
    assert set(spec) == {"namespaceSelector", "selector", "endpoints"}
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    services = [
        service
        for service in of_kind(custom_manifests, "Service")
        if selects(spec["selector"], service["metadata"]["labels"])
    ]
    assert {s["metadata"]["labels"]["app.kubernetes.io/component"] for s in services} == {
        "operator",
        "worker",
    }
    allowed = {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings"}
    for endpoint in spec["endpoints"]:  # ports and job names: tests/chart/test_monitoring.py
        assert set(endpoint) <= allowed
        assert endpoint["port"] in ("metrics", "sdk-metrics")
        assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", endpoint["interval"])
    for service in services:
        assert "metrics" in [port["name"] for port in service["spec"]["ports"]]


def test_prometheus_rule(custom_manifests: list[dict[str, Any]]) -> None:
    [rule] = of_kind(custom_manifests, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    alerts = {}
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and isinstance(group["name"], str)
        assert group["rules"], group["name"]
        for item in group["rules"]:
            assert set(item) <= {"alert", "expr", "for", "labels", "annotations"}, item
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", item["alert"])
            assert isinstance(item["expr"], str) and item["expr"].strip()
            assert re.fullmatch(r"([0-9]+(ms|s|m|h|d|w|y))+", item.get("for", "0s"))
            for mapping in (item.get("labels", {}), item.get("annotations", {})):
                assert all(isinstance(v, str) for v in mapping.values()), mapping
            alerts[item["alert"]] = item
    # The job names the ServiceMonitor gives (tests/chart/test_monitoring.py checks they agree).
    expr = alerts["MySQLOpsWorkerDown"]["expr"]
    assert "mysqlops-worker" in expr and expr.rstrip().endswith("== 0"), expr


def test_grafana_dashboard(custom_manifests: list[dict[str, Any]]) -> None:
    [config_map] = of_kind(custom_manifests, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    [(name, text)] = config_map["data"].items()
    assert name.endswith(".json")
    dashboard = json.loads(text)
    assert dashboard["title"] == "mysqlops" and dashboard["uid"] == "mysqlops"
    assert isinstance(dashboard["panels"], list)


# -- the workloads -----------------------------------------------------------------------------


def test_commands_and_replicas(
    default_manifests: list[dict[str, Any]], custom_manifests: list[dict[str, Any]]
) -> None:
    for manifests, workers in ((default_manifests, 2), (custom_manifests, 3)):
        deployments = by_component(manifests, "Deployment")
        assert deployments["operator"]["spec"]["replicas"] == 1
        assert deployments["worker"]["spec"]["replicas"] == workers
        for component, deployment in deployments.items():
            pod = deployment["spec"]["template"]["spec"]
            [container] = pod["containers"]
            assert "command" not in container  # the image's entrypoint: mysqlops
            assert container["args"] == [component]
            assert pod["serviceAccountName"] == deployment["metadata"]["name"]
            assert container["image"] == "ghcr.io/mysqlops/mysqlops:0.1.0"
            assert container["resources"]["requests"] and container["resources"]["limits"]


def test_image_values() -> None:
    values = {
        "image": {"repository": "registry.example/ops", "tag": "1.2.3", "pullPolicy": "Always"}
    }
    for _, _, container in containers(render(values)):
        assert container["image"] == "registry.example/ops:1.2.3"
        assert container["imagePullPolicy"] == "Always"


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_temporal_settings_reach_both_commands(custom_manifests: list[dict[str, Any]]) -> None:
    for _, _, container in containers(custom_manifests):
        env = env_of(container)
        assert env["TEMPORAL_ADDRESS"] == "temporal.example.com:7443"
        assert env["TEMPORAL_NAMESPACE"] == "production"
        assert env["MYSQLOPS_TASK_QUEUE"] == "mysqlops"
    deployments = by_component(custom_manifests, "Deployment")
    operator, worker = (
        env_of(deployments[name]["spec"]["template"]["spec"]["containers"][0])
        for name in ("operator", "worker")
    )
    assert operator["MYSQLOPS_WATCH_NAMESPACE"] == "databases"
    assert worker["MYSQLOPS_MAX_WATCHES"] == "500"


def test_security_context(manifests: list[dict[str, Any]]) -> None:
    found = 0
    for name, pod, container in containers(manifests):
        found += 1
        pod_context = pod["securityContext"]
        context = container["securityContext"]
        assert pod_context["runAsNonRoot"] is True and context["runAsNonRoot"] is True, name
        uid = context.get("runAsUser", pod_context.get("runAsUser"))
        assert isinstance(uid, int) and uid > 0, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context.get("privileged", False) is False, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        for level in (context, pod_context):
            assert level["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not pod.get("hostNetwork") and not pod.get("hostPID"), name
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        [tmp] = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
        assert "emptyDir" in volumes[tmp["name"]], name
        assert not any("hostPath" in volume for volume in volumes.values()), name
    assert found == 2


# -- secrets never on a command line -----------------------------------------------------------


@pytest.mark.parametrize(
    "tls",
    [
        {"secretName": TLS_SECRET},
        {"secretName": TLS_SECRET, "certKey": "client.pem", "keyKey": "client-key.pem"},
        {"secretName": TLS_SECRET, "certKey": "", "keyKey": "", "caKey": "ca.pem"},
    ],
    ids=["default-keys", "own-keys", "ca-only"],
)
def test_tls_comes_from_mounted_files(tls: dict[str, str]) -> None:
    manifests = render({"temporal": {"tls": tls}})
    assert not of_kind(manifests, "Secret")  # the chart makes none: the user's Secret is used
    keys = {"cert": "tls.crt", "key": "tls.key", "ca": "ca.crt"}
    keys.update({name[: -len("Key")]: value for name, value in tls.items() if name != "secretName"})
    expected = {f"TEMPORAL_TLS_{name.upper()}": key for name, key in keys.items() if key}
    for name, pod, container in containers(manifests):
        command_line = [*container.get("command", []), *container.get("args", [])]
        for word in command_line:
            assert TLS_SECRET not in word, (name, word)
            assert not re.search(r"tls|key|cert|secret|password|\.pem|\.crt", word, re.I), word
        assert not container.get("envFrom"), name
        for item in container["env"]:
            assert "secretKeyRef" not in item.get("valueFrom", {}), (name, item)
        env = env_of(container)
        assert {k: v for k, v in env.items() if k.startswith("TEMPORAL_TLS")}.keys() == (
            expected.keys()
        )
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
        for variable, key in expected.items():
            path = Path(env[variable])
            mount = mounts[str(path.parent)]
            assert mount["readOnly"] is True
            secret = volumes[mount["name"]]["secret"]
            assert secret["secretName"] == TLS_SECRET
            assert {"key": key, "path": path.name} in secret["items"], (variable, secret)
            assert path.name == key


def test_no_tls_without_a_secret(default_manifests: list[dict[str, Any]]) -> None:
    for _, pod, container in containers(default_manifests):
        assert not [name for name in env_of(container) if name.startswith("TEMPORAL_TLS")]
        assert not [volume for volume in pod["volumes"] if "secret" in volume]


# -- RBAC --------------------------------------------------------------------------------------


def permissions(rules: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Each rule spelled out: (apiGroup, resource, verb), in order, repeats kept."""
    return [
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


@pytest.mark.parametrize("values", [None, {"watchNamespace": "databases"}], ids=["all", "one"])
def test_rbac_rules_are_exactly_what_the_code_needs(values: dict[str, Any] | None) -> None:
    granted = rendered_rbac_rules(values)
    assert set(granted) == {"operator", "worker"}
    for role, expected in EXPECTED_RULES.items():
        assert granted[role] == expected, role
        assert len(set(permissions(granted[role]))) == len(permissions(granted[role])), role


def test_rbac_scope(
    default_manifests: list[dict[str, Any]], custom_manifests: list[dict[str, Any]]
) -> None:
    """Cluster-wide without watchNamespace; with it, Roles in that namespace only (the
    operator's, the worker's and its Kubernetes runtime's)."""
    assert not of_kind(default_manifests, "Role") and not of_kind(default_manifests, "RoleBinding")
    assert len(of_kind(default_manifests, "ClusterRole")) == 3
    assert not of_kind(custom_manifests, "ClusterRole")
    assert not of_kind(custom_manifests, "ClusterRoleBinding")
    for kind in ("Role", "RoleBinding"):
        docs = of_kind(custom_manifests, kind)
        assert len(docs) == 3 and {doc["metadata"]["namespace"] for doc in docs} == {"databases"}
    for binding in of_kind(custom_manifests, "RoleBinding"):
        for subject in binding["subjects"]:
            assert subject["namespace"] == NAMESPACE  # the ServiceAccounts stay in the release's


def test_rbac_rules_are_written_in_one_place() -> None:
    writers = [
        path.name
        for path in (CHART / "templates").iterdir()
        if re.search(r"apiGroups|verbs", path.read_text())
    ]
    assert writers == ["_rbac.tpl"]


# -- the NetworkPolicy -------------------------------------------------------------------------


def network_policy(manifests: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [policy] = [
        doc for doc in of_kind(manifests, "NetworkPolicy") if doc["metadata"]["name"] == name
    ]
    return policy


def test_network_policy(custom_manifests: list[dict[str, Any]]) -> None:
    """The chart's pods' own (the clusters' pods: tests/chart/test_runtime_values.py)."""
    policy = network_policy(custom_manifests, f"{RELEASE}-mysqlops")
    assert policy["metadata"]["namespace"] == NAMESPACE
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    for deployment in of_kind(custom_manifests, "Deployment"):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(spec["podSelector"], pod_labels), deployment["metadata"]["name"]
    [ingress] = spec["ingress"]
    assert ingress["ports"] == [  # the metrics ports, by name
        {"protocol": "TCP", "port": "metrics"},
        {"protocol": "TCP", "port": "sdk-metrics"},
    ]
    assert [set(peer) for peer in ingress["from"]] == [{"namespaceSelector"}]
    egress_ports = {
        (port["protocol"], port["port"]) for rule in spec["egress"] for port in rule["ports"]
    }
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 7443), ("TCP", 443), ("TCP", 6443)}


def test_network_policy_temporal_port_override() -> None:
    values = {"networkPolicy": {"enabled": True, "temporal": {"port": 7233, "to": []}}}
    values["temporal"] = {"address": "temporal.example.com:443"}
    policy = network_policy(render(values), f"{RELEASE}-mysqlops")
    ports = [port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]]
    assert 7233 in ports


# -- what helm prints after install ------------------------------------------------------------


def notes(values: dict[str, Any]) -> str:
    result = helm(
        "install", RELEASE, str(CHART), "--dry-run=client", "-n", NAMESPACE, values=values
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_notes_say_what_to_do_next() -> None:
    text = notes({})
    assert "kubectl apply -f examples/k8s/mysqlcluster.yaml" in text
    assert "kubectl get mysqlclusters -w" in text
    assert "temporal.uiAddress" in text  # where the Temporal UI's address comes from
    text = notes(NON_DEFAULT)
    assert "kubectl apply -n databases -f examples/k8s/mysqlcluster.yaml" in text
    assert "kubectl get mysqlclusters -n databases -w" in text
    assert "https://temporal.example.com/namespaces/production/workflows" in text


# -- the Dockerfile ----------------------------------------------------------------------------

DOCKERFILE_KEYWORDS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip
JSON_FORM = {"CMD", "ENTRYPOINT", "SHELL"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, continuation lines joined; comment and empty lines
    dropped, inside a continuation too (as docker does). No heredocs."""
    instructions = []
    current: str | None = None
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if current is None:
            current, start = "", number
        if line.endswith("\\"):
            current += line[:-1]
            continue
        keyword, _, value = (current + line).partition(" ")
        assert keyword.upper() in DOCKERFILE_KEYWORDS, f"line {start}: unknown {keyword}"
        assert keyword == keyword.upper(), f"line {start}: {keyword} in lower case"
        instructions.append(Instruction(keyword, value.strip(), start))
        current = None
    assert current is None, "the Dockerfile ends inside a continuation line"
    return instructions


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a RUN line, split at ; && || |."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in (";", "&&", "||", "|"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def assignments(value: str) -> dict[str, str]:
    """NAME=value pairs of an ARG or ENV instruction."""
    return dict(word.split("=", 1) for word in shlex.split(value))


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return dockerfile_instructions((ROOT / "Dockerfile").read_text())


def setup_packages() -> list[str]:
    """The PACKAGES array of scripts/setup.sh."""
    text = (ROOT / "scripts" / "setup.sh").read_text()
    match = re.search(r"^PACKAGES=\(([^)]*)\)", text, re.M)
    assert match, "scripts/setup.sh has no PACKAGES=(...) line"
    return shlex.split(match[1])


def test_dockerfile_parses(dockerfile: list[Instruction]) -> None:
    assert [i.value for i in dockerfile if i.keyword == "FROM"] == ["debian:bookworm-slim"]
    assert dockerfile[0].keyword == "FROM"
    for instruction in dockerfile:
        if instruction.keyword in JSON_FORM:
            words = json.loads(instruction.value)
            assert isinstance(words, list) and all(isinstance(w, str) for w in words)
    for instruction in dockerfile:
        if instruction.keyword == "RUN":  # shell form: sh -c (bash -n checks the syntax)
            check = subprocess.run(["bash", "-n", "-c", instruction.value], capture_output=True)
            assert check.returncode == 0, f"line {instruction.line}: {check.stderr.decode()}"
    [entrypoint] = [json.loads(i.value) for i in dockerfile if i.keyword == "ENTRYPOINT"]
    assert Path(entrypoint[-1]).name == "mysqlops", entrypoint  # mysqlops operator|worker|agent


def dockerfile_args(dockerfile: list[Instruction]) -> dict[str, str]:
    args: dict[str, str] = {}
    for instruction in dockerfile:
        if instruction.keyword == "ARG":
            args.update(assignments(instruction.value))
    return args


def apt_installed(dockerfile: list[Instruction]) -> list[str]:
    """The packages the Dockerfile's `apt-get install` names, its ARGs expanded."""
    args = dockerfile_args(dockerfile)
    packages: list[str] = []
    for instruction in dockerfile:
        if instruction.keyword != "RUN":
            continue
        script = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), instruction.value)
        for command in shell_commands(script):
            words = [w for w in command if not re.fullmatch(r"\w+=.*", w)]  # VAR=value apt-get
            if words[:2] == ["apt-get", "install"]:
                packages += [w for w in words[2:] if not w.startswith("-")]
    return packages


def test_dockerfile_installs_what_setup_installs(dockerfile: list[Instruction]) -> None:
    args = dockerfile_args(dockerfile)
    assert shlex.split(args["PACKAGES"]) == setup_packages()
    image_only = shlex.split(args["IMAGE_PACKAGES"])
    assert {"python3", "python3-venv"} <= set(image_only)
    assert apt_installed(dockerfile) == setup_packages() + image_only


def test_dockerfile_packages_exist_in_debian(dockerfile: list[Instruction]) -> None:
    lists = Path("/var/lib/apt/lists")
    if shutil.which("apt-cache") is None:
        pytest.fail("apt-cache is missing: the Debian packages cannot be checked", pytrace=False)
    indexes = [path.name for path in lists.glob("*_Packages*")] if lists.is_dir() else []
    if not indexes:
        pytest.fail(
            f"no apt package lists in {lists}: run `apt-get update` (scripts/setup.sh does when "
            "it installs packages)",
            pytrace=False,
        )
    assert any("_dists_bookworm" in name for name in indexes), (
        f"the apt lists are not Debian bookworm's, the image's base: {indexes}"
    )
    packages = apt_installed(dockerfile)
    result = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    found = set(re.findall(r"^Package: (\S+)$", result.stdout, re.M))
    assert not set(packages) - found, f"not in the apt lists: {set(packages) - found}"


def test_dockerfile_installs_the_project(dockerfile: list[Instruction]) -> None:
    copied = set()
    for instruction in dockerfile:
        if instruction.keyword == "COPY":
            *sources, _ = shlex.split(instruction.value)
            for source in sources:
                assert (ROOT / source).exists(), f"line {instruction.line}: no {source}"
                copied.add(source)
    pyproject = (ROOT / "pyproject.toml").read_text()
    match = re.search(r"^include = \[(.*)\]", pyproject, re.M)
    assert match
    shipped = {name.strip(' "*') for name in match[1].split(",")}
    assert shipped <= copied, f"packages the wheel ships but the image lacks: {shipped - copied}"
    assert {"pyproject.toml", "constraints.txt"} <= copied
    pip = [
        command
        for instruction in dockerfile
        if instruction.keyword == "RUN"
        for command in shell_commands(instruction.value)
        if Path(command[0].strip('"')).name == "pip" and "install" in command
    ]
    assert len(pip) == 1 and pip[0][-3:] == ["-c", "constraints.txt", "."], pip


def test_dockerfile_user_is_the_charts(
    dockerfile: list[Instruction], default_manifests: list[dict[str, Any]]
) -> None:
    [user] = [i.value for i in dockerfile if i.keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "USER must be a numeric uid (runAsNonRoot checks it)"
    for _, _, container in containers(default_manifests):
        assert container["securityContext"]["runAsUser"] == int(uid)
    created = [
        command
        for instruction in dockerfile
        if instruction.keyword == "RUN"
        for command in shell_commands(instruction.value)
        if command[0] == "useradd"
    ]
    assert len(created) == 1 and created[0][created[0].index("--uid") + 1] == uid


def test_tools_are_not_committed() -> None:
    assert ".tools/" in (ROOT / ".gitignore").read_text().split()
