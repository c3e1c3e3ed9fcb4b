"""A real mariadbd's error log, copy-truncated by its node agent while the server runs, stays
bounded, gets no hole (mariadbd appends), and its readers still find the run's start, its
joins and how it ended (activities/local/logfiles.py). One node, no workflow: seconds."""

import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.local import logfiles
from activities.local.paths import ClusterPaths
from activities.local.process import (
    START_MARKER,
    agent_pid,
    alive,
    argv,
    exit_kind_from_log,
    read_json,
)
from activities.local.runtime import LocalRuntime
from activities.runtime import ClusterRef, StopMode
from api.cluster import MySQLClusterSpec
from api.states import ExitKind
from tests.conftest import free_port
from workers.agent.node import run_join

CAP, KEEP = 2048, 20  # far below one start's log: it rotates several times while it runs


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private state directory and port range; agents (started from here, with this
    environment) rotate at `CAP` and look every 0.1 s; Temporal is not needed."""
    home = Path(tempfile.mkdtemp(prefix="mo-rot-", dir="/tmp"))
    monkeypatch.setenv("MYSQLOPS_HOME", str(home))
    monkeypatch.setenv("MYSQLOPS_PORT_BASE", str(random.randrange(10000, 30000, 100)))
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv(logfiles.MAX_BYTES_VARIABLE, str(CAP))
    monkeypatch.setenv(logfiles.KEEP_VARIABLE, str(KEEP))
    monkeypatch.setenv(logfiles.CHECK_VARIABLE, "0.1")
    yield home
    runtime = LocalRuntime(home)
    for layout in runtime.saved_layouts():
        runtime.stop_cluster_processes(layout, StopMode.KILL)
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    for pid in pids:
        if alive(pid) and any(str(home) in arg for arg in argv(pid)):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(home, ignore_errors=True)


def test_a_running_nodes_error_log_rotates_and_is_still_read(home: Path) -> None:
    runtime = LocalRuntime(home)
    layout = runtime.layout(ClusterRef(namespace="default", name="rot"), 1)
    node = layout.nodes[0].name
    runtime.provision_node(layout, node, MySQLClusterSpec(replicas=1), bootstrap_candidate=True)
    paths = ClusterPaths.of(home, "default", "rot").node(node)
    paths.error_log.write_text("an earlier run\n" * 400)  # 6 KiB of history before this run

    runtime.start_node(layout, node, bootstrap=True)
    deadline = time.monotonic() + 60
    while "log_offset" not in (state := read_json(paths.agent_state) or {}):
        assert time.monotonic() < deadline, "the agent recorded no start"
        time.sleep(0.05)
    began = state["log_offset"]
    assert isinstance(began, int)
    # Its agent rotates the history at once, then the start's own lines (about 9 KiB).
    while not (
        logfiles.rotated(paths.error_log, 2).exists()
        and "ready for connections" in logfiles.read_since(paths.error_log, began)
    ):
        assert time.monotonic() < deadline, "not rotated, or mariadbd not ready"
        time.sleep(0.1)
    runtime.stop_node(layout, node, StopMode.GRACEFUL, timeout=60)
    runtime.retire_cluster(layout, delete_data=False)  # ends the agent, and its rotations
    assert agent_pid(paths.agent_pid, paths.root) is None

    current = paths.error_log.read_bytes()
    assert b"\0" not in current  # mariadbd's writes after a truncation landed at the new end
    copies = [logfiles.rotated(paths.error_log, n) for n in range(1, KEEP + 2)]
    copies = [copy for copy in copies if copy.exists()]
    assert 2 <= len(copies) <= KEEP
    assert sum(p.stat().st_size for p in [paths.error_log, *copies]) < CAP * (KEEP + 1)

    # The run's own lines, from where the agent said it began, across the rotations.
    assert began >= 400 * len("an earlier run\n")
    run = logfiles.read_since(paths.error_log, began)
    assert run.count(START_MARKER) == 1 and "an earlier run" not in run
    assert run.rstrip().endswith("Shutdown complete")
    assert run_join(paths.error_log, paths.agent_state) is None  # a bootstrap: no transfer

    # Without the agent's record, the log alone says the run ended cleanly.
    assert exit_kind_from_log(paths.error_log) == (
        ExitKind.CLEAN,
        "clean shutdown recorded in the error log",
    )
