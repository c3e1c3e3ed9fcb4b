"""The local runtime with real processes (mariadbd under its agent, HAProxy), without a
workflow: a retried load-balancer change really reaches HAProxy, and starting a node never
puts a second agent beside a live one. Everything runs in a private state directory and
port range, and is stopped and removed at the end."""

import contextlib
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from activities.local import haproxy
from activities.local.paths import ClusterPaths
from activities.local.process import alive, argv, read_pid
from activities.local.runtime import LocalRuntime
from activities.runtime import ClusterLayout, ClusterRef, StopMode
from api.cluster import MySQLClusterSpec
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private state directory (sockets stay inside it), a private port range, and a
    Temporal address nobody answers (the agents' reports just wait)."""
    home = Path(tempfile.mkdtemp(prefix="mo-hyg-", dir="/tmp"))
    monkeypatch.setenv("MYSQLOPS_HOME", str(home))
    monkeypatch.setenv("MYSQLOPS_PORT_BASE", str(random.randrange(10000, 30000, 100)))
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    yield home
    runtime = LocalRuntime(home)
    for layout in runtime.saved_layouts():
        runtime.stop_cluster_processes(layout, StopMode.KILL)
    for pid in processes_under(home):  # whatever the runtime did not know of
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes_under(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(home)


def processes_under(home: Path) -> list[int]:
    """Every live process whose command line names a path in `home`."""
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    return [pid for pid in pids if alive(pid) and any(str(home) in a for a in argv(pid))]


def agents_of(node_dir: Path) -> list[int]:
    return sorted(
        pid
        for pid in processes_under(node_dir)
        if "workers.agent" in argv(pid) and str(node_dir) in argv(pid)
    )


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


# -- load balancer ---------------------------------------------------------------------------


def writer_servers(runtime: LocalRuntime, layout: ClusterLayout) -> list[str]:
    """The servers the running HAProxy routes writes to, asked over its runtime API."""
    sock = ClusterPaths.of(runtime.home, "default", layout.cluster.name).haproxy_socket
    return [server.name for server in haproxy.servers(sock, "writer")]


def test_load_balancer_change_retried_after_a_failed_reload_goes_live(home: Path) -> None:
    runtime = LocalRuntime(home)
    layout = runtime.layout(ClusterRef(namespace="default", name="lb"), 3)
    paths = ClusterPaths.of(home, "default", "lb")
    runtime.configure_load_balancer(layout, ["lb-0"])
    first = read_pid(paths.haproxy_pid)
    assert writer_servers(runtime, layout) == ["lb-0"]
    runtime.configure_load_balancer(layout, ["lb-0"])  # unchanged: nothing to do
    assert read_pid(paths.haproxy_pid) == first
    live_config = paths.haproxy_cfg.read_text()

    # The reload fails: HAProxy does not answer (here: held stopped).
    assert first is not None
    os.kill(first, signal.SIGSTOP)
    try:
        with pytest.raises(RuntimeError, match="did not answer"):
            runtime.configure_load_balancer(layout, ["lb-0", "lb-1"])
    finally:
        os.kill(first, signal.SIGCONT)
    assert paths.haproxy_cfg.read_text() == live_config
    assert writer_servers(runtime, layout) == ["lb-0"]

    # The retry must not take the change for done: it reloads.
    runtime.configure_load_balancer(layout, ["lb-0", "lb-1"])
    assert writer_servers(runtime, layout) == ["lb-0", "lb-1"]
    assert read_pid(paths.haproxy_pid) != first


def test_invalid_load_balancer_config_is_refused_and_stays_refused(home: Path) -> None:
    runtime = LocalRuntime(home)
    layout = runtime.layout(ClusterRef(namespace="default", name="lbx"), 3)
    paths = ClusterPaths.of(home, "default", "lbx")
    runtime.configure_load_balancer(layout, ["lbx-0"])
    live_config = paths.haproxy_cfg.read_text()
    running = read_pid(paths.haproxy_pid)
    # A server name HAProxy rejects ('/' is not allowed in it).
    bad = layout.model_copy(
        update={"nodes": [*layout.nodes[:1], layout.nodes[1].model_copy(update={"name": "lbx/1"})]}
    )
    for _attempt in range(2):  # the retry fails the same way, it does not report success
        with pytest.raises(RuntimeError, match="invalid HAProxy configuration") as refused:
            runtime.configure_load_balancer(bad, ["lbx-0", "lbx/1"])
        assert "not permitted in server name" in str(refused.value)
        assert paths.haproxy_cfg.read_text() == live_config
        assert read_pid(paths.haproxy_pid) == running
        assert writer_servers(runtime, layout) == ["lbx-0"]
    assert not (paths.root / "haproxy.cfg.new").exists()


# -- one agent per node ----------------------------------------------------------------------


def one_node(runtime: LocalRuntime, name: str) -> tuple[ClusterLayout, str, Path]:
    layout = runtime.layout(ClusterRef(namespace="default", name=name), 1)
    node = layout.nodes[0].name
    runtime.provision_node(layout, node, MySQLClusterSpec(replicas=1), bootstrap_candidate=True)
    return layout, node, ClusterPaths.of(runtime.home, "default", name).node(node).root


def test_start_node_waits_for_a_live_agent_instead_of_starting_another(home: Path) -> None:
    runtime = LocalRuntime(home)
    layout, node, node_dir = one_node(runtime, "ag")
    first = read_pid(node_dir / "agent.pid")  # provisioning started it
    assert first is not None and agents_of(node_dir) == [first]
    # The agent is alive but does not answer for a while (busy, as while it recovers the
    # node's position after a crash, which may take minutes): here it is held stopped.
    os.kill(first, signal.SIGSTOP)
    resume = threading.Timer(2.0, os.kill, (first, signal.SIGCONT))
    resume.start()
    try:
        # Two attempts of the same step at once (a retried activity): one mariadbd.
        with ThreadPoolExecutor(2) as pool:
            pids = list(pool.map(lambda _: runtime.start_node(layout, node, True), range(2)))
    finally:
        resume.join()
    pid = pids[0]
    assert pids == [pid, pid] and "mariadbd" in argv(pid)[0]
    assert parent_of(pid) == first  # the live agent's mariadbd, not a second agent's
    assert agents_of(node_dir) == [first]
    assert runtime.start_node(layout, node, bootstrap=True) == pid  # running: nothing to do
    assert agents_of(node_dir) == [first]


def test_start_node_right_after_mariadbd_died_starts_it_again(home: Path) -> None:
    runtime = LocalRuntime(home)
    layout, node, node_dir = one_node(runtime, "ak")
    pid = runtime.start_node(layout, node, bootstrap=True)
    agent = read_pid(node_dir / "agent.pid")
    # mariadbd dies; its agent is recording how it ended when the start comes.
    os.kill(pid, signal.SIGKILL)
    while alive(pid):  # the signal takes a moment; the agent notices within 0.25 s
        time.sleep(0.001)
    again = runtime.start_node(layout, node, bootstrap=True)
    assert again != pid and alive(again)
    # The agent outlives the runs of its node: the same one started the new run.
    assert agent is not None and agents_of(node_dir) == [agent] == [parent_of(again)]
    facts = runtime.process_facts(layout, node)
    assert facts.alive and facts.pid == again


def test_reads_racing_with_the_retirement_leave_no_agent(home: Path) -> None:
    """A watch's last reads may overlap the cluster's deletion: once retired, no read starts
    the node's agent again (CI once found one alive after its test had ended)."""
    runtime = LocalRuntime(home)
    layout, node, node_dir = one_node(runtime, "rr")
    agent = read_pid(node_dir / "agent.pid")
    assert agent is not None
    os.kill(agent, signal.SIGKILL)  # dead: the next read starts it again, as a kubelet would
    retired = threading.Event()

    def read_until_retired() -> int:
        reads = 0
        while not retired.is_set():
            with contextlib.suppress(RuntimeError, OSError):
                runtime.process_facts(layout, node)
                reads += 1
        return reads

    with ThreadPoolExecutor(2) as pool:
        readers = [pool.submit(read_until_retired) for _ in range(2)]
        time.sleep(0.3)  # the readers start the agent and read from it
        runtime.retire_cluster(layout, delete_data=False)
        retired.set()
        assert sum(reader.result() for reader in readers) > 0
    assert agents_of(node_dir) == []
    facts = runtime.process_facts(layout, node)
    assert not facts.provisioned and not facts.alive
    assert agents_of(node_dir) == []  # the read after the retirement started none
