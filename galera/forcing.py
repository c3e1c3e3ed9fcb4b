"""Which operator-forced actions are refused. Pure, so the rules can be read and tested.

| action             | always refused                          | refused unless `force`           |
|--------------------|-----------------------------------------|----------------------------------|
| any                | unknown node; cluster not Running       | -                                |
| RestartNode,       | -                                       | the node is the only one serving |
| KillAndRestartNode |                                         |                                  |
| ReprovisionNode    | no other node Green to be the SST donor | the node is Green                |
| BootstrapFromNode  | a Primary component runs (split brain)  | another node was seen further on |

The last observed positions are what a validator can know; the task reads the stored
positions again before it bootstraps and refuses then, with them as evidence, unless forced.
"""

from dataclasses import dataclass

from api.messages import NodeMemory
from api.remediation import ForceActionRequest, ForcedAction
from api.states import NodeState


@dataclass(frozen=True)
class Refusal:
    reason: str
    overridable: bool  # `force` carries the request out anyway


def refusal(request: ForceActionRequest, nodes: list[NodeMemory], primary: bool) -> Refusal | None:
    """Why the request must not be carried out, or None when it may."""
    target = next((n for n in nodes if n.name == request.node), None)
    if target is None:
        names = ", ".join(n.name for n in nodes) or "none"
        return Refusal(f"no node {request.node!r} in this cluster (nodes: {names})", False)
    others = [n for n in nodes if n.name != request.node]
    green_others = [n.name for n in others if n.state is NodeState.GREEN]
    action = request.action
    if action in (ForcedAction.RESTART_NODE, ForcedAction.KILL_AND_RESTART_NODE):
        if target.state is NodeState.GREEN and not green_others:
            return Refusal(f"{request.node} is the only node serving: restarting it stops", True)
        return None
    if action is ForcedAction.REPROVISION_NODE:
        if not green_others:
            return Refusal(
                f"no other node is Green: {request.node} would have no donor for its SST", False
            )
        if target.state is NodeState.GREEN:
            return Refusal(
                f"{request.node} is Green: its data directory would be replaced (kept aside)",
                True,
            )
        return None
    if primary:
        serving = [n.name for n in nodes if n.state is NodeState.GREEN]
        on = f" on {', '.join(serving)}" if serving else ""
        return Refusal(
            f"a Primary component runs{on}: bootstrapping beside it splits the cluster", False
        )
    mine = _seqno(target)
    ahead = [f"{n.name}={n.facts.seqno}" for n in others if _seqno(n) > mine]
    if ahead:
        return Refusal(
            f"{request.node} (seqno {mine}) is not the most advanced: {', '.join(ahead)}", True
        )
    return None


def _seqno(node: NodeMemory) -> int:
    """The last committed seqno seen on the node; -1 when none was seen."""
    return node.facts.seqno if node.facts.seqno is not None else -1
