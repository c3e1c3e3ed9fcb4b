"""A running local cluster as the chaos runner sees it: its workflow's status, its nodes'
processes, Galera ports and error logs, HAProxy's writer backend, and the data directories a
repair may have set aside."""

import re
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from activities.local import haproxy, logfiles
from activities.local.paths import ClusterPaths, NodePaths
from activities.local.process import mariadbd_pid
from activities.local.runtime import LocalRuntime
from activities.users import APP_SECRET
from api.cluster import ClusterStatus
from api.layout import ClusterLayout, ClusterRef
from api.messages import QUERY_STATUS
from workers.chaos.netfault import CutNode
from workers.client import ClusterClient
from workers.errors import UsageError

_PORTS = {
    "gmcast": re.compile(r"gmcast\.listen_addr\s*=\s*tcp://[^;:\"]+:(\d+)"),
    "ist": re.compile(r"ist\.recv_addr\s*=\s*[^;:\"]+:(\d+)"),
    "sst": re.compile(r"^\s*wsrep_sst_receive_address\s*=\s*[^:\s]+:(\d+)", re.MULTILINE),
}


def galera_ports(mycnf: str) -> tuple[int, ...]:
    """A node's gmcast, IST and SST ports, from its my.cnf."""
    found = []
    for name, pattern in _PORTS.items():
        match = pattern.search(mycnf)
        if match is None:
            raise RuntimeError(f"no {name} port in my.cnf")
        found.append(int(match.group(1)))
    return tuple(found)


class LocalCluster:
    """One cluster of the local runtime under `home`, with its running workflow."""

    def __init__(self, home: Path, layout: ClusterLayout, handle: WorkflowHandle[Any, Any]):
        self.home, self.layout, self.handle = home, layout, handle
        self.paths = ClusterPaths.of(home, layout.cluster.namespace, layout.cluster.name)

    @classmethod
    def find(cls, home: Path, namespace: str, name: str) -> ClusterLayout:
        """Its layout; UsageError when this state directory holds no such cluster."""
        layout = ClusterPaths.of(home, namespace, name).layout
        if not layout.exists():
            raise UsageError(f"mysqlcluster {namespace}/{name} not found under {home}")
        return ClusterLayout.model_validate_json(layout.read_text())

    @classmethod
    async def attach(cls, client: Client, home: Path, namespace: str, name: str) -> "LocalCluster":
        layout = cls.find(home, namespace, name)
        return cls(home, layout, (await ClusterClient.attach(client, namespace, name)).handle)

    @property
    def ref(self) -> ClusterRef:
        return self.layout.cluster

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.layout.nodes]

    async def status(self) -> ClusterStatus:
        result: ClusterStatus = await self.handle.query(QUERY_STATUS, result_type=ClusterStatus)
        return result

    def node(self, name: str) -> NodePaths:
        return self.paths.node(name)

    def pid(self, name: str) -> int | None:
        """The node's running mariadbd, from its pid file or its agent's record."""
        paths = self.node(name)
        return mariadbd_pid(paths.pid, paths.agent_state)

    def password(self) -> str:
        return LocalRuntime(self.home).read_secret(self.ref, APP_SECRET)

    def cut_node(self, name: str) -> CutNode:
        """What a partition needs to know of a node: its mariadbd, its Galera ports and those
        of the others."""
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} has no running mariadbd to cut")
        ports = {n: galera_ports(self.node(n).config.read_text()) for n in self.names}
        peers = tuple(p for n, own in ports.items() if n != name for p in own)
        return CutNode(name=name, pid=pid, ports=ports[name], peer_ports=peers)

    # -- the load balancer ----------------------------------------------------------------

    def routed(self) -> set[str] | None:
        """The servers HAProxy's writer backend has up; None when it does not answer."""
        try:
            return {s.name for s in haproxy.servers(self.paths.haproxy_socket, "writer") if s.up}
        except OSError:
            return None

    def writer(self) -> str | None:
        """The node HAProxy's writer backend routes to."""
        return LocalRuntime(self.home).load_balancer_view(self.layout).writer

    # -- files ----------------------------------------------------------------------------

    def log_size(self, name: str) -> int:
        """Where the node's error log ends now (an absolute offset: rotation does not move
        it, activities/local/logfiles.py)."""
        try:
            return logfiles.end_offset(self.node(name).error_log)
        except OSError:
            return 0

    def log_since(self, name: str, offset: int) -> str:
        """The node's error log from `offset` on, across a rotation (all of the current file
        if it is now shorter)."""
        try:
            return logfiles.read_since(self.node(name).error_log, offset)
        except OSError:
            return ""

    def set_aside(self) -> set[str]:
        """Data directories the controller has moved aside: `data.aside-*` in the node
        directories and whatever `retired/` holds."""
        found = {str(p) for p in self.paths.root.glob("nodes/*/data.aside-*")}
        retired = self.paths.root / "retired"
        if retired.is_dir():
            found |= {str(p) for p in retired.iterdir()}
        return found
