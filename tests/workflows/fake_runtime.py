"""A scripted in-memory Runtime: the cluster workflow's edge cases without real processes."""

from __future__ import annotations

import contextlib
import io
import itertools
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from temporalio.exceptions import ApplicationError

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
from tests.xbstream import xbstream_of

FAKE_UUID = "6f1c2a52-0000-0000-0000-000000000001"


@dataclass
class FakeNode:
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


@dataclass
class FakeRuntime:
    nodes: dict[str, FakeNode] = field(default_factory=dict)
    calls: list[tuple[object, ...]] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    gate: threading.Event = field(default_factory=threading.Event)
    gated_node: str | None = None  # start_node of this node waits for `gate`
    failing: set[str] = field(default_factory=set)  # nodes whose mariadbd exits at start
    hung: set[str] = field(default_factory=set)  # alive, never answering (SIGSTOP)
    non_primary: set[str] = field(default_factory=set)  # alive, outside any Primary component
    desynced: set[str] = field(default_factory=set)  # wsrep_desync=ON
    backup_fails: bool = False  # the backup tool fails midway
    retire_fails: bool = False  # removing the cluster's files fails (e.g. a busy mount)
    refused_options: set[str] = field(default_factory=set)  # the server's check refuses them
    crashing_options: set[str] = field(default_factory=set)  # pass the check, abort the start
    configs: dict[str, MySQLClusterSpec] = field(default_factory=dict)  # last provisioned
    free: int = 10 << 30  # bytes free beside every node's data
    backups_home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fake-bk-")))
    _pids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def layout(self, cluster: ClusterRef, replicas: int) -> ClusterLayout:
        nodes = [
            NodeLayout(name=f"{cluster.name}-{i}", ordinal=i, host="127.0.0.1", port=4000 + i)
            for i in range(replicas)
        ]
        for node in nodes:
            self.nodes.setdefault(node.name, FakeNode(node.name, node.port))
        return ClusterLayout(
            cluster=cluster, host="127.0.0.1", writer_port=3999, reader_port=3998, nodes=nodes
        )

    def provision_node(
        self, layout: ClusterLayout, node: str, spec: MySQLClusterSpec, bootstrap_candidate: bool
    ) -> None:
        self.calls.append(("provision", node, bootstrap_candidate))
        self.configs[node] = spec
        if bootstrap_candidate:
            self.nodes[node].has_data = True

    def config_errors(self, layout: ClusterLayout, spec: MySQLClusterSpec) -> str | None:
        refused = sorted(self.refused_options & set(spec.mysql.config))
        return f"mariadbd: unknown variable '{refused[0]}=1'" if refused else None

    def start_node(self, layout: ClusterLayout, node: str, bootstrap: bool) -> int:
        if node == self.gated_node:
            assert self.gate.wait(60), "test never opened the gate"
        state = self.nodes[node]
        if not state.running:
            self.calls.append(("start", node, bootstrap))
            options = self.configs[node].mysql.config if node in self.configs else {}
            if node in self.failing or self.crashing_options & set(options):
                state.exit_kind, state.exit_detail = ExitKind.UNCLEAN, "exit status 1"
                raise NodeFailed(f"mariadbd on {node} exited at start")
            state.join = None
            self.non_primary.discard(node)  # a fresh start finds its peers again
            if not bootstrap:
                method = JoinMethod.IST if state.has_data else JoinMethod.SST
                state.join = Join(method, f"{method.value} (fake)")
            state.running, state.pid, state.has_data = True, next(self._pids), True
            state.exit_kind = None
        assert state.pid is not None
        return state.pid

    def stop_node(self, layout: ClusterLayout, node: str, mode: StopMode, timeout: float) -> None:
        self.calls.append(("stop", node, mode.value))
        self.crash(node, ExitKind.CLEAN if mode is StopMode.GRACEFUL else ExitKind.UNCLEAN)

    def last_join(self, layout: ClusterLayout, node: str) -> Join | None:
        return self.nodes[node].join

    def crash(self, node: str, kind: ExitKind = ExitKind.UNCLEAN, detail: str = "") -> None:
        state = self.nodes[node]
        self.hung.discard(node)
        if state.running:
            state.running, state.exit_kind, state.exit_detail = False, kind, detail

    def process_facts(self, layout: ClusterLayout, node: str) -> ProcessFacts:
        if node not in self.nodes:  # removed by a scale-down, as a missing directory would be
            return ProcessFacts(alive=False, provisioned=False)
        state = self.nodes[node]
        return ProcessFacts(
            alive=state.running,
            pid=state.pid,
            exit_kind=state.exit_kind,
            exit_detail=state.exit_detail,
        )

    def galera_position(self, layout: ClusterLayout, node: str) -> GaleraPosition:
        state = self.nodes[node]
        assert not state.running
        return GaleraPosition(
            uuid="u",
            seqno=-1 if state.damaged else state.seqno,
            safe_to_bootstrap=state.safe_to_bootstrap,
            empty=not state.has_data,
            unreadable="--wsrep-recover found no position" if state.damaged else None,
        )

    def configure_load_balancer(self, layout: ClusterLayout, members: list[str]) -> None:
        self.calls.append(("lb", tuple(members)))
        self.members = members

    def load_balancer_view(self, layout: ClusterLayout) -> LoadBalancerView:
        up = [m for m in self.members if self.nodes[m].running]
        return LoadBalancerView(writer=up[0] if up else None, up=up)

    def stop_load_balancer(self, layout: ClusterLayout) -> None:
        self.calls.append(("lb-stop",))

    def admin_sql(self, layout: ClusterLayout, node: str, statements: list[str]) -> None:
        if any("wsrep_desync" in s for s in statements):
            on = any("wsrep_desync=ON" in s for s in statements)
            (self.desynced.add if on else self.desynced.discard)(node)
            self.calls.append(("desync" if on else "resync", node))
        elif any("pc.bootstrap=YES" in s for s in statements):
            self.calls.append(("pc.bootstrap", node))
            self.non_primary.clear()  # the others in its component follow it
        else:
            self.calls.append(("users", node))

    def ensure_secret(self, cluster: ClusterRef, key: str) -> None:
        self.secrets.setdefault(key, f"s3cr3t-{key}-{len(self.secrets)}-value")

    def read_secret(self, cluster: ClusterRef, key: str) -> str:
        return self.secrets[key]

    def remove_node(self, layout: ClusterLayout, node: str, delete_data: bool) -> None:
        self.calls.append(("remove", node, delete_data))
        self.nodes.pop(node)

    def set_aside_data(self, layout: ClusterLayout, node: str) -> str:
        self.calls.append(("set-aside", node))
        self.nodes[node].has_data = False
        self.nodes[node].damaged = False
        return f"/aside/{node}"

    def retire_cluster(self, layout: ClusterLayout, delete_data: bool) -> None:
        self.calls.append(("retire", delete_data))
        if self.retire_fails:
            raise ApplicationError("device or resource busy", non_retryable=True)

    def backup_root(self) -> Path:
        return self.backups_home

    def backup_tool(self) -> tuple[str, str]:
        return "mariabackup", "10.11-fake"

    @contextlib.contextmanager
    def backup_stream(self, layout: ClusterLayout, node: str) -> Iterator[IO[bytes]]:
        self.calls.append(("backup", node))
        if self.backup_fails:
            raise RuntimeError("mariabackup failed (exit 1): fake failure")
        seqno = self.nodes[node].seqno
        yield io.BytesIO(
            xbstream_of(
                {
                    "ibdata1": b"x" * 100_000,
                    "xtrabackup_galera_info": f"{FAKE_UUID}:{seqno} 0\n".encode(),
                }
            )
        )

    def free_bytes(self, layout: ClusterLayout, node: str) -> int:
        return self.free

    def receive_backup(
        self, layout: ClusterLayout, node: str, name: str, chunks: Iterable[bytes]
    ) -> str:
        received = sum(len(chunk) for chunk in chunks)
        self.calls.append(("receive", node, name, received))
        return f"/staging/{name}"

    def install_restored_data(self, layout: ClusterLayout, node: str, staging: str) -> None:
        self.calls.append(("install", node, staging))
        self.nodes[node].has_data = True
        self.nodes[node].safe_to_bootstrap = True

    def probe(self, target: Target, timeout: float) -> NodeFacts:
        node = next(n for n in self.nodes.values() if n.port == target.port)
        if not node.running:
            return NodeFacts(reachable=False, error="connection refused")
        if node.name in self.hung:
            return NodeFacts(reachable=False, error="timed out")
        if node.name in self.non_primary:
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
            cluster_size=sum(1 for n in self.nodes.values() if n.running),
        )
