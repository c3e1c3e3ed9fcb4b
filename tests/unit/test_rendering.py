"""my.cnf and haproxy.cfg rendering, and port slot allocation."""

import random
import re
import socket
from pathlib import Path

import pytest

from activities.local import mycnf, ports
from activities.local.paths import SOCKET_PATH_MAX, ClusterPaths
from api.cluster import MySQLClusterSpec

PEERS = ("127.0.0.1:33020", "127.0.0.1:33021", "127.0.0.1:33022")


def node(run_as_root: bool) -> mycnf.NodeConfig:
    return mycnf.NodeConfig(
        cluster_name="default-demo",
        node_name="demo-0",
        host="127.0.0.1",
        port=33010,
        galera_port=33020,
        ist_port=33030,
        sst_port=33040,
        peers=PEERS,
        datadir="/tmp/demo-0/data",
        socket="/tmp/demo-0/mariadbd.sock",
        pid_file="/tmp/demo-0/mariadbd.pid",
        error_log="/tmp/demo-0/error.log",
        run_as_root=run_as_root,
    )


def settings(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+) = (.*)$", text, re.M))


@pytest.mark.parametrize("run_as_root", [False, True])
def test_mycnf(run_as_root: bool) -> None:
    spec = MySQLClusterSpec.model_validate({"mysql": {"config": {"wait-timeout": 120}}})
    text = mycnf.render(node(run_as_root), spec)
    found = settings(text)
    assert "[mariadbd]" in text
    assert found["innodb_flush_log_at_trx_commit"] == "1"
    assert found["wsrep_sst_method"] == "mariabackup"
    assert found["wsrep_cluster_address"] == "gcomm://" + ",".join(PEERS)
    assert found["innodb_buffer_pool_size"] == str(64 * 1024**2)
    assert found["wait_timeout"] == "120"
    assert ("user" in found) is run_as_root
    if run_as_root:
        assert found["user"] == "root"


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> int:
    value = random.randrange(10000, 28000, ports.SLOT_SIZE)
    monkeypatch.setenv("MYSQLOPS_PORT_BASE", str(value))
    return value


def test_allocate_is_stable_and_reusable(tmp_path: Path, base: int) -> None:
    registry = tmp_path / "ports.json"
    first = ports.allocate(registry, "default/a")
    assert ports.allocate(registry, "default/a") == first
    second = ports.allocate(registry, "default/b")
    assert second != first
    assert {first.base, second.base} <= {base + ports.SLOT_SIZE * s for s in range(ports.MAX_SLOTS)}
    ports.release(registry, "default/a")
    assert ports.allocate(registry, "default/c") == first


def test_allocate_skips_occupied_slot(tmp_path: Path, base: int) -> None:
    # As allocate builds them: with the slot's index, which places its agent-metrics ports.
    expected = next(
        ports.SlotPorts(base + ports.SLOT_SIZE * s, s)
        for s in range(ports.MAX_SLOTS)
        if ports._usable(ports.SlotPorts(base + ports.SLOT_SIZE * s, s))
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", expected.mysql(1)))
        busy.listen()
        got = ports.allocate(tmp_path / "ports.json", "default/a")
    assert got.base > expected.base
    assert expected.mysql(1) not in got.all()


def test_allocate_avoids_the_ephemeral_port_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    low, high = ports.ephemeral_range()
    monkeypatch.setenv("MYSQLOPS_PORT_BASE", str(low + 100))
    got = ports.allocate(tmp_path / "ports.json", "default/a")
    assert got.base > high  # outgoing connections can never sit on a node's listen port


def test_config_value_cannot_inject_managed_option() -> None:
    config = {"sql_mode": "ANSI\nwsrep_provider = none"}
    try:
        spec = MySQLClusterSpec.model_validate({"mysql": {"config": config}})
    except ValueError:
        return  # refused at validation: fine
    text = mycnf.render(node(False), spec)
    assert settings(text)["wsrep_provider"] == mycnf.GALERA_PROVIDER


def test_sockets_of_a_deep_state_directory_get_a_short_stable_path() -> None:
    shallow = ClusterPaths.of(Path("/srv/mysqlops"), "default", "db").node("db-0")
    assert shallow.socket == shallow.root / "mariadbd.sock"
    deep = ClusterPaths.of(Path("/srv") / ("d" * 80), "default", "db")
    node = deep.node("db-0")
    assert len(str(node.socket)) <= SOCKET_PATH_MAX < len(str(node.root / "mariadbd.sock"))
    assert node.socket == deep.node("db-0").socket != deep.node("db-1").socket
    assert deep.haproxy_socket != node.socket and len(str(deep.haproxy_socket)) <= SOCKET_PATH_MAX
