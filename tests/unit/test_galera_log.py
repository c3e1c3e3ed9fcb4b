"""How a node joined, read from real error logs of this machine's MariaDB 10.11 + Galera 4."""

from pathlib import Path

from api.states import JoinMethod
from galera.log import NO_STATE, last_join, sst_cause

LOGS = Path(__file__).parent / "galera_logs"
UUID = "3f683fe0-ebe8-11f1-8954-8e4dfbbd50ce"


def test_killed_node_started_with_its_position_joins_by_ist() -> None:
    join = last_join((LOGS / "ist_after_kill.log").read_text())
    assert join is not None
    assert join.method is JoinMethod.IST
    assert "22 writesets, seqnos 26-47" in join.detail
    assert "from manual-1" in join.detail


def test_node_started_without_position_gets_a_full_copy() -> None:
    join = last_join((LOGS / "sst_no_position.log").read_text())
    assert join is not None
    assert join.method is JoinMethod.SST  # although an IST of the writes during it follows
    assert "no committed position" in join.detail
    assert "from manual-0" in join.detail


def test_the_last_transfer_counts() -> None:
    text = (LOGS / "sst_no_position.log").read_text() + (LOGS / "ist_after_kill.log").read_text()
    join = last_join(text)
    assert join is not None and join.method is JoinMethod.IST


def test_no_transfer_no_join() -> None:
    assert last_join("2026-11-29 11:30:46 0 [Note] WSREP: Synchronized with group, ready\n") is None


def test_sst_causes_name_the_reason() -> None:
    assert "no committed position" in sst_cause(UUID, 50, NO_STATE, -1)
    other = "aaaaaaaa-ebe8-11f1-8954-8e4dfbbd50ce"
    assert "another cluster history" in sst_cause(UUID, 50, other, 9)
    assert "gcache" in sst_cause(UUID, 5000, UUID, 10)
    assert "11-5000" in sst_cause(UUID, 5000, UUID, 10)
