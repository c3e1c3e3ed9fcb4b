"""The fixed contract of a cluster's Kubernetes objects: names, labels, ports, paths, the
environment of the node container, and the inputs every builder takes (see the package's
docstring for what each object is). The node agent and the tests rely on these values."""

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from api.agent import TOKEN_SECRET
from api.cluster import API_VERSION, MySQLCluster
from api.layout import ClusterRef

Manifest = dict[str, Any]

# -- labels -------------------------------------------------------------------------------------

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_CLUSTER = "mysqlops.io/cluster"
APP_NAME = "mysql"
MANAGED_BY = "mysqlops"
Component = Literal["database", "load-balancer"]
DATABASE: Component = "database"
LOAD_BALANCER: Component = "load-balancer"

# -- ports: (name, number); the names are the containers' port names ----------------------------

PORT_MYSQL = 3306
PORT_GALERA = 4567  # group communication
PORT_IST = 4568  # incremental state transfer
PORT_SST = 4444  # full state transfer (mariabackup)
PORT_AGENT = 8080  # the node agent's API and its probes /health, /ready, /live
PORT_AGENT_METRICS = 9470  # the agent's Prometheus endpoint (docs/observability.md)
PORT_EXPORTER = 9104  # mysqld_exporter, the agent's child (one code path with the local runtime)
NODE_PORTS: tuple[tuple[str, int], ...] = (
    ("mysql", PORT_MYSQL),
    ("galera", PORT_GALERA),
    ("ist", PORT_IST),
    ("sst", PORT_SST),
    ("agent", PORT_AGENT),
    ("agent-metrics", PORT_AGENT_METRICS),
    ("exporter", PORT_EXPORTER),
)
# What the headless Service names: what peers reach each other on (not the metrics).
PEER_PORTS: tuple[tuple[str, int], ...] = NODE_PORTS[:5]

HAPROXY_WRITER_PORT = 3306
HAPROXY_READER_PORT = 3307
HAPROXY_STATS_PORT = 8404  # HAProxy's stats page and /metrics (its own exporter)
HAPROXY_PORTS: tuple[tuple[str, int], ...] = (
    ("writer", HAPROXY_WRITER_PORT),
    ("reader", HAPROXY_READER_PORT),
    ("stats", HAPROXY_STATS_PORT),
)
SERVICE_PORT = 3306  # what clients connect to on the writer and reader Services

# -- paths, volumes, keys ------------------------------------------------------------------------

NODE_DIR = "/var/lib/mysqlops"  # the data PVC: the agent keeps my.cnf, data/, logs, state there
CONFIG_DIR = "/etc/mysqlops/config"  # the ConfigMap <name>-config
SECRETS_DIR = "/etc/mysqlops/secrets"  # the Secret <name>-secrets, one file per key
TMP_DIR = "/tmp"  # an emptyDir: the root file system is read-only
TEMPORAL_TLS_DIR = "/etc/mysqlops/temporal-tls"  # as the chart's mysqlops.tlsDir
HAPROXY_CONFIG_DIR = "/etc/mysqlops/haproxy"  # the ConfigMap <name>-haproxy
HAPROXY_RUN_DIR = "/run/haproxy"  # an emptyDir: stats socket, server-state file

NODE_CONFIG_SUFFIX = ".cnf"  # the ConfigMap <name>-config: key <name>-<i>.cnf, node i's my.cnf
HAPROXY_CFG_KEY = "haproxy.cfg"
DATA_VOLUME = "data"  # the volumeClaimTemplate: claims data-<name>-<i>
SECRET_MODE = 0o440  # owner root, group the pod's fsGroup: readable by the container's user
ROOT_SECRET = "root-password"
# The keys the runtime may keep in the Secret (the whole Secret is mounted; a key may be absent).
SECRET_KEYS = (TOKEN_SECRET, "app-password", "monitor-password", ROOT_SECRET)

NODE_CONTAINER = "mysql"
HAPROXY_CONTAINER = "haproxy"
# The agent runs mariadbd and mysqld_exporter as its children; `--stop` is the preStop hook:
# a clean shutdown of mariadbd that does not hold the node (the next container may rejoin).
# Under tini, as the image's entrypoint runs (-s: a subreaper where it is not PID 1): it passes
# SIGTERM on to the agent and reaps what mariadbd's SST scripts leave behind.
AGENT_COMMAND = ("tini", "-s", "--", "mysqlops", "agent", "--from-env")
PRE_STOP_COMMAND = ("mysqlops", "agent", "--from-env", "--stop")

# -- the node container's environment ------------------------------------------------------------

ENV_NODE = "MYSQLOPS_NODE"  # fieldRef metadata.name: <name>-<i>
ENV_POD_IP = "MYSQLOPS_POD_IP"  # fieldRef status.podIP: what the agent and mariadbd bind
ENV_CLUSTER_NAMESPACE = "MYSQLOPS_CLUSTER_NAMESPACE"  # fieldRef metadata.namespace
ENV_CLUSTER = "MYSQLOPS_CLUSTER"
ENV_WORKFLOW_ID = "MYSQLOPS_WORKFLOW_ID"
ENV_TEMPORAL_ADDRESS = "TEMPORAL_ADDRESS"
ENV_TEMPORAL_NAMESPACE = "TEMPORAL_NAMESPACE"
ENV_DONOR_SERVES = "MYSQLOPS_DONOR_SERVES"  # "true" / "false": spec.health.serveFromDonor
ENV_NODE_DIR = "MYSQLOPS_NODE_DIR"
ENV_CONFIG_DIR = "MYSQLOPS_CONFIG_DIR"
ENV_SECRETS_DIR = "MYSQLOPS_SECRETS_DIR"
ENV_RUN_DIR = "MYSQLOPS_RUN_DIR"  # HAProxy's container only: HAPROXY_RUN_DIR
# Files, as workers/temporal.py reads them (its TLS_VARIABLES); only with settings.temporal_tls.
ENV_TEMPORAL_TLS = {"cert": "TEMPORAL_TLS_CERT", "key": "TEMPORAL_TLS_KEY", "ca": "TEMPORAL_TLS_CA"}

HAPROXY_CONFIG_HASH = "mysqlops.io/haproxy-config-sha256"  # pod template annotation
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"

# A Service name is a DNS-1035 label (a letter first); the StatefulSet's pods carry
# `controller-revision-hash: <name>-<10 characters>`, a label value of at most 63.
MAX_NAME = 52
CLUSTER_DOMAIN = "cluster.local"  # the kubelet's --cluster-domain; MYSQLOPS_CLUSTER_DOMAIN
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def check_cluster(cluster: ClusterRef) -> None:
    """Refuse a cluster name some object's name could not be made from."""
    if len(cluster.name) > MAX_NAME or not _DNS1035_LABEL.match(cluster.name):
        raise ValueError(
            f"cluster name {cluster.name!r}: the Kubernetes runtime needs a DNS-1035 label (a "
            f"lowercase letter first, then letters, digits and '-') of at most {MAX_NAME} "
            "characters, as its Services are named after it"
        )


# -- inputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """The MySQLCluster that owns every object of the cluster (same namespace)."""

    name: str
    uid: str
    api_version: str = API_VERSION
    kind: str = "MySQLCluster"

    @classmethod
    def of(cls, resource: MySQLCluster) -> "Owner":
        if not resource.metadata.uid:
            raise ValueError(
                f"MySQLCluster {resource.metadata.namespace}/{resource.metadata.name} has no "
                "uid: only an object read from the API server can own objects"
            )
        return cls(name=resource.metadata.name, uid=resource.metadata.uid)


@dataclass(frozen=True)
class TemporalTLS:
    """A Secret in the cluster's namespace with the agent's Temporal client certificate."""

    secret_name: str
    cert_key: str = "tls.crt"
    key_key: str = "tls.key"
    ca_key: str | None = "ca.crt"


@dataclass(frozen=True)
class PodSettings:
    """How the runtime runs every cluster's pods (one value per worker, not per cluster: the
    workflow id comes from the ClusterRef)."""

    image: str
    temporal_address: str
    temporal_namespace: str = "default"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    storage_class: str | None = None  # None: the namespace's default StorageClass
    anti_affinity: Literal["preferred", "required"] = "preferred"
    termination_grace_period_seconds: int = 600  # a clean InnoDB shutdown of a big buffer pool
    haproxy_image: str | None = None  # None: `image`, which ships the HAProxy the tests use
    haproxy_replicas: int = 2
    temporal_tls: TemporalTLS | None = None

    def __post_init__(self) -> None:
        if not self.image or not self.temporal_address:
            raise ValueError("PodSettings needs an image and a Temporal address")
        if self.anti_affinity not in ("preferred", "required"):
            raise ValueError(f"anti_affinity must be preferred or required: {self.anti_affinity}")
        if self.termination_grace_period_seconds < 0:
            raise ValueError("termination_grace_period_seconds must not be negative")
        if self.haproxy_replicas < 1:
            raise ValueError("haproxy_replicas must be at least 1")

    @property
    def load_balancer_image(self) -> str:
        return self.haproxy_image or self.image


# -- names ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterNames:
    statefulset: str
    headless_service: str
    config_map: str
    secret: str
    pod_disruption_budget: str
    haproxy_config_map: str
    haproxy: str  # the Deployment and its PodDisruptionBudget
    writer_service: str
    reader_service: str

    @classmethod
    def of(cls, cluster: ClusterRef) -> "ClusterNames":
        check_cluster(cluster)
        name = cluster.name
        return cls(
            statefulset=name,
            headless_service=f"{name}-hl",
            config_map=f"{name}-config",
            secret=f"{name}-secrets",
            pod_disruption_budget=name,
            haproxy_config_map=f"{name}-haproxy",
            haproxy=f"{name}-haproxy",
            writer_service=f"{name}-writer",
            reader_service=f"{name}-reader",
        )


def node_pod_name(cluster: ClusterRef, ordinal: int) -> str:
    """`<name>-<i>`: the StatefulSet's pod, and the node's name everywhere else."""
    check_cluster(cluster)
    if ordinal < 0:
        raise ValueError(f"ordinal must not be negative: {ordinal}")
    return f"{cluster.name}-{ordinal}"


def peer_host(cluster: ClusterRef, ordinal: int, domain: str = CLUSTER_DOMAIN) -> str:
    """`<name>-<i>.<name>-hl.<ns>.svc.<cluster domain>`: resolvable from the pod's creation
    on, Ready or not. Fully qualified: HAProxy's resolvers ask the cluster DNS for the name
    as written (no search list), and the cluster DNS answers only in its domain."""
    names = ClusterNames.of(cluster)
    pod = node_pod_name(cluster, ordinal)
    return f"{pod}.{names.headless_service}.{cluster.namespace}.svc.{domain}"


def service_host(cluster: ClusterRef, service: str, domain: str = CLUSTER_DOMAIN) -> str:
    return f"{service}.{cluster.namespace}.svc.{domain}"


def node_config_key(cluster: ClusterRef, ordinal: int) -> str:
    """`<name>-<i>.cnf`: node i's my.cnf in the ConfigMap `<name>-config`, which the agent
    reads as `<MYSQLOPS_CONFIG_DIR>/<MYSQLOPS_NODE>.cnf` (its peers are the hosts of the file's
    `wsrep_cluster_address`)."""
    return node_pod_name(cluster, ordinal) + NODE_CONFIG_SUFFIX


def data_claim_name(cluster: ClusterRef, ordinal: int) -> str:
    """`data-<name>-<i>`: the PersistentVolumeClaim the StatefulSet makes for node i."""
    return f"{DATA_VOLUME}-{node_pod_name(cluster, ordinal)}"


# -- metadata ------------------------------------------------------------------------------------


def selector(cluster: ClusterRef, component: Component) -> dict[str, str]:
    """What selects one component's pods (as the chart's selectorLabels: name, instance,
    component; the name keeps another application's `instance` label out)."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: cluster.name, LABEL_COMPONENT: component}


def labels(cluster: ClusterRef, component: Component) -> dict[str, str]:
    return {
        **selector(cluster, component),
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_CLUSTER: cluster.name,
    }


def owner_reference(owner: Owner) -> Manifest:
    """The MySQLCluster as the controller of an object: the garbage collector deletes the
    object after it (setting blockOwnerDeletion needs `update` on mysqlclusters/finalizers)."""
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(cluster: ClusterRef, name: str, component: Component, owner: Owner | None) -> Manifest:
    """An object's metadata; `owner` None for one that outlives the MySQLCluster."""
    meta: Manifest = {
        "name": name,
        "namespace": cluster.namespace,
        "labels": labels(cluster, component),
    }
    if owner is not None:
        if owner.name != cluster.name:
            raise ValueError(f"owner {owner.name!r} is not the cluster {cluster.name!r}")
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def container_ports(ports: tuple[tuple[str, int], ...]) -> list[Manifest]:
    return [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in ports]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def kube_quantity(size: str) -> str:
    """The spec's size as Kubernetes spells it: the models also take 'K' for 1000 ('k')."""
    return size[:-1] + "k" if size.endswith("K") else size


def pod_security_context() -> Manifest:
    """The image's own non-root user (the mysqlops image: uid 10001, numeric, so the kubelet
    can check runAsNonRoot); fsGroup makes the data volume writable and the Secret's files
    (mode 0440, group fsGroup) readable by that user whatever its uid, since the kubelet
    adds fsGroup to the container's groups. OnRootMismatch: a volume already ours is not
    walked again (a recursive chown of a large data directory would delay every start)."""
    return {
        "runAsNonRoot": True,
        "fsGroup": 10001,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    """Nothing mariadbd, the agent or HAProxy needs: no capability (all ports above 1024), no
    write outside the volumes."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def image_pull_secrets(settings: PodSettings) -> list[Manifest]:
    return [{"name": name} for name in settings.image_pull_secrets]
