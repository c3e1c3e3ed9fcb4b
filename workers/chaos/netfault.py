"""Network partitions on one machine: a node's Galera traffic dropped by iptables while its
mariadbd keeps running and answering SQL.

Every node of a local cluster listens on 127.0.0.1, so addresses cannot tell nodes apart; ports
and processes can. For each cut node the chain `MYSQLOPS-CHAOS-<run>` (jumped to first from
INPUT and OUTPUT, so that no earlier rule accepts established connections) gets:

    -p tcp -m multiport --dports <its gmcast,IST,SST ports> -j DROP     what others send to it
    -p tcp -m multiport --sports <its gmcast,IST,SST ports> -j DROP     its answers on those
    -p tcp -m cgroup --path <its cgroup> -m multiport --dports <the others' ports> -j DROP
                                                                        connections it opens
    -p tcp -s A --sport a -d B --dport b -j DROP, and back              each connection it
                                                                        had opened already

Its mariadbd is moved into a cgroup v2 of its own (`<mount>/mysqlops-chaos-<run>/<node>`). A
socket keeps the cgroup its process was in when it was created, so the connections the node had
opened before the move are cut by their port pairs, read from /proc. Packets are dropped, not
rejected: a partition is silence on both sides, and TCP retransmits until the heal.

Everything is undone exactly: `heal` flushes the chain and moves every process back to the
cgroup it came from before removing the node cgroups; `close` also removes the jumps, the chain
and the run's cgroup. `close` is idempotent; it runs from `__exit__` and atexit (and, through
the runner, on SIGINT and SIGTERM). Rules, chains and cgroups of others are never touched.
"""

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

CHAIN_PREFIX = "MYSQLOPS-CHAOS-"
CGROUP_PREFIX = "mysqlops-chaos-"
HOOKS = ("INPUT", "OUTPUT")
MULTIPORT_MAX = 15  # ports per `-m multiport` match
RMDIR_WAIT = 5.0  # seconds for an exiting process to leave a cgroup before it can go


class Unsupported(Exception):
    """This machine cannot cut a node: not root, no iptables, no cgroup v2 or no cgroup match."""


class CleanupError(RuntimeError):
    """Something this run added could not be removed: what, and how to remove it by hand."""


@dataclass(frozen=True)
class CutNode:
    name: str
    pid: int  # its mariadbd
    ports: tuple[int, ...]  # its gmcast, IST and SST ports
    peer_ports: tuple[int, ...]  # those of every other node


@dataclass(frozen=True)
class Connection:
    local: tuple[str, int]
    remote: tuple[str, int]


def cgroup2_mount(mounts: str | None = None) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (e.g. /sys/fs/cgroup, or
    /sys/fs/cgroup/unified on a hybrid system), from /proc/mounts."""
    text = Path("/proc/mounts").read_text() if mounts is None else mounts
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def connections(pid: int) -> list[Connection]:
    """The IPv4 TCP connections (listeners left out) of process `pid`, from /proc."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10 or fields[9] not in inodes or fields[3] == "0A":  # 0A: LISTEN
                continue
            local, remote = _address(fields[1]), _address(fields[2])
            if local is not None and remote is not None:
                found.append(Connection(local, remote))
    return found


def _address(field: str) -> tuple[str, int] | None:
    """`0100007F:6989` (tcp) or an IPv4-mapped tcp6 address, as ("127.0.0.1", 27017)."""
    host, port = field.split(":")
    if len(host) == 32 and host.startswith("0000000000000000FFFF0000"):
        host = host[24:]
    if len(host) != 8:
        return None
    return socket.inet_ntoa(bytes.fromhex(host)[::-1]), int(port, 16)


def _cgroup_of(pid: int) -> str:
    """The cgroup v2 path of `pid`, relative to the mount ("" for the root)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:].strip().lstrip("/")
    return ""


def _chunks(ports: Sequence[int]) -> Iterator[str]:
    for start in range(0, len(ports), MULTIPORT_MAX):
        yield ",".join(str(p) for p in ports[start : start + MULTIPORT_MAX])


def _node_rules(node: CutNode, cgroup: str, tag: str) -> list[str]:
    """What others send to its ports, its answers, and the connections its cgroup opens."""
    rules = []
    for ports in _chunks(node.ports):
        rules.append(f"-p tcp -m multiport --dports {ports} {tag}")
        rules.append(f"-p tcp -m multiport --sports {ports} {tag}")
    for ports in _chunks(node.peer_ports):
        rules.append(f"-p tcp -m cgroup --path {cgroup} -m multiport --dports {ports} {tag}")
    return rules


def _connection_rules(node: CutNode, tag: str) -> list[str]:
    """Both directions of each connection it opened to the others' ports before it was moved:
    such sockets keep the cgroup they were created in."""
    rules = []
    for conn in connections(node.pid):
        if conn.remote[1] in node.peer_ports and conn.local[1] not in node.ports:
            (a, port_a), (b, port_b) = conn.local, conn.remote
            rules.append(f"-p tcp -s {a} --sport {port_a} -d {b} --dport {port_b} {tag}")
            rules.append(f"-p tcp -s {b} --sport {port_b} -d {a} --dport {port_a} {tag}")
    return rules


class NetFault:
    """Cuts nodes' Galera traffic for one run; `with NetFault(run) as net: net.cut(...)`."""

    def __init__(self, run_id: str) -> None:
        self.chain = CHAIN_PREFIX + run_id
        self.group_name = CGROUP_PREFIX + run_id
        self.mount: Path | None = None
        self._iptables, self._iptables_restore = "iptables", "iptables-restore"
        self._origins: dict[str, str] = {}  # node cgroup name -> the cgroup its process left
        self._cut: set[str] = set()  # nodes whose port and cgroup rules are in place
        self._opened = False

    @property
    def root(self) -> Path:
        assert self.mount is not None, "not opened"
        return self.mount / self.group_name

    def __enter__(self) -> "NetFault":
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # -- setting up -----------------------------------------------------------------------

    def open(self) -> None:
        """Check that this machine can cut nodes, then create the run's chain (jumped to from
        INPUT and OUTPUT) and cgroup. Unsupported, with nothing left behind, otherwise."""
        iptables, restore = shutil.which("iptables"), shutil.which("iptables-restore")
        if iptables is None or restore is None:
            raise Unsupported(
                "partitions need iptables (Debian package iptables; `make setup` installs it)"
            )
        if os.geteuid() != 0:
            raise Unsupported("partitions need root (iptables rules and cgroups)")
        self.mount = cgroup2_mount()
        if self.mount is None:
            raise Unsupported("partitions need a cgroup v2 hierarchy; none in /proc/mounts")
        self._iptables, self._iptables_restore = iptables, restore
        self._opened = True
        atexit.register(self.close)
        try:
            try:
                self.root.mkdir()
            except OSError as error:
                raise Unsupported(f"cannot create a cgroup in {self.mount}: {error}") from None
            self._iptables_run("-N", self.chain)
            probe = ["-A", self.chain, "-p", "tcp", "-m", "cgroup", "--path", self.group_name]
            try:
                self._iptables_run(*probe, "-j", "DROP")
            except subprocess.CalledProcessError as error:
                raise Unsupported(
                    "this kernel or iptables has no cgroup v2 match (`-m cgroup --path`, "
                    f"xt_cgroup): {error.stderr.strip()}"
                ) from None
            self._iptables_run("-F", self.chain)
            for hook in HOOKS:
                self._iptables_run("-I", hook, "1", "-j", self.chain)
        except BaseException:
            self.close()
            raise

    # -- cutting and healing --------------------------------------------------------------

    def cut(self, nodes: Sequence[CutNode]) -> list[str]:
        """Cut each node's Galera traffic from every other node's, in one atomic
        iptables-restore; returns the rules added. Cutting a node again (the controller
        restarted its mariadbd meanwhile) moves the new process into the node's cgroup and cuts
        the connections it has opened already: a partition outlives restarts."""
        rules: list[str] = []
        for node in nodes:
            group = self.root / node.name
            tag = f"-m comment --comment chaos:{node.name} -j DROP"
            if node.name not in self._cut:
                group.mkdir(exist_ok=True)
                self._origins.setdefault(node.name, _cgroup_of(node.pid))
                rules += _node_rules(node, f"{self.group_name}/{node.name}", tag)
            (group / "cgroup.procs").write_text(str(node.pid))
            rules += _connection_rules(node, tag)
        self._restore(rules)
        self._cut |= {node.name for node in nodes}
        return rules

    def heal(self) -> None:
        """Remove every rule of the run and move every process back where it came from."""
        problems = self._heal()
        if problems:
            raise CleanupError("; ".join(problems))

    def _heal(self) -> list[str]:
        problems = []
        if self._chain_exists():
            try:
                self._iptables_run("-F", self.chain)
            except subprocess.CalledProcessError as error:
                problems.append(f"iptables -F {self.chain}: {error.stderr.strip()}")
        self._cut = set()
        if self.mount is not None and self.root.is_dir():
            for group in sorted(p for p in self.root.iterdir() if p.is_dir()):
                if problem := self._release(group):
                    problems.append(problem)
        return problems

    def _release(self, group: Path) -> str | None:
        """Move the processes of a node cgroup back (its mariadbd and any child it started
        meanwhile) and remove the cgroup."""
        assert self.mount is not None
        origin = self.mount / self._origins.get(group.name, "")
        deadline = time.monotonic() + RMDIR_WAIT
        while True:
            try:
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        try:
                            (origin / "cgroup.procs").write_text(pid)
                        except FileNotFoundError:  # its old cgroup is gone: the root then
                            (self.mount / "cgroup.procs").write_text(pid)
                group.rmdir()
                self._origins.pop(group.name, None)
                return None
            except OSError as error:
                if time.monotonic() > deadline:
                    return f"cgroup {group}: {error}"
                time.sleep(0.1)

    # -- tearing down ---------------------------------------------------------------------

    def close(self) -> None:
        """Heal, then remove the jumps, the chain and the run's cgroup. Idempotent; raises
        CleanupError naming whatever could not be removed."""
        if not self._opened:
            return
        problems = self._heal()
        for hook in HOOKS:
            while self._iptables_ok("-C", hook, "-j", self.chain):
                if not self._iptables_ok("-D", hook, "-j", self.chain):
                    problems.append(f"iptables -D {hook} -j {self.chain} failed")
                    break
        if self._chain_exists() and not self._iptables_ok("-X", self.chain):
            problems.append(f"iptables -X {self.chain} failed")
        if self.mount is not None and self.root.is_dir():
            try:
                self.root.rmdir()
            except OSError as error:
                problems.append(f"cgroup {self.root}: {error}")
        if problems:
            raise CleanupError("; ".join(problems))
        self._opened = False
        atexit.unregister(self.close)

    # -- iptables -------------------------------------------------------------------------

    def _iptables_run(self, *args: str) -> None:
        subprocess.run(
            [self._iptables, "-w", "30", *args], check=True, capture_output=True, text=True
        )

    def _iptables_ok(self, *args: str) -> bool:
        result = subprocess.run([self._iptables, "-w", "30", *args], capture_output=True)
        return result.returncode == 0

    def _chain_exists(self) -> bool:
        return self._iptables_ok("-S", self.chain)

    def _restore(self, rules: list[str]) -> None:
        text = "*filter\n" + "".join(f"-A {self.chain} {r}\n" for r in rules) + "COMMIT\n"
        result = subprocess.run(
            [self._iptables_restore, "-w", "30", "--noflush"],
            input=text,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"iptables-restore refused the cut: {result.stderr.strip()}")
