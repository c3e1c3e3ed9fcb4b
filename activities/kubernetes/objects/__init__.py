"""The Kubernetes objects of one MySQL cluster, as pure functions returning manifests (plain
dicts, as the official client takes them for create and patch). No API calls here: the
Kubernetes runtime creates and patches what these return. docs/kubernetes.md ("What the
Kubernetes runtime creates") is the reference for users; the node agent relies on the names,
ports, paths and environment below (constants in `common`).

Objects of cluster `<name>` in its namespace, all owned by the MySQLCluster (controller,
blockOwnerDeletion), labelled `app.kubernetes.io/name: mysql`, `app.kubernetes.io/instance:
<name>`, `app.kubernetes.io/managed-by: mysqlops`, `app.kubernetes.io/component: database |
load-balancer`, `mysqlops.io/cluster: <name>`; selectors use name, instance and component:

- StatefulSet `<name>`: pods `<name>-<i>`, serviceName `<name>-hl`, Parallel, OnDelete,
  claims `data-<name>-<i>` (ReadWriteOnce, spec.storage.size), deleted with the StatefulSet
  only under `deletionPolicy: Delete`, never on scale-down; anti-affinity on the host.
- Service `<name>-hl`: headless, publishNotReadyAddresses; ports mysql 3306, galera 4567, ist
  4568, sst 4444, agent 8080. Peers are `<name>-<i>.<name>-hl.<ns>.svc`.
- ConfigMap `<name>-config`: one key per node, `<name>-<i>.cnf` (`node_config_key`), that
  node's my.cnf as the runtime renders it (activities/local/mycnf.py, peers by DNS name);
  mounted at /etc/mysqlops/config. The agent installs its own at every start and takes its
  peers from its `wsrep_cluster_address`.
- Secret `<name>-secrets`: written by the runtime (`secret_metadata` here; keys agent-token,
  app-password, monitor-password, root-password), mounted whole at /etc/mysqlops/secrets
  (mode 0440, group fsGroup). Owned by the MySQLCluster only under `deletionPolicy: Delete`.
- PodDisruptionBudget `<name>`: maxUnavailable 1 over the node pods.
- ConfigMap `<name>-haproxy` (key `haproxy.cfg`), Deployment `<name>-haproxy` (container
  `haproxy`: `haproxy -W -db -f /etc/mysqlops/haproxy/haproxy.cfg`; ports writer 3306, reader
  3307, stats 8404), PodDisruptionBudget `<name>-haproxy` (maxUnavailable 1).
- Services `<name>-writer` (3306 → writer) and `<name>-reader` (3306 → reader, 3307).

The node container `mysql` runs `tini -s -- mysqlops agent --from-env` (the agent, which starts
mariadbd and mysqld_exporter as its children, as in the local runtime) with ports mysql 3306,
galera 4567, ist 4568, sst 4444, agent 8080, agent-metrics 9470, exporter 9104; readiness
`GET /ready`, liveness `GET /live` on port agent; preStop `... --from-env --stop`. Environment
(names and paths only, never a secret): MYSQLOPS_NODE, MYSQLOPS_POD_IP,
MYSQLOPS_CLUSTER_NAMESPACE (field references), MYSQLOPS_CLUSTER, MYSQLOPS_WORKFLOW_ID,
TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MYSQLOPS_DONOR_SERVES, MYSQLOPS_NODE_DIR=/var/lib/mysqlops
(the claim), MYSQLOPS_CONFIG_DIR=/etc/mysqlops/config, MYSQLOPS_SECRETS_DIR=/etc/mysqlops/secrets,
and TEMPORAL_TLS_CERT / _KEY / _CA (files under /etc/mysqlops/temporal-tls) when configured.
Nothing in the pod template depends on spec.replicas: a scale changes the StatefulSet's
replicas only, so with OnDelete no existing pod looks outdated after one.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from activities.kubernetes.objects.common import (
    ClusterNames,
    Manifest,
    Owner,
    PodSettings,
    TemporalTLS,
    data_claim_name,
    labels,
    node_config_key,
    node_pod_name,
    owner_reference,
    peer_host,
    selector,
    service_host,
)
from activities.kubernetes.objects.load_balancer import (
    haproxy_config_map,
    haproxy_deployment,
    haproxy_pod_disruption_budget,
    reader_service,
    writer_service,
)
from activities.kubernetes.objects.nodes import (
    config_map,
    headless_service,
    node_container,
    node_env,
    pod_disruption_budget,
    secret_metadata,
    statefulset,
)
from api.cluster import MySQLClusterSpec
from api.layout import ClusterRef

__all__ = [
    "ClusterNames",
    "Manifest",
    "ObjectKey",
    "Owner",
    "PodSettings",
    "TemporalTLS",
    "cluster_manifests",
    "config_map",
    "data_claim_name",
    "haproxy_config_map",
    "haproxy_deployment",
    "haproxy_pod_disruption_budget",
    "headless_service",
    "labels",
    "node_config_key",
    "node_container",
    "node_env",
    "node_pod_name",
    "owned_objects",
    "owner_reference",
    "peer_host",
    "pod_disruption_budget",
    "reader_service",
    "secret_metadata",
    "selector",
    "service_host",
    "statefulset",
    "writer_service",
]


@dataclass(frozen=True)
class ObjectKey:
    api_version: str
    kind: str
    name: str


def cluster_manifests(
    cluster: ClusterRef,
    spec: MySQLClusterSpec,
    owner: Owner,
    settings: PodSettings,
    node_configs: Mapping[str, str],
    haproxy_cfg: str,
) -> list[Manifest]:
    """Every object these functions build, in the order to create them: what a pod mounts
    before the pod (the Secret, which the runtime writes, must exist before the StatefulSet).
    `node_configs`: each node's my.cnf by its key `<name>-<i>.cnf` (see `config_map`)."""
    return [
        config_map(cluster, owner, node_configs),
        headless_service(cluster, owner),
        pod_disruption_budget(cluster, owner),
        statefulset(cluster, spec, owner, settings),
        haproxy_config_map(cluster, owner, haproxy_cfg),
        haproxy_pod_disruption_budget(cluster, owner),
        haproxy_deployment(cluster, owner, settings, haproxy_cfg),
        writer_service(cluster, owner),
        reader_service(cluster, owner),
    ]


def owned_objects(cluster: ClusterRef, spec: MySQLClusterSpec) -> list[ObjectKey]:
    """What the MySQLCluster owns: the garbage collector removes these after it (and the
    StatefulSet's pods; its claims too under `deletionPolicy: Delete`). The Secret is among
    them only under Delete; otherwise it stays with the retained claims `data-<name>-<i>`."""
    names = ClusterNames.of(cluster)
    owned = [
        ObjectKey("v1", "ConfigMap", names.config_map),
        ObjectKey("v1", "Service", names.headless_service),
        ObjectKey("policy/v1", "PodDisruptionBudget", names.pod_disruption_budget),
        ObjectKey("apps/v1", "StatefulSet", names.statefulset),
        ObjectKey("v1", "ConfigMap", names.haproxy_config_map),
        ObjectKey("policy/v1", "PodDisruptionBudget", names.haproxy),
        ObjectKey("apps/v1", "Deployment", names.haproxy),
        ObjectKey("v1", "Service", names.writer_service),
        ObjectKey("v1", "Service", names.reader_service),
    ]
    if spec.deletion_policy == "Delete":
        owned.append(ObjectKey("v1", "Secret", names.secret))
    return owned
