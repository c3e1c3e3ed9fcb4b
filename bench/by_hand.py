"""The by-hand references: a Galera cluster run the way a careful DBA runs one, no agent, no
workflow, no load balancer. mariadbd is started directly from the my.cnf files LocalRuntime
writes (the same configuration as an orchestrated cluster), and each step waits, polling every
0.1 s, until the node says Synced. Shared by bench/create.py, bench/backup.py and
bench/faults.py.

After a crash the DBA does not let the node start blind (its grastate.dat says seqno -1, so it
would present no position and get a full SST): they recover the position InnoDB committed with
`mariadbd --defaults-file=... --wsrep-recover` (its log says `WSREP: Recovered position:
uuid:seqno`) and start the node with `--wsrep-start-position=uuid:seqno`, so it asks for the
writes it missed (IST). After a whole-cluster crash they recover every node's position, set
`safe_to_bootstrap: 1` on the most advanced one and bootstrap it with `--wsrep-new-cluster
--wsrep-start-position=...` (the cluster keeps its state UUID), then start the others with
their own positions, one at a time.
"""

import getpass
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

from activities.local.paths import NodePaths
from activities.local.runtime import LocalRuntime
from activities.runtime import ClusterLayout, ClusterRef
from api.cluster import MySQLClusterSpec
from bench.common import node_paths, stop_everything

SYNCED_TIMEOUT = 600.0  # seconds per node
MANUAL_POLL = 0.1  # seconds between two wsrep_local_state_comment reads
RECOVERED = re.compile(r"WSREP: Recovered position: ([0-9a-f-]{36}:-?\d+)")


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


def seqno(position: str) -> int:
    return int(position.rsplit(":", 1)[1])


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

    def start(self, node: str, new_cluster: bool = False, position: str | None = None) -> None:
        """`mariadbd --defaults-file=my.cnf [--wsrep-new-cluster]
        [--wsrep-start-position=uuid:seqno]`, then wait until Synced."""
        paths = self.paths(node)
        args = ["mariadbd", f"--defaults-file={paths.config}"]
        if new_cluster:
            args.append("--wsrep-new-cluster")
        if position is not None:
            args.append(f"--wsrep-start-position={position}")
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

    def recover_position(self, node: str) -> str:
        """`mariadbd --defaults-file=my.cnf --wsrep-recover --log-error=FILE`: the position
        InnoDB committed, `uuid:seqno`, from the line it logs."""
        paths = self.paths(node)
        paths.recover_log.unlink(missing_ok=True)
        subprocess.run(
            [
                "mariadbd",
                f"--defaults-file={paths.config}",
                "--wsrep-recover",
                f"--log-error={paths.recover_log}",
            ],
            capture_output=True,
            timeout=SYNCED_TIMEOUT,
        )
        found = RECOVERED.findall(paths.recover_log.read_text(errors="replace"))
        if not found:
            raise RuntimeError(f"--wsrep-recover found no position for {node}")
        return str(found[-1])

    def restart_after_crash(self, node: str) -> None:
        """Recover the node's position, then start it from there (IST)."""
        self.start(node, position=self.recover_position(node))

    def recover(self) -> str:
        """Every node crashed: recover each one's position, bootstrap the most advanced (ties:
        the lowest ordinal) from its position, start the others from theirs; which node
        bootstrapped."""
        positions = {n: self.recover_position(n) for n in self.names}
        first = max(self.names, key=lambda n: seqno(positions[n]))
        grastate = self.paths(first).grastate
        grastate.write_text(
            re.sub(r"safe_to_bootstrap:\s*0", "safe_to_bootstrap: 1", grastate.read_text())
        )
        self.start(first, new_cluster=True, position=positions[first])
        for node in self.names:
            if node != first:
                self.start(node, position=positions[node])
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
