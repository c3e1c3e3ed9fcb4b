"""A node's committed Galera position: the model, and how grastate.dat, `--wsrep-recover`
output and the start arguments spell it. Reading files is the runtime's business."""

import re

from api.base import Record

_RECOVERED = re.compile(r"WSREP: Recovered position: ([0-9a-f-]{36}):(-?\d+)")


class GaleraPosition(Record):
    """A node's last committed position as read from its data directory."""

    uuid: str | None = None
    seqno: int = -1
    safe_to_bootstrap: bool = False
    recovered: bool = False  # seqno came from `--wsrep-recover`, not grastate.dat
    empty: bool = False  # no data directory content at all
    unreadable: str | None = None  # data there, position not recoverable: why (damaged?)


class NodePosition(Record):
    node: str
    position: GaleraPosition


def parse_grastate(text: str) -> GaleraPosition:
    """The fields of a grastate.dat file."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    return GaleraPosition(
        uuid=fields.get("uuid"),
        seqno=int(fields.get("seqno", "-1")),
        safe_to_bootstrap=fields.get("safe_to_bootstrap") == "1",
    )


def recovered_position(log_text: str) -> tuple[str, int] | None:
    """The last `uuid:seqno` a `mariadbd --wsrep-recover` run logged, or None."""
    found = _RECOVERED.findall(log_text)
    if not found:
        return None
    uuid, seqno = found[-1]
    return uuid, int(seqno)


def start_arguments(position: GaleraPosition) -> list[str]:
    """`--wsrep-start-position` when the position is known: Galera then requests an IST from
    there (and a bootstrap continues the same history); without it, a node recovered from a
    crash presents no state and receives a full SST."""
    if position.uuid is None or position.seqno < 0 or position.unreadable:
        return []
    return [f"--wsrep-start-position={position.uuid}:{position.seqno}"]
