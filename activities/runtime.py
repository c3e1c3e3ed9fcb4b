"""The `Runtime` interface: the operations the cluster workflow needs from wherever nodes run.

The local runtime drives real processes on this machine; the Kubernetes runtime drives Pods of a
StatefulSet. Workflows never see which one runs: they call activities, activities call a Runtime.
"""

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Protocol

from pydantic import Field

from api.agent import ProcessFacts, StopMode
from api.base import Record
from api.cluster import MySQLClusterSpec
from api.layout import ClusterLayout, ClusterRef, NodeLayout
from galera.log import Join
from galera.position import GaleraPosition

__all__ = [
    "ClusterLayout",
    "ClusterRef",
    "GaleraPosition",
    "LoadBalancerView",
    "NodeFailed",
    "NodeLayout",
    "ProcessFacts",
    "Runtime",
    "StopMode",
]


class NodeFailed(Exception):
    """The node itself failed (mariadbd exited at start, stopped while joining): retrying the
    same step at once would not help; the workflow's playbooks decide what comes next."""


class LoadBalancerView(Record):
    """Which servers the load balancer sees as up, and which one takes writes now."""

    writer: str | None = None
    up: list[str] = Field(default_factory=list)


class Runtime(Protocol):
    """Blocking operations; activities run them in threads, never on the event loop."""

    def layout(self, cluster: ClusterRef, replicas: int) -> ClusterLayout:
        """The cluster's addresses for `replicas` nodes, allocated once and then stable."""
        ...

    def provision_node(
        self, layout: ClusterLayout, node: str, spec: MySQLClusterSpec, bootstrap_candidate: bool
    ) -> None:
        """Write the node's configuration; initialise a data directory only where none exists."""
        ...

    def config_errors(self, layout: ClusterLayout, spec: MySQLClusterSpec) -> str | None:
        """The server's own objections to the configuration `spec` renders (an unknown option,
        a bad value), or None; checked without starting anything."""
        ...

    def start_node(self, layout: ClusterLayout, node: str, bootstrap: bool) -> int:
        """Start mariadbd (with its agent); a no-op returning the pid when already running."""
        ...

    def stop_node(self, layout: ClusterLayout, node: str, mode: StopMode, timeout: float) -> None:
        """Stop mariadbd and wait for it to exit; a no-op when it is not running."""
        ...

    def last_join(self, layout: ClusterLayout, node: str) -> Join | None:
        """How the node's current run joined the cluster (IST or SST, and why), from its log;
        None when it needed no state transfer or it cannot be told yet."""
        ...

    def process_facts(self, layout: ClusterLayout, node: str) -> ProcessFacts: ...

    def galera_position(self, layout: ClusterLayout, node: str) -> GaleraPosition:
        """grastate.dat, and `--wsrep-recover` when its seqno is -1. The node must be stopped."""
        ...

    def configure_load_balancer(self, layout: ClusterLayout, members: list[str]) -> None:
        """Route the writer and reader endpoints to `members` (health-checked); idempotent."""
        ...

    def load_balancer_view(self, layout: ClusterLayout) -> LoadBalancerView: ...

    def stop_load_balancer(self, layout: ClusterLayout) -> None: ...

    def admin_sql(self, layout: ClusterLayout, node: str, statements: list[str]) -> None:
        """Run administrative statements on one node with the runtime's own admin access."""
        ...

    def ensure_users(self, layout: ClusterLayout, node: str) -> None:
        """Create the application and monitoring users on a running node, or reset them to the
        cluster's stored passwords. The node reads the passwords where the runtime stores
        them: they never travel in a request or an activity's payload."""
        ...

    def ensure_secret(self, cluster: ClusterRef, key: str) -> None:
        """Generate the secret `key` once; later calls keep the existing value."""
        ...

    def read_secret(self, cluster: ClusterRef, key: str) -> str: ...

    def set_aside_data(self, layout: ClusterLayout, node: str) -> str:
        """Move a stopped node's data directory aside, leaving an empty one; idempotent: when
        the directory is already empty, nothing moves. Returns where the old data is, or ""
        when nothing was moved (never an older aside directory)."""
        ...

    def remove_node(self, layout: ClusterLayout, node: str, delete_data: bool) -> None:
        """Forget a stopped node; its data is kept (moved aside) unless `delete_data`."""
        ...

    def retire_cluster(self, layout: ClusterLayout, delete_data: bool) -> None:
        """After every node stopped: release ports and, only if asked, remove the data."""
        ...

    # -- backups ---------------------------------------------------------------------------

    def backup_root(self) -> Path:
        """Where backups go when the cluster's spec names no place."""
        ...

    def backup_tool(self) -> tuple[str, str]:
        """The backup tool of the flavour, and its version."""
        ...

    def backup_stream(
        self, layout: ClusterLayout, node: str
    ) -> contextlib.AbstractContextManager[IO[bytes]]:
        """A hot backup of a running node as an xbstream; leaving the block raises if the
        tool failed."""
        ...

    def free_bytes(self, layout: ClusterLayout, node: str) -> int:
        """Free space where the node's data directory is."""
        ...

    def receive_backup(
        self,
        layout: ClusterLayout,
        node: str,
        name: str,
        chunks: Iterable[bytes],
    ) -> str:
        """Unpack and prepare a stored backup into a staging directory beside the node's data
        directory (the node keeps running); returns the staging directory."""
        ...

    def install_restored_data(self, layout: ClusterLayout, node: str, staging: str) -> None:
        """Make a staging directory the stopped node's (empty) data directory; idempotent."""
        ...
