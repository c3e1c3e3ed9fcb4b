"""Shared pieces of the benchmark scripts: a private state home and port range, a Temporal dev
server with an in-process worker (as tests/integration/conftest.py runs them), one cluster's
lifecycle through its workflow, a sysbench dataset of a given size, and the clean-up that
leaves no process behind.

Not a benchmark itself; the scripts beside it import it as `bench.common`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pymysql
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.local.paths import ClusterPaths, NodePaths
from activities.local.process import alive, cmdline, read_pid
from activities.local.runtime import LocalRuntime
from activities.runtime import StopMode
from api.base import ObjectMeta
from api.cluster import ClusterStatus, MySQLCluster, MySQLClusterSpec
from api.layout import ClusterLayout
from api.messages import QUERY_STATUS, UPDATE_DELETE, ClusterWorkflowInput, LifecycleRequest
from api.states import ClusterState
from workers import temporal
from workers.worker import build_worker
from workflows.cluster import ClusterWorkflow
from workflows.search import CLUSTER_STATE

REPO = Path(__file__).resolve().parents[1]
TEMPORAL_CLI = str(Path(sys.executable).parent / "temporal")
POLL_SECONDS = 0.2

# What each kind of process we may leave behind is recognised by (its pid file and command line).
_PID_FILES = (
    ("clusters/*/*/nodes/*/mariadbd.pid", "mariadbd"),
    ("clusters/*/*/nodes/*/agent.pid", "workers.agent"),
    ("clusters/*/*/haproxy.pid", "haproxy"),
    ("worker.pid", "workers.worker"),
    ("temporal/temporal.pid", "start-dev"),
)


def random_port_base() -> int:
    return random.randrange(20000, 45000, 100)


@contextlib.contextmanager
def private_home(prefix: str) -> Iterator[Path]:
    """A fresh MYSQLOPS_HOME and MYSQLOPS_PORT_BASE for this process; on exit every process
    recorded in the home is stopped, the home removed and the environment restored."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    saved = {k: os.environ.get(k) for k in ("MYSQLOPS_HOME", "MYSQLOPS_PORT_BASE")}
    os.environ["MYSQLOPS_HOME"] = str(home)
    os.environ["MYSQLOPS_PORT_BASE"] = str(random_port_base())
    try:
        yield home
    finally:
        stop_everything(home)
        shutil.rmtree(home, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- processes --------------------------------------------------------------------------------


def recorded_processes(home: Path) -> list[tuple[int, str]]:
    """(pid, kind) of every live process that a pid file under `home` records."""
    found = []
    for pattern, needle in _PID_FILES:
        for pid_file in sorted(home.glob(pattern)):
            pid = read_pid(pid_file)
            if pid is not None and alive(pid) and needle in cmdline(pid):
                found.append((pid, needle))
    return found


def stop_everything(home: Path) -> None:
    """Kill whatever still runs from `home`: nodes, agents, load balancers, then the stack."""
    runtime = LocalRuntime(home)
    for layout in runtime.saved_layouts():
        for problem in runtime.stop_cluster_processes(layout, StopMode.KILL):
            print(f"cleanup: {problem}", file=sys.stderr)
    for pid, _ in recorded_processes(home):  # the worker and dev server `mysqlops up` starts
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def ensure_nothing_runs(home: Path) -> None:
    """Stop leftovers of a cluster that should have stopped everything, and say so."""
    leftovers = recorded_processes(home)
    if leftovers:
        print(f"  warning: still running after delete, killed: {leftovers}", file=sys.stderr)
        stop_everything(home)


def node_paths(home: Path, layout: ClusterLayout, node: str) -> NodePaths:
    return ClusterPaths.of(home, layout.cluster.namespace, layout.cluster.name).node(node)


# -- Temporal ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def temporal_stack(home: Path) -> AsyncIterator[Client]:
    """A dev server on a free port and a worker in this process on the local runtime at `home`.

    TEMPORAL_ADDRESS is set to the server, so node agents provisioned from here report to it."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=TEMPORAL_CLI,
        data_converter=pydantic_data_converter,
        search_attributes=[CLUSTER_STATE],
    )
    saved = os.environ.get("TEMPORAL_ADDRESS")
    os.environ["TEMPORAL_ADDRESS"] = env.client.service_client.config.target_host
    executor = ThreadPoolExecutor(max_workers=64)
    try:
        worker = build_worker(env.client, LocalRuntime(home), executor)
        async with worker:
            try:
                yield env.client
            finally:
                stop_everything(home)  # before the worker goes: no agent outlives its server
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        await env.shutdown()
        if saved is None:
            os.environ.pop("TEMPORAL_ADDRESS", None)
        else:
            os.environ["TEMPORAL_ADDRESS"] = saved


# -- one cluster through its workflow ---------------------------------------------------------


def cluster_resource(name: str, spec: MySQLClusterSpec | None = None) -> MySQLCluster:
    return MySQLCluster(metadata=ObjectMeta(name=name), spec=spec or MySQLClusterSpec())


async def start_cluster(client: Client, cluster: MySQLCluster) -> WorkflowHandle[Any, Any]:
    """What `mysqlops apply` does for a new cluster: start its workflow."""
    return await client.start_workflow(
        ClusterWorkflow.run,
        ClusterWorkflowInput(cluster=cluster),
        id=cluster.workflow_id,
        task_queue=temporal.TASK_QUEUE,
        search_attributes=TypedSearchAttributes([SearchAttributePair(CLUSTER_STATE, "Red")]),
    )


def green_and_idle(status: ClusterStatus) -> bool:
    return (
        status.state is ClusterState.GREEN
        and status.current_task is None
        and not status.queued_tasks
    )


async def status_of(handle: WorkflowHandle[Any, Any]) -> ClusterStatus:
    result: ClusterStatus = await handle.query(QUERY_STATUS, result_type=ClusterStatus)
    return result


async def wait_green(handle: WorkflowHandle[Any, Any], timeout: float) -> ClusterStatus:
    """Poll the status query every POLL_SECONDS until Green with no task running or queued."""
    deadline = time.monotonic() + timeout
    while True:
        status = await status_of(handle)
        if green_and_idle(status):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"not Green and idle within {timeout:.0f} s: {status.message}")
        await asyncio.sleep(POLL_SECONDS)


async def delete_cluster(handle: WorkflowHandle[Any, Any], home: Path, timeout: float) -> None:
    """The `delete` update, then the workflow's end; then no process of the cluster may run."""
    await handle.execute_update(UPDATE_DELETE, LifecycleRequest(reason="benchmark done"))
    await asyncio.wait_for(handle.result(), timeout=timeout)
    ensure_nothing_runs(home)


# -- a sysbench dataset ----------------------------------------------------------------------

SYSBENCH_DATABASE = "sbtest"
SYSBENCH_TABLES = 4  # few tables: two loader threads keep both cores busy
# data + indexes of a sysbench row in information_schema (2.12 GB for 8.8M rows, bench/backup.py)
SYSBENCH_ROW_BYTES = 240


@dataclass(frozen=True)
class Dataset:
    tables: int
    rows: int  # per table
    schema_bytes: int  # data + indexes in information_schema, after ANALYZE TABLE
    seconds: float  # `sysbench prepare`, until every node has applied it

    def __str__(self) -> str:
        return (
            f"{self.tables} sysbench tables x {self.rows} rows, "
            f"{self.schema_bytes / 2**20:.0f} MiB in information_schema, "
            f"loaded in {self.seconds:.0f} s"
        )


def sysbench_load(
    target: list[str],
    connect: Callable[[], pymysql.Connection[Any]],
    nodes: list[Callable[[], pymysql.Connection[Any]]],
    megabytes: int,
    log: Path,
) -> Dataset:
    """`sysbench oltp_read_write prepare` of about `megabytes` MiB (data + indexes) into the
    database SYSBENCH_DATABASE, through the connection options `target` (`--mysql-socket=...`
    or host, port, user, password); `connect` reaches the same server, `nodes` each node of
    the cluster directly. Returns once every node has applied the load."""
    rows = max(1, megabytes * 2**20 // (SYSBENCH_ROW_BYTES * SYSBENCH_TABLES))
    started = time.monotonic()
    conn = connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {SYSBENCH_DATABASE}")
    finally:
        conn.close()
    with open(log, "ab") as out:
        code = subprocess.run(
            [
                "sysbench",
                "oltp_read_write",
                "--db-driver=mysql",
                *target,
                f"--mysql-db={SYSBENCH_DATABASE}",
                f"--tables={SYSBENCH_TABLES}",
                f"--table-size={rows}",
                "--threads=2",
                "--rand-seed=1",
                "prepare",
            ],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        ).returncode
    if code != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"sysbench prepare failed (exit status {code}): {tail}")
    last = f"{SYSBENCH_DATABASE}.sbtest{SYSBENCH_TABLES}"
    for node in nodes:  # until each has applied everything committed before
        conn = node()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET SESSION wsrep_sync_wait=1")
                cursor.execute(f"SELECT 1 FROM {last} LIMIT 1")
        finally:
            conn.close()
    took = time.monotonic() - started
    names = ", ".join(f"{SYSBENCH_DATABASE}.sbtest{n}" for n in range(1, SYSBENCH_TABLES + 1))
    conn = connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"ANALYZE TABLE {names}")
            cursor.fetchall()
            cursor.execute(
                "SELECT SUM(data_length + index_length) FROM information_schema.tables "
                f"WHERE table_schema = '{SYSBENCH_DATABASE}'"
            )
            row = cursor.fetchone()
    finally:
        conn.close()
    return Dataset(SYSBENCH_TABLES, rows, int(row[0]) if row and row[0] else 0, took)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def finish(code: int) -> NoReturn:
    """Exit without interpreter teardown, as workers/cli.py main() does: the Temporal core's
    threads can crash while torn down after the event loop closed. All clean-up has run."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
