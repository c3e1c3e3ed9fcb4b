"""Which node may start a new Primary component. Pure, so the rule can be read and tested.

Galera's rule, made strict: bootstrap only from the most advanced node. A node that shut down
last and cleanly carries `safe_to_bootstrap: 1`; otherwise compare committed positions (seqno
from grastate.dat or `--wsrep-recover`) within the same cluster history (uuid). A node with an
empty data directory is never chosen while any node has data. Ties go to a node that runs (it
becomes Primary in place), then to the lowest ordinal.
"""

from dataclasses import dataclass

from api.mysql_options import config_error
from galera.faults import storage_error
from galera.position import GaleraPosition, NodePosition


@dataclass(frozen=True)
class BootstrapChoice:
    node: str
    reason: str


class NoSafeBootstrap(Exception):
    """The positions do not prove one node most advanced: a human must decide."""


def choose_bootstrap(
    positions: list[NodePosition], ordinals: dict[str, int], running: frozenset[str] = frozenset()
) -> BootstrapChoice:
    """The node to bootstrap; among equally advanced ones a `running` node (made Primary in
    place, nothing stopped), then the lowest ordinal."""
    with_data = [p for p in positions if not p.position.empty]
    if not with_data:
        raise NoSafeBootstrap("no node has a data directory")
    histories = {p.position.uuid for p in with_data if p.position.uuid}
    if len(histories) > 1:
        raise NoSafeBootstrap(f"nodes belong to different cluster histories: {sorted(histories)}")
    safe = [p for p in with_data if p.position.safe_to_bootstrap]
    if len(safe) == 1:
        return BootstrapChoice(safe[0].node, f"{safe[0].node} is marked safe_to_bootstrap")
    best = max(with_data, key=lambda p: (p.position.seqno, p.node in running, -ordinals[p.node]))
    if best.position.seqno < 0 and len(with_data) > 1:
        raise NoSafeBootstrap("no node has a known committed position")
    seen = ", ".join(
        f"{p.node}={'empty' if p.position.empty else p.position.seqno}" for p in positions
    )
    return BootstrapChoice(best.node, f"{best.node} has the highest committed seqno ({seen})")


def must_keep_aside(position: GaleraPosition) -> str | None:
    """Why a stopped node's data directory must be moved aside before the node starts, or
    None. A node whose committed position cannot be read gets a full state transfer, and
    Galera's SST empties the data directory it finds: moved aside first, it is kept. Not when
    the storage is what failed (disk full, permissions), nor when the server refused its
    configuration: a new copy would fail the same way, and that fault is a human's."""
    if not position.unreadable or position.empty or storage_error(position.unreadable):
        return None
    if config_error(position.unreadable):
        return None  # the server refused its configuration, not its data
    return position.unreadable


def can_join_by_ist(positions: list[NodePosition], bootstrap: str) -> list[str]:
    """The nodes that can receive an IST from the bootstrap node: a known position in the same
    history. (Whether its gcache still holds their gap shows only when they ask: if not, they
    get an SST, and Galera picks a donor for each.)"""
    first = next(p.position for p in positions if p.node == bootstrap)
    return [
        p.node
        for p in positions
        if p.node != bootstrap
        and p.position.uuid is not None
        and p.position.uuid == first.uuid
        and p.position.seqno >= 0
        and not p.position.unreadable
        and not p.position.empty
    ]
