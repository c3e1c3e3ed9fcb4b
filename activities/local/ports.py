"""Port slots: each local cluster owns a block of 100 ports, so clusters run side by side.

Offsets inside a slot starting at `base` (slot 0 of the default base 33000 shown):

    writer endpoint  base+6   (33006)    reader endpoint base+7   (33007)
    HAProxy stats    base+8   (33008)
    node i (0..8):   MySQL base+10+i, Galera base+20+i, IST base+30+i, SST base+40+i,
                     agent health base+50+i
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
MAX_SLOTS = 300
DEFAULT_BASE = 33000


@dataclass(frozen=True)
class SlotPorts:
    base: int

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

    def all(self) -> list[int]:
        fixed = [self.writer, self.reader, self.stats]
        per_node = [f(i) for i in range(9) for f in (self.mysql, self.galera, self.ist, self.sst)]
        return fixed + per_node + [self.agent(i) for i in range(9)]


def port_base() -> int:
    return int(os.environ.get("MYSQLOPS_PORT_BASE", DEFAULT_BASE))


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
            return SlotPorts(base + SLOT_SIZE * slots[key])
        taken = set(slots.values())
        for slot in range(MAX_SLOTS):
            ports = SlotPorts(base + SLOT_SIZE * slot)
            if slot not in taken and all(_free(port) for port in ports.all()):
                slots[key] = slot
                return ports
    raise RuntimeError(f"no free block of {SLOT_SIZE} ports from {base}")


def release(registry: Path, key: str) -> None:
    with _locked(registry) as slots:
        slots.pop(key, None)
