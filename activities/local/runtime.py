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
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pymysql

from activities.local import backup, exporter, haproxy, logfiles, mycnf, scrape
from activities.local.config_check import server_config_errors
from activities.local.paths import ClusterPaths, NodePaths, ensure_socket_dir, state_home
from activities.local.ports import SlotPorts, allocate, release
from activities.local.position import has_data, set_safe_to_bootstrap, stored_position
from activities.local.process import (
    agent_pid,
    alive,
    cmdline,
    exit_kind_from_log,
    last_run_errors,
    mariadbd_pid,
    read_json,
    read_pid,
    running_pid,
    suspended,
    write_json,
)
from activities.runtime import (
    ClusterLayout,
    ClusterRef,
    LoadBalancerView,
    NodeFailed,
    NodeLayout,
    ProcessFacts,
    StopMode,
)
from activities.users import MONITOR_SECRET, MONITOR_USER
from api.cluster import MySQLClusterSpec, cluster_workflow_id
from api.states import ExitKind
from galera.diagnosis import NEVER_STARTED
from galera.log import Join, last_join
from galera.position import GaleraPosition

HOST = "127.0.0.1"


def node_name(cluster: str, ordinal: int) -> str:
    return f"{cluster}-{ordinal}"


def temporal_address() -> str:
    return os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233")


def temporal_namespace() -> str:
    return os.environ.get("TEMPORAL_NAMESPACE", "default")


class LocalRuntime:
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
        _write_if_changed(paths.config, mycnf.render(self._node_config(layout, node), spec))
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
        write_json(paths.agent_config, agent)
        # Only the node that will bootstrap gets a system tablespace: joiners receive theirs by
        # SST. Never initialise over existing data.
        if bootstrap_candidate and not has_data(paths.data):
            staging = paths.root / "data.init"
            shutil.rmtree(staging, ignore_errors=True)  # a half-made init of ours, never data
            staging.mkdir()
            result = subprocess.run(
                [
                    "mariadb-install-db",
                    f"--defaults-file={paths.config}",
                    f"--datadir={staging}",
                    "--skip-test-db",
                    "--auth-root-authentication-method=socket",
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if result.returncode != 0:
                raise RuntimeError(f"mariadb-install-db failed: {result.stderr[-2000:]}")
            if paths.data.exists():
                paths.data.rmdir()  # empty by the check above
            staging.rename(paths.data)
        paths.data.mkdir(exist_ok=True)

    def _node_config(self, layout: ClusterLayout, node: str) -> mycnf.NodeConfig:
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
        return server_config_errors(mycnf.render(self._node_config(layout, node), spec))

    def start_node(self, layout: ClusterLayout, node: str, bootstrap: bool) -> int:
        """Start the node's agent, which starts mariadbd, and wait for mariadbd to run.

        Never a second agent: when a live agent of this node is already starting its mariadbd
        (an earlier attempt of this step, still recovering the position), that one is waited
        for; one whose mariadbd just ended is let finish first."""
        paths = self._node_paths(layout, node)
        with _node_lock(paths):
            if (pid := _mariadbd_pid(paths)) is not None:
                self._ensure_agent(paths, bootstrap=False)
                return pid
            if _agent_pid(paths) is not None and _run_ended(paths):
                _wait_agent_gone(paths, node)
            if _agent_pid(paths) is None:
                if bootstrap:
                    set_safe_to_bootstrap(paths.grastate)
                ensure_socket_dir(paths.socket)
                paths.pid.unlink(missing_ok=True)
                paths.agent_state.unlink(missing_ok=True)  # the last run's exit is history now
                self._spawn_agent(paths, bootstrap)
        return _await_mariadbd(paths, node)

    def last_join(self, layout: ClusterLayout, node: str) -> Join | None:
        paths = self._node_paths(layout, node)
        state = read_json(paths.agent_state) or {}
        offset = state.get("log_offset")  # absolute: rotation does not move it
        try:
            since = logfiles.read_since(paths.error_log, offset if isinstance(offset, int) else 0)
        except OSError:
            return None
        return last_join(since)

    def _ensure_agent(self, paths: NodePaths, bootstrap: bool) -> None:
        if _agent_pid(paths) is None:
            self._spawn_agent(paths, bootstrap)

    def _spawn_agent(self, paths: NodePaths, bootstrap: bool) -> None:
        paths.agent_pid.unlink(missing_ok=True)
        with open(paths.agent_log, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "workers.agent", str(paths.root)]
                + (["--bootstrap"] if bootstrap else []),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # independent of the worker: survives its restarts
                cwd=Path(__file__).resolve().parents[2],
            )
        paths.agent_pid.write_text(str(process.pid))

    def stop_node(self, layout: ClusterLayout, node: str, mode: StopMode, timeout: float) -> None:
        paths = self._node_paths(layout, node)
        pid = _mariadbd_pid(paths)
        if pid is not None:
            if mode is StopMode.KILL:
                os.kill(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGCONT)  # a suspended process cannot shut down
                os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, timeout):
                raise TimeoutError(f"mariadbd on {node} (pid {pid}) still runs after {timeout} s")
        agent = _agent_pid(paths)
        if agent is not None and not _wait_gone(agent, 10):
            os.kill(agent, signal.SIGTERM)

    def process_facts(self, layout: ClusterLayout, node: str) -> ProcessFacts:
        paths = self._node_paths(layout, node)
        if not paths.config.exists():
            return ProcessFacts(alive=False, provisioned=False)
        pid = _mariadbd_pid(paths)
        if pid is not None:
            return ProcessFacts(alive=True, pid=pid, stopped=suspended(pid))
        state = read_json(paths.agent_state) or {}
        # The latest attempt to run it speaks: its last start, or a later recovery run.
        logs = [log for log in (paths.error_log, paths.recover_log) if log.exists()]
        latest = max(logs, key=lambda log: log.stat().st_mtime, default=paths.error_log)
        errors = last_run_errors(latest)
        hint = f"; errors: {errors}" if errors else ""
        if state.get("running") is False and state.get("exit_kind"):
            return ProcessFacts(
                alive=False,
                exit_kind=ExitKind(str(state["exit_kind"])),
                exit_detail=f"{state.get('exit_detail')}{hint}",
            )
        if state.get("running") and _agent_pid(paths):
            return ProcessFacts(alive=False)  # its agent is recording how it ended
        if not paths.error_log.exists():
            return ProcessFacts(alive=False, exit_detail=NEVER_STARTED)
        judged = exit_kind_from_log(paths.error_log) or (
            ExitKind.UNCLEAN,
            "exit not recorded and no clean shutdown in the error log",
        )
        return ProcessFacts(alive=False, exit_kind=judged[0], exit_detail=judged[1] + hint)

    def galera_position(self, layout: ClusterLayout, node: str) -> GaleraPosition:
        paths = self._node_paths(layout, node)
        if _mariadbd_pid(paths) is not None:
            raise RuntimeError(f"{node} is running: its position can only be read when stopped")
        ensure_socket_dir(paths.socket)  # a recovery (--wsrep-recover) binds it
        return stored_position(paths)

    def admin_sql(self, layout: ClusterLayout, node: str, statements: list[str]) -> None:
        paths = self._node_paths(layout, node)
        # Autocommit: these are SET GLOBAL and account statements. A COMMIT after
        # `pc.bootstrap=YES` would reach a node not yet ready for SQL (1047) and fail the step.
        conn = pymysql.connect(
            unix_socket=str(paths.socket),
            user=getpass.getuser(),
            connect_timeout=5,
            autocommit=True,
        )
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()

    def set_aside_data(self, layout: ClusterLayout, node: str) -> str:
        paths = self._node_paths(layout, node)
        if _mariadbd_pid(paths) is not None:
            raise RuntimeError(f"{node} still runs; stop it before moving its data")
        if not has_data(paths.data):
            # Nothing to keep. An earlier set-aside's directory is not this one's: reporting it
            # would make a restore record another node's (or another time's) data as this one's.
            paths.data.mkdir(exist_ok=True)
            return ""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = paths.root / f"data.aside-{stamp}"
        paths.data.rename(aside)
        paths.data.mkdir()
        return str(aside)

    def remove_node(self, layout: ClusterLayout, node: str, delete_data: bool) -> None:
        paths = self._node_paths(layout, node)
        if _mariadbd_pid(paths) is not None:
            raise RuntimeError(f"{node} still runs; stop it before removing it")
        if not paths.root.exists():
            return
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

    @contextlib.contextmanager
    def backup_stream(self, layout: ClusterLayout, node: str) -> Iterator[IO[bytes]]:
        paths = self._node_paths(layout, node)
        if _mariadbd_pid(paths) is None:
            raise RuntimeError(f"{node} is not running: a hot backup needs a running node")
        with backup.backup_stream(paths) as stream:
            yield stream

    def free_bytes(self, layout: ClusterLayout, node: str) -> int:
        return shutil.disk_usage(self._node_paths(layout, node).root).free

    def receive_backup(
        self,
        layout: ClusterLayout,
        node: str,
        name: str,
        chunks: Iterable[bytes],
    ) -> str:
        return str(backup.receive(self._node_paths(layout, node), name, chunks))

    def install_restored_data(self, layout: ClusterLayout, node: str, staging: str) -> None:
        paths = self._node_paths(layout, node)
        if _mariadbd_pid(paths) is not None:
            raise RuntimeError(f"{node} still runs; stop it before replacing its data")
        backup.install(paths, Path(staging))

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


def _run_ended(paths: NodePaths) -> bool:
    """The agent's run is over: it recorded the exit of its mariadbd, or the mariadbd it
    recorded is gone (it notices within a probe interval). Such a live agent is finishing,
    not starting one; an agent that has not recorded a mariadbd yet is still starting it."""
    state = read_json(paths.agent_state) or {}
    if state.get("running") is False:
        return True
    recorded = state.get("pid")
    return isinstance(recorded, int) and not (alive(recorded) and "mariadbd" in cmdline(recorded))


def _wait_agent_gone(paths: NodePaths, node: str, timeout: float = 15) -> None:
    """An agent whose mariadbd ended delivers its last report and exits within seconds."""
    deadline = time.monotonic() + timeout
    while (agent := _agent_pid(paths)) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the agent of {node} (pid {agent}) still runs {timeout:.0f} s after its "
                "mariadbd ended; not starting a second one"
            )
        time.sleep(0.05)


def _await_mariadbd(paths: NodePaths, node: str) -> int:
    """The pid of the mariadbd the node's live agent starts, once it runs."""
    deadline = time.monotonic() + 30
    while True:
        if (pid := _mariadbd_pid(paths)) is not None:
            return pid
        state = read_json(paths.agent_state) or {}
        if state.get("running") is False:
            raise NodeFailed(
                f"mariadbd on {node} exited at start ({state.get('exit_detail')}): "
                f"{_tail(paths.error_log)}"
            )
        agent = _agent_pid(paths)
        if agent is None and (read_json(paths.agent_state) or {}).get("running") is not False:
            raise RuntimeError(
                f"the agent of {node} ended without starting mariadbd: {_tail(paths.agent_log)}"
            )
        # Crash recovery (reading the position) takes as long as InnoDB needs.
        if agent is not None and time.monotonic() > deadline and not state.get("recovering"):
            raise TimeoutError(
                f"the agent of {node} (pid {agent}) did not start mariadbd within 30 s"
            )
        time.sleep(0.05)


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


def _tail(path: Path, size: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""
