"""The RBAC rules of the workers' Kubernetes runtime (a role of its own, rendered with
`runtime: kubernetes`) against the runtime's code, activities/kubernetes/runtime.py, read
statically: CALLS lists every client method it calls and what each asks of the API server.

- the table is complete: every `core.`, `apps.`, `policy.`, `custom.` method named in the
  source is in it, and it names nothing the source does not (a new call fails here until it
  is added, with its permission);
- the table is right: each method's HTTP method and path, as the official client builds them,
  are that API group, resource and verb;
- the chart grants exactly the table's permissions (plus what the API server asks beside the
  calls: NOT_CALLS), nothing missing, nothing unused, in either RBAC scope.

tests/kube/test_operator.py checks the other roles against the calls the operator and the
workers make during its scenarios (which run no Kubernetes runtime).
"""

import ast
import inspect
import re
from typing import Any

import pytest
from kubernetes import client as k8s

from api.crd import GROUP
from tests.chart.rbac import ROOT, render, rendered_rbac_rules

RUNTIME = ROOT / "activities" / "kubernetes" / "runtime.py"

# The runtime's API objects: attribute -> class (KubernetesRuntime.__init__).
APIS: dict[str, type] = {
    "core": k8s.CoreV1Api,
    "apps": k8s.AppsV1Api,
    "policy": k8s.PolicyV1Api,
    "custom": k8s.CustomObjectsApi,
}
NOT_METHODS = {"api_client"}  # attributes of an API object that are no API call

Permission = tuple[str, str, str]  # (API group, resource, verb), as RBAC rules name them

# Every client method the runtime calls, and the permission it needs.
CALLS: dict[str, Permission] = {
    # _apply: create, else (409) patch; ensure_secret likewise; provision_node patches the
    # Secret's metadata; remove_node scales the StatefulSet, stop_load_balancer the Deployment.
    "core.create_namespaced_config_map": ("", "configmaps", "create"),
    "core.patch_namespaced_config_map": ("", "configmaps", "patch"),
    "core.create_namespaced_secret": ("", "secrets", "create"),
    "core.patch_namespaced_secret": ("", "secrets", "patch"),
    "core.create_namespaced_service": ("", "services", "create"),
    "core.patch_namespaced_service": ("", "services", "patch"),
    "apps.create_namespaced_stateful_set": ("apps", "statefulsets", "create"),
    "apps.patch_namespaced_stateful_set": ("apps", "statefulsets", "patch"),
    "apps.create_namespaced_deployment": ("apps", "deployments", "create"),
    "apps.patch_namespaced_deployment": ("apps", "deployments", "patch"),
    "policy.create_namespaced_pod_disruption_budget": ("policy", "poddisruptionbudgets", "create"),
    "policy.patch_namespaced_pod_disruption_budget": ("policy", "poddisruptionbudgets", "patch"),
    # _read (404: None)
    "core.read_namespaced_config_map": ("", "configmaps", "get"),
    "core.read_namespaced_secret": ("", "secrets", "get"),
    "core.read_namespaced_pod": ("", "pods", "get"),
    "apps.read_namespaced_stateful_set": ("apps", "statefulsets", "get"),
    "apps.read_namespaced_deployment": ("apps", "deployments", "get"),
    # lists: the HAProxy pods (by label), the claims of a deleted cluster
    "core.list_namespaced_pod": ("", "pods", "list"),
    "core.list_namespaced_persistent_volume_claim": ("", "persistentvolumeclaims", "list"),
    # _delete (404: done): retire_cluster, remove_node
    "core.delete_namespaced_config_map": ("", "configmaps", "delete"),
    "core.delete_namespaced_secret": ("", "secrets", "delete"),
    "core.delete_namespaced_service": ("", "services", "delete"),
    "core.delete_namespaced_persistent_volume_claim": ("", "persistentvolumeclaims", "delete"),
    "apps.delete_namespaced_stateful_set": ("apps", "statefulsets", "delete"),
    "apps.delete_namespaced_deployment": ("apps", "deployments", "delete"),
    "policy.delete_namespaced_pod_disruption_budget": ("policy", "poddisruptionbudgets", "delete"),
    # _owner: the MySQLCluster's uid
    "custom.get_namespaced_custom_object": (GROUP, "mysqlclusters", "get"),
}
# What the API server asks beside the calls: an owner reference with blockOwnerDeletion (every
# object the runtime creates has one) is admitted only from who may update the owner's
# finalizers (the OwnerReferencesPermissionEnforcement admission plugin).
NOT_CALLS: set[Permission] = {(GROUP, "mysqlclusters/finalizers", "update")}

HTTP_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update"}


def runtime_source() -> str:
    return RUNTIME.read_text()


def client_calls(source: str) -> set[str]:
    """`api.method` for every method of an API object the source names (called at once, or
    kept in a table as `_verbs` does)."""
    names = "|".join(APIS)
    found = set(re.findall(rf"\b((?:{names})\.\w+)", source))
    return {name for name in found if name.split(".", 1)[1] not in NOT_METHODS}


def permission_of(call: str, custom_args: dict[str, str] | None = None) -> Permission:
    """What the client method asks: from the HTTP method and path it builds (its generated
    `_<method>_serialize`). `custom_args` fills a custom object path's {group} and {plural}."""
    api, method = call.split(".", 1)
    source = inspect.getsource(getattr(APIS[api], f"_{method}_serialize"))
    http = re.search(r"method='(\w+)'", source)
    path = re.search(r"resource_path='([^']+)'", source)
    assert http and path, f"{call}: no method or path in the client's code"
    parts = path[1].strip("/").split("/")
    for key, value in (custom_args or {}).items():
        parts = [value if part == f"{{{key}}}" else part for part in parts]
    if parts[0] == "api":  # /api/v1/namespaces/{namespace}/<resource>...
        group, rest = "", parts[2:]
    else:  # /apis/<group>/<version>/namespaces/{namespace}/<resource>...
        group, rest = parts[1], parts[3:]
    assert rest[:2] == ["namespaces", "{namespace}"], f"{call}: not namespaced: {path[1]}"
    resource, *item = rest[2:]
    assert not any(part.startswith("{") for part in (group, resource)), (call, path[1])
    if len(item) > 1:
        resource += "/" + item[1]  # a subresource
    if http[1] == "GET":
        verb = "get" if item else "list"
    elif http[1] == "DELETE":
        verb = "delete" if item else "deletecollection"
    else:
        verb = HTTP_VERBS[http[1]]
    return group, resource, verb


def custom_object_args(source: str, method: str) -> dict[str, str]:
    """The group and plural the runtime passes to a CustomObjectsApi method (positionally:
    group, version, namespace, plural...), from its call in the source."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == method
        ):
            group, _, _, plural = node.args[:4]
            assert isinstance(group, ast.Name) and group.id == "GROUP", ast.dump(group)
            assert isinstance(plural, ast.Constant) and isinstance(plural.value, str)
            found.append({"group": GROUP, "plural": plural.value})
    assert found, f"no call of {method}"
    assert all(args == found[0] for args in found), found
    return found[0]


def permissions(rules: list[dict[str, Any]]) -> list[Permission]:
    return [
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


# -- the table against the code ----------------------------------------------------------------


def test_the_runtime_uses_these_api_objects_only() -> None:
    """What the grep below relies on: the API objects are made once, as these attributes."""
    source = runtime_source()
    made = dict(re.findall(r"self\.(\w+) = k8s\.(\w+Api)\(", source))
    assert made == {name: cls.__name__ for name, cls in APIS.items()}
    assert set(re.findall(r"k8s\.(\w+Api)\(", source)) == {cls.__name__ for cls in APIS.values()}


def test_every_client_call_of_the_runtime_is_in_the_table() -> None:
    called = client_calls(runtime_source())
    missing = sorted(called - set(CALLS))
    assert not missing, (
        f"activities/kubernetes/runtime.py calls {missing}: add each to CALLS with the "
        "permission it needs, and the permission to charts/mysqlops/templates/_rbac.tpl"
    )
    unused = sorted(set(CALLS) - called)
    assert not unused, f"CALLS lists {unused}, which the runtime no longer calls"


def test_client_calls_are_found_as_written() -> None:
    """The grep finds direct calls, table entries and aliases alike, and skips the rest."""
    source = """
        self.core.read_namespaced_pod(name, namespace)
        core, apps = runtime.core, runtime.apps
        table = {"Secret": (core.create_namespaced_secret, core.patch_namespaced_secret)}
        self.core.api_client.sanitize_for_serialization(found)
        self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "mysqlclusters", name)
        encore.read_namespaced_thing()
    """
    assert client_calls(source) == {
        "core.read_namespaced_pod",
        "core.create_namespaced_secret",
        "core.patch_namespaced_secret",
        "custom.get_namespaced_custom_object",
    }


@pytest.mark.parametrize("call", sorted(CALLS))
def test_the_table_says_what_the_client_asks(call: str) -> None:
    api, method = call.split(".", 1)
    args = custom_object_args(runtime_source(), method) if api == "custom" else None
    assert permission_of(call, args) == CALLS[call]


def test_permission_of_reads_the_clients_paths() -> None:
    assert permission_of("core.list_namespaced_pod") == ("", "pods", "list")
    assert permission_of("core.delete_collection_namespaced_pod") == (
        "",
        "pods",
        "deletecollection",
    )
    assert permission_of("apps.replace_namespaced_stateful_set_scale") == (
        "apps",
        "statefulsets/scale",
        "update",
    )
    assert permission_of(
        "custom.patch_namespaced_custom_object_status",
        {"group": GROUP, "plural": "mysqlclusters"},
    ) == (GROUP, "mysqlclusters/status", "patch")


# -- the chart against the table ---------------------------------------------------------------


@pytest.mark.parametrize("values", [None, {"watchNamespace": "databases"}], ids=["all", "one"])
def test_the_worker_is_granted_exactly_what_the_runtime_calls(
    values: dict[str, Any] | None,
) -> None:
    granted = rendered_rbac_rules(values, kubernetes_runtime=True)
    assert set(granted) == {"worker"}, "only the worker's ServiceAccount runs the runtime"
    rules = permissions(granted["worker"])
    assert len(set(rules)) == len(rules), "a permission granted twice"
    needed = set(CALLS.values()) | NOT_CALLS
    missing = sorted(needed - set(rules))
    assert not missing, f"the runtime needs {missing}: not granted by the chart"
    unused = sorted(set(rules) - needed)
    assert not unused, f"the chart grants {unused}: the runtime never calls for it"


def test_each_call_is_granted() -> None:
    """Per call, for a readable failure."""
    granted = set(permissions(rendered_rbac_rules(kubernetes_runtime=True)["worker"]))
    for call, permission in CALLS.items():
        assert permission in granted, f"{call} needs {permission}"


def test_no_runtime_role_with_the_local_runtime() -> None:
    local = {"runtime": "local", "workers": {"replicas": 1}}
    assert rendered_rbac_rules(local, kubernetes_runtime=True) == {}
    # The rest is the same whatever the runtime.
    assert rendered_rbac_rules(local) == rendered_rbac_rules()
    names = {doc["metadata"]["name"] for doc in render(local) if "Role" in doc["kind"]}
    assert names == {"ops-mysqlops-operator", "ops-mysqlops-worker"}


@pytest.mark.parametrize("watch", ["", "databases"], ids=["all", "one"])
def test_the_runtime_role_is_scoped_as_the_others(watch: str) -> None:
    """A ClusterRole without watchNamespace, a Role in it otherwise (the clusters the
    workers run are the objects the operator watches), bound to the worker's ServiceAccount."""
    manifests = render({"watchNamespace": watch})
    kind = "Role" if watch else "ClusterRole"
    [role] = [
        doc
        for doc in manifests
        if doc["kind"] == kind and doc["metadata"]["name"] == "ops-mysqlops-worker-runtime"
    ]
    assert role["metadata"].get("namespace", "") == watch
    assert role["metadata"]["labels"]["mysqlops.io/permissions"] == "kubernetes-runtime"
    [binding] = [
        doc
        for doc in manifests
        if doc["kind"] == f"{kind}Binding" and doc["roleRef"]["name"] == role["metadata"]["name"]
    ]
    assert binding["metadata"].get("namespace", "") == watch
    assert binding["roleRef"]["kind"] == kind
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ops-mysqlops-worker", "namespace": "mysqlops"}
    ]
