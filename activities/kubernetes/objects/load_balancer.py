"""The load-balancer side of a cluster: HAProxy's configuration, its Deployment and
PodDisruptionBudget, and the writer and reader Services clients connect to."""

from activities.kubernetes.objects.common import (
    ENV_POD_IP,
    ENV_RUN_DIR,
    HAPROXY_CFG_KEY,
    HAPROXY_CONFIG_DIR,
    HAPROXY_CONFIG_HASH,
    HAPROXY_CONTAINER,
    HAPROXY_PORTS,
    HAPROXY_RUN_DIR,
    HOSTNAME_TOPOLOGY,
    LOAD_BALANCER,
    SERVICE_PORT,
    ClusterNames,
    Manifest,
    Owner,
    PodSettings,
    container_ports,
    container_security_context,
    image_pull_secrets,
    labels,
    metadata,
    selector,
    sha256,
)
from api.layout import ClusterRef

HAPROXY_COMMAND = ("haproxy", "-W", "-db", "-f", f"{HAPROXY_CONFIG_DIR}/{HAPROXY_CFG_KEY}")


def haproxy_config_map(cluster: ClusterRef, owner: Owner, haproxy_cfg: str) -> Manifest:
    """`<name>-haproxy`: the rendered haproxy.cfg (key `haproxy.cfg`)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            cluster, ClusterNames.of(cluster).haproxy_config_map, LOAD_BALANCER, owner
        ),
        "data": {HAPROXY_CFG_KEY: haproxy_cfg},
    }


def haproxy_deployment(
    cluster: ClusterRef, owner: Owner, settings: PodSettings, haproxy_cfg: str
) -> Manifest:
    """`<name>-haproxy`. HAProxy reads its file only when it starts, so the pod template carries
    the file's sha256: a changed configuration replaces the pods one at a time, a new one
    Ready before an old one goes (maxUnavailable 0)."""
    names = ClusterNames.of(cluster)
    ours = settings.haproxy_image is None
    pod_security: Manifest = {"seccompProfile": {"type": "RuntimeDefault"}}
    if ours:  # the mysqlops image's user is numeric (10001): the kubelet can check it
        pod_security["runAsNonRoot"] = True
    container: Manifest = {
        "name": HAPROXY_CONTAINER,
        "image": settings.load_balancer_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(HAPROXY_COMMAND),
        # For the configuration: `bind "${MYSQLOPS_POD_IP}:3306"` (HAProxy expands a variable
        # only inside double quotes); the run directory holds the stats socket and state file.
        "env": [
            {
                "name": ENV_POD_IP,
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
            },
            {"name": ENV_RUN_DIR, "value": HAPROXY_RUN_DIR},
        ],
        "ports": container_ports(HAPROXY_PORTS),
        # Ready once it listens: whether a node serves is HAProxy's own check of each agent.
        "readinessProbe": {
            "tcpSocket": {"port": "writer"},
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "stats"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": "config", "mountPath": HAPROXY_CONFIG_DIR, "readOnly": True},
            {"name": "run", "mountPath": HAPROXY_RUN_DIR},
        ],
        "securityContext": container_security_context(),
    }
    pod: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security,
        # Always preferred: two replicas must schedule on a one-host cluster too.
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": selector(cluster, LOAD_BALANCER)},
                            "topologyKey": HOSTNAME_TOPOLOGY,
                        },
                    }
                ]
            }
        },
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": names.haproxy_config_map}},
            {"name": "run", "emptyDir": {}},
        ],
    }
    if settings.image_pull_secrets:
        pod["imagePullSecrets"] = image_pull_secrets(settings)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(cluster, names.haproxy, LOAD_BALANCER, owner),
        "spec": {
            "replicas": settings.haproxy_replicas,
            "selector": {"matchLabels": selector(cluster, LOAD_BALANCER)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels(cluster, LOAD_BALANCER),
                    "annotations": {HAPROXY_CONFIG_HASH: sha256(haproxy_cfg)},
                },
                "spec": pod,
            },
        },
    }


def haproxy_pod_disruption_budget(cluster: ClusterRef, owner: Owner) -> Manifest:
    """`<name>-haproxy`: a drain never takes every HAProxy replica at once."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(cluster, ClusterNames.of(cluster).haproxy, LOAD_BALANCER, owner),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(cluster, LOAD_BALANCER)},
        },
    }


def _endpoint(cluster: ClusterRef, owner: Owner, name: str, target: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(cluster, name, LOAD_BALANCER, owner),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(cluster, LOAD_BALANCER),
            "ports": [
                {"name": "mysql", "port": SERVICE_PORT, "targetPort": target, "protocol": "TCP"}
            ],
        },
    }


def writer_service(cluster: ClusterRef, owner: Owner) -> Manifest:
    """`<name>-writer`: port 3306 to HAProxy's writer frontend (one node takes all writes)."""
    return _endpoint(cluster, owner, ClusterNames.of(cluster).writer_service, "writer")


def reader_service(cluster: ClusterRef, owner: Owner) -> Manifest:
    """`<name>-reader`: port 3306 to HAProxy's reader frontend (3307: every serving node)."""
    return _endpoint(cluster, owner, ClusterNames.of(cluster).reader_service, "reader")
