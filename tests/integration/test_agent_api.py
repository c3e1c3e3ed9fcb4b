"""The node agent API against a real agent and a real mariadbd (one node, bootstrapped), called
as the runtimes call it: the token, the orders and what survives an agent restart, the facts,
the position, setting data aside, and the backup stream with the tool's outcome."""

import json
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import urllib3

from activities.agent_client import AgentClient, AgentError
from activities.local.paths import ClusterPaths, NodePaths
from activities.local.process import agent_pid, alive, argv
from activities.local.runtime import LocalRuntime
from activities.runtime import ClusterLayout, ClusterRef, NodeFailed, StopMode
from activities.users import APP_SECRET, APP_USER, MONITOR_SECRET, MONITOR_USER
from api.agent import HEALTH, LIVE, NODE, TOKEN_SECRET, AgentConfig, OrderKind
from api.cluster import MySQLClusterSpec
from api.states import ExitKind
from tests.conftest import free_port


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("MYSQLOPS_HOME", str(home))
    monkeypatch.setenv("MYSQLOPS_PORT_BASE", str(random.randrange(10000, 30000, 100)))
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")  # reports go nowhere
    yield home
    runtime = LocalRuntime(home)
    for layout in runtime.saved_layouts():
        runtime.stop_cluster_processes(layout, StopMode.KILL)
    for entry in Path("/proc").iterdir():
        pid = int(entry.name) if entry.name.isdigit() else None
        if pid is not None and alive(pid) and any(str(home) in arg for arg in argv(pid)):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(home, ignore_errors=True)


class Node:
    def __init__(self, home: Path) -> None:
        self.runtime = LocalRuntime(home)
        self.layout: ClusterLayout = self.runtime.layout(ClusterRef(namespace="t", name="ag"), 1)
        self.name = self.layout.nodes[0].name
        self.paths: NodePaths = ClusterPaths.of(home, "t", "ag").node(self.name)
        self.runtime.provision_node(
            self.layout, self.name, MySQLClusterSpec(replicas=1), bootstrap_candidate=True
        )
        self.config = AgentConfig.load(self.paths.root)
        self.address = f"{self.config.host}:{self.config.health_port}"
        token = self.runtime.read_secret(self.layout.cluster, TOKEN_SECRET)
        self.agent = AgentClient(self.address, token)

    def agent_pid(self) -> int | None:
        return agent_pid(self.paths.agent_pid, self.paths.root)

    def restart_agent(self) -> None:
        """Kill the agent alone (mariadbd, when running, goes on) and start it again."""
        pid = self.agent_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), "the agent did not die")
        self.runtime.process_facts(self.layout, self.name)  # the runtime starts it again


def wait_for(check: object, what: str, timeout: float = 60) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def node(home: Path) -> Node:
    return Node(home)


def test_operations_need_the_token_and_probes_do_not(node: Node) -> None:
    http = urllib3.PoolManager(retries=False)
    refused = http.request("GET", f"http://{node.address}{NODE}")
    assert refused.status == 401 and json.loads(refused.data)["error"] == "unauthorized"
    wrong = http.request(
        "GET", f"http://{node.address}{NODE}", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status == 401
    assert http.request("GET", f"http://{node.address}{LIVE}").status == 200
    # Not serving yet (never started): HAProxy and the kubelet see 503.
    assert http.request("GET", f"http://{node.address}{HEALTH}").status == 503
    assert node.agent.version().api == "v1"
    # The token is a 0600 file that agent.json names; it is on no command line.
    assert Path(node.config.token_file).stat().st_mode & 0o777 == 0o600
    token = Path(node.config.token_file).read_text().strip()
    pid = node.agent_pid()
    assert pid is not None and not any(token in arg for arg in argv(pid))
    # A malformed order is refused and changes nothing.
    bad = http.request(
        "POST",
        f"http://{node.address}/v1/node/start",
        body=b'{"bootstrap": true, "persist": true}',
        headers={"Authorization": f"Bearer {token}"},
    )
    assert bad.status == 400 and "second cluster" in json.loads(bad.data)["message"]
    assert node.agent.status().order is None and not node.agent.status().facts.alive


def test_start_stop_and_the_facts_of_each_run(node: Node) -> None:
    agent = node.agent
    pid = agent.start(bootstrap=True)
    assert agent.start(bootstrap=False) == pid  # idempotent: the running one
    status = agent.status()
    assert status.facts.alive and status.facts.pid == pid and status.runs == 1
    assert status.order is not None and status.order.kind is OrderKind.RUN
    wait_for(lambda: agent.status().serving, "never Synced")
    agent.sql(["CREATE DATABASE kept", "CREATE TABLE kept.t (id INT PRIMARY KEY)"])
    agent.sql(["INSERT INTO kept.t VALUES (1), (2)"])
    with pytest.raises(AgentError) as running:
        agent.position()
    assert running.value.status == 409

    after = agent.stop(StopMode.GRACEFUL, timeout=60)
    assert not after.facts.alive and after.facts.exit_kind is ExitKind.CLEAN
    assert after.order is not None and after.order.kind is OrderKind.HOLD
    assert agent.stop(StopMode.GRACEFUL, timeout=60).facts.exit_kind is ExitKind.CLEAN
    position = agent.position()
    assert position.uuid and position.seqno >= 3 and not position.recovered

    # The next run starts from that position; a SIGKILL is an unclean exit the agent saw.
    pid = agent.start(bootstrap=True)
    assert agent.status().start_position == f"{position.uuid}:{position.seqno}"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: agent.status().facts.exit_kind is not None, "exit not recorded")
    facts = agent.status().facts
    assert facts.exit_kind is ExitKind.UNCLEAN and "SIGKILL" in (facts.exit_detail or "")
    assert node.agent_pid() is not None  # the agent outlives the runs of its node
    recovered = agent.position()
    assert recovered.recovered and recovered.uuid == position.uuid


def test_a_restarted_agent_adopts_holds_or_follows_a_persisted_order(node: Node) -> None:
    agent = node.agent
    pid = agent.start(bootstrap=True)
    node.restart_agent()
    # mariadbd went on: the new agent adopts it, never starts a second one.
    assert agent.status().facts.pid == pid and alive(pid)
    agent.stop(StopMode.GRACEFUL, timeout=60)
    node.restart_agent()
    time.sleep(1)
    assert not agent.status().facts.alive  # held: stopped on purpose stays stopped

    pid = agent.start(bootstrap=True)
    agent.stop(StopMode.KILL, timeout=10, hold=False)
    node.restart_agent()
    time.sleep(1)
    # A bootstrap order never persists, and no peer serves: it waits for an order.
    assert not agent.status().facts.alive
    # A persisted join order is carried out again by a restarted agent.
    http = urllib3.PoolManager(retries=False)
    token = Path(node.config.token_file).read_text().strip()
    answer = http.request(
        "POST",
        f"http://{node.address}/v1/node/start",
        body=b'{"persist": true}',
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status == 200, answer.data
    agent.stop(StopMode.KILL, timeout=10, hold=False)
    order = agent.status().order
    assert order is not None and order.persist
    node.restart_agent()
    wait_for(lambda: agent.status().runs == 1, "the persisted order was not carried out")


def test_refused_configuration_fails_the_start_and_says_why(node: Node) -> None:
    with node.paths.config.open("a") as mycnf:
        mycnf.write("\n[mariadbd]\nmax_connections = lots\n")
    with pytest.raises(NodeFailed, match="max_connections"):
        node.agent.start(bootstrap=True)
    facts = node.agent.status().facts
    assert not facts.alive and facts.exit_kind is ExitKind.UNCLEAN


def test_set_aside_moves_data_once_and_never_names_an_earlier_aside(node: Node) -> None:
    data = node.paths.data
    assert any(data.iterdir())  # initialised by the provisioning (bootstrap candidate)
    kept = node.agent.set_aside()
    assert kept and Path(kept).parent == node.paths.root
    assert (Path(kept) / "mysql").is_dir()
    assert data.is_dir() and not any(data.iterdir())
    # Nothing is left to move: the earlier directory is not this call's doing.
    assert node.agent.set_aside() == ""
    assert [p.name for p in node.paths.root.glob("data.aside-*")] == [Path(kept).name]
    assert node.agent.free_bytes() > 0


def test_backup_stream_and_the_tools_outcome(node: Node) -> None:
    agent = node.agent
    agent.start(bootstrap=True)
    wait_for(lambda: agent.status().serving, "never Synced")
    with agent.backup_stream() as stream:
        first = stream.read(4)
        size = len(first) + sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 16), b""))
    assert first == b"XBST" and size > 1_000_000
    # A reader that gives up stops the tool; the next backup still works.
    with pytest.raises(KeyError), agent.backup_stream() as stream:
        stream.read(1000)
        raise KeyError("the reader gave up")
    with agent.backup_stream() as stream:
        assert stream.read(4) == b"XBST"
        stream.read()
    agent.stop(StopMode.GRACEFUL, timeout=60)
    with pytest.raises(AgentError) as stopped, agent.backup_stream() as stream:
        stream.read()
    assert stopped.value.status == 409


def test_users_get_the_stored_passwords_which_no_request_carries(node: Node) -> None:
    cluster = node.layout.cluster
    for key in (APP_SECRET, MONITOR_SECRET):
        node.runtime.ensure_secret(cluster, key)
    node.agent.start(bootstrap=True)
    wait_for(lambda: node.agent.status().serving, "never Synced")
    node.runtime.ensure_users(node.layout, node.name)
    node.runtime.ensure_users(node.layout, node.name)  # again: nothing changes

    def logs_in(user: str, password: str) -> bool:
        try:
            pymysql.connect(
                unix_socket=str(node.paths.socket), user=user, password=password
            ).close()
        except pymysql.err.OperationalError:
            return False
        return True

    # Over the socket the client is 'localhost': '%' matches it once the anonymous
    # ''@'localhost' of a fresh data directory is gone.
    for user, key in ((APP_USER, APP_SECRET), (MONITOR_USER, MONITOR_SECRET)):
        assert logs_in(user, node.runtime.read_secret(cluster, key)), user
        assert not logs_in(user, "wrong")
    # A password changed where the runtime keeps it is what the next call sets.
    old = node.runtime.read_secret(cluster, APP_SECRET)
    node.runtime.secret_path(cluster, APP_SECRET).write_text("rotated-password\n")
    node.runtime.ensure_users(node.layout, node.name)
    assert logs_in(APP_USER, "rotated-password") and not logs_in(APP_USER, old)
    assert "rotated-password" not in node.paths.agent_log.read_text()
    # A password that would break out of the statement's quotes is refused; nothing changes.
    node.runtime.secret_path(cluster, APP_SECRET).write_text("it's-mine\n")
    with pytest.raises(AgentError) as refused:
        node.runtime.ensure_users(node.layout, node.name)
    assert "quote" in str(refused.value) and "it's-mine" not in str(refused.value)
    assert logs_in(APP_USER, "rotated-password")
