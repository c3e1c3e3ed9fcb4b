"""The agent as a Pod's entrypoint (`python -m workers.agent --from-env`): its configuration
from the container's environment (activities/kubernetes/objects names it), the node's my.cnf
from the cluster's ConfigMap, and the monitoring user's client file for mysqld_exporter.

The runtime renders each node's my.cnf with the same renderer as the local runtime, addressed
by the Pods' stable DNS names, into the ConfigMap (`<node>.cnf`). The agent installs it on the
node's volume at every start (a mounted ConfigMap is refreshed by the kubelet, so a changed
configuration reaches the next start without a new Pod), with the node's file paths taken from
its own volume: the same values on a real cluster, and what makes the file valid where the
volume is elsewhere (the test kubelet's directories).
"""

import getpass
import os
import re
from collections.abc import Mapping
from pathlib import Path

from activities.local import exporter
from activities.local.paths import NodePaths
from activities.users import MONITOR_SECRET, MONITOR_USER
from api.agent import TOKEN_SECRET, AgentConfig
from api.cluster import cluster_workflow_id

AGENT_PORT = 8080
AGENT_METRICS_PORT = 9470
EXPORTER_PORT = 9104

_OPTION = re.compile(r"^(\s*)([A-Za-z0-9_-]+)(\s*=\s*)(.*)$")


def node_dir(env: Mapping[str, str]) -> Path:
    return Path(env["MYSQLOPS_NODE_DIR"])


def config_from_env(env: Mapping[str, str]) -> AgentConfig:
    """The agent's configuration in a Pod; installs the node's my.cnf (and the exporter's
    client file) on the way, as every start reads it again."""
    paths = NodePaths(node_dir(env))
    node = env["MYSQLOPS_NODE"]
    namespace, cluster = env["MYSQLOPS_CLUSTER_NAMESPACE"], env["MYSQLOPS_CLUSTER"]
    config_dir, secrets_dir = Path(env["MYSQLOPS_CONFIG_DIR"]), Path(env["MYSQLOPS_SECRETS_DIR"])
    delivered = (config_dir / f"{node}.cnf").read_text()
    install_mycnf(delivered, paths, env["MYSQLOPS_POD_IP"])
    monitor = secrets_dir / MONITOR_SECRET
    exporter_config = paths.root / "exporter.cnf"
    if monitor.exists():
        exporter.write_config(
            exporter_config, MONITOR_USER, monitor.read_text().strip(), paths.socket
        )
    return AgentConfig(
        node=node,
        workflow_id=env.get("MYSQLOPS_WORKFLOW_ID") or cluster_workflow_id(namespace, cluster),
        temporal_address=env["TEMPORAL_ADDRESS"],
        temporal_namespace=env.get("TEMPORAL_NAMESPACE", "default"),
        mycnf=str(paths.config),
        socket=str(paths.socket),
        pid_file=str(paths.pid),
        error_log=str(paths.error_log),
        state_file=str(paths.agent_state),
        host=env["MYSQLOPS_POD_IP"],
        health_port=AGENT_PORT,
        haproxy_socket="",  # HAProxy runs in its own Pods: its checks take the node out
        donor_serves=env.get("MYSQLOPS_DONOR_SERVES", "false") == "true",
        os_user=getpass.getuser(),
        token_file=str(secrets_dir / TOKEN_SECRET),
        config_source=str(config_dir / f"{node}.cnf"),
        peers=[
            f"{host}:{AGENT_PORT}" for host in peer_hosts(delivered) if host != own_host(delivered)
        ],
        stop_node_on_exit=True,
        cluster_namespace=namespace,
        cluster=cluster,
        metrics_port=AGENT_METRICS_PORT,
        exporter_port=EXPORTER_PORT if monitor.exists() else None,
        exporter_config=str(exporter_config),
        exporter_log=str(paths.root / "exporter.log"),
    )


def install_mycnf(rendered: str, paths: NodePaths, pod_ip: str) -> str:
    """Write the node's my.cnf onto its volume with the paths of that volume, and the Pod's IP
    where the node listens and says where it is (its own name resolves to that IP, but Galera
    refuses a name in some of them); returns it."""
    host = own_host(rendered)
    own = {
        "datadir": str(paths.data),
        "socket": str(paths.socket),
        "pid_file": str(paths.pid),
        "log_error": str(paths.error_log),
    }
    lines = []
    for line in rendered.splitlines():
        match = _OPTION.match(line)
        key = match.group(2).replace("-", "_") if match else None
        if match and key in own:
            line = f"{match.group(1)}{match.group(2)}{match.group(3)}{own[key]}"
        elif host and key != "wsrep_cluster_address":
            line = line.replace(host, pod_ip)
        lines.append(line)
    if os.geteuid() == 0 and not any(_key(line) == "user" for line in lines):
        lines.append("user = root")  # mariadbd refuses to run as root unless told to
    text = "\n".join(lines) + "\n"
    paths.root.mkdir(parents=True, exist_ok=True)
    if not paths.config.exists() or paths.config.read_text() != text:
        tmp = paths.config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(paths.config)
    return text


def peer_hosts(mycnf: str) -> list[str]:
    """The hosts of `wsrep_cluster_address` (every member, this one included)."""
    for line in mycnf.splitlines():
        if _key(line) == "wsrep_cluster_address":
            members = line.split("=", 1)[1].strip().removeprefix("gcomm://")
            return [member.rsplit(":", 1)[0] for member in members.split(",") if member]
    return []


def own_host(mycnf: str) -> str | None:
    for line in mycnf.splitlines():
        if _key(line) == "wsrep_node_address":
            return line.split("=", 1)[1].strip().rsplit(":", 1)[0]
    return None


def _key(line: str) -> str | None:
    match = _OPTION.match(line)
    return match.group(2).replace("-", "_") if match else None
