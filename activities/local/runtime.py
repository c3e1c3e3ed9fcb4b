"""The local runtime: each node a real mariadbd (under its agent) with its own directory and
ports on 127.0.0.1, HAProxy in front. Every operation is idempotent: repeating one after a
retry, a worker crash or a replay finds the work done and does nothing more."""

import contextlib
import fcntl
import getpass
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from activities.agent_client import AgentClient, AgentUnreachable
from activities.agent_nodes import AgentNodes
from activities.local import backup, exporter, haproxy, logfiles, mycnf, scrape
from activities.local.config_check import server_config_errors
from activities.local.paths import ClusterPaths, NodePaths, ensure_socket_dir, state_home
from activities.local.ports import SlotPorts, allocate, release
from activities.local.process import (
    agent_pid,
    alive,
    mariadbd_pid,
    read_json,
    read_pid,
    running_pid,
    write_json,
)
from activities.runtime import (
    ClusterLayout,
    ClusterRef,
    LoadBalancerView,
    NodeLayout,
    ProcessFacts,
    StopMode,
)
from activities.users import MONITOR_SECRET, MONITOR_USER
from api.agent import TOKEN_SECRET, AgentConfig
from api.cluster import MySQLClusterSpec, cluster_workflow_id

HOST = "127.0.0.1"


def node_name(cluster: str, ordinal: int) -> str:
    return f"{cluster}-{ordinal}"


def temporal_address() -> str:
    return os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233")


def temporal_namespace() -> str:
    return os.environ.get("TEMPORAL_NAMESPACE", "default")


class LocalRuntime(AgentNodes):
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or state_home()

    # -- paths and layout ------------------------------------------------------------------

    def _paths(self, cluster: ClusterRef) -> ClusterPaths:
        return ClusterPaths.of(self.home, cluster.namespace, cluster.name)

    def saved_layouts(self) -> list[ClusterLayout]:
        """Every cluster this state directory holds, as last laid out."""
        return [
            ClusterLayout.model_validate_json(path.read_text())
            for path in sorted(self.home.glob("clusters/*/*/layout.json"))
        ]

    def stop_cluster_processes(self, layout: ClusterLayout, mode: StopMode) -> list[str]:
        """Stop every node (and its agent) and the load balancer of a cluster, without its
        workflow: for `make down` when none answers, and for cleaning up after tests.
        Returns the problems met; it goes on past each one."""
        problems = []
        for node in layout.nodes:
            try:
                self.stop_node(layout, node.name, mode, timeout=120)
            except (OSError, TimeoutError) as error:
                problems.append(f"{node.name}: {error}")
            agent = _agent_pid(self._node_paths(layout, node.name))
            if agent is not None:
                os.kill(agent, signal.SIGKILL)
        self.stop_load_balancer(layout)
        return problems

    def _node_paths(self, layout: ClusterLayout, node: str) -> NodePaths:
        return self._paths(layout.cluster).node(node)

    def _slot(self, cluster: ClusterRef) -> SlotPorts:
        return allocate(self.home / "ports.json", cluster.key)

    def layout(self, cluster: ClusterRef, replicas: int) -> ClusterLayout:
        ports = self._slot(cluster)
        layout = ClusterLayout(
            cluster=cluster,
            host=HOST,
            writer_port=ports.writer,
            reader_port=ports.reader,
            stats_port=ports.stats,
            nodes=[
                NodeLayout(
                    name=node_name(cluster.name, i), ordinal=i, host=HOST, port=ports.mysql(i)
                )
                for i in range(replicas)
            ],
        )
        paths = self._paths(cluster)
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.layout.write_text(layout.model_dump_json(indent=2))
        return layout

    # -- nodes -----------------------------------------------------------------------------

    def provision_node(
        self, layout: ClusterLayout, node: str, spec: MySQLClusterSpec, bootstrap_candidate: bool
    ) -> None:
        paths = self._node_paths(layout, node)
        paths.root.mkdir(parents=True, exist_ok=True)
        ordinal = layout.node(node).ordinal
        ports = self._slot(layout.cluster)
        _write_if_changed(paths.config, mycnf.render(self.node_config(layout, node), spec))
        agent = {
            "node": node,
            "workflow_id": cluster_workflow_id(layout.cluster.namespace, layout.cluster.name),
            "temporal_address": temporal_address(),
            "temporal_namespace": temporal_namespace(),
            "mycnf": str(paths.config),
            "socket": str(paths.socket),
            "pid_file": str(paths.pid),
            "error_log": str(paths.error_log),
            "state_file": str(paths.agent_state),
            "host": HOST,
            "health_port": ports.agent(ordinal),
            "haproxy_socket": str(self._paths(layout.cluster).haproxy_socket),
            "donor_serves": spec.health.serve_from_donor,
            "os_user": getpass.getuser(),
            "token_file": str(self.secret_path(layout.cluster, TOKEN_SECRET)),
            "peers": [f"{HOST}:{ports.agent(n.ordinal)}" for n in layout.nodes if n.name != node],
            "cluster_namespace": layout.cluster.namespace,
            "cluster": layout.cluster.name,
            "metrics_port": ports.agent_metrics(ordinal),
            "exporter_port": ports.exporter(ordinal),
            "exporter_config": str(paths.root / "exporter.cnf"),
            "exporter_log": str(paths.root / "exporter.log"),
        }
        monitor = self.secret_path(layout.cluster, MONITOR_SECRET)
        if monitor.exists():  # the exporter logs in as the monitoring user
            exporter.write_config(
                paths.root / "exporter.cnf", MONITOR_USER, monitor.read_text().strip(), paths.socket
            )
        else:
            agent["exporter_port"] = None
        self.ensure_secret(layout.cluster, TOKEN_SECRET)
        write_json(paths.agent_config, agent)
        agent_client = self._agent(layout, node)
        # Only the node that will bootstrap gets a system tablespace: joiners receive theirs by
        # SST. The agent never initialises over existing data.
        if bootstrap_candidate:
            agent_client.initialize()

    def node_config(self, layout: ClusterLayout, node: str) -> mycnf.NodeConfig:
        """What the node's my.cnf is rendered from: its paths, ports and peers."""
        paths = self._node_paths(layout, node)
        ordinal = layout.node(node).ordinal
        ports = self._slot(layout.cluster)
        return mycnf.NodeConfig(
            cluster_name=f"{layout.cluster.namespace}.{layout.cluster.name}",
            node_name=node,
            ordinal=ordinal,
            host=HOST,
            port=ports.mysql(ordinal),
            galera_port=ports.galera(ordinal),
            ist_port=ports.ist(ordinal),
            sst_port=ports.sst(ordinal),
            peers=tuple(f"{HOST}:{ports.galera(n.ordinal)}" for n in layout.nodes),
            datadir=str(paths.data),
            socket=str(paths.socket),
            pid_file=str(paths.pid),
            error_log=str(paths.error_log),
        )

    def config_errors(self, layout: ClusterLayout, spec: MySQLClusterSpec) -> str | None:
        node = layout.nodes[0].name
        return server_config_errors(mycnf.render(self.node_config(layout, node), spec))

    def start_node(self, layout: ClusterLayout, node: str, bootstrap: bool) -> int:
        return self._agent(layout, node).start(bootstrap)

    def _agent(self, layout: ClusterLayout, node: str) -> AgentClient:
        """The node's agent, started when it does not run (as a kubelet restarts a container:
        a restarted agent adopts a running mariadbd and never bootstraps by itself)."""
        paths = self._node_paths(layout, node)
        with _node_lock(paths):
            if not paths.agent_config.exists():  # retired, or never provisioned: nothing to start
                raise RuntimeError(f"{node} has no agent: it is not provisioned")
            config = AgentConfig.load(paths.root)
            client = AgentClient(
                f"{config.host}:{config.health_port}",
                self.read_secret(layout.cluster, TOKEN_SECRET),
            )
            if _agent_pid(paths) is None:
                self._spawn_agent(paths)
                _await_agent(client, paths, node)
        return client

    def _spawn_agent(self, paths: NodePaths) -> None:
        paths.agent_pid.unlink(missing_ok=True)
        with open(paths.agent_log, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "workers.agent", str(paths.root)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # independent of the worker: survives its restarts
                cwd=Path(__file__).resolve().parents[2],
            )
        paths.agent_pid.write_text(str(process.pid))

    def stop_node(self, layout: ClusterLayout, node: str, mode: StopMode, timeout: float) -> None:
        paths = self._node_paths(layout, node)
        if not paths.agent_config.exists():
            return  # never provisioned: nothing runs
        if _agent_pid(paths) is None and _mariadbd_pid(paths) is None:
            return  # nothing runs; no agent started only to say so
        self._agent(layout, node).stop(mode, timeout)

    def process_facts(self, layout: ClusterLayout, node: str) -> ProcessFacts:
        paths = self._node_paths(layout, node)
        if not paths.config.exists() or not paths.agent_config.exists():
            return ProcessFacts(alive=False, provisioned=False)
        return self._agent(layout, node).status().facts

    def remove_node(self, layout: ClusterLayout, node: str, delete_data: bool) -> None:
        paths = self._node_paths(layout, node)
        if _mariadbd_pid(paths) is not None:
            raise RuntimeError(f"{node} still runs; stop it before removing it")
        if not paths.root.exists():
            return
        _retire_agent(paths)
        if delete_data:
            shutil.rmtree(paths.root)
            return
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        retired = self._paths(layout.cluster).root / "retired" / f"{node}-{stamp}"
        retired.parent.mkdir(parents=True, exist_ok=True)
        paths.root.rename(retired)

    def retire_cluster(self, layout: ClusterLayout, delete_data: bool) -> None:
        if delete_data:
            running = [
                n.name for n in layout.nodes if _mariadbd_pid(self._node_paths(layout, n.name))
            ]
            if running:
                raise RuntimeError(f"{', '.join(running)} still run; stop them before deleting")
        for node in layout.nodes:
            _retire_agent(self._node_paths(layout, node.name))
        self.stop_load_balancer(layout)
        scrape.remove_cluster_targets(self.home, layout.cluster)
        paths = self._paths(layout.cluster)
        release(self.home / "ports.json", layout.cluster.key)
        if delete_data and paths.root.exists():
            shutil.rmtree(paths.root)

    # -- backups ---------------------------------------------------------------------------

    def backup_root(self) -> Path:
        return self.home / "backups"

    def backup_tool(self) -> tuple[str, str]:
        return "mariabackup", backup.tool_version()

    # -- load balancer ---------------------------------------------------------------------

    def configure_load_balancer(self, layout: ClusterLayout, members: list[str]) -> None:
        paths = self._paths(layout.cluster)
        ports = self._slot(layout.cluster)
        servers = [
            haproxy.Server(name=n.name, host=n.host, port=n.port, check_port=ports.agent(n.ordinal))
            for n in layout.nodes
            if n.name in members
        ]
        text = haproxy.render(
            cluster=layout.cluster.name,
            host=HOST,
            writer_port=ports.writer,
            reader_port=ports.reader,
            stats_port=ports.stats,
            stats_socket=paths.haproxy_socket,
            state_file=paths.root / "haproxy.state",
            servers=servers,
        )
        ensure_socket_dir(paths.haproxy_socket)
        scrape.write_cluster_targets(self.home, layout, ports)
        running = running_pid(paths.haproxy_pid, "haproxy")
        digest = hashlib.sha256(text.encode()).hexdigest()
        loaded = read_json(paths.root / _HAPROXY_LOADED) or {}
        if (
            running is not None
            and loaded.get("pid") == running
            and loaded.get("sha256") == digest
            and _read_text(paths.haproxy_cfg) == text
        ):
            return  # the running HAProxy loaded exactly this configuration
        # Checked before it replaces anything: an invalid one leaves the file and the running
        # HAProxy as they are.
        candidate = paths.root / "haproxy.cfg.new"
        candidate.write_text(text)
        check = subprocess.run(
            ["haproxy", "-c", "-f", str(candidate)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if check.returncode != 0:
            candidate.unlink(missing_ok=True)
            alerts = [line for line in check.stdout.splitlines() if "[ALERT]" in line]
            raise RuntimeError(
                f"invalid HAProxy configuration for {paths.haproxy_cfg} (not installed; the "
                f"previous one stays in place): {' '.join(alerts or [check.stdout])[-2000:]}"
            )
        args = ["haproxy", "-D", "-f", str(paths.haproxy_cfg), "-p", str(paths.haproxy_pid)]
        if running is not None:
            try:
                haproxy.save_state(paths.haproxy_socket, paths.root / "haproxy.state")
            except OSError as error:
                candidate.unlink(missing_ok=True)
                raise RuntimeError(
                    f"HAProxy (pid {running}) did not answer on {paths.haproxy_socket} "
                    f"({error!r}); not reloaded, it keeps its previous configuration"
                ) from error
            args += ["-sf", str(running)]  # graceful reload: old connections finish
        else:
            (paths.root / "haproxy.state").unlink(missing_ok=True)
        previous = _read_text(paths.haproxy_cfg)
        candidate.replace(paths.haproxy_cfg)
        started = subprocess.run(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        if started.returncode != 0:
            _restore(paths.haproxy_cfg, previous)
            what = f"reload of HAProxy (pid {running})" if running else "start of HAProxy"
            raise RuntimeError(
                f"{what} with the new configuration failed (exit {started.returncode}); "
                f"{paths.haproxy_cfg} is back to the previous one: {started.stdout[-2000:]}"
            )
        if running is None:
            # HAProxy starts servers as up; none is until its agent says so.
            for server in servers:
                haproxy.mark_down(paths.haproxy_socket, server.name)
        # Only now is this configuration the live one: a retry after any failure above
        # reloads instead of taking the file for what runs.
        write_json(
            paths.root / _HAPROXY_LOADED, {"pid": read_pid(paths.haproxy_pid), "sha256": digest}
        )

    def load_balancer_view(self, layout: ClusterLayout) -> LoadBalancerView:
        sock = self._paths(layout.cluster).haproxy_socket
        try:
            backend = haproxy.servers(sock, "writer")
            stuck = haproxy.stuck_writer(sock)
        except OSError:
            return LoadBalancerView()
        up = [server.name for server in backend if server.up]
        writer = next((server.name for server in backend if server.sid == stuck), None)
        if writer not in up:
            writer = up[0] if up else None
        return LoadBalancerView(writer=writer, up=up)

    def stop_load_balancer(self, layout: ClusterLayout) -> None:
        paths = self._paths(layout.cluster)
        pid = running_pid(paths.haproxy_pid, "haproxy")
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            _wait_gone(pid, 5)

    # -- secrets ---------------------------------------------------------------------------

    def ensure_secret(self, cluster: ClusterRef, key: str) -> None:
        directory = self._paths(cluster).secrets
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        path = directory / key
        if path.exists():
            return
        tmp = directory / f".{key}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24))
        tmp.replace(path)

    def read_secret(self, cluster: ClusterRef, key: str) -> str:
        return (self._paths(cluster).secrets / key).read_text().strip()

    def secret_path(self, cluster: ClusterRef, key: str) -> Path:
        return self._paths(cluster).secrets / key


_HAPROXY_LOADED = "haproxy.loaded.json"  # pid and digest of the configuration HAProxy runs


def _mariadbd_pid(paths: NodePaths) -> int | None:
    return mariadbd_pid(paths.pid, paths.agent_state)


def _agent_pid(paths: NodePaths) -> int | None:
    return agent_pid(paths.agent_pid, paths.root)


@contextlib.contextmanager
def _node_lock(paths: NodePaths) -> Iterator[None]:
    """Serializes the decision to spawn a node's agent (two attempts of one step may overlap)."""
    with open(paths.root / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _await_agent(client: AgentClient, paths: NodePaths, node: str) -> None:
    """A just started agent answers within a second or two (its API, before anything else)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            client.version()
            return
        except (AgentUnreachable, TimeoutError):
            if _agent_pid(paths) is None:
                said = logfiles.tail(paths.agent_log, 1500) or ""
                raise RuntimeError(f"the agent of {node} ended at start: {said}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"the agent of {node} does not answer its API") from None
            time.sleep(0.05)


def _retire_agent(paths: NodePaths) -> None:
    """Stop a node's agent for good (its mariadbd is stopped already, or outlives it).

    Its configuration goes first, under the lock `_agent` starts agents under, so a call that
    races with the retirement (a watch's read) cannot start the agent again behind it."""
    if not paths.root.exists():
        return
    with _node_lock(paths):
        paths.agent_config.unlink(missing_ok=True)
        agent = _agent_pid(paths)
        if agent is not None:
            os.kill(agent, signal.SIGTERM)
            if not _wait_gone(agent, 10):
                os.kill(agent, signal.SIGKILL)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _restore(path: Path, previous: str | None) -> None:
    """Put back what `path` held (atomically), or remove it if it did not exist."""
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        _write_if_changed(path, previous)


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
