"""The safety rules for operator-forced actions (galera/forcing.py)."""

from api.cluster import NodeFacts
from api.messages import NodeMemory
from api.remediation import ForceActionRequest, ForcedAction
from api.states import NodeState
from galera.forcing import refusal

GREEN = NodeState.GREEN
DOWN = NodeState.RED_UNCLEAN


def nodes(*states: NodeState, seqnos: tuple[int | None, ...] = ()) -> list[NodeMemory]:
    seqnos = seqnos or (None,) * len(states)
    return [
        NodeMemory(name=f"db-{i}", ordinal=i, state=state, facts=NodeFacts(seqno=seqno))
        for i, (state, seqno) in enumerate(zip(states, seqnos, strict=True))
    ]


def ask(action: ForcedAction, node: str = "db-0", force: bool = False) -> ForceActionRequest:
    return ForceActionRequest(action=action, node=node, reason="test", force=force)


def test_an_unknown_node_is_always_refused() -> None:
    found = refusal(ask(ForcedAction.RESTART_NODE, "db-7"), nodes(GREEN, GREEN), primary=True)
    assert found is not None and not found.overridable and "db-0, db-1" in found.reason


def test_restarting_the_only_serving_node_needs_force() -> None:
    found = refusal(ask(ForcedAction.RESTART_NODE), nodes(GREEN, DOWN, DOWN), primary=True)
    assert found is not None and found.overridable and "only node serving" in found.reason
    assert refusal(ask(ForcedAction.RESTART_NODE), nodes(GREEN, GREEN, DOWN), True) is None
    assert refusal(ask(ForcedAction.KILL_AND_RESTART_NODE), nodes(DOWN, GREEN), True) is None


def test_reprovision_needs_a_donor_and_force_for_a_green_node() -> None:
    no_donor = refusal(ask(ForcedAction.REPROVISION_NODE), nodes(DOWN, DOWN, DOWN), False)
    assert no_donor is not None and not no_donor.overridable and "donor" in no_donor.reason
    healthy = refusal(ask(ForcedAction.REPROVISION_NODE), nodes(GREEN, GREEN, GREEN), True)
    assert healthy is not None and healthy.overridable
    assert refusal(ask(ForcedAction.REPROVISION_NODE), nodes(DOWN, GREEN, GREEN), True) is None


def test_bootstrap_beside_a_primary_is_refused_even_when_forced() -> None:
    found = refusal(ask(ForcedAction.BOOTSTRAP_FROM_NODE, force=True), nodes(DOWN, GREEN), True)
    assert found is not None and not found.overridable and "split" in found.reason


def test_bootstrap_from_a_node_seen_behind_needs_force() -> None:
    seen = nodes(DOWN, DOWN, DOWN, seqnos=(4, 9, None))
    found = refusal(ask(ForcedAction.BOOTSTRAP_FROM_NODE), seen, primary=False)
    assert found is not None and found.overridable and "db-1=9" in found.reason
    assert refusal(ask(ForcedAction.BOOTSTRAP_FROM_NODE, "db-1"), seen, primary=False) is None
