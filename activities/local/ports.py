"""Port slots: each local cluster owns a block of 100 ports, so clusters run side by side.

Offsets inside a slot starting at `base` (slot 0 of the default base 23000 shown):

    writer endpoint  base+6   (23006)    reader endpoint base+7   (23007)
    HAProxy stats    base+8   (23008)
    node i (0..8):   MySQL base+10+i, Galera base+20+i, IST base+30+i, SST base+40+i,
                     agent health base+50+i, mysqld_exporter base+60+i

The node agents' metrics are the exception, at the documented 9470 + 10 * slot + i
(`MYSQLOPS_AGENT_METRICS_BASE`): the first cluster's agents at 9470, 9471, 9472.

Slots never overlap the kernel's ephemeral port range (`ip_local_port_range`): there, any
outgoing connection may hold a port at the moment a node needs to listen on it (seen as an
IST listener failing with "Address already in use" and the join aborting).
"""

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SLOT_SIZE = 100
AGENT_METRICS_BASE = 9470
MAX_SLOTS = 300
DEFAULT_BASE = 23000


@dataclass(frozen=True)
class SlotPorts:
    base: int
    index: int = 0  # the slot's number: 0 for the first cluster

    @property
    def writer(self) -> int:
        return self.base + 6

    @property
    def reader(self) -> int:
        return self.base + 7

    @property
    def stats(self) -> int:
        return self.base + 8

    def mysql(self, ordinal: int) -> int:
        return self.base + 10 + ordinal

    def galera(self, ordinal: int) -> int:
        return self.base + 20 + ordinal

    def ist(self, ordinal: int) -> int:
        return self.base + 30 + ordinal

    def sst(self, ordinal: int) -> int:
        return self.base + 40 + ordinal

    def agent(self, ordinal: int) -> int:
        return self.base + 50 + ordinal

    def exporter(self, ordinal: int) -> int:
        return self.base + 60 + ordinal

    def agent_metrics(self, ordinal: int) -> int:
        base = int(os.environ.get("MYSQLOPS_AGENT_METRICS_BASE", AGENT_METRICS_BASE))
        return base + 10 * self.index + ordinal

    def all(self) -> list[int]:
        fixed = [self.writer, self.reader, self.stats]
        per_node = [
            f(i)
            for i in range(9)
            for f in (
                self.mysql,
                self.galera,
                self.ist,
                self.sst,
                self.agent,
                self.exporter,
                self.agent_metrics,
            )
        ]
        return fixed + per_node


def port_base() -> int:
    return int(os.environ.get("MYSQLOPS_PORT_BASE", DEFAULT_BASE))


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _usable(ports: SlotPorts) -> bool:
    low, high = ephemeral_range()
    first, last = ports.base, ports.base + SLOT_SIZE - 1
    return (last < low or first > high) and last <= 65535 and all(_free(p) for p in ports.all())


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _locked(registry: Path) -> Iterator[dict[str, int]]:
    registry.parent.mkdir(parents=True, exist_ok=True)
    with open(registry.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        slots: dict[str, int] = json.loads(registry.read_text()) if registry.exists() else {}
        yield slots
        tmp = registry.with_suffix(".tmp")
        tmp.write_text(json.dumps(slots, indent=2, sort_keys=True))
        tmp.replace(registry)


def allocate(registry: Path, key: str) -> SlotPorts:
    """The slot of cluster `key`: its recorded one, else the first whose ports are all free."""
    base = port_base()
    with _locked(registry) as slots:
        if key in slots:
            return SlotPorts(base + SLOT_SIZE * slots[key], slots[key])
        taken = set(slots.values())
        for slot in range(MAX_SLOTS):
            ports = SlotPorts(base + SLOT_SIZE * slot, slot)
            if slot not in taken and _usable(ports):
                slots[key] = slot
                return ports
    raise RuntimeError(f"no free block of {SLOT_SIZE} ports from {base}")


def release(registry: Path, key: str) -> None:
    with _locked(registry) as slots:
        slots.pop(key, None)
