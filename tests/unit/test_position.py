"""A stopped node's position: recovered once, reused by the start that follows, never after
the data directory has run or been replaced."""

import os
import shutil
from pathlib import Path

import pytest

from activities.local.paths import NodePaths
from activities.local.position import stored_position

UUID = "3f683fe0-ebe8-11f1-8954-8e4dfbbd50ce"
FAKE_MARIADBD = f"""#!/bin/sh
# Stands in for `mariadbd --wsrep-recover`: counts its runs, logs a recovered position.
echo run >> "$COUNT"
for arg in "$@"; do case "$arg" in --log-error=*) log="${{arg#--log-error=}}";; esac; done
echo "WSREP: Recovered position: {UUID}:42" >> "$log"
"""


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NodePaths:
    paths = NodePaths(tmp_path / "node")
    paths.data.mkdir(parents=True)
    paths.grastate.write_text(f"uuid: {UUID}\nseqno: -1\nsafe_to_bootstrap: 0\n")
    paths.error_log.write_text("the last run\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "mariadbd").write_text(FAKE_MARIADBD)
    (tools / "mariadbd").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    monkeypatch.setenv("COUNT", str(tmp_path / "runs"))
    return paths


def runs(paths: NodePaths) -> int:
    counted = paths.root.parent / "runs"
    return len(counted.read_text().splitlines()) if counted.exists() else 0


def test_a_recovered_position_is_reused_until_the_node_runs(node: NodePaths) -> None:
    first = stored_position(node)
    assert (first.uuid, first.seqno, first.recovered) == (UUID, 42, True)
    assert stored_position(node) == first and runs(node) == 1  # the start reuses it
    node.error_log.write_text("the last run\nanother run\n")  # it ran since: read it again
    assert stored_position(node).seqno == 42 and runs(node) == 2


def test_a_replaced_data_directory_is_read_again(node: NodePaths) -> None:
    stored_position(node)
    shutil.move(node.data, node.root / "data.aside")
    shutil.copytree(node.root / "data.aside", node.data)
    stored_position(node)
    assert runs(node) == 2


def test_marking_the_node_safe_to_bootstrap_keeps_what_was_read(node: NodePaths) -> None:
    stored_position(node)
    node.grastate.write_text(f"uuid: {UUID}\nseqno: -1\nsafe_to_bootstrap: 1\n")
    assert stored_position(node).seqno == 42 and runs(node) == 1
