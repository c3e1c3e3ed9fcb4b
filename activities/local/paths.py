"""Where the local runtime keeps everything: one state directory, `MYSQLOPS_HOME` or `.mysqlops`.

$MYSQLOPS_HOME/
  temporal/            dev server SQLite file, pid, log
  worker.pid, worker.log
  ports.json           port slot of every cluster
  clusters/<ns>/<name>/
    layout.json        addresses of the cluster (ports chosen once)
    secrets/           generated passwords, mode 0600 (directory 0700)
    haproxy.cfg, haproxy.pid, haproxy.sock
    nodes/<node>/      my.cnf, data/, error.log, mariadbd.pid, agent.json, agent-state.json
"""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# sun_path holds 108 bytes with the terminating NUL; HAProxy also appends ".<pid>.tmp".
SOCKET_PATH_MAX = 97


def socket_path(preferred: Path) -> Path:
    """`preferred` when a unix socket can live there; else a short stand-in under the temp
    directory, named by a digest of `preferred` so that every process finds the same one."""
    if len(os.fsencode(preferred)) <= SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(os.fsencode(preferred)).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / "mysqlops-sockets" / f"{digest}.sock"


def state_home() -> Path:
    return Path(os.environ.get("MYSQLOPS_HOME", ".mysqlops")).absolute()


@dataclass(frozen=True)
class ClusterPaths:
    root: Path

    @classmethod
    def of(cls, home: Path, namespace: str, name: str) -> "ClusterPaths":
        return cls(home / "clusters" / namespace / name)

    @property
    def layout(self) -> Path:
        return self.root / "layout.json"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def haproxy_cfg(self) -> Path:
        return self.root / "haproxy.cfg"

    @property
    def haproxy_pid(self) -> Path:
        return self.root / "haproxy.pid"

    @property
    def haproxy_socket(self) -> Path:
        return socket_path(self.root / "haproxy.sock")

    def node(self, name: str) -> "NodePaths":
        return NodePaths(self.root / "nodes" / name)


@dataclass(frozen=True)
class NodePaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "my.cnf"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    @property
    def recover_log(self) -> Path:
        return self.root / "wsrep-recover.log"

    @property
    def recovered_position(self) -> Path:
        return self.root / "recovered-position.json"

    @property
    def pid(self) -> Path:
        return self.root / "mariadbd.pid"

    @property
    def socket(self) -> Path:
        return socket_path(self.root / "mariadbd.sock")

    @property
    def agent_config(self) -> Path:
        return self.root / "agent.json"

    @property
    def agent_state(self) -> Path:
        return self.root / "agent-state.json"

    @property
    def agent_pid(self) -> Path:
        return self.root / "agent.pid"

    @property
    def agent_log(self) -> Path:
        return self.root / "agent.log"

    @property
    def grastate(self) -> Path:
        return self.data / "grastate.dat"
