"""Rendering the Helm chart (charts/mysqlops) with the project's own helm, and the RBAC rules it
grants each ServiceAccount.

helm is `.tools/bin/helm`, installed by `bash scripts/setup.sh` (never downloaded here): without
it, whatever calls these functions fails and says so.
"""

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mysqlops"
HELM = ROOT / ".tools" / "bin" / "helm"
KUBE_VERSION = "1.33.0"  # what the manifests are rendered and validated for
RELEASE = "ops"
NAMESPACE = "mysqlops"  # the release's namespace

RBAC_API_GROUP = "rbac.authorization.k8s.io"
RULE_KEYS = ("apiGroups", "resources", "verbs")
# The label of the roles of the workers' Kubernetes runtime (charts/mysqlops/templates/rbac.yaml).
RUNTIME_PERMISSIONS = ("mysqlops.io/permissions", "kubernetes-runtime")

# helm keeps caches and settings in the user's home: give it empty ones of its own.
_HELM_HOME = Path(tempfile.mkdtemp(prefix="mysqlops-helm-"))
atexit.register(shutil.rmtree, _HELM_HOME, ignore_errors=True)


def helm_path() -> Path:
    """The project's helm; the test fails (never skips) when setup has not installed it."""
    if not os.access(HELM, os.X_OK):
        pytest.fail(
            f"helm is not installed at {HELM.relative_to(ROOT)}: run `bash scripts/setup.sh`",
            pytrace=False,
        )
    return HELM


def helm(*args: str, values: Mapping[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm with `args`; `values`, when given, are passed as a values file (`-f -`)."""
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(_HELM_HOME / "cache"),
        "HELM_CONFIG_HOME": str(_HELM_HOME / "config"),
        "HELM_DATA_HOME": str(_HELM_HOME / "data"),
    }
    extra = ["--values", "-"] if values is not None else []
    return subprocess.run(
        [str(helm_path()), *args, *extra],
        input=yaml.safe_dump(dict(values)) if values is not None else None,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def template(
    values: Mapping[str, Any] | None = None, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart, as a release in NAMESPACE on Kubernetes KUBE_VERSION."""
    return helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *extra,
        values=values or {},
    )


def render(values: Mapping[str, Any] | None = None, *extra: str) -> list[dict[str, Any]]:
    """The manifests the chart renders with `values` (the test fails when helm does)."""
    result = template(values, *extra)
    if result.returncode != 0:
        pytest.fail(f"helm template failed:\n{result.stderr}", pytrace=False)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def rendered_rbac_rules(
    values: Mapping[str, Any] | None = None, *, kubernetes_runtime: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """The RBAC rules the chart grants, per ServiceAccount role ('operator', 'worker': the
    ServiceAccount's app.kubernetes.io/component), following each (Cluster)RoleBinding to its
    (Cluster)Role. Each rule is {apiGroups, resources, verbs}, as rendered.

    The workers' Kubernetes runtime has a role of its own (label RUNTIME_PERMISSIONS): what it
    needs to run the clusters' pods. Its rules are left out by default, as the operator's
    scenarios (tests/kube/test_operator.py) run no Kubernetes runtime and compare the rest with
    the calls they see; `kubernetes_runtime=True` gives that role's rules alone, which
    tests/chart/test_runtime_rbac.py compares with the runtime's code."""
    manifests = render(values)
    roles: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    runtime_roles: set[tuple[str, str, str]] = set()
    components: dict[tuple[str, str], str] = {}
    label, value = RUNTIME_PERMISSIONS
    for doc in manifests:
        meta = doc["metadata"]
        if doc["kind"] in ("Role", "ClusterRole"):
            key = (doc["kind"], meta.get("namespace", ""), meta["name"])
            roles[key] = doc.get("rules") or []
            if (meta.get("labels") or {}).get(label) == value:
                runtime_roles.add(key)
        elif doc["kind"] == "ServiceAccount":
            namespace = meta.get("namespace", NAMESPACE)
            components[namespace, meta["name"]] = meta["labels"]["app.kubernetes.io/component"]
    granted: dict[str, list[dict[str, Any]]] = {}
    for doc in manifests:
        if doc["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        ref = doc["roleRef"]
        assert ref["apiGroup"] == RBAC_API_GROUP, ref
        scope = doc["metadata"].get("namespace", "") if ref["kind"] == "Role" else ""
        role = (ref["kind"], scope, ref["name"])
        rules = roles[role]  # a binding to a role the chart lacks
        if (role in runtime_roles) != kubernetes_runtime:
            continue
        for rule in rules:
            # Anything else (resourceNames, nonResourceURLs) would change what a rule means.
            assert set(rule) <= set(RULE_KEYS), f"{ref['name']}: unexpected keys in {rule}"
        for subject in doc.get("subjects") or []:
            assert subject["kind"] == "ServiceAccount", subject
            component = components[subject["namespace"], subject["name"]]
            granted.setdefault(component, []).extend(
                {key: list(rule.get(key) or []) for key in RULE_KEYS} for rule in rules
            )
    return granted
