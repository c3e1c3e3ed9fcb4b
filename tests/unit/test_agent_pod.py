"""The agent as a Pod's entrypoint: its configuration from the environment and the node's
my.cnf installed from the ConfigMap with the paths of its own volume."""

import os
from pathlib import Path

import pytest

from activities.local import mycnf
from activities.local.paths import NodePaths
from api.cluster import MySQLClusterSpec
from workers.agent import pod

HOSTS = [f"db-{i}.db-hl.shop.svc.cluster.local" for i in range(3)]


def rendered(ordinal: int) -> str:
    """What the Kubernetes runtime puts in the ConfigMap for node `ordinal`."""
    node = mycnf.NodeConfig(
        cluster_name="shop.db",
        node_name=f"db-{ordinal}",
        ordinal=ordinal,
        host=HOSTS[ordinal],
        port=3306,
        galera_port=4567,
        ist_port=4568,
        sst_port=4444,
        peers=tuple(f"{host}:4567" for host in HOSTS),
        datadir="/var/lib/mysqlops/data",
        socket="/var/lib/mysqlops/mariadbd.sock",
        pid_file="/var/lib/mysqlops/mariadbd.pid",
        error_log="/var/lib/mysqlops/error.log",
        run_as_root=False,
    )
    return mycnf.render(node, MySQLClusterSpec(replicas=3))


def pod_env(tmp_path: Path, ordinal: int = 1) -> dict[str, str]:
    config, secrets = tmp_path / "config", tmp_path / "secrets"
    config.mkdir(exist_ok=True)
    secrets.mkdir(exist_ok=True)
    for i in range(3):
        (config / f"db-{i}.cnf").write_text(rendered(i))
    (secrets / "agent-token").write_text("t0ken")
    (secrets / "monitor-password").write_text("m0nitor")
    return {
        "MYSQLOPS_NODE": f"db-{ordinal}",
        "MYSQLOPS_POD_IP": "127.11.0.3",
        "MYSQLOPS_CLUSTER_NAMESPACE": "shop",
        "MYSQLOPS_CLUSTER": "db",
        "TEMPORAL_ADDRESS": "temporal:7233",
        "MYSQLOPS_DONOR_SERVES": "true",
        "MYSQLOPS_NODE_DIR": str(tmp_path / "volume"),
        "MYSQLOPS_CONFIG_DIR": str(config),
        "MYSQLOPS_SECRETS_DIR": str(secrets),
    }


def test_the_agent_is_configured_from_the_pod_environment(tmp_path: Path) -> None:
    config = pod.config_from_env(pod_env(tmp_path))
    volume = NodePaths(tmp_path / "volume")
    assert config.node == "db-1" and config.workflow_id == "mysqlcluster/shop/db"
    assert (config.host, config.health_port) == ("127.11.0.3", pod.AGENT_PORT)
    assert config.donor_serves and config.stop_node_on_exit and config.haproxy_socket == ""
    # Peers are the other members of its my.cnf's wsrep_cluster_address, at their agents.
    assert config.peers == [f"{HOSTS[0]}:8080", f"{HOSTS[2]}:8080"]
    # Secrets are files it names, never values in its configuration.
    assert config.token_file == str(tmp_path / "secrets" / "agent-token")
    assert "t0ken" not in config.model_dump_json() and "m0nitor" not in config.model_dump_json()
    assert config.token() == "t0ken"
    exporter = Path(config.exporter_config or "")
    assert "m0nitor" in exporter.read_text() and exporter.stat().st_mode & 0o777 == 0o600
    assert config.mycnf == str(volume.config) and volume.config.exists()


def test_the_installed_mycnf_has_the_volumes_paths_and_nothing_else_changed(
    tmp_path: Path,
) -> None:
    paths = NodePaths(tmp_path / "elsewhere")
    text = pod.install_mycnf(rendered(2), paths, "127.11.0.4")
    assert paths.config.read_text() == text
    lines = dict(
        (key.strip(), value.strip())
        for key, value in (line.split("=", 1) for line in text.splitlines() if "=" in line)
    )
    assert lines["datadir"] == str(paths.data)
    assert lines["socket"] == str(paths.socket)
    assert lines["pid_file"] == str(paths.pid)
    assert lines["log_error"] == str(paths.error_log)
    assert lines["wsrep_node_name"] == "db-2"
    # Where it listens and what it tells its peers: the Pod's IP; its peers: their names.
    assert lines["wsrep_node_address"] == "127.11.0.4:4567"
    assert lines["bind_address"] == "127.11.0.4"
    assert lines["wsrep_sst_receive_address"] == "127.11.0.4:4444"
    assert "gmcast.listen_addr=tcp://127.11.0.4:4567" in lines["wsrep_provider_options"]
    assert lines["wsrep_cluster_address"] == "gcomm://" + ",".join(f"{h}:4567" for h in HOSTS)
    assert HOSTS[2] not in text.replace(lines["wsrep_cluster_address"], "")
    assert ("user" in lines) == (os.geteuid() == 0)
    untouched = [
        line
        for line in rendered(2).splitlines()
        if line.split("=")[0].strip() not in ("datadir", "socket", "pid_file", "log_error")
        and HOSTS[2] not in line.replace("gcomm://", "")
    ]
    assert all(line in text.splitlines() for line in untouched)
    # Installing again writes nothing new.
    before = paths.config.stat().st_mtime_ns
    assert pod.install_mycnf(rendered(2), paths, "127.11.0.4") == text
    assert paths.config.stat().st_mtime_ns == before


def test_peers_come_from_the_cluster_address() -> None:
    assert pod.peer_hosts(rendered(0)) == HOSTS
    assert pod.own_host(rendered(0)) == HOSTS[0]
    assert pod.peer_hosts("[mariadbd]\nport = 3306\n") == []


def test_a_missing_node_config_is_a_clear_error(tmp_path: Path) -> None:
    env = pod_env(tmp_path, ordinal=1)
    env["MYSQLOPS_NODE"] = "db-7"  # scaled up before the ConfigMap has its file
    with pytest.raises(FileNotFoundError, match=r"db-7\.cnf"):
        pod.config_from_env(env)
