"""The Kubernetes runtime: each node a Pod of the cluster's StatefulSet, HAProxy a Deployment in
front, every node operation a call to the node agent in the Pod (docs/agent-api.md).

The objects come from `activities/kubernetes/objects` (docs/kubernetes.md, "What the
Kubernetes runtime creates"); this module creates, patches and deletes them with the official
client (blocking: activities run runtimes in threads) and talks to the agents. Every operation
is idempotent, as the workflow retries them: objects are created or else patched to what they
must be, a stop of a node that does not run does nothing.

The cluster's addresses are DNS names (`<name>-<i>.<name>-hl.<ns>.svc`, the writer and reader
Services): stable across Pod recreation, which changes a Pod's IP. The agents are reached at
their Pod's current IP, read from the Pod's status at each call.
"""

import base64
import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config

from activities.agent_client import AgentClient, AgentUnreachable
from activities.agent_nodes import AgentNodes
from activities.kubernetes import objects
from activities.kubernetes.client import IN_CLUSTER, as_object
from activities.kubernetes.objects import common
from activities.local import backup, haproxy, mycnf
from activities.local.config_check import server_config_errors
from activities.runtime import (
    ClusterLayout,
    ClusterRef,
    LoadBalancerView,
    NodeLayout,
    ProcessFacts,
    StopMode,
)
from api.agent import TOKEN_SECRET
from api.cluster import MySQLClusterSpec
from api.crd import GROUP, VERSION
from api.states import ExitKind

Manifest = dict[str, Any]

POD_WAIT = 300.0  # a Pod's first start: scheduling, a volume to bind, an image to pull
POLL = 0.5


@dataclass(frozen=True)
class KubernetesSettings:
    pods: objects.PodSettings
    backup_root: Path  # where the worker mounts the backup volume (ReadWriteMany for many)
    pod_wait: float = POD_WAIT
    domain: str = common.CLUSTER_DOMAIN


class KubernetesRuntime(AgentNodes):
    def __init__(self, api: k8s.ApiClient, settings: KubernetesSettings) -> None:
        self.settings = settings
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)
        self.policy = k8s.PolicyV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self._http = urllib3.PoolManager(retries=False, maxsize=8)

    # -- layout ----------------------------------------------------------------------------

    def layout(self, cluster: ClusterRef, replicas: int) -> ClusterLayout:
        names = objects.ClusterNames.of(cluster)
        return ClusterLayout(
            cluster=cluster,
            host=objects.service_host(cluster, names.writer_service, self.settings.domain),
            writer_port=common.SERVICE_PORT,
            reader_host=objects.service_host(cluster, names.reader_service, self.settings.domain),
            reader_port=common.SERVICE_PORT,
            nodes=[
                NodeLayout(
                    name=objects.node_pod_name(cluster, i),
                    ordinal=i,
                    host=objects.peer_host(cluster, i, self.settings.domain),
                    port=common.PORT_MYSQL,
                )
                for i in range(replicas)
            ],
        )

    # -- provisioning ----------------------------------------------------------------------

    def provision_node(
        self, layout: ClusterLayout, node: str, spec: MySQLClusterSpec, bootstrap_candidate: bool
    ) -> None:
        """The cluster's objects as `layout` and `spec` say (the StatefulSet's replicas are the
        layout's nodes), then the node's Pod running with its agent answering; a bootstrap
        candidate's data directory initialised by its agent (never over existing data)."""
        cluster = layout.cluster
        owner = self._owner(cluster)
        sized = spec.model_copy(update={"replicas": len(layout.nodes)})
        self.ensure_secret(cluster, TOKEN_SECRET)
        names = objects.ClusterNames.of(cluster)
        self.core.patch_namespaced_secret(
            names.secret,
            cluster.namespace,
            {"metadata": objects.secret_metadata(cluster, spec, owner)},
        )
        configs = {
            objects.node_config_key(cluster, n.ordinal): mycnf.render(
                self._node_config(layout, n), spec
            )
            for n in layout.nodes
        }
        self._apply(objects.config_map(cluster, owner, configs))
        self._apply(objects.headless_service(cluster, owner))
        self._apply(objects.pod_disruption_budget(cluster, owner))
        self._apply(objects.statefulset(cluster, sized, owner, self.settings.pods))
        agent = self._agent(layout, node)
        if bootstrap_candidate:
            agent.initialize()

    def _node_config(self, layout: ClusterLayout, node: NodeLayout) -> mycnf.NodeConfig:
        cluster = layout.cluster
        return mycnf.NodeConfig(
            cluster_name=f"{cluster.namespace}.{cluster.name}",
            node_name=node.name,
            ordinal=node.ordinal,
            host=node.host,
            port=common.PORT_MYSQL,
            galera_port=common.PORT_GALERA,
            ist_port=common.PORT_IST,
            sst_port=common.PORT_SST,
            peers=tuple(f"{n.host}:{common.PORT_GALERA}" for n in layout.nodes),
            datadir=f"{common.NODE_DIR}/data",
            socket=f"{common.NODE_DIR}/mariadbd.sock",
            pid_file=f"{common.NODE_DIR}/mariadbd.pid",
            error_log=f"{common.NODE_DIR}/error.log",
            run_as_root=False,  # the agent adds `user = root` where it runs as root
        )

    def config_errors(self, layout: ClusterLayout, spec: MySQLClusterSpec) -> str | None:
        return server_config_errors(mycnf.render(self._node_config(layout, layout.nodes[0]), spec))

    # -- nodes, through their agents -------------------------------------------------------

    def start_node(self, layout: ClusterLayout, node: str, bootstrap: bool) -> int:
        """Start it with the configuration last delivered: the agent waits until its Pod sees
        that version of the ConfigMap (the kubelet refreshes mounted files late)."""
        cluster = layout.cluster
        names = objects.ClusterNames.of(cluster)
        config = self._read(self.core.read_namespaced_config_map, cluster, names.config_map)
        key = objects.node_config_key(cluster, layout.node(node).ordinal)
        text = ((config or {}).get("data") or {}).get(key)
        digest = hashlib.sha256(text.encode()).hexdigest() if text is not None else None
        return self._agent(layout, node).start(bootstrap, config_sha256=digest)

    def stop_node(self, layout: ClusterLayout, node: str, mode: StopMode, timeout: float) -> None:
        pod = self._read_pod(layout.cluster, node)
        if pod is None or not _pod_ip(pod):
            return  # no Pod, or none running: no mariadbd runs
        try:
            self._agent_of(layout.cluster, pod).stop(mode, timeout)
        except AgentUnreachable:
            if _running(pod):
                raise  # its container runs and the agent does not answer: not known stopped

    def process_facts(self, layout: ClusterLayout, node: str) -> ProcessFacts:
        cluster = layout.cluster
        if self._read(self.apps.read_namespaced_stateful_set, cluster, cluster.name) is None:
            return ProcessFacts(alive=False, provisioned=False)
        pod = self._read_pod(cluster, node)
        if pod is None:
            return ProcessFacts(alive=False, exit_detail=f"pod {node} does not exist")
        if _pod_ip(pod):
            try:
                return self._agent_of(cluster, pod).status().facts
            except (AgentUnreachable, TimeoutError):
                pass
        return _container_facts(pod)

    def remove_node(self, layout: ClusterLayout, node: str, delete_data: bool) -> None:
        """Scale the StatefulSet below the node (the highest ordinal: a StatefulSet removes
        from the top) once it is stopped; its claim is kept unless `delete_data`."""
        cluster = layout.cluster
        ordinal = layout.node(node).ordinal
        current = self._read(self.apps.read_namespaced_stateful_set, cluster, cluster.name)
        if current is not None:
            replicas = current["spec"]["replicas"]
            if ordinal < replicas - 1:
                raise RuntimeError(
                    f"{node} is not the highest ordinal of {replicas}: a StatefulSet can only "
                    "remove its last Pod"
                )
            if ordinal == replicas - 1:
                self.apps.patch_namespaced_stateful_set(
                    cluster.name, cluster.namespace, {"spec": {"replicas": ordinal}}
                )
        self._wait(lambda: self._read_pod(cluster, node) is None, f"pod {node} to go")
        if delete_data:
            self._delete(
                self.core.delete_namespaced_persistent_volume_claim,
                cluster,
                objects.data_claim_name(cluster, ordinal),
            )

    def retire_cluster(self, layout: ClusterLayout, delete_data: bool) -> None:
        """Delete what the cluster runs on; its claims and Secret only if `delete_data` (the
        passwords its users were made with go with the data they are in)."""
        cluster = layout.cluster
        names = objects.ClusterNames.of(cluster)
        self._delete(self.apps.delete_namespaced_deployment, cluster, names.haproxy)
        self._delete(self.apps.delete_namespaced_stateful_set, cluster, names.statefulset)
        for service in (names.writer_service, names.reader_service, names.headless_service):
            self._delete(self.core.delete_namespaced_service, cluster, service)
        for config_map in (names.config_map, names.haproxy_config_map):
            self._delete(self.core.delete_namespaced_config_map, cluster, config_map)
        for budget in (names.pod_disruption_budget, names.haproxy):
            self._delete(self.policy.delete_namespaced_pod_disruption_budget, cluster, budget)
        if not delete_data:
            return
        prefix = f"{common.DATA_VOLUME}-{cluster.name}-"
        claims = self._plain(self.core.list_namespaced_persistent_volume_claim(cluster.namespace))
        for claim in claims["items"]:
            name = claim["metadata"]["name"]
            if name.startswith(prefix) and name.removeprefix(prefix).isdigit():
                self._delete(self.core.delete_namespaced_persistent_volume_claim, cluster, name)
        self._delete(self.core.delete_namespaced_secret, cluster, names.secret)

    # -- load balancer ---------------------------------------------------------------------

    def configure_load_balancer(self, layout: ClusterLayout, members: list[str]) -> None:
        cluster = layout.cluster
        owner = self._owner(cluster)
        text = self._haproxy_config(layout, members)
        self._apply(objects.haproxy_config_map(cluster, owner, text))
        self._apply(objects.haproxy_pod_disruption_budget(cluster, owner))
        self._apply(objects.haproxy_deployment(cluster, owner, self.settings.pods, text))
        self._apply(objects.writer_service(cluster, owner))
        self._apply(objects.reader_service(cluster, owner))

    def _haproxy_config(self, layout: ClusterLayout, members: list[str]) -> str:
        run = Path(common.HAPROXY_RUN_DIR)
        return haproxy.render(
            cluster=layout.cluster.name,
            host="${MYSQLOPS_POD_IP}",
            writer_port=common.HAPROXY_WRITER_PORT,
            reader_port=common.HAPROXY_READER_PORT,
            stats_port=common.HAPROXY_STATS_PORT,
            stats_socket=run / "haproxy.sock",
            state_file=run / "haproxy.state",
            servers=[
                haproxy.Server(name=n.name, host=n.host, port=n.port, check_port=common.PORT_AGENT)
                for n in layout.nodes
                if n.name in members
            ],
            sticky=False,  # every replica must pick the same writer: the first that serves
            resolve=True,
        )

    def load_balancer_view(self, layout: ClusterLayout) -> LoadBalancerView:
        """What the first HAProxy replica that answers sees (every replica checks the same
        agents and writes to the first server that serves)."""
        for ip in self._haproxy_ips(layout.cluster):
            try:
                answer = self._http.request(
                    "GET",
                    f"http://{ip}:{common.HAPROXY_STATS_PORT}/;csv",
                    timeout=urllib3.Timeout(connect=1, read=2),
                )
            except urllib3.exceptions.HTTPError:
                continue
            if answer.status != 200:
                continue
            found = haproxy.parse_stat(answer.data.decode(errors="replace"), "writer")
            up = [server.name for server in found if server.up]
            return LoadBalancerView(writer=up[0] if up else None, up=up)
        return LoadBalancerView()

    def _haproxy_ips(self, cluster: ClusterRef) -> list[str]:
        selector = ",".join(
            f"{k}={v}" for k, v in objects.selector(cluster, common.LOAD_BALANCER).items()
        )
        pods = self.core.list_namespaced_pod(cluster.namespace, label_selector=selector).items
        return sorted(p.status.pod_ip for p in pods if p.status and p.status.pod_ip)

    def stop_load_balancer(self, layout: ClusterLayout) -> None:
        cluster = layout.cluster
        name = objects.ClusterNames.of(cluster).haproxy
        if self._read(self.apps.read_namespaced_deployment, cluster, name) is not None:
            self.apps.patch_namespaced_deployment(
                name, cluster.namespace, {"spec": {"replicas": 0}}
            )

    # -- secrets ---------------------------------------------------------------------------

    def ensure_secret(self, cluster: ClusterRef, key: str) -> None:
        name = objects.ClusterNames.of(cluster).secret
        value = base64.b64encode(secrets.token_urlsafe(24).encode()).decode()
        existing = self._read(self.core.read_namespaced_secret, cluster, name)
        create, patch = _verbs(self, "Secret")
        if existing is None:
            try:
                create(
                    cluster.namespace,
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": name, "labels": objects.labels(cluster, "database")},
                        "type": "Opaque",
                        "data": {key: value},
                    },
                )
                return
            except k8s.ApiException as error:
                if error.status != 409:
                    raise
            existing = self._read(self.core.read_namespaced_secret, cluster, name)
        if existing is not None and key in (existing.get("data") or {}):
            return
        version = (existing or {}).get("metadata", {}).get("resourceVersion")
        # With the version read: a concurrent writer of another key makes this one retry.
        patch(
            name,
            cluster.namespace,
            {"metadata": {"resourceVersion": version}, "data": {key: value}},
        )

    def read_secret(self, cluster: ClusterRef, key: str) -> str:
        name = objects.ClusterNames.of(cluster).secret
        secret = self._read(self.core.read_namespaced_secret, cluster, name) or {}
        data = secret.get("data") or {}
        if key not in data:
            raise KeyError(f"secret {cluster.namespace}/{name} has no key {key}")
        return base64.b64decode(data[key]).decode().strip()

    # -- backups ---------------------------------------------------------------------------

    def backup_root(self) -> Path:
        return self.settings.backup_root

    def backup_tool(self) -> tuple[str, str]:
        return "mariabackup", backup.tool_version()

    # -- plumbing --------------------------------------------------------------------------

    def _owner(self, cluster: ClusterRef) -> objects.Owner:
        """The MySQLCluster: the Kubernetes runtime runs clusters made from objects only."""
        try:
            found = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, cluster.namespace, "mysqlclusters", cluster.name
            )
        except k8s.ApiException as error:
            if error.status == 404:
                raise RuntimeError(
                    f"no MySQLCluster {cluster.key}: the Kubernetes runtime runs clusters "
                    "made from MySQLCluster objects"
                ) from error
            raise
        return objects.Owner(name=cluster.name, uid=as_object(found)["metadata"]["uid"])

    def _agent(self, layout: ClusterLayout, node: str) -> AgentClient:
        """The agent of the node's Pod once the Pod runs and the agent answers."""
        cluster = layout.cluster
        deadline = time.monotonic() + self.settings.pod_wait
        while True:
            pod = self._read_pod(cluster, node)
            if pod is not None and _pod_ip(pod) and not _deleting(pod):
                agent = self._agent_of(cluster, pod)
                with contextlib.suppress(AgentUnreachable, TimeoutError):
                    agent.version()
                    return agent
            if time.monotonic() > deadline:
                state = _describe(pod) if pod is not None else "does not exist"
                raise TimeoutError(f"the agent of {node} does not answer: pod {state}")
            time.sleep(POLL)

    def _agent_of(self, cluster: ClusterRef, pod: Manifest) -> AgentClient:
        token = self.read_secret(cluster, TOKEN_SECRET)
        return AgentClient(f"{_pod_ip(pod)}:{common.PORT_AGENT}", token, self._http)

    def _read_pod(self, cluster: ClusterRef, name: str) -> Manifest | None:
        return self._read(self.core.read_namespaced_pod, cluster, name)

    def _read(self, read: Callable[..., Any], cluster: ClusterRef, name: str) -> Manifest | None:
        try:
            found = read(name, cluster.namespace)
        except k8s.ApiException as error:
            if error.status == 404:
                return None
            raise
        return self._plain(found)

    def _plain(self, found: object) -> Manifest:
        """An answer of the client as the API server's JSON (camelCase keys)."""
        result: Manifest = self.core.api_client.sanitize_for_serialization(found)
        return result

    def _delete(self, delete: Callable[..., Any], cluster: ClusterRef, name: str) -> None:
        try:
            delete(name, cluster.namespace)
        except k8s.ApiException as error:
            if error.status != 404:
                raise

    def _apply(self, manifest: Manifest) -> None:
        """Create, or patch the existing object to the manifest (a JSON merge patch: lists
        are replaced, so the object ends as built, not merged with an older version)."""
        kind, namespace = manifest["kind"], manifest["metadata"]["namespace"]
        create, patch = _verbs(self, kind)
        try:
            create(namespace, manifest)
            return
        except k8s.ApiException as error:
            if error.status != 409:
                raise
        patch(manifest["metadata"]["name"], namespace, manifest)

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.settings.pod_wait
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {self.settings.pod_wait:.0f} s for {what}")
            time.sleep(POLL)


def _verbs(runtime: KubernetesRuntime, kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    core, apps, policy = runtime.core, runtime.apps, runtime.policy
    table: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "ConfigMap": (core.create_namespaced_config_map, core.patch_namespaced_config_map),
        "Secret": (core.create_namespaced_secret, core.patch_namespaced_secret),
        "Service": (core.create_namespaced_service, core.patch_namespaced_service),
        "StatefulSet": (apps.create_namespaced_stateful_set, apps.patch_namespaced_stateful_set),
        "Deployment": (apps.create_namespaced_deployment, apps.patch_namespaced_deployment),
        "PodDisruptionBudget": (
            policy.create_namespaced_pod_disruption_budget,
            policy.patch_namespaced_pod_disruption_budget,
        ),
    }
    return table[kind]


def _pod_ip(pod: Manifest) -> str | None:
    ip: str | None = (pod.get("status") or {}).get("podIP")
    return ip


def _deleting(pod: Manifest) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _running(pod: Manifest) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any("running" in (s.get("state") or {}) for s in statuses)


def _container_facts(pod: Manifest) -> ProcessFacts:
    """The node container's own record when its agent cannot be asked: how it last ended."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    mine = next((s for s in statuses if s.get("name") == common.NODE_CONTAINER), None)
    if mine is None:
        return ProcessFacts(alive=False, exit_detail=f"pod {_describe(pod)}")
    ended = (mine.get("state") or {}).get("terminated") or (mine.get("lastState") or {}).get(
        "terminated"
    )
    if not ended:
        return ProcessFacts(alive=False, exit_detail=f"pod {_describe(pod)}")
    code, reason = ended.get("exitCode"), ended.get("reason") or ""
    signal = ended.get("signal")
    detail = f"container {reason or 'terminated'}: exit code {code}"
    if signal:
        detail += f", signal {signal}"
    detail += f" (restarts: {mine.get('restartCount', 0)})"
    kind = ExitKind.CLEAN if code == 0 and reason != "OOMKilled" else ExitKind.UNCLEAN
    return ProcessFacts(alive=False, exit_kind=kind, exit_detail=detail)


def _describe(pod: Manifest) -> str:
    status = pod.get("status") or {}
    waiting = [
        (s.get("state") or {}).get("waiting", {}).get("reason")
        for s in status.get("containerStatuses") or []
    ]
    reasons = ", ".join(r for r in waiting if r)
    return f"{pod['metadata']['name']} {status.get('phase', 'Pending')}" + (
        f" ({reasons})" if reasons else ""
    )


def from_environment(kubeconfig: str | None, temporal_address: str) -> KubernetesRuntime:
    """The runtime as a worker configures it: the API server as for the rest of the worker
    (a pod's service account, else the kubeconfig), the pods from MYSQLOPS_* variables."""
    configuration = k8s.Configuration()
    if kubeconfig is None and os.environ.get(IN_CLUSTER):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    env = os.environ
    image = env.get("MYSQLOPS_IMAGE")
    if not image:
        raise ValueError("the Kubernetes runtime needs MYSQLOPS_IMAGE: the image of the node pods")
    anti_affinity = env.get("MYSQLOPS_ANTI_AFFINITY", "preferred")
    if anti_affinity not in ("preferred", "required"):
        raise ValueError(f"MYSQLOPS_ANTI_AFFINITY must be preferred or required: {anti_affinity}")
    pull_policy = env.get("MYSQLOPS_IMAGE_PULL_POLICY", "IfNotPresent")
    if pull_policy not in ("Always", "IfNotPresent", "Never"):
        raise ValueError(
            f"MYSQLOPS_IMAGE_PULL_POLICY must be Always, IfNotPresent or Never: {pull_policy}"
        )
    pull_secrets = env.get("MYSQLOPS_IMAGE_PULL_SECRETS", "")
    pods = objects.PodSettings(
        image=image,
        temporal_address=env.get("MYSQLOPS_POD_TEMPORAL_ADDRESS", temporal_address),
        temporal_namespace=env.get("TEMPORAL_NAMESPACE", "default"),
        image_pull_policy=pull_policy,  # type: ignore[arg-type]  # checked above
        image_pull_secrets=tuple(name for name in pull_secrets.split(",") if name),
        storage_class=env.get("MYSQLOPS_STORAGE_CLASS") or None,
        anti_affinity="required" if anti_affinity == "required" else "preferred",
        haproxy_replicas=int(env.get("MYSQLOPS_HAPROXY_REPLICAS", "2")),
        temporal_tls=_temporal_tls(env),
    )
    settings = KubernetesSettings(
        pods=pods,
        backup_root=Path(env.get("MYSQLOPS_BACKUP_DIR", "/var/lib/mysqlops-backups")),
        pod_wait=float(env.get("MYSQLOPS_POD_WAIT", str(POD_WAIT))),
        domain=env.get("MYSQLOPS_CLUSTER_DOMAIN", common.CLUSTER_DOMAIN),
    )
    return KubernetesRuntime(k8s.ApiClient(configuration), settings)


def _temporal_tls(env: Mapping[str, str]) -> objects.TemporalTLS | None:
    """The Secret (in each cluster's namespace) with the agents' Temporal client certificate:
    MYSQLOPS_POD_TEMPORAL_TLS_SECRET, its keys MYSQLOPS_POD_TEMPORAL_TLS_{CERT,KEY,CA}_KEY
    (an empty CA key: the system's CAs)."""
    secret = env.get("MYSQLOPS_POD_TEMPORAL_TLS_SECRET")
    if not secret:
        return None
    prefix = "MYSQLOPS_POD_TEMPORAL_TLS_"
    return objects.TemporalTLS(
        secret_name=secret,
        cert_key=env.get(f"{prefix}CERT_KEY", "tls.crt"),
        key_key=env.get(f"{prefix}KEY_KEY", "tls.key"),
        ca_key=env.get(f"{prefix}CA_KEY", "ca.crt") or None,
    )
