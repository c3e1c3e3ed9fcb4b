"""The Kubernetes objects of one cluster (activities/kubernetes/objects): valid for Kubernetes
1.33, and what a user and the node agent rely on: names and selectors that line up, owner
references, retention, the update and pod management policies, probes on the agent, the
agent's environment, and no secret anywhere."""

import copy
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from activities.kubernetes import objects
from activities.kubernetes.objects import common
from activities.local import mycnf
from api.agent import LIVE, READY, TOKEN_SECRET
from api.cluster import MySQLCluster, MySQLClusterSpec
from api.layout import ClusterRef
from workers.temporal import TLS_VARIABLES

KUBE_VERSION = "1.33.0"
CLUSTER = ClusterRef(namespace="shop", name="orders")
OWNER = objects.Owner(name="orders", uid="5f1e2d3c-0000-4000-8000-000000000001")
SETTINGS = objects.PodSettings(image="registry.example/mysqlops:1.0", temporal_address="t:7233")
FULL_SETTINGS = objects.PodSettings(
    image="registry.example/mysqlops:1.0",
    temporal_address="temporal-frontend.temporal:7233",
    temporal_namespace="prod",
    image_pull_policy="Always",
    image_pull_secrets=("registry",),
    storage_class="fast-ssd",
    anti_affinity="required",
    termination_grace_period_seconds=900,
    haproxy_image="haproxy:2.8",
    haproxy_replicas=3,
    temporal_tls=objects.TemporalTLS(secret_name="temporal-client"),
)
MY_CNF = "[mariadbd]\ninnodb_buffer_pool_size = 67108864\n"
NODE_CONFIGS = {f"orders-{i}.cnf": f"{MY_CNF}wsrep_node_name = orders-{i}\n" for i in range(3)}
HAPROXY_CFG = "global\n    maxconn 2000\n"
AGENT = common.PORT_AGENT


def spec(**fields: Any) -> MySQLClusterSpec:
    return MySQLClusterSpec.model_validate(fields)


def build(
    cluster_spec: MySQLClusterSpec | None = None, settings: objects.PodSettings = SETTINGS
) -> list[dict[str, Any]]:
    return objects.cluster_manifests(
        CLUSTER, cluster_spec or spec(), OWNER, settings, NODE_CONFIGS, HAPROXY_CFG
    )


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def sts(cluster_spec: MySQLClusterSpec | None = None, **settings: Any) -> dict[str, Any]:
    return objects.statefulset(
        CLUSTER, cluster_spec or spec(), OWNER, objects.PodSettings(**vars(SETTINGS) | settings)
    )


def node(manifest: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = manifest["spec"]["template"]["spec"]["containers"][0]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def matches(selector: dict[str, str], pod_labels: dict[str, str]) -> bool:
    return all(pod_labels.get(key) == value for key, value in selector.items())


# -- valid Kubernetes --------------------------------------------------------------------------


def kubernetes_validate() -> ModuleType:
    return importlib.import_module("kubernetes_validate")  # untyped: imported by name


@pytest.mark.parametrize(
    ("cluster_spec", "settings"),
    [(spec(), SETTINGS), (spec(replicas=5, deletionPolicy="Delete"), FULL_SETTINGS)],
    ids=["defaults", "every-option"],
)
def test_every_manifest_is_valid_kubernetes(
    cluster_spec: MySQLClusterSpec, settings: objects.PodSettings
) -> None:
    validator = kubernetes_validate()
    manifests = build(cluster_spec, settings)
    # The Secret is the runtime's: its metadata, with no data, is a valid Secret too.
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": objects.secret_metadata(CLUSTER, cluster_spec, OWNER),
    }
    errors = []
    for manifest in [*manifests, secret]:
        try:
            validator.validate(manifest, KUBE_VERSION, strict=True)
        except validator.ValidationError as error:
            path = "/".join(str(part) for part in error.absolute_path)
            errors.append(f"{manifest['kind']}/{manifest['metadata']['name']} {path}: {error}")
    assert not errors, "\n".join(errors)
    json.dumps(manifests)  # plain JSON, as the client sends it


# -- names, labels, selectors ------------------------------------------------------------------


def test_the_objects_and_their_names() -> None:
    manifests = build()
    assert sorted((m["kind"], m["metadata"]["name"]) for m in manifests) == sorted(
        [
            ("StatefulSet", "orders"),
            ("Service", "orders-hl"),
            ("ConfigMap", "orders-config"),
            ("PodDisruptionBudget", "orders"),
            ("ConfigMap", "orders-haproxy"),
            ("Deployment", "orders-haproxy"),
            ("PodDisruptionBudget", "orders-haproxy"),
            ("Service", "orders-writer"),
            ("Service", "orders-reader"),
        ]
    )
    assert {m["metadata"]["namespace"] for m in manifests} == {"shop"}
    assert objects.node_pod_name(CLUSTER, 2) == "orders-2"
    assert objects.peer_host(CLUSTER, 2) == "orders-2.orders-hl.shop.svc.cluster.local"
    assert objects.peer_host(CLUSTER, 2, "k.example") == "orders-2.orders-hl.shop.svc.k.example"
    assert objects.data_claim_name(CLUSTER, 0) == "data-orders-0"
    assert objects.ClusterNames.of(CLUSTER).secret == "orders-secrets"
    # The claim name the StatefulSet controller makes: <template>-<statefulset>-<ordinal>.
    statefulset = by_kind(manifests, "StatefulSet")["orders"]
    template = statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert f"{template}-{statefulset['metadata']['name']}-0" == objects.data_claim_name(CLUSTER, 0)


def test_owned_objects_are_what_is_built() -> None:
    for policy in ("Retain", "Delete"):
        cluster_spec = spec(deletionPolicy=policy)
        built = {(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in build(cluster_spec)}
        owned = {
            (o.api_version, o.kind, o.name) for o in objects.owned_objects(CLUSTER, cluster_spec)
        }
        secret = ("v1", "Secret", "orders-secrets")
        assert owned - {secret} == built
        assert (secret in owned) == (policy == "Delete")


def test_every_object_is_labelled() -> None:
    load_balancer = {"orders-haproxy", "orders-writer", "orders-reader"}
    for manifest in build():
        component = "load-balancer" if manifest["metadata"]["name"] in load_balancer else "database"
        assert manifest["metadata"]["labels"] == {
            "app.kubernetes.io/name": "mysql",
            "app.kubernetes.io/instance": "orders",
            "app.kubernetes.io/managed-by": "mysqlops",
            "app.kubernetes.io/component": component,
            "mysqlops.io/cluster": "orders",
        }, manifest["metadata"]["name"]


def test_selectors_line_up() -> None:
    manifests = build()
    statefulset = by_kind(manifests, "StatefulSet")["orders"]
    deployment = by_kind(manifests, "Deployment")["orders-haproxy"]
    node_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    haproxy_labels = deployment["spec"]["template"]["metadata"]["labels"]
    # A workload's selector selects its own template's pods, and not the other's.
    for workload, own, other in (
        (statefulset, node_labels, haproxy_labels),
        (deployment, haproxy_labels, node_labels),
    ):
        assert matches(workload["spec"]["selector"]["matchLabels"], own)
        assert not matches(workload["spec"]["selector"]["matchLabels"], other)
    services = by_kind(manifests, "Service")
    assert matches(services["orders-hl"]["spec"]["selector"], node_labels)
    assert not matches(services["orders-hl"]["spec"]["selector"], haproxy_labels)
    for name in ("orders-writer", "orders-reader"):
        assert matches(services[name]["spec"]["selector"], haproxy_labels), name
        assert not matches(services[name]["spec"]["selector"], node_labels), name
    budgets = by_kind(manifests, "PodDisruptionBudget")
    assert matches(budgets["orders"]["spec"]["selector"]["matchLabels"], node_labels)
    assert not matches(budgets["orders"]["spec"]["selector"]["matchLabels"], haproxy_labels)
    assert budgets["orders"]["spec"]["maxUnavailable"] == 1
    assert matches(budgets["orders-haproxy"]["spec"]["selector"]["matchLabels"], haproxy_labels)
    # Another cluster's pods in the same namespace are never selected.
    other = objects.labels(ClusterRef(namespace="shop", name="orders2"), "database")
    assert not matches(statefulset["spec"]["selector"]["matchLabels"], other)
    assert statefulset["spec"]["serviceName"] == "orders-hl"


def test_services_ports() -> None:
    manifests = build()
    services = by_kind(manifests, "Service")
    deployment = by_kind(manifests, "Deployment")["orders-haproxy"]
    haproxy_ports = {p["name"]: p["containerPort"] for p in node(deployment)["ports"]}
    assert haproxy_ports == {"writer": 3306, "reader": 3307, "stats": 8404}
    for name, target in (("orders-writer", "writer"), ("orders-reader", "reader")):
        (port,) = services[name]["spec"]["ports"]
        assert (port["port"], port["targetPort"]) == (3306, target), name
    headless = services["orders-hl"]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True  # peers resolve before they are Ready
    assert {p["name"]: p["port"] for p in headless["ports"]} == {
        "mysql": 3306,
        "galera": 4567,
        "ist": 4568,
        "sst": 4444,
        "agent": 8080,
    }
    statefulset = by_kind(manifests, "StatefulSet")["orders"]
    node_ports = {p["name"]: p["containerPort"] for p in node(statefulset)["ports"]}
    assert node_ports == {
        "mysql": 3306,
        "galera": 4567,
        "ist": 4568,
        "sst": 4444,
        "agent": 8080,
        "agent-metrics": 9470,
        "exporter": 9104,
    }
    for port in headless["ports"]:  # every named target exists on the container
        assert node_ports[port["targetPort"]] == port["port"]


# -- ownership and retention -------------------------------------------------------------------


def test_every_object_is_owned_by_the_cluster() -> None:
    for manifest in build():
        assert manifest["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "mysqlops.io/v1alpha1",
                "kind": "MySQLCluster",
                "name": "orders",
                "uid": OWNER.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], manifest["metadata"]["name"]


def test_owner_from_the_resource() -> None:
    resource = MySQLCluster.model_validate(
        {"metadata": {"name": "orders", "namespace": "shop", "uid": OWNER.uid}}
    )
    assert objects.Owner.of(resource) == OWNER
    with pytest.raises(ValueError, match="no uid"):
        objects.Owner.of(MySQLCluster.model_validate({"metadata": {"name": "orders"}}))
    with pytest.raises(ValueError, match="not the cluster"):
        objects.config_map(CLUSTER, objects.Owner(name="other", uid="u"), NODE_CONFIGS)


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_claims_and_secret_follow_the_deletion_policy(policy: str) -> None:
    cluster_spec = spec(deletionPolicy=policy)
    retention = sts(cluster_spec)["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": policy, "whenScaled": "Retain"}
    # The passwords stay with the data they were created with.
    secret = objects.secret_metadata(CLUSTER, cluster_spec, OWNER)
    assert secret["name"] == "orders-secrets"
    assert ("ownerReferences" in secret) == (policy == "Delete")


# -- the StatefulSet ---------------------------------------------------------------------------


def test_statefulset_policies() -> None:
    statefulset = sts()["spec"]
    assert statefulset["podManagementPolicy"] == "Parallel"
    assert statefulset["updateStrategy"] == {"type": "OnDelete"}
    assert statefulset["template"]["spec"]["terminationGracePeriodSeconds"] == 600
    shorter = sts(termination_grace_period_seconds=30)["spec"]["template"]["spec"]
    assert shorter["terminationGracePeriodSeconds"] == 30


def test_replicas_and_storage_follow_the_spec() -> None:
    statefulset = sts(spec(replicas=5, storage={"size": "20Gi"}))["spec"]
    assert statefulset["replicas"] == 5
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]  # the namespace's default class
    claim = sts(storage_class="fast-ssd")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    # The models take 'K' for 1000; Kubernetes spells it 'k'.
    small = sts(spec(storage={"size": "500000K"}))["spec"]["volumeClaimTemplates"][0]
    assert small["spec"]["resources"]["requests"]["storage"] == "500000k"


def test_changing_replicas_never_changes_the_pod_template() -> None:
    """A scale changes the StatefulSet's replicas and nothing in its pod template (the agent's
    peers are in its my.cnf, in the ConfigMap): with OnDelete, existing pods never look
    outdated after one (their controller-revision-hash stays the updateRevision)."""
    three, five = sts(spec(replicas=3)), sts(spec(replicas=5))
    assert (three["spec"]["replicas"], five["spec"]["replicas"]) == (3, 5)
    assert three["spec"]["template"] == five["spec"]["template"]
    del three["spec"]["replicas"], five["spec"]["replicas"]
    assert three == five


@pytest.mark.parametrize("mode", ["preferred", "required"])
def test_anti_affinity(mode: str) -> None:
    statefulset = sts(anti_affinity=mode)
    affinity = statefulset["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    if mode == "preferred":
        assert list(affinity) == ["preferredDuringSchedulingIgnoredDuringExecution"]
        (weighted,) = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
        assert weighted["weight"] == 100
        term = weighted["podAffinityTerm"]
    else:
        assert list(affinity) == ["requiredDuringSchedulingIgnoredDuringExecution"]
        (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == statefulset["spec"]["selector"]["matchLabels"]
    assert SETTINGS.anti_affinity == "preferred"
    with pytest.raises(ValueError, match="anti_affinity"):
        objects.PodSettings(image="i", temporal_address="t", anti_affinity="sometimes")  # type: ignore[arg-type]


# -- the node container ------------------------------------------------------------------------


def test_probes_and_hooks_use_the_agent() -> None:
    container = node(sts())
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert (
        readiness["httpGet"]
        == {"path": READY, "port": "agent"}
        == {"path": "/ready", "port": "agent"}
    )
    assert liveness["httpGet"] == {"path": LIVE, "port": "agent"}
    assert ports["agent"] == AGENT
    assert (readiness["periodSeconds"], readiness["failureThreshold"]) == (2, 1)
    # A minute of silence before a restart: never during recovery or an SST (the agent answers).
    assert liveness["periodSeconds"] * liveness["failureThreshold"] == 60
    assert "startupProbe" not in container
    # The image's command under its init, as its entrypoint runs it (the PATH of the image).
    assert container["command"] == ["tini", "-s", "--", "mysqlops", "agent", "--from-env"]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == [
        "mysqlops", "agent", "--from-env", "--stop",
    ]  # fmt: skip
    assert container["name"] == "mysql"
    assert container["image"] == SETTINGS.image
    assert "resources" not in container  # the spec has none


def test_the_agent_environment() -> None:
    env = env_of(node(sts(spec(replicas=5, health={"serveFromDonor": False}))))
    field = {n: v["fieldRef"]["fieldPath"] for n, v in env.items() if isinstance(v, dict)}
    assert field == {
        "MYSQLOPS_NODE": "metadata.name",
        "MYSQLOPS_POD_IP": "status.podIP",
        "MYSQLOPS_CLUSTER_NAMESPACE": "metadata.namespace",
    }
    assert {n: v for n, v in env.items() if n not in field} == {
        "MYSQLOPS_CLUSTER": "orders",
        "MYSQLOPS_WORKFLOW_ID": "mysqlcluster/shop/orders",
        "TEMPORAL_ADDRESS": "t:7233",
        "TEMPORAL_NAMESPACE": "default",
        "MYSQLOPS_DONOR_SERVES": "false",
        "MYSQLOPS_NODE_DIR": "/var/lib/mysqlops",
        "MYSQLOPS_CONFIG_DIR": "/etc/mysqlops/config",
        "MYSQLOPS_SECRETS_DIR": "/etc/mysqlops/secrets",
    }
    assert env_of(node(sts()))["MYSQLOPS_DONOR_SERVES"] == "true"  # the spec's default


def test_volumes_are_mounted_where_the_agent_looks() -> None:
    statefulset = sts()
    pod = statefulset["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in node(statefulset)["volumeMounts"]}
    env = env_of(node(statefulset))
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts[env["MYSQLOPS_NODE_DIR"]] == "data"  # the claim template
    assert volumes[mounts[env["MYSQLOPS_CONFIG_DIR"]]]["configMap"] == {"name": "orders-config"}
    # The whole Secret: whichever keys the runtime wrote, each a file; readable by the group.
    assert volumes[mounts[env["MYSQLOPS_SECRETS_DIR"]]]["secret"] == {
        "secretName": "orders-secrets",
        "defaultMode": 0o440,
    }
    assert pod["securityContext"]["fsGroup"] == 10001
    assert TOKEN_SECRET in common.SECRET_KEYS
    # The ConfigMap carries the keys the agent reads: <MYSQLOPS_NODE>.cnf.
    config = by_kind(build(), "ConfigMap")["orders-config"]
    assert config["data"] == NODE_CONFIGS
    assert list(NODE_CONFIGS) == [objects.node_config_key(CLUSTER, i) for i in range(3)]
    assert objects.node_config_key(CLUSTER, 2) == "orders-2.cnf"


def test_the_node_configuration_map() -> None:
    """One key per node, in ordinal order; a name that is no node of the cluster is refused
    (its pod would find no file)."""
    configs = {f"orders-{i}.cnf": f"# node {i}\n" for i in (10, 2, 0)}
    config = objects.config_map(CLUSTER, OWNER, configs)
    assert list(config["data"]) == ["orders-0.cnf", "orders-2.cnf", "orders-10.cnf"]
    assert config["data"]["orders-10.cnf"] == "# node 10\n"
    assert objects.config_map(CLUSTER, OWNER, {})["data"] == {}
    refused = ["orders-1", "my.cnf", "orders-.cnf", "orders-01.cnf", "orders-x.cnf", "other-0.cnf"]
    refused += ["orders-1-0.cnf", "orders-².cnf", "orders-1.cnf.cnf"]
    for key in refused:
        with pytest.raises(ValueError, match="not a node's key in cluster 'orders'"):
            objects.config_map(CLUSTER, OWNER, {key: MY_CNF})


def test_the_agent_finds_its_configuration_and_peers(tmp_path: Path) -> None:
    """The contract end to end: the node container's environment and the ConfigMap's keys are
    what the agent (workers/agent/pod.py) reads; its peers are the others of its my.cnf."""
    from workers.agent import pod  # the agent's side of the contract

    cluster_spec = spec(replicas=3)
    hosts = tuple(objects.peer_host(CLUSTER, i) for i in range(3))

    def rendered(i: int) -> str:
        return mycnf.render(
            mycnf.NodeConfig(
                cluster_name="shop-orders",
                node_name=objects.node_pod_name(CLUSTER, i),
                host=hosts[i],
                port=common.PORT_MYSQL,
                galera_port=common.PORT_GALERA,
                ist_port=common.PORT_IST,
                sst_port=common.PORT_SST,
                peers=tuple(f"{host}:{common.PORT_GALERA}" for host in hosts),
                datadir=f"{common.NODE_DIR}/data",
                socket=f"{common.NODE_DIR}/mariadbd.sock",
                pid_file=f"{common.NODE_DIR}/mariadbd.pid",
                error_log=f"{common.NODE_DIR}/error.log",
                ordinal=i,
            ),
            cluster_spec,
        )

    config = objects.config_map(
        CLUSTER, OWNER, {objects.node_config_key(CLUSTER, i): rendered(i) for i in range(3)}
    )
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for key, text in config["data"].items():
        (config_dir / key).write_text(text)
    fields = {
        "metadata.name": "orders-1",
        "status.podIP": "10.0.0.11",
        "metadata.namespace": "shop",
    }
    env = {
        name: fields[value["fieldRef"]["fieldPath"]] if isinstance(value, dict) else value
        for name, value in env_of(node(sts(cluster_spec))).items()
    }
    # The mounts, where this test has them.
    env |= {
        "MYSQLOPS_NODE_DIR": str(tmp_path / "node"),
        "MYSQLOPS_CONFIG_DIR": str(config_dir),
        "MYSQLOPS_SECRETS_DIR": str(tmp_path / "secrets"),
    }
    agent = pod.config_from_env(env)
    assert agent.node == "orders-1"
    assert agent.host == "10.0.0.11"
    assert agent.workflow_id == "mysqlcluster/shop/orders"
    assert sorted(agent.peers) == [f"{hosts[i]}:{AGENT}" for i in (0, 2)]
    assert Path(agent.mycnf).read_text().count("wsrep_node_name = orders-1\n") == 1


def test_no_secret_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """No env entry reads a Secret (the agent reads the mounted files), and the builders are
    pure: secrets in this process's environment never end up in a manifest."""
    samples = {
        "MYSQL_ROOT_PASSWORD": "r00t-Sample-Pw-8c1f",
        "MYSQLOPS_APP_PASSWORD": "app-Sample-Pw-77e2",
        "MYSQLOPS_AGENT_TOKEN": "agent-Sample-Token-19ab",
        "TEMPORAL_API_KEY": "temporal-Sample-Key-5d0c",
    }
    for name, value in samples.items():
        monkeypatch.setenv(name, value)
    cluster_spec = spec(replicas=5, deletionPolicy="Delete")
    manifests = build(cluster_spec, FULL_SETTINGS)
    text = json.dumps([*manifests, objects.secret_metadata(CLUSTER, cluster_spec, OWNER)])
    for value in samples.values():
        assert value not in text
    assert "secretKeyRef" not in text
    assert "envFrom" not in text
    for manifest in manifests:
        assert "data" not in manifest or manifest["kind"] == "ConfigMap"


def test_security_context() -> None:
    pod = sts()["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "runAsUser" not in pod["securityContext"]  # the image's own user
    assert "runAsUser" not in container["securityContext"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}  # writable
    assert pod["automountServiceAccountToken"] is False
    assert pod["shareProcessNamespace"] is True  # the pause container reaps orphans


def test_temporal_tls_files() -> None:
    statefulset = objects.statefulset(CLUSTER, spec(), OWNER, FULL_SETTINGS)
    env = env_of(node(statefulset))
    assert {env[TLS_VARIABLES[part]] for part in ("cert", "key", "ca")} == {
        "/etc/mysqlops/temporal-tls/tls.crt",
        "/etc/mysqlops/temporal-tls/tls.key",
        "/etc/mysqlops/temporal-tls/ca.crt",
    }
    assert common.ENV_TEMPORAL_TLS == TLS_VARIABLES
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["temporal-tls"]["secret"]["secretName"] == "temporal-client"
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert "TEMPORAL_TLS_CERT" not in env_of(node(sts()))


# -- HAProxy -----------------------------------------------------------------------------------


def test_haproxy_deployment() -> None:
    manifests = build()
    deployment = by_kind(manifests, "Deployment")["orders-haproxy"]
    container = node(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert container["name"] == "haproxy"
    assert container["image"] == SETTINGS.image  # the mysqlops image ships HAProxy
    assert container["command"] == [
        "haproxy", "-W", "-db", "-f", "/etc/mysqlops/haproxy/haproxy.cfg",
    ]  # fmt: skip
    assert container["readinessProbe"]["tcpSocket"] == {"port": "writer"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounted = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert mounted["/etc/mysqlops/haproxy"]["configMap"]["name"] == "orders-haproxy"
    assert by_kind(manifests, "ConfigMap")["orders-haproxy"]["data"] == {"haproxy.cfg": HAPROXY_CFG}
    other = objects.haproxy_deployment(CLUSTER, OWNER, FULL_SETTINGS, HAPROXY_CFG)
    assert (other["spec"]["replicas"], node(other)["image"]) == (3, "haproxy:2.8")
    # A named image user cannot be checked by the kubelet: runAsNonRoot only for ours.
    assert "runAsNonRoot" not in other["spec"]["template"]["spec"]["securityContext"]


def test_a_new_haproxy_configuration_rolls_the_haproxy_pods() -> None:
    """HAProxy reads its file once: the template changes with it, so the pods are replaced,
    one new Ready pod before an old one goes."""
    before = objects.haproxy_deployment(CLUSTER, OWNER, SETTINGS, HAPROXY_CFG)
    after = objects.haproxy_deployment(CLUSTER, OWNER, SETTINGS, HAPROXY_CFG + "# new\n")
    assert before["spec"]["template"] != after["spec"]["template"]
    assert before["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    again = objects.haproxy_deployment(CLUSTER, OWNER, SETTINGS, HAPROXY_CFG)
    assert before == again


# -- inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["1orders", "a" * 53, "orders-"])
def test_names_no_service_can_carry_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="DNS-1035"):
        objects.ClusterNames.of(ClusterRef(namespace="shop", name=name))
    assert objects.ClusterNames.of(ClusterRef(namespace="shop", name="a" * 52))


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="haproxy_replicas"):
        objects.PodSettings(image="i", temporal_address="t", haproxy_replicas=0)
    with pytest.raises(ValueError, match="image"):
        objects.PodSettings(image="", temporal_address="t")


def test_builders_return_fresh_objects() -> None:
    """The runtime may change what it gets (e.g. to add a resourceVersion): nothing shared."""
    first = build()
    pristine = copy.deepcopy(first)
    first[3]["spec"]["selector"]["matchLabels"]["x"] = "y"
    first[3]["spec"]["template"]["spec"]["containers"][0]["command"].append("--x")
    assert build() == pristine
