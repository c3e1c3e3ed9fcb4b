"""A scripted in-memory Runtime: the cluster workflow's edge cases without real processes, and
hundreds of clusters at once for a benchmark.

Each cluster (namespace/name) has nodes, load balancer members and secrets of its own, and a
block of ports of its own, so a probe of (host, port) finds one node and counts the nodes of its
own cluster only. Tests plant faults by node name (`runtime.failing.add(name)`,
`runtime.crash(name)`); `node(cluster, name)` reaches a node whose name two clusters share.
Every method may be called from many threads at once.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import itertools
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableSet
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex
from typing import IO, Literal

from temporalio.exceptions import ApplicationError

from activities.backup.xbstream import xbstream_of
from activities.probe import Target
from activities.runtime import (
    ClusterLayout,
    ClusterRef,
    LoadBalancerView,
    NodeFailed,
    NodeLayout,
    ProcessFacts,
    StopMode,
)
from api.cluster import MySQLClusterSpec, NodeFacts
from api.states import ExitKind, JoinMethod
from galera.log import Join
from galera.position import GaleraPosition

HOST = "127.0.0.1"
BASE_PORT = 20000
BLOCK = 16  # ports per cluster: the writer's, the reader's, then one per node
MAX_REPLICAS = BLOCK - 2
BACKUP_UUID = "6f1c2a52-0000-0000-0000-000000000001"  # the Galera uuid in every backup

Flag = Literal["failing", "hung", "non_primary", "desynced"]


@dataclass
class ScriptedNode:
    name: str
    port: int
    has_data: bool = False
    running: bool = False
    pid: int | None = None
    exit_kind: ExitKind | None = None
    exit_detail: str = ""
    seqno: int = 0
    safe_to_bootstrap: bool = False
    damaged: bool = False  # its position cannot be recovered
    join: Join | None = None  # how its current run joined
    config: MySQLClusterSpec | None = None  # as last provisioned
    failing: bool = False  # mariadbd exits at start
    hung: bool = False  # alive, never answering (SIGSTOP)
    non_primary: bool = False  # alive, outside any Primary component
    desynced: bool = False  # wsrep_desync=ON


@dataclass
class ScriptedCluster:
    ref: ClusterRef
    block: int  # its ports are the BLOCK from BASE_PORT + BLOCK * block
    nodes: dict[str, ScriptedNode] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)  # the load balancer's
    secrets: dict[str, str] = field(default_factory=dict)

    def port(self, offset: int) -> int:
        return BASE_PORT + BLOCK * self.block + offset


@dataclass(eq=False)
class ScriptedRuntime:
    """The attributes below are the test's knobs and records; the clusters' state is inside,
    reached through `nodes`, `node()`, the flags (`failing`, `hung`, ...) and `crash()`."""

    calls: list[tuple[object, ...]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    gated_node: str | None = None  # start_node of this node waits for `gate`
    backup_fails: bool = False  # the backup tool fails midway
    retire_fails: bool = False  # removing the cluster's files fails (e.g. a busy mount)
    refused_options: set[str] = field(default_factory=set)  # the server's check refuses them
    crashing_options: set[str] = field(default_factory=set)  # pass the check, abort the start
    free: int = 10 << 30  # bytes free beside every node's data
    # Where backups go; a new temporary directory on first use when None (its owner removes it)
    backups_home: Path | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _clusters: dict[str, ScriptedCluster] = field(default_factory=dict, init=False, repr=False)
    _by_block: dict[int, ScriptedCluster] = field(default_factory=dict, init=False, repr=False)
    _free_blocks: list[int] = field(default_factory=list, init=False, repr=False)  # a heap
    _blocks: itertools.count[int] = field(default_factory=itertools.count, init=False, repr=False)
    _pids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(1000), init=False, repr=False
    )

    # -- the test's views and knobs ---------------------------------------------------------

    @property
    def nodes(self) -> NodesByName:
        return NodesByName(self)

    @property
    def failing(self) -> NodeFlag:
        return NodeFlag(self, "failing")

    @property
    def hung(self) -> NodeFlag:
        return NodeFlag(self, "hung")

    @property
    def non_primary(self) -> NodeFlag:
        return NodeFlag(self, "non_primary")

    @property
    def desynced(self) -> NodeFlag:
        return NodeFlag(self, "desynced")

    @property
    def configs(self) -> dict[str, MySQLClusterSpec]:
        """Every node's configuration as last provisioned, by node name."""
        return {n.name: n.config for n in self._every_node() if n.config is not None}

    @property
    def secrets(self) -> dict[str, str]:
        """Every cluster's secrets, by `<namespace>/<cluster>/<key>`."""
        with self._lock:
            return {
                f"{c.ref.key}/{key}": value
                for c in self._clusters.values()
                for key, value in c.secrets.items()
            }

    def node(self, cluster: ClusterRef, name: str) -> ScriptedNode:
        with self._lock:
            return self._clusters[cluster.key].nodes[name]

    def crash(self, node: str, kind: ExitKind = ExitKind.UNCLEAN, detail: str = "") -> None:
        with self._lock:
            _crash(self.nodes[node], kind, detail)

    # -- the Runtime ------------------------------------------------------------------------

    def layout(self, cluster: ClusterRef, replicas: int) -> ClusterLayout:
        if replicas > MAX_REPLICAS:
            raise ValueError(f"the scripted runtime lays out at most {MAX_REPLICAS} nodes")
        with self._lock:
            state = self._cluster(cluster)
            nodes = [
                NodeLayout(name=f"{cluster.name}-{i}", ordinal=i, host=HOST, port=state.port(2 + i))
                for i in range(replicas)
            ]
            for node in nodes:
                state.nodes.setdefault(node.name, ScriptedNode(node.name, node.port))
        return ClusterLayout(
            cluster=cluster,
            host=HOST,
            writer_port=state.port(0),
            reader_port=state.port(1),
            nodes=nodes,
        )

    def provision_node(
        self, layout: ClusterLayout, node: str, spec: MySQLClusterSpec, bootstrap_candidate: bool
    ) -> None:
        with self._lock:
            self.calls.append(("provision", node, bootstrap_candidate))
            state = self._node(layout, node)
            state.config = spec
            state.has_data = state.has_data or bootstrap_candidate

    def config_errors(self, layout: ClusterLayout, spec: MySQLClusterSpec) -> str | None:
        refused = sorted(self.refused_options & set(spec.mysql.config))
        return f"mariadbd: unknown variable '{refused[0]}=1'" if refused else None

    def start_node(self, layout: ClusterLayout, node: str, bootstrap: bool) -> int:
        if node == self.gated_node and not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        with self._lock:
            state = self._node(layout, node)
            if not state.running:
                self.calls.append(("start", node, bootstrap))
                options = state.config.mysql.config if state.config else {}
                if state.failing or self.crashing_options & set(options):
                    state.exit_kind, state.exit_detail = ExitKind.UNCLEAN, "exit status 1"
                    raise NodeFailed(f"mariadbd on {node} exited at start")
                state.join = None
                state.non_primary = False  # a fresh start finds its peers again
                if not bootstrap:
                    method = JoinMethod.IST if state.has_data else JoinMethod.SST
                    state.join = Join(method, f"{method.value} (scripted)")
                state.running, state.pid, state.has_data = True, next(self._pids), True
                state.exit_kind = None
            assert state.pid is not None
            return state.pid

    def stop_node(self, layout: ClusterLayout, node: str, mode: StopMode, timeout: float) -> None:
        with self._lock:
            self.calls.append(("stop", node, mode.value))
            kind = ExitKind.CLEAN if mode is StopMode.GRACEFUL else ExitKind.UNCLEAN
            _crash(self._node(layout, node), kind, "")

    def last_join(self, layout: ClusterLayout, node: str) -> Join | None:
        with self._lock:
            return self._node(layout, node).join

    def process_facts(self, layout: ClusterLayout, node: str) -> ProcessFacts:
        with self._lock:
            cluster = self._clusters.get(layout.cluster.key)
            state = cluster.nodes.get(node) if cluster else None
            if state is None:  # removed, as a missing directory would be
                return ProcessFacts(alive=False, provisioned=False)
            return ProcessFacts(
                alive=state.running,
                pid=state.pid,
                exit_kind=state.exit_kind,
                exit_detail=state.exit_detail,
            )

    def galera_position(self, layout: ClusterLayout, node: str) -> GaleraPosition:
        with self._lock:
            state = self._node(layout, node)
            if state.running:
                raise RuntimeError(f"{node} is running: its position cannot be read")
            return GaleraPosition(
                uuid="u",
                seqno=-1 if state.damaged else state.seqno,
                safe_to_bootstrap=state.safe_to_bootstrap,
                empty=not state.has_data,
                unreadable="--wsrep-recover found no position" if state.damaged else None,
            )

    def configure_load_balancer(self, layout: ClusterLayout, members: list[str]) -> None:
        with self._lock:
            self.calls.append(("lb", tuple(members)))
            self._clusters[layout.cluster.key].members = list(members)

    def load_balancer_view(self, layout: ClusterLayout) -> LoadBalancerView:
        with self._lock:
            cluster = self._clusters[layout.cluster.key]
            up = [m for m in cluster.members if m in cluster.nodes and cluster.nodes[m].running]
        return LoadBalancerView(writer=up[0] if up else None, up=up)

    def stop_load_balancer(self, layout: ClusterLayout) -> None:
        self.calls.append(("lb-stop",))

    def ensure_users(self, layout: ClusterLayout, node: str) -> None:
        with self._lock:
            self._node(layout, node)
            self.calls.append(("users", node))

    def admin_sql(self, layout: ClusterLayout, node: str, statements: list[str]) -> None:
        with self._lock:
            state = self._node(layout, node)
            if any("wsrep_desync" in s for s in statements):
                state.desynced = any("wsrep_desync=ON" in s for s in statements)
                self.calls.append(("desync" if state.desynced else "resync", node))
            elif any("pc.bootstrap=YES" in s for s in statements):
                self.calls.append(("pc.bootstrap", node))
                for peer in self._clusters[layout.cluster.key].nodes.values():
                    peer.non_primary = False  # the others in its component follow it

    def ensure_secret(self, cluster: ClusterRef, key: str) -> None:
        with self._lock:
            self._cluster(cluster).secrets.setdefault(key, f"s3cr3t-{token_hex(8)}")

    def read_secret(self, cluster: ClusterRef, key: str) -> str:
        with self._lock:
            return self._clusters[cluster.key].secrets[key]

    def remove_node(self, layout: ClusterLayout, node: str, delete_data: bool) -> None:
        with self._lock:
            self.calls.append(("remove", node, delete_data))
            self._clusters[layout.cluster.key].nodes.pop(node)

    def set_aside_data(self, layout: ClusterLayout, node: str) -> str:
        with self._lock:
            self.calls.append(("set-aside", node))
            state = self._node(layout, node)
            state.has_data = state.damaged = False
        return f"/aside/{node}"

    def retire_cluster(self, layout: ClusterLayout, delete_data: bool) -> None:
        """Forgets the cluster: its nodes, members, secrets; its ports go to the next one."""
        with self._lock:
            self.calls.append(("retire", delete_data))
            if self.retire_fails:
                raise ApplicationError("device or resource busy", non_retryable=True)
            cluster = self._clusters.pop(layout.cluster.key, None)
            if cluster is not None:
                del self._by_block[cluster.block]
                heapq.heappush(self._free_blocks, cluster.block)

    def backup_root(self) -> Path:
        with self._lock:
            if self.backups_home is None:
                self.backups_home = Path(tempfile.mkdtemp(prefix="scripted-bk-"))
            return self.backups_home

    def backup_tool(self) -> tuple[str, str]:
        return "mariabackup", "10.11-scripted"

    @contextlib.contextmanager
    def backup_stream(self, layout: ClusterLayout, node: str) -> Iterator[IO[bytes]]:
        with self._lock:
            self.calls.append(("backup", node))
            if self.backup_fails:
                raise RuntimeError("mariabackup failed (exit 1): scripted failure")
            seqno = self._node(layout, node).seqno
        galera_info = f"{BACKUP_UUID}:{seqno} 0\n".encode()
        files = {"ibdata1": b"x" * 100_000, "xtrabackup_galera_info": galera_info}
        yield io.BytesIO(xbstream_of(files))

    def free_bytes(self, layout: ClusterLayout, node: str) -> int:
        return self.free

    def receive_backup(
        self, layout: ClusterLayout, node: str, name: str, chunks: Iterable[bytes]
    ) -> str:
        received = sum(len(chunk) for chunk in chunks)
        self.calls.append(("receive", node, name, received))
        return f"/staging/{name}"

    def install_restored_data(self, layout: ClusterLayout, node: str, staging: str) -> None:
        with self._lock:
            self.calls.append(("install", node, staging))
            state = self._node(layout, node)
            state.has_data = state.safe_to_bootstrap = True

    # -- the probe --------------------------------------------------------------------------

    def probe(self, target: Target, timeout: float) -> NodeFacts:
        """What a SQL probe of (host, port) finds; `cluster_size` is its own cluster's view."""
        with self._lock:
            found = self._at(target.host, target.port)
            if found is None or not found[1].running:
                return NodeFacts(reachable=False, error="connection refused")
            cluster, node = found
            if node.hung:
                return NodeFacts(reachable=False, error="timed out")
            if node.non_primary:
                return NodeFacts(
                    reachable=True,
                    wsrep_state="Initialized",
                    wsrep_cluster_status="non-Primary",
                    wsrep_ready=False,
                    seqno=node.seqno,
                )
            return NodeFacts(
                reachable=True,
                wsrep_state="Synced",
                wsrep_cluster_status="Primary",
                wsrep_ready=True,
                seqno=node.seqno,
                cluster_size=sum(1 for n in cluster.nodes.values() if n.running),
            )

    # -- state ------------------------------------------------------------------------------

    def _cluster(self, ref: ClusterRef) -> ScriptedCluster:
        """The cluster's state, created with a block of ports the first time."""
        with self._lock:
            cluster = self._clusters.get(ref.key)
            if cluster is None:
                block = (
                    heapq.heappop(self._free_blocks) if self._free_blocks else next(self._blocks)
                )
                if BASE_PORT + BLOCK * (block + 1) > 1 << 16:
                    raise RuntimeError("the scripted runtime has no ports left for a cluster")
                cluster = self._clusters[ref.key] = self._by_block[block] = ScriptedCluster(
                    ref, block
                )
            return cluster

    def _node(self, layout: ClusterLayout, node: str) -> ScriptedNode:
        return self._clusters[layout.cluster.key].nodes[node]

    def _at(self, host: str, port: int) -> tuple[ScriptedCluster, ScriptedNode] | None:
        if host != HOST or (cluster := self._by_block.get((port - BASE_PORT) // BLOCK)) is None:
            return None
        node = next((n for n in cluster.nodes.values() if n.port == port), None)
        return None if node is None else (cluster, node)

    def _every_node(self) -> list[ScriptedNode]:
        with self._lock:
            return [n for c in self._clusters.values() for n in c.nodes.values()]


def _crash(node: ScriptedNode, kind: ExitKind, detail: str) -> None:
    node.hung = False
    if node.running:
        node.running, node.exit_kind, node.exit_detail = False, kind, detail


class NodesByName(Mapping[str, ScriptedNode]):
    """Every cluster's nodes by name, for tests; a name two clusters share cannot be looked up
    (LookupError): `ScriptedRuntime.node` can."""

    def __init__(self, runtime: ScriptedRuntime) -> None:
        self._runtime = runtime

    def __getitem__(self, name: str) -> ScriptedNode:
        found = [n for n in self._runtime._every_node() if n.name == name]
        if len(found) > 1:
            raise LookupError(f"{len(found)} clusters have a node {name}")
        if not found:
            raise KeyError(name)
        return found[0]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(n.name for n in self._runtime._every_node()))

    def __len__(self) -> int:
        return len(dict.fromkeys(n.name for n in self._runtime._every_node()))


class NodeFlag(MutableSet[str]):
    """The names of the nodes with one flag set; `runtime.hung.add(name)` plants a fault."""

    def __init__(self, runtime: ScriptedRuntime, flag: Flag) -> None:
        self._runtime, self._flag = runtime, flag

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def add(self, name: str) -> None:
        setattr(self._runtime.nodes[name], self._flag, True)

    def discard(self, name: str) -> None:
        with contextlib.suppress(KeyError):
            setattr(self._runtime.nodes[name], self._flag, False)

    def _names(self) -> list[str]:
        return [n.name for n in self._runtime._every_node() if getattr(n, self._flag)]
