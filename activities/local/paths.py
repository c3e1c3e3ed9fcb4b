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

Unix sockets whose path would be too long live in a private directory of the temp directory
instead, `mysqlops-sockets-<uid>` (see `socket_path`, `ensure_socket_dir`).
"""

import hashlib
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

# sun_path holds 108 bytes with the terminating NUL; HAProxy also appends ".<pid>.tmp".
SOCKET_PATH_MAX = 97


class UnsafeDirectory(RuntimeError):
    """A directory that must be private to this user is not: someone else could read or
    replace what we put there."""


def shared_socket_dir() -> Path:
    """The stand-in directory for sockets: in the (shared) temp directory, one per user, so
    that users do not lock each other out."""
    return Path(tempfile.gettempdir()) / f"mysqlops-sockets-{os.getuid()}"


def socket_path(preferred: Path) -> Path:
    """`preferred` when a unix socket can live there; else a short stand-in under the temp
    directory, named by a digest of `preferred` so that every process finds the same one."""
    if len(os.fsencode(preferred)) <= SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(os.fsencode(preferred)).hexdigest()[:20]
    return shared_socket_dir() / f"{digest}.sock"


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_private_dir(path: Path, uid: int) -> None:
    """Raise `UnsafeDirectory` unless `path` is a real directory (not a symbolic link) owned
    by `uid` that neither group nor others may access."""
    info = os.lstat(path)
    mode = stat.S_IMODE(info.st_mode)
    found = f"owner {_owner(info.st_uid)}, mode {mode:04o}"
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != uid:
        problem = "is owned by someone else"
    elif mode & 0o077:
        problem = "is accessible to group or others"
    else:
        return
    raise UnsafeDirectory(
        f"refusing to use {path}: it {problem} ({found}); it must be a directory owned by "
        f"{_owner(uid)} with mode 0700. Remove it (or fix it) and try again."
    )


def ensure_private_dir(path: Path, uid: int | None = None) -> None:
    """Create `path` with mode 0700, or accept an existing one only if `check_private_dir`
    does. Its parent must exist (the temp directory)."""
    owner = os.getuid() if uid is None else uid
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    else:
        os.chmod(path, 0o700)  # whatever the umask took away or left
    check_private_dir(path, owner)


def ensure_socket_dir(socket: Path) -> None:
    """Make the directory of `socket` ready before anything binds it: the node's or cluster's
    own directory, or the private stand-in (which a reboot may have emptied) after checking
    that nobody else owns it or can enter it."""
    if socket.parent == shared_socket_dir():
        ensure_private_dir(socket.parent)
    else:
        socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


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
