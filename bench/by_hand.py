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
their own positions. Each node is its own machine to a DBA: the positions are recovered on all
of them at once, and the joiners, which only need an IST, are started together. When two of
three crash, the survivor loses quorum: they recover the two positions, make the survivor a
Primary component again (`SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'`) once it says
non-Primary, and start the two together from their positions.
"""

import getpass
import re
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pymysql

from activities.local import mycnf
from activities.local.datadir import initialize
from activities.local.paths import ClusterPaths, NodePaths, ensure_socket_dir
from activities.local.position import read_grastate
from activities.local.runtime import LocalRuntime
from activities.runtime import ClusterLayout, ClusterRef
from api.cluster import MySQLClusterSpec
from galera.log import NO_STATE
from workers.sandbox import stop_everything

SYNCED_TIMEOUT = 600.0  # seconds per node
MANUAL_POLL = 0.1  # seconds between two wsrep_local_state_comment reads
RECOVERED = re.compile(r"WSREP: Recovered position: ([0-9a-f-]{36}:-?\d+)")


def status_value(socket: Path, name: str) -> str | None:
    """One global status variable over the node's unix socket; None while it does not
    answer."""
    try:
        conn = pymysql.connect(unix_socket=str(socket), user=getpass.getuser(), connect_timeout=1)
    except pymysql.err.MySQLError:
        return None
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW STATUS LIKE %s", (name,))
            row = cursor.fetchone()
        return str(row[1]) if row else None
    except pymysql.err.MySQLError:
        return None
    finally:
        conn.close()


def local_state(socket: Path) -> str | None:
    """wsrep_local_state_comment over the node's unix socket; None while it does not answer."""
    return status_value(socket, "wsrep_local_state_comment")


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
        ref = self.layout.cluster
        return ClusterPaths.of(self.home, ref.namespace, ref.name).node(node)

    def prepare(self) -> float:
        """my.cnf for every node (the product's renderer: the same server settings) and node
        0's system tablespace, as a person prepares them before starting anything, with no
        agent; the seconds mariadb-install-db took."""
        for node in self.layout.nodes:
            paths = self.paths(node.name)
            paths.data.mkdir(parents=True, exist_ok=True)  # empty: joiners get theirs by SST
            ensure_socket_dir(paths.socket)
            config = self.runtime.node_config(self.layout, node.name)
            paths.config.write_text(mycnf.render(config, self.spec))
        started = time.monotonic()
        initialize(self.paths(self.names[0]))
        return time.monotonic() - started

    def start(self, node: str, new_cluster: bool = False, position: str | None = None) -> None:
        """`mariadbd --defaults-file=my.cnf [--wsrep-new-cluster]
        [--wsrep-start-position=uuid:seqno]`, then wait until Synced."""
        self.launch(node, new_cluster, position)
        self.wait_synced(node)

    def launch(self, node: str, new_cluster: bool = False, position: str | None = None) -> None:
        """Start mariadbd without waiting."""
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

    def wait_synced(self, node: str) -> None:
        """Until the launched node says Synced; RuntimeError if its mariadbd exits first."""
        paths = self.paths(node)
        process = self.processes[node]
        deadline = time.monotonic() + SYNCED_TIMEOUT
        while local_state(paths.socket) != "Synced":
            if process.poll() is not None:
                tail = paths.error_log.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"mariadbd exited ({process.returncode}) before Synced: {tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node} not Synced within {SYNCED_TIMEOUT:.0f} s")
            time.sleep(MANUAL_POLL)

    def wait_status(self, node: str, name: str, value: str) -> None:
        """Until the running node's status variable `name` reads `value`."""
        socket = self.paths(node).socket
        deadline = time.monotonic() + SYNCED_TIMEOUT
        while status_value(socket, name) != value:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node}'s {name} never read {value}")
            time.sleep(MANUAL_POLL)

    def wait_saved_state(self, timeout: float = 60) -> bool:
        """Until every node's grastate.dat names the cluster's state UUID; False after
        `timeout`. While a replica applies a DDL (and for a while after a bulk load) it holds
        the nil UUID, and Galera ignores `--wsrep-start-position` unless its UUID matches the
        saved one: a node killed then gets a full SST however its position was recovered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            saved = [read_grastate(self.paths(n).grastate).uuid for n in self.names]
            if None not in saved and NO_STATE not in saved and len(set(saved)) == 1:
                return True
            time.sleep(MANUAL_POLL)
        return False

    def join_together(self, positions: dict[str, str]) -> None:
        """Start every node given from its position at once, then wait until all are Synced."""
        for node, position in positions.items():
            self.launch(node, position=position)
        for node in positions:
            self.wait_synced(node)

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

    def recover_positions(self, nodes: list[str]) -> dict[str, str]:
        """`--wsrep-recover` on every node given, all at once (each is its own machine)."""
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            return dict(zip(nodes, pool.map(self.recover_position, nodes), strict=True))

    def restart_after_crash(self, node: str) -> None:
        """Recover the node's position, then start it from there (IST)."""
        self.start(node, position=self.recover_position(node))

    def recover(self) -> str:
        """Every node crashed: recover each one's position, bootstrap the most advanced (ties:
        the lowest ordinal) from its position, start the others from theirs together; which
        node bootstrapped."""
        positions = self.recover_positions(self.names)
        first = max(self.names, key=lambda n: seqno(positions[n]))
        grastate = self.paths(first).grastate
        grastate.write_text(
            re.sub(r"safe_to_bootstrap:\s*0", "safe_to_bootstrap: 1", grastate.read_text())
        )
        self.start(first, new_cluster=True, position=positions[first])
        self.join_together({n: p for n, p in positions.items() if n != first})
        return first

    def recover_quorum(self, survivor: str, crashed: list[str]) -> None:
        """The others crashed and `survivor` lost quorum: recover their positions, make the
        survivor Primary again once it says non-Primary, start the others together."""
        positions = self.recover_positions(crashed)
        self.wait_status(survivor, "wsrep_cluster_status", "non-Primary")
        socket = self.paths(survivor).socket
        conn = pymysql.connect(unix_socket=str(socket), user=getpass.getuser(), connect_timeout=5)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
        finally:
            conn.close()
        self.wait_synced(survivor)
        self.join_together(positions)

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
