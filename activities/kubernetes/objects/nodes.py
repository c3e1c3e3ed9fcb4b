"""The database side of a cluster: the nodes' StatefulSet, their headless Service, the nodes'
my.cnf files, the PodDisruptionBudget, and the metadata of the Secret the runtime writes."""

from collections.abc import Mapping

from activities.kubernetes.objects.common import (
    AGENT_COMMAND,
    CONFIG_DIR,
    DATA_VOLUME,
    DATABASE,
    ENV_CLUSTER,
    ENV_CLUSTER_NAMESPACE,
    ENV_CONFIG_DIR,
    ENV_DONOR_SERVES,
    ENV_NODE,
    ENV_NODE_DIR,
    ENV_POD_IP,
    ENV_SECRETS_DIR,
    ENV_TEMPORAL_ADDRESS,
    ENV_TEMPORAL_NAMESPACE,
    ENV_TEMPORAL_TLS,
    ENV_WORKFLOW_ID,
    HOSTNAME_TOPOLOGY,
    NODE_CONFIG_SUFFIX,
    NODE_CONTAINER,
    NODE_DIR,
    NODE_PORTS,
    PEER_PORTS,
    PRE_STOP_COMMAND,
    SECRET_MODE,
    SECRETS_DIR,
    TEMPORAL_TLS_DIR,
    TMP_DIR,
    ClusterNames,
    Manifest,
    Owner,
    PodSettings,
    check_cluster,
    container_ports,
    container_security_context,
    image_pull_secrets,
    kube_quantity,
    labels,
    metadata,
    node_config_key,
    pod_security_context,
    selector,
)
from api.cluster import MySQLClusterSpec, cluster_workflow_id
from api.layout import ClusterRef

# Readiness feeds the PodDisruptionBudget and the Ready count, not the traffic (HAProxy asks
# each agent's /health itself, every second). A node that stops serving must block evictions
# at once, so one failure is enough; a false "not ready" only delays a drain by a period.
READINESS = {"periodSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 1, "successThreshold": 1}
# Liveness restarts the container: only when the agent itself is wedged, never for a node in
# recovery or in an SST (the agent answers /live then). A minute without an answer.
LIVENESS = {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6, "successThreshold": 1}


def config_map(cluster: ClusterRef, owner: Owner, node_configs: Mapping[str, str]) -> Manifest:
    """`<name>-config`: every node's my.cnf, mounted whole at CONFIG_DIR. `node_configs` is the
    data: node i's file under `<name>-<i>.cnf` (node_config_key), rendered by the runtime with
    the local renderer (activities/local/mycnf.py, the peers by DNS name). The agent installs
    its own at every start and takes its peers from its `wsrep_cluster_address`; the kubelet
    refreshes the mounted files, so a new peer list reaches a node at its next start, without
    a new pod. Refuses a key that is no node's of the cluster (that pod would find no file)."""
    ordinals = sorted((_ordinal(cluster, key), key) for key in node_configs)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(cluster, ClusterNames.of(cluster).config_map, DATABASE, owner),
        "data": {key: node_configs[key] for _, key in ordinals},
    }


def _ordinal(cluster: ClusterRef, key: str) -> int:
    """i of the key `<name>-<i>.cnf`."""
    digits = key.removeprefix(f"{cluster.name}-").removesuffix(NODE_CONFIG_SUFFIX)
    if digits.isascii() and digits.isdigit() and key == node_config_key(cluster, int(digits)):
        return int(digits)
    raise ValueError(
        f"{key!r} is not a node's key in cluster {cluster.name!r}: <name>-<i>{NODE_CONFIG_SUFFIX}"
    )


def headless_service(cluster: ClusterRef, owner: Owner) -> Manifest:
    """`<name>-hl`: the pods' DNS names, published before they are Ready, since Galera peers
    must find each other to become Ready at all."""
    names = ClusterNames.of(cluster)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(cluster, names.headless_service, DATABASE, owner),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector(cluster, DATABASE),
            "ports": [
                {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
                for name, port in PEER_PORTS
            ],
        },
    }


def pod_disruption_budget(cluster: ClusterRef, owner: Owner) -> Manifest:
    """`<name>`: one node pod at a time may be evicted, and none while another is not Ready
    (IfHealthyBudget: a not-Ready pod goes only when the others are all healthy)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(
            cluster, ClusterNames.of(cluster).pod_disruption_budget, DATABASE, owner
        ),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(cluster, DATABASE)},
            "unhealthyPodEvictionPolicy": "IfHealthyBudget",
        },
    }


def secret_metadata(cluster: ClusterRef, spec: MySQLClusterSpec, owner: Owner) -> Manifest:
    """The metadata of `<name>-secrets`, which the runtime creates and fills. It goes with the
    MySQLCluster only under `deletionPolicy: Delete`: retained data keeps the passwords its
    users were created with (as the local runtime keeps its secrets directory)."""
    kept = spec.deletion_policy != "Delete"
    return metadata(cluster, ClusterNames.of(cluster).secret, DATABASE, None if kept else owner)


def _field(path: str) -> Manifest:
    return {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}


def node_env(cluster: ClusterRef, spec: MySQLClusterSpec, settings: PodSettings) -> list[Manifest]:
    """The agent's configuration: names and paths only, never a secret's value. Nothing here
    depends on spec.replicas (the agent's peers are in its my.cnf, in the ConfigMap): a scale
    changes the StatefulSet's replicas and never its pod template, so with OnDelete no
    existing pod looks outdated after one."""
    check_cluster(cluster)
    env: list[Manifest] = [
        {"name": ENV_NODE, "valueFrom": _field("metadata.name")},
        {"name": ENV_POD_IP, "valueFrom": _field("status.podIP")},
        {"name": ENV_CLUSTER_NAMESPACE, "valueFrom": _field("metadata.namespace")},
        {"name": ENV_CLUSTER, "value": cluster.name},
        {"name": ENV_WORKFLOW_ID, "value": cluster_workflow_id(cluster.namespace, cluster.name)},
        {"name": ENV_TEMPORAL_ADDRESS, "value": settings.temporal_address},
        {"name": ENV_TEMPORAL_NAMESPACE, "value": settings.temporal_namespace},
        {"name": ENV_DONOR_SERVES, "value": "true" if spec.health.serve_from_donor else "false"},
        {"name": ENV_NODE_DIR, "value": NODE_DIR},
        {"name": ENV_CONFIG_DIR, "value": CONFIG_DIR},
        {"name": ENV_SECRETS_DIR, "value": SECRETS_DIR},
    ]
    tls = settings.temporal_tls
    if tls is not None:
        files = {"cert": tls.cert_key, "key": tls.key_key, "ca": tls.ca_key}
        env += [
            {"name": ENV_TEMPORAL_TLS[part], "value": f"{TEMPORAL_TLS_DIR}/{key}"}
            for part, key in files.items()
            if key
        ]
    return env


def _volumes(cluster: ClusterRef, settings: PodSettings) -> tuple[list[Manifest], list[Manifest]]:
    """The pod's volumes and the container's mounts (the data volume comes from the claim
    template)."""
    names = ClusterNames.of(cluster)
    volumes: list[Manifest] = [
        {"name": "config", "configMap": {"name": names.config_map}},
        {"name": "secrets", "secret": {"secretName": names.secret, "defaultMode": SECRET_MODE}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[Manifest] = [
        {"name": DATA_VOLUME, "mountPath": NODE_DIR},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": TMP_DIR},
    ]
    tls = settings.temporal_tls
    if tls is not None:
        keys = [key for key in (tls.cert_key, tls.key_key, tls.ca_key) if key]
        volumes.append(
            {
                "name": "temporal-tls",
                "secret": {
                    "secretName": tls.secret_name,
                    "defaultMode": SECRET_MODE,
                    "items": [{"key": key, "path": key} for key in keys],
                },
            }
        )
        mounts.append({"name": "temporal-tls", "mountPath": TEMPORAL_TLS_DIR, "readOnly": True})
    return volumes, mounts


def _anti_affinity(cluster: ClusterRef, mode: str) -> Manifest:
    """Node pods on different hosts: preferred (a small cluster still schedules on one host)
    or required (a host's failure never takes two nodes; a pod stays Pending without one)."""
    term = {
        "labelSelector": {"matchLabels": selector(cluster, DATABASE)},
        "topologyKey": HOSTNAME_TOPOLOGY,
    }
    if mode == "required":
        return {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    return {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term}
        ]
    }


def node_container(cluster: ClusterRef, spec: MySQLClusterSpec, settings: PodSettings) -> Manifest:
    _, mounts = _volumes(cluster, settings)
    return {
        "name": NODE_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(AGENT_COMMAND),
        "ports": container_ports(NODE_PORTS),
        "env": node_env(cluster, spec, settings),
        "volumeMounts": mounts,
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "agent"}, **READINESS},
        "livenessProbe": {"httpGet": {"path": "/live", "port": "agent"}, **LIVENESS},
        "lifecycle": {"preStop": {"exec": {"command": list(PRE_STOP_COMMAND)}}},
        # The spec has no resources yet: none (the pod is BestEffort).
        "securityContext": container_security_context(),
    }


def statefulset(
    cluster: ClusterRef, spec: MySQLClusterSpec, owner: Owner, settings: PodSettings
) -> Manifest:
    """`<name>`: the nodes. Parallel (the controller, not the StatefulSet, orders starts) and
    OnDelete (the controller rolls the pods one at a time, the writer last)."""
    names = ClusterNames.of(cluster)
    volumes, _ = _volumes(cluster, settings)
    claim: Manifest = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": kube_quantity(spec.storage.size)}},
    }
    if settings.storage_class:
        claim["storageClassName"] = settings.storage_class
    pod: Manifest = {
        "automountServiceAccountToken": False,  # the agent calls Temporal, not the API server
        "enableServiceLinks": False,
        # The pause container is PID 1 and reaps the processes mariadbd's SST scripts leave
        # behind; the agent (not PID 1) gets the kubelet's SIGTERM with default semantics.
        "shareProcessNamespace": True,
        "terminationGracePeriodSeconds": settings.termination_grace_period_seconds,
        "securityContext": pod_security_context(),
        "affinity": {"podAntiAffinity": _anti_affinity(cluster, settings.anti_affinity)},
        "containers": [node_container(cluster, spec, settings)],
        "volumes": volumes,
    }
    if settings.image_pull_secrets:
        pod["imagePullSecrets"] = image_pull_secrets(settings)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(cluster, names.statefulset, DATABASE, owner),
        "spec": {
            "replicas": spec.replicas,
            "serviceName": names.headless_service,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "selector": {"matchLabels": selector(cluster, DATABASE)},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Delete" if spec.deletion_policy == "Delete" else "Retain",
                "whenScaled": "Retain",
            },
            "template": {"metadata": {"labels": labels(cluster, DATABASE)}, "spec": pod},
            "volumeClaimTemplates": [
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": DATA_VOLUME, "labels": labels(cluster, DATABASE)},
                    "spec": claim,
                }
            ],
        },
    }
