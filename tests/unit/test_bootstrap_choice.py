"""galera/bootstrap.py: which node may bootstrap a new Primary component, and why."""

import pytest

from galera.bootstrap import (
    NoSafeBootstrap,
    can_join_by_ist,
    choose_bootstrap,
    must_keep_aside,
)
from galera.position import GaleraPosition, NodePosition

UUID = "8f3b1c2e-0000-11ee-9a5b-000000000001"
ORDINALS = {f"demo-{i}": i for i in range(5)}


def pos(
    node: int, seqno: int = -1, *, safe: bool = False, empty: bool = False, uuid: str | None = UUID
) -> NodePosition:
    position = GaleraPosition(
        uuid=None if empty else uuid, seqno=seqno, safe_to_bootstrap=safe, empty=empty
    )
    return NodePosition(node=f"demo-{node}", position=position)


@pytest.mark.parametrize(
    ("positions", "chosen"),
    [
        ([pos(0, 10), pos(1, 5, safe=True), pos(2, 9)], "demo-1"),  # safe wins over seqno
        ([pos(0, 10), pos(1, 12), pos(2, 11)], "demo-1"),
        ([pos(0, 7), pos(1, 12), pos(2, 12)], "demo-1"),  # tie: lowest ordinal
        ([pos(2, 12), pos(1, 12), pos(0, 12)], "demo-0"),  # order of input does not matter
        ([pos(0, 10, safe=True), pos(1, 12, safe=True), pos(2, 3)], "demo-1"),  # two safe: seqno
        ([pos(0, empty=True), pos(1, 4), pos(2, empty=True)], "demo-1"),
        ([pos(0, empty=True), pos(1, -1)], "demo-1"),  # the only node with data
        ([pos(0, 3)], "demo-0"),
    ],
)
def test_choice(positions: list[NodePosition], chosen: str) -> None:
    assert choose_bootstrap(positions, ORDINALS).node == chosen


@pytest.mark.parametrize(
    "positions",
    [
        [pos(0, empty=True), pos(1, empty=True), pos(2, empty=True)],
        [pos(0, 10), pos(1, 12, uuid="another-history"), pos(2, 11)],
        [pos(0, -1), pos(1, -1), pos(2, -1)],  # no committed position known anywhere
    ],
)
def test_no_safe_bootstrap(positions: list[NodePosition]) -> None:
    with pytest.raises(NoSafeBootstrap):
        choose_bootstrap(positions, ORDINALS)


def test_reason_names_choice_and_positions() -> None:
    choice = choose_bootstrap([pos(0, 7), pos(1, 12), pos(2, empty=True)], ORDINALS)
    assert choice.reason.startswith("demo-1 ")
    for seen in ("demo-0=7", "demo-1=12", "demo-2=empty"):
        assert seen in choice.reason


def test_safe_reason_names_node() -> None:
    choice = choose_bootstrap([pos(0, 7), pos(1, 3, safe=True)], ORDINALS)
    assert "demo-1" in choice.reason and "safe_to_bootstrap" in choice.reason


def test_safe_node_from_another_history_is_not_trusted() -> None:
    with pytest.raises(NoSafeBootstrap):
        choose_bootstrap([pos(0, 10), pos(1, 3, safe=True, uuid="another-history")], ORDINALS)


def test_only_data_whose_position_cannot_be_read_is_kept_aside_before_a_start() -> None:
    assert must_keep_aside(GaleraPosition(uuid="u", seqno=5)) is None
    assert must_keep_aside(GaleraPosition(empty=True, unreadable="no data")) is None
    damaged = GaleraPosition(uuid="u", unreadable="--wsrep-recover found no position")
    assert must_keep_aside(damaged) == "--wsrep-recover found no position"
    full = GaleraPosition(uuid="u", unreadable="InnoDB: ... Probably out of disk space")
    assert must_keep_aside(full) is None  # a new copy would not fit either: a human's fault
    refused = GaleraPosition(
        uuid="u", unreadable="--wsrep-recover found no position: mariadbd: unknown variable 'x=1'"
    )
    assert must_keep_aside(refused) is None  # its configuration is broken, not its data


def test_joiners_of_the_same_history_can_take_an_ist_together() -> None:
    other = "8f3b1c2e-0000-11ee-9a5b-0000000000ff"
    positions = [pos(0, 10), pos(1, 9), pos(2, empty=True), pos(3, 4, uuid=other), pos(4, -1)]
    assert can_join_by_ist(positions, "demo-0") == ["demo-1"]


def test_equally_advanced_a_running_node_is_chosen_so_nothing_restarts() -> None:
    tied = [pos(0, 12), pos(1, 12), pos(2, 12)]
    assert choose_bootstrap(tied, ORDINALS).node == "demo-0"
    assert choose_bootstrap(tied, ORDINALS, frozenset({"demo-2"})).node == "demo-2"
    ahead = [pos(0, 13), pos(1, 12), pos(2, 12)]  # never at the cost of a committed write
    assert choose_bootstrap(ahead, ORDINALS, frozenset({"demo-2"})).node == "demo-0"
