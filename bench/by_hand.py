"""The by-hand references: a Galera cluster run the way a person runs one, no agent, no
workflow, no load balancer. mariadbd is started directly from the my.cnf files LocalRuntime
writes (the same configuration as an orchestrated cluster), and each step waits, polling every
0.1 s, until the node says Synced. Shared by bench/create.py and bench/faults.py.
"""

import getpass
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

from activities.local.paths import NodePaths
from activities.local.runtime import LocalRuntime, set_safe_to_bootstrap
from activities.runtime import ClusterLayout, ClusterRef
from api.cluster import MySQLClusterSpec
from bench.common import node_paths, stop_everything

SYNCED_TIMEOUT = 600.0  # seconds per node
MANUAL_POLL = 0.1  # seconds between two wsrep_local_state_comment reads


def local_state(socket: Path) -> str | None:
    """wsrep_local_state_comment over the node's unix socket; None while it does not answer."""
    try:
        conn = pymysql.connect(unix_socket=str(socket), user=getpass.getuser(), connect_timeout=1)
    except pymysql.err.MySQLError:
        return None
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW STATUS LIKE 'wsrep_local_state_comment'")
            row = cursor.fetchone()
        return str(row[1]) if row else None
    except pymysql.err.MySQLError:
        return None
    finally:
        conn.close()


class ManualCluster:
    """Nodes of one cluster under a private directory, each a mariadbd child of this process."""

    def __init__(self, spec: MySQLClusterSpec, name: str = "manual") -> None:
        self.home = Path(tempfile.mkdtemp(prefix="mysqlops-bench-manual-"))
        self.runtime = LocalRuntime(self.home)
        self.layout: ClusterLayout = self.runtime.layout(
            ClusterRef(namespace="default", name=name), spec.replicas
        )
        self.spec = spec
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.layout.nodes]

    def paths(self, node: str) -> NodePaths:
        return node_paths(self.home, self.layout, node)

    def prepare(self) -> float:
        """my.cnf for every node and node 0's system tablespace, as a person prepares them
        before starting anything; the seconds mariadb-install-db took."""
        install_db = 0.0
        for node in self.layout.nodes:
            started = time.monotonic()
            self.runtime.provision_node(
                self.layout, node.name, self.spec, bootstrap_candidate=node.ordinal == 0
            )
            if node.ordinal == 0:
                install_db = time.monotonic() - started
        return install_db

    def start(self, node: str, new_cluster: bool = False) -> None:
        """`mariadbd --defaults-file=my.cnf [--wsrep-new-cluster]`, then wait until Synced."""
        paths = self.paths(node)
        args = ["mariadbd", f"--defaults-file={paths.config}"]
        if new_cluster:
            args.append("--wsrep-new-cluster")
        with open(paths.root / "mariadbd.out", "ab") as out:
            process = subprocess.Popen(
                args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.processes[node] = process
        deadline = time.monotonic() + SYNCED_TIMEOUT
        while local_state(paths.socket) != "Synced":
            if process.poll() is not None:
                tail = paths.error_log.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"mariadbd exited ({process.returncode}) before Synced: {tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node} not Synced within {SYNCED_TIMEOUT:.0f} s")
            time.sleep(MANUAL_POLL)

    def create(self) -> float:
        """Bootstrap node 0, then join the others one at a time; the seconds it took."""
        started = time.monotonic()
        for node in self.layout.nodes:
            self.start(node.name, new_cluster=node.ordinal == 0)
        return time.monotonic() - started

    def signal(self, node: str, sig: signal.Signals) -> None:
        """Send the signal and wait for the process to end."""
        process = self.processes.pop(node)
        process.send_signal(sig)
        process.wait(timeout=120)

    def recover(self) -> str:
        """Every node down: read each one's position (grastate.dat, `--wsrep-recover` when the
        seqno there is -1), bootstrap the highest, start the others; which node bootstrapped."""
        seqnos = {n: self.runtime.galera_position(self.layout, n).seqno for n in self.names}
        first = max(self.names, key=lambda n: seqnos[n])  # ties: the lowest ordinal
        set_safe_to_bootstrap(self.paths(first).grastate)
        self.start(first, new_cluster=True)
        for node in self.names:
            if node != first:
                self.start(node)
        return first

    def close(self) -> None:
        """SIGTERM to every mariadbd (SIGKILL after two minutes); the directory is removed."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stop_everything(self.home)  # nothing should be left; a safety net all the same
        shutil.rmtree(self.home, ignore_errors=True)
