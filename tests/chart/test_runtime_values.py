"""The chart runs the workers with the Kubernetes runtime by default: the worker's environment
is what `activities/kubernetes/runtime.py` (`from_environment`) reads, the backup volume is
mounted where MYSQLOPS_BACKUP_DIR says, the schema refuses what the runtime would, and the
NetworkPolicies let through what the runtime and the clusters' pods (as
`activities/kubernetes/objects` builds them) need. `runtime: local` renders none of it."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.kubernetes import objects
from activities.kubernetes import runtime as kube_runtime
from activities.kubernetes.objects import common
from api.cluster import MySQLClusterSpec
from api.layout import ClusterRef
from tests.chart.rbac import KUBE_VERSION, NAMESPACE, RELEASE, render, template
from tests.chart.test_chart import (
    by_component,
    env_of,
    kubernetes_validate,
    network_policy,
    notes,
    of_kind,
    selects,
)

CHART_IMAGE = "ghcr.io/mysqlops/mysqlops:0.1.0"
BACKUP_DIR = "/var/lib/mysqlops-backups"
BACKUP_CLAIM = f"{RELEASE}-mysqlops-backups"
LOCAL = {"runtime": "local", "workers": {"replicas": 1}}
# Every setting of the clusters' pods away from its default.
NODES = {
    "image": "registry.example/mysqlops:2.0",
    "temporalAddress": "temporal-frontend.temporal.svc.cluster.local:7233",
    "antiAffinity": "required",
    "storageClass": "fast-ssd",
    "haproxyReplicas": 3,
    "podWait": 600,
}
# The variables the runtime reads (from_environment), and the chart's own.
NODE_VARIABLES = {
    "MYSQLOPS_IMAGE",
    "MYSQLOPS_POD_TEMPORAL_ADDRESS",
    "MYSQLOPS_STORAGE_CLASS",
    "MYSQLOPS_ANTI_AFFINITY",
    "MYSQLOPS_HAPROXY_REPLICAS",
    "MYSQLOPS_POD_WAIT",
    "MYSQLOPS_BACKUP_DIR",
    "MYSQLOPS_IMAGE_PULL_POLICY",
}
CLUSTER = ClusterRef(namespace="databases", name="orders")
WORKER_PEER_PORTS = {common.PORT_AGENT, common.PORT_MYSQL}


def worker(manifests: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The worker's pod spec and its container."""
    pod = by_component(manifests, "Deployment")["worker"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    return pod, container


def worker_env(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return env_of(worker(manifests)[1])


@pytest.fixture(scope="module")
def defaults() -> list[dict[str, Any]]:
    return render()


# -- the worker's settings ---------------------------------------------------------------------


def test_defaults_run_the_kubernetes_runtime(defaults: list[dict[str, Any]]) -> None:
    env = worker_env(defaults)
    assert env["MYSQLOPS_RUNTIME"] == "kubernetes"
    assert env["MYSQLOPS_IMAGE"] == CHART_IMAGE  # the chart's own image, same tag
    assert env["MYSQLOPS_ANTI_AFFINITY"] == "preferred"
    assert env["MYSQLOPS_HAPROXY_REPLICAS"] == "2"
    assert env["MYSQLOPS_POD_WAIT"] == "300"
    assert env["MYSQLOPS_BACKUP_DIR"] == BACKUP_DIR
    # Unset: the runtime's defaults (the worker's Temporal address, the default StorageClass).
    assert "MYSQLOPS_POD_TEMPORAL_ADDRESS" not in env
    assert "MYSQLOPS_STORAGE_CLASS" not in env
    operator = by_component(defaults, "Deployment")["operator"]
    operator_env = env_of(operator["spec"]["template"]["spec"]["containers"][0])
    assert not NODE_VARIABLES & operator_env.keys() and "MYSQLOPS_RUNTIME" not in operator_env


def test_the_backup_volume_is_mounted_where_the_runtime_writes(
    defaults: list[dict[str, Any]],
) -> None:
    pod, container = worker(defaults)
    env = env_of(container)
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == env["MYSQLOPS_BACKUP_DIR"]]
    assert not mount.get("readOnly")
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"] == {"claimName": BACKUP_CLAIM}
    [claim] = of_kind(defaults, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == BACKUP_CLAIM
    assert claim["metadata"]["namespace"] == NAMESPACE  # the workers'
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every worker mounts it
    assert claim["spec"]["resources"] == {"requests": {"storage": "100Gi"}}
    assert "storageClassName" not in claim["spec"]  # the default StorageClass
    operator = by_component(defaults, "Deployment")["operator"]["spec"]["template"]["spec"]
    assert not [v for v in operator["volumes"] if "persistentVolumeClaim" in v]


def test_node_values_reach_the_worker() -> None:
    env = worker_env(render({"nodes": NODES, "backups": {"mountPath": "/backups"}}))
    assert env["MYSQLOPS_IMAGE"] == NODES["image"]
    assert env["MYSQLOPS_POD_TEMPORAL_ADDRESS"] == NODES["temporalAddress"]
    assert env["MYSQLOPS_ANTI_AFFINITY"] == "required"
    assert env["MYSQLOPS_STORAGE_CLASS"] == "fast-ssd"
    assert env["MYSQLOPS_HAPROXY_REPLICAS"] == "3"
    assert env["MYSQLOPS_POD_WAIT"] == "600"
    assert env["MYSQLOPS_BACKUP_DIR"] == "/backups"


def test_the_node_image_follows_the_charts_image() -> None:
    values = {"image": {"repository": "registry.example/ops", "tag": "1.2.3"}}
    assert worker_env(render(values))["MYSQLOPS_IMAGE"] == "registry.example/ops:1.2.3"
    values = {"image": {"repository": "registry.example/ops"}}
    assert worker_env(render(values))["MYSQLOPS_IMAGE"] == "registry.example/ops:0.1.0"


def kubeconfig(directory: Path) -> Path:
    """A kubeconfig the client loads without talking to anything."""
    path = directory / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


@pytest.mark.parametrize("nodes", [{}, NODES], ids=["default", "non-default"])
def test_the_runtime_reads_the_workers_environment(
    nodes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rendered environment, read as the worker reads it (`from_environment`)."""
    env = worker_env(render({"nodes": nodes}))
    for name in [*NODE_VARIABLES, "TEMPORAL_NAMESPACE"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    runtime = kube_runtime.from_environment(str(kubeconfig(tmp_path)), env["TEMPORAL_ADDRESS"])
    settings = runtime.settings
    pods = settings.pods
    assert pods.image == nodes.get("image", CHART_IMAGE)
    assert pods.temporal_address == nodes.get("temporalAddress", env["TEMPORAL_ADDRESS"])
    assert pods.temporal_namespace == "default"
    assert pods.storage_class == nodes.get("storageClass")
    assert pods.anti_affinity == nodes.get("antiAffinity", "preferred")
    assert pods.haproxy_replicas == nodes.get("haproxyReplicas", 2)
    assert settings.pod_wait == nodes.get("podWait", 300)
    assert settings.backup_root == Path(BACKUP_DIR)


def test_temporal_tls_and_image_pulls_reach_the_clusters_pods(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agents report to Temporal with a client certificate when the workers use one, and
    the node pods are pulled as the chart's pods are."""
    values = {
        "temporal": {"tls": {"secretName": "temporal-client", "caKey": ""}},
        "image": {"pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
    }
    env = worker_env(render(values))
    for name in [n for n in env if n.startswith("MYSQLOPS_") or n.startswith("TEMPORAL_")]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    pods = kube_runtime.from_environment(str(kubeconfig(tmp_path)), "t:7233").settings.pods
    assert pods.temporal_tls == objects.TemporalTLS(
        secret_name="temporal-client", cert_key="tls.crt", key_key="tls.key", ca_key=None
    )
    assert pods.image_pull_policy == "Always"
    assert pods.image_pull_secrets == ("regcred", "mirror")
    # A Secret of the cluster's namespace of its own, when the chart's is not there.
    env = worker_env(render({**values, "nodes": {"temporalTLSSecret": "agents-temporal"}}))
    assert env["MYSQLOPS_POD_TEMPORAL_TLS_SECRET"] == "agents-temporal"
    # Without TLS, none; the pull policy is the chart's default.
    env = worker_env(render())
    assert not [name for name in env if name.startswith("MYSQLOPS_POD_TEMPORAL_TLS")]
    assert env["MYSQLOPS_IMAGE_PULL_POLICY"] == "IfNotPresent"
    assert "MYSQLOPS_IMAGE_PULL_SECRETS" not in env


def test_an_existing_claim_is_mounted_and_none_made() -> None:
    manifests = render({"backups": {"persistentVolumeClaim": "shared-backups"}})
    assert not of_kind(manifests, "PersistentVolumeClaim")
    pod, _ = worker(manifests)
    claims = [v["persistentVolumeClaim"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"claimName": "shared-backups"}]
    # Without create, too.
    values = {"backups": {"persistentVolumeClaim": "shared-backups", "create": False}}
    assert render(values) == manifests


def test_the_backup_claim_values() -> None:
    values = {
        "backups": {
            "size": "2Ti",
            "storageClass": "nfs",
            "accessModes": ["ReadWriteOnce"],  # one worker, or one host
        }
    }
    [claim] = of_kind(render(values), "PersistentVolumeClaim")
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "nfs",
        "resources": {"requests": {"storage": "2Ti"}},
    }


def test_local_runtime_renders_no_node_settings() -> None:
    manifests = render(LOCAL)
    env = worker_env(manifests)
    assert env["MYSQLOPS_RUNTIME"] == "local"
    assert not NODE_VARIABLES & env.keys()
    pod, container = worker(manifests)
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert not of_kind(manifests, "PersistentVolumeClaim")
    # Without the backup volume's values a local install needs nothing else.
    assert render({**LOCAL, "backups": {"create": False}}) == manifests
    assert by_component(manifests, "Deployment")["worker"]["spec"]["replicas"] == 1


def test_the_runtimes_differ_only_in_the_runtimes_objects(defaults: list[dict[str, Any]]) -> None:
    """Switching to local removes the node settings, the claim and the runtime's role; the
    operator and everything else stay as they are."""
    local = render(LOCAL)
    kept = [doc for doc in defaults if doc in local]
    gone = sorted(f"{doc['kind']}/{doc['metadata']['name']}" for doc in defaults if doc not in kept)
    assert gone == [
        f"ClusterRole/{RELEASE}-mysqlops-worker-runtime",
        f"ClusterRoleBinding/{RELEASE}-mysqlops-worker-runtime",
        f"Deployment/{RELEASE}-mysqlops-worker",
        f"PersistentVolumeClaim/{BACKUP_CLAIM}",
    ]


# -- every variant is valid Kubernetes ---------------------------------------------------------

VARIANTS: dict[str, dict[str, Any]] = {
    "local": LOCAL,
    "local-network-policy": {**LOCAL, "networkPolicy": {"enabled": True}},
    "nodes": {"nodes": NODES},
    "existing-claim": {"backups": {"persistentVolumeClaim": "shared-backups"}},
    "claim-values": {"backups": {"size": "1Ti", "storageClass": "nfs"}},
    "network-policy-every-namespace": {"networkPolicy": {"enabled": True}},
    "network-policy-namespaces": {
        "networkPolicy": {
            "enabled": True,
            "clusters": {
                "namespaces": ["shop", "billing"],
                "clients": [{"namespaceSelector": {"matchLabels": {"team": "shop"}}}],
            },
        }
    },
    "network-policy-watched": {"watchNamespace": "databases", "networkPolicy": {"enabled": True}},
}


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_variants_are_valid_kubernetes(values: dict[str, Any]) -> None:
    validator = kubernetes_validate()
    for doc in render(values):
        validator.validate(doc, KUBE_VERSION, strict=True)


# -- the schema --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"runtime": "docker"}, "runtime"),
        ({"runtime": "scripted"}, "runtime"),
        ({"nodes": {"antiAffinity": "sometimes"}}, "nodes/antiAffinity"),
        ({"nodes": {"haproxyReplicas": 0}}, "nodes/haproxyReplicas"),
        ({"nodes": {"haproxyReplicas": 1.5}}, "nodes/haproxyReplicas"),
        ({"nodes": {"podWait": 0}}, "nodes/podWait"),
        ({"nodes": {"podWait": "5m"}}, "nodes/podWait"),
        ({"nodes": {"image": "has space:1"}}, "nodes/image"),
        ({"nodes": {"image": "repo:"}}, "nodes/image"),
        ({"nodes": {"temporalAddress": "no-port"}}, "nodes/temporalAddress"),
        ({"nodes": {"storageClass": "Fast_SSD"}}, "nodes/storageClass"),
        ({"nodes": {"replicas": 3}}, "replicas"),
        ({"backups": {"mountPath": "relative/path"}}, "backups/mountPath"),
        ({"backups": {"mountPath": "/"}}, "backups/mountPath"),
        ({"backups": {"mountPath": "/tmp/backups"}}, "backups/mountPath"),
        ({"backups": {"mountPath": "/etc/mysqlops"}}, "backups/mountPath"),
        ({"backups": {"size": "lots"}}, "backups/size"),
        ({"backups": {"accessModes": []}}, "backups/accessModes"),
        ({"backups": {"accessModes": ["ReadOnlyMany"]}}, "backups/accessModes"),
        ({"backups": {"accessModes": ["Sometimes"]}}, "backups/accessModes"),
        ({"backups": {"persistentVolumeClaim": "Bad_Name"}}, "backups/persistentVolumeClaim"),
        # The Kubernetes runtime needs a backup volume.
        ({"backups": {"create": False}}, "backups"),
        # The local runtime runs the nodes in the worker's pod: one worker.
        ({"runtime": "local"}, "workers/replicas"),
        ({"runtime": "local", "workers": {"replicas": 3}}, "workers/replicas"),
        ({"networkPolicy": {"clusters": {"namespaces": ["Bad_NS"]}}}, "namespaces"),
        ({"networkPolicy": {"clusters": {"clients": ["anyone"]}}}, "clients"),
        ({"networkPolicy": {"clusters": {"extra": True}}}, "extra"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else "",
)
def test_bad_runtime_values_fail(values: dict[str, Any], field: str) -> None:
    result = template(values)
    assert result.returncode != 0, f"{values} was accepted"
    assert "schema" in result.stderr, result.stderr
    assert field in result.stderr or field.replace("/", ".") in result.stderr, result.stderr


@pytest.mark.parametrize(
    "values",
    [
        LOCAL,
        {**LOCAL, "workers": {"replicas": 0}},
        {"backups": {"create": False, "persistentVolumeClaim": "shared"}},
        {"nodes": {"image": "registry.example:5000/team/mysqlops:1.0@sha256:" + "a" * 64}},
        {"nodes": {"image": "mysqlops"}, "backups": {"mountPath": "/srv/backups"}},
        {"nodes": {"podWait": 2.5}},
    ],
    ids=lambda v: json.dumps(v),
)
def test_good_runtime_values_pass(values: dict[str, Any]) -> None:
    result = template(values)
    assert result.returncode == 0, result.stderr


# -- NetworkPolicies: what the runtime and the clusters' pods need -----------------------------


def cluster_pods() -> dict[str, dict[str, Any]]:
    """The pod templates of a cluster's nodes and HAProxy, as the runtime builds them."""
    owner = objects.Owner(name=CLUSTER.name, uid="5f1e2d3c-0000-4000-8000-000000000001")
    settings = objects.PodSettings(image=CHART_IMAGE, temporal_address="t:7233")
    spec = MySQLClusterSpec.model_validate({})
    nodes = objects.statefulset(CLUSTER, spec, owner, settings)
    haproxy = objects.haproxy_deployment(CLUSTER, owner, settings, "global\n")
    return {"database": nodes["spec"]["template"], "load-balancer": haproxy["spec"]["template"]}


def ports_of(template: dict[str, Any]) -> dict[str, int]:
    return {
        port["name"]: port["containerPort"]
        for container in template["spec"]["containers"]
        for port in container.get("ports", [])
    }


def rule_ports(rule: dict[str, Any]) -> set[int]:
    """The TCP ports a rule opens (every port the runtime's pods use is TCP; DNS aside)."""
    return {port["port"] for port in rule["ports"] if port["protocol"] == "TCP"}


def namespace_selects(peer: dict[str, Any], namespace: str) -> bool:
    return selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace})


def peer_admits(peer: dict[str, Any], own: str, labels: dict[str, str], namespace: str) -> bool:
    """Whether a NetworkPolicyPeer of a policy in namespace `own` is a pod with these labels
    in `namespace`."""
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not namespace_selects(peer, namespace):
            return False
    elif namespace != own:
        return False
    return selects(peer.get("podSelector", {}), labels)


def allowed(policy: dict[str, Any], key: str, labels: dict[str, str], namespace: str) -> set[int]:
    """The TCP ports the policy opens from (key "from": ingress) or to (key "to": egress) a pod
    with these labels in `namespace` (a rule without peers: any)."""
    rules = policy["spec"]["ingress" if key == "from" else "egress"]
    own = policy["metadata"]["namespace"]
    return set().union(
        *(
            rule_ports(rule)
            for rule in rules
            if not rule.get(key) or any(peer_admits(p, own, labels, namespace) for p in rule[key])
        )
    )


def open_to_all(policy: dict[str, Any], key: str) -> set[int]:
    """The TCP ports of the rules without peers (e.g. Temporal's by default)."""
    rules = policy["spec"]["ingress" if key == "from" else "egress"]
    return set().union(*(rule_ports(rule) for rule in rules if not rule.get(key)))


@pytest.fixture(scope="module")
def policies() -> list[dict[str, Any]]:
    return render({"watchNamespace": CLUSTER.namespace, "networkPolicy": {"enabled": True}})


@pytest.fixture(scope="module")
def labels_of(policies: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The pod labels: the clusters' (as the runtime builds them), the chart's."""
    pods = cluster_pods()
    deployments = by_component(policies, "Deployment")
    return {
        "nodes": pods["database"]["metadata"]["labels"],
        "haproxy": pods["load-balancer"]["metadata"]["labels"],
        **{c: d["spec"]["template"]["metadata"]["labels"] for c, d in deployments.items()},
    }


def test_the_policies_select_the_runtimes_pods(
    policies: list[dict[str, Any]], labels_of: dict[str, dict[str, str]]
) -> None:
    for name in ("nodes", "haproxy"):
        policy = network_policy(policies, f"{RELEASE}-mysqlops-{name}")
        assert policy["metadata"]["namespace"] == CLUSTER.namespace  # the watched namespace
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        chosen = {
            pod
            for pod, labels in labels_of.items()
            if selects(policy["spec"]["podSelector"], labels)
        }
        assert chosen == {name}, name  # nor any pod of the chart's own


def test_nodes_reach_each_other_dns_and_temporal(
    policies: list[dict[str, Any]], labels_of: dict[str, dict[str, str]]
) -> None:
    node_ports = ports_of(cluster_pods()["database"])
    peer_ports = {port for _, port in common.PEER_PORTS}
    assert peer_ports == {3306, 4567, 4568, 4444, 8080}
    assert peer_ports <= set(node_ports.values())
    nodes = network_policy(policies, f"{RELEASE}-mysqlops-nodes")
    here, there = CLUSTER.namespace, "elsewhere"
    assert allowed(nodes, "from", labels_of["nodes"], here) == peer_ports
    assert allowed(nodes, "from", labels_of["nodes"], there) == set()
    assert open_to_all(nodes, "to") == {7233}  # Temporal (temporal.address), anywhere
    assert allowed(nodes, "to", labels_of["nodes"], here) - {7233} == peer_ports
    assert allowed(nodes, "to", labels_of["nodes"], there) == {7233}
    dns = [rule for rule in nodes["spec"]["egress"] if {p["port"] for p in rule["ports"]} == {53}]
    assert [{p["protocol"] for p in rule["ports"]} for rule in dns] == [{"UDP", "TCP"}]
    assert dns[0]["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]


def test_haproxy_reaches_the_nodes(
    policies: list[dict[str, Any]], labels_of: dict[str, dict[str, str]]
) -> None:
    nodes = network_policy(policies, f"{RELEASE}-mysqlops-nodes")
    haproxy = network_policy(policies, f"{RELEASE}-mysqlops-haproxy")
    wanted = {common.PORT_MYSQL, common.PORT_AGENT}  # the traffic, the agents' /health
    assert allowed(haproxy, "to", labels_of["nodes"], CLUSTER.namespace) == wanted
    assert allowed(nodes, "from", labels_of["haproxy"], CLUSTER.namespace) == wanted
    assert allowed(haproxy, "to", labels_of["haproxy"], CLUSTER.namespace) == set()
    # Clients reach the writer and reader ports, from anywhere by default.
    haproxy_ports = ports_of(cluster_pods()["load-balancer"])
    assert open_to_all(haproxy, "from") == {haproxy_ports["writer"], haproxy_ports["reader"]}
    assert open_to_all(nodes, "from") == set()


def test_the_workers_reach_agents_sql_and_haproxy_stats(
    policies: list[dict[str, Any]], labels_of: dict[str, dict[str, str]]
) -> None:
    # The workers' egress: a policy of their own, in the release's namespace.
    policy = network_policy(policies, f"{RELEASE}-mysqlops-worker")
    assert policy["metadata"]["namespace"] == NAMESPACE
    assert policy["spec"]["policyTypes"] == ["Egress"]
    chosen = {
        pod for pod, labels in labels_of.items() if selects(policy["spec"]["podSelector"], labels)
    }
    assert chosen == {"worker"}
    here, there = CLUSTER.namespace, "elsewhere"
    stats = {common.HAPROXY_STATS_PORT}
    assert allowed(policy, "to", labels_of["nodes"], here) == WORKER_PEER_PORTS
    assert allowed(policy, "to", labels_of["haproxy"], here) == stats
    assert allowed(policy, "to", labels_of["nodes"], there) == set()
    # The clusters' pods let them in, from the release's namespace only, and not the operator.
    nodes = network_policy(policies, f"{RELEASE}-mysqlops-nodes")
    haproxy = network_policy(policies, f"{RELEASE}-mysqlops-haproxy")
    assert allowed(nodes, "from", labels_of["worker"], NAMESPACE) == WORKER_PEER_PORTS
    clients = open_to_all(haproxy, "from")
    assert allowed(haproxy, "from", labels_of["worker"], NAMESPACE) - clients == stats
    for policy in (nodes, haproxy):
        assert allowed(policy, "from", labels_of["worker"], there) == open_to_all(policy, "from")
        assert allowed(policy, "from", labels_of["operator"], NAMESPACE) == open_to_all(
            policy, "from"
        )


def test_prometheus_scrapes_the_clusters_pods(policies: list[dict[str, Any]]) -> None:
    """From the namespaces of metrics.namespaceSelector (any pod there)."""
    node_ports = ports_of(cluster_pods()["database"])
    haproxy_ports = ports_of(cluster_pods()["load-balancer"])
    nodes = network_policy(policies, f"{RELEASE}-mysqlops-nodes")
    haproxy = network_policy(policies, f"{RELEASE}-mysqlops-haproxy")
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    scraped = {node_ports["agent-metrics"], node_ports["exporter"]}
    assert scraped == {9470, 9104}
    assert allowed(nodes, "from", prometheus, "monitoring") == scraped
    assert allowed(haproxy, "from", prometheus, "monitoring") - open_to_all(haproxy, "from") == {
        haproxy_ports["stats"]
    }
    assert allowed(nodes, "from", prometheus, "default") == set()


def test_cluster_namespaces_and_clients() -> None:
    clients = [{"namespaceSelector": {"matchLabels": {"team": "shop"}}}]
    values = {
        "networkPolicy": {
            "enabled": True,
            "clusters": {"namespaces": ["shop", "billing"], "clients": clients},
            "temporal": {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
        },
        "nodes": {"temporalAddress": "temporal.example.com:7443"},
    }
    manifests = render(values)
    found = sorted(
        (doc["metadata"]["namespace"], doc["metadata"]["name"])
        for doc in of_kind(manifests, "NetworkPolicy")
    )
    assert found == [
        ("billing", f"{RELEASE}-mysqlops-haproxy"),
        ("billing", f"{RELEASE}-mysqlops-nodes"),
        (NAMESPACE, f"{RELEASE}-mysqlops"),
        (NAMESPACE, f"{RELEASE}-mysqlops-worker"),
        ("shop", f"{RELEASE}-mysqlops-haproxy"),
        ("shop", f"{RELEASE}-mysqlops-nodes"),
    ]
    by_place = {
        (doc["metadata"]["namespace"], doc["metadata"]["name"]): doc
        for doc in of_kind(manifests, "NetworkPolicy")
    }
    for namespace in ("shop", "billing"):
        haproxy = by_place[namespace, f"{RELEASE}-mysqlops-haproxy"]
        [to_clients] = [r for r in haproxy["spec"]["ingress"] if 3307 in rule_ports(r)]
        assert to_clients["from"] == clients
    worker_policy = network_policy(manifests, f"{RELEASE}-mysqlops-worker")
    for rule in worker_policy["spec"]["egress"]:
        for peer in rule["to"]:
            assert namespace_selects(peer, "shop") and namespace_selects(peer, "billing")
            assert not namespace_selects(peer, NAMESPACE)
    # The agents reach Temporal where they are told to (nodes.temporalAddress), as configured.
    for namespace in ("shop", "billing"):
        policy = by_place[namespace, f"{RELEASE}-mysqlops-nodes"]
        [temporal] = [r for r in policy["spec"]["egress"] if 7443 in rule_ports(r)]
        assert temporal["to"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]


def test_every_namespace_watched_and_none_listed() -> None:
    """The workers may reach clusters in any namespace; no policy for the clusters' pods (the
    chart does not know their namespaces: the notes say so)."""
    manifests = render({"networkPolicy": {"enabled": True}})
    names = sorted(doc["metadata"]["name"] for doc in of_kind(manifests, "NetworkPolicy"))
    assert names == [f"{RELEASE}-mysqlops", f"{RELEASE}-mysqlops-worker"]
    spec = network_policy(manifests, f"{RELEASE}-mysqlops-worker")["spec"]
    for rule in spec["egress"]:
        for peer in rule["to"]:
            assert peer["namespaceSelector"] == {}  # any namespace
            assert namespace_selects(peer, "anywhere")


def test_local_runtime_adds_no_policy() -> None:
    manifests = render({**LOCAL, "networkPolicy": {"enabled": True}})
    names = [doc["metadata"]["name"] for doc in of_kind(manifests, "NetworkPolicy")]
    assert names == [f"{RELEASE}-mysqlops"]


def test_notes_tell_the_runtime() -> None:
    text = notes({})
    assert f"image {CHART_IMAGE}" in text
    assert f"claim {BACKUP_CLAIM}, mounted by the workers at {BACKUP_DIR}" in text
    assert "networkPolicy.clusters.namespaces" not in text
    assert "networkPolicy.clusters.namespaces" in notes({"networkPolicy": {"enabled": True}})
    assert "runtime local" in notes(LOCAL) and "claim" not in notes(LOCAL)
