"""A private, throwaway mysqlops for the benchmarks and the integration tests: its own state
directory and port range, a Temporal dev server, a worker in this process on the local runtime;
and the clean-up that leaves no process behind (found through the home's own pid files only).
"""

import contextlib
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import TracebackType

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.local.process import alive, cmdline, read_pid
from activities.local.runtime import LocalRuntime
from activities.runtime import StopMode
from workers.worker import Workers
from workflows.search import CLUSTER_STATE

TEMPORAL_CLI = str(Path(sys.executable).parent / "temporal")
HOME_VARIABLES = ("MYSQLOPS_HOME", "MYSQLOPS_PORT_BASE")

# What each kind of process a home may leave behind is recognised by: its pid file, and a word
# of its command line (a pid file may outlive its process, and the pid be reused).
PID_FILES = (
    ("clusters/*/*/nodes/*/mariadbd.pid", "mariadbd"),
    ("clusters/*/*/nodes/*/agent.pid", "workers.agent"),
    ("clusters/*/*/haproxy.pid", "haproxy"),
    ("worker.pid", "workers.worker"),
    ("temporal/temporal.pid", "start-dev"),
    ("prometheus/prometheus.pid", "prometheus"),
)


def random_port_base() -> int:
    """Below the kernel's ephemeral ports (32768 up), where a dev server's port is chosen."""
    return random.randrange(10000, 30000, 100)


@contextlib.contextmanager
def private_home(home: Path | None = None, prefix: str = "mysqlops-") -> Iterator[Path]:
    """MYSQLOPS_HOME and MYSQLOPS_PORT_BASE of this process set to `home` (default: a new
    temporary directory, removed at the end) and a random port range; at the end every process
    recorded in the home is killed and the environment restored."""
    made = home is None
    home = Path(tempfile.mkdtemp(prefix=prefix)) if home is None else home
    saved = {key: os.environ.get(key) for key in HOME_VARIABLES}
    os.environ["MYSQLOPS_HOME"] = str(home)
    os.environ["MYSQLOPS_PORT_BASE"] = str(random_port_base())
    try:
        yield home
    finally:
        stop_everything(home)
        if made:
            shutil.rmtree(home, ignore_errors=True)
        _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def recorded_processes(home: Path) -> list[tuple[int, str]]:
    """(pid, kind) of every live process that a pid file under `home` records."""
    found = []
    for pattern, needle in PID_FILES:
        for pid_file in sorted(home.glob(pattern)):
            pid = read_pid(pid_file)
            if pid is not None and alive(pid) and needle in cmdline(pid):
                found.append((pid, needle))
    return found


def stop_everything(home: Path) -> None:
    """Kill whatever still runs from `home`: nodes, agents, load balancers, then the worker and
    dev server `mysqlops up` may have started there."""
    runtime = LocalRuntime(home)
    for layout in runtime.saved_layouts():
        for problem in runtime.stop_cluster_processes(layout, StopMode.KILL):
            print(f"cleanup: {problem}", file=sys.stderr)
    for pid, _ in recorded_processes(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def ensure_nothing_runs(home: Path) -> None:
    """After a cluster was deleted: kill its leftovers, and say so."""
    leftovers = recorded_processes(home)
    if leftovers:
        print(f"  warning: still running after delete, killed: {leftovers}", file=sys.stderr)
        stop_everything(home)


async def dev_server(*server_args: str) -> WorkflowEnvironment:
    """A Temporal dev server on a free port, with the search attribute the workflow sets;
    `server_args` go to `temporal server start-dev` (e.g. dynamic config values)."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=TEMPORAL_CLI,
        data_converter=pydantic_data_converter,
        search_attributes=[CLUSTER_STATE],
        dev_server_extra_args=list(server_args),
    )


class LocalWorker:
    """The mysqlops worker in this process, on the local runtime at `home`; it may be stopped
    and started again (a test kills it in the middle of a repair)."""

    def __init__(self, client: Client, home: Path) -> None:
        self.client, self.home = client, home
        self.workers: Workers | None = None

    async def start(self) -> None:
        self.workers = Workers(self.client, LocalRuntime(self.home))
        await self.workers.__aenter__()

    async def stop(self) -> None:
        if self.workers is not None:
            await self.workers.__aexit__(None, None, None)
            self.workers = None

    async def __aenter__(self) -> "LocalWorker":
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stop_everything(self.home)  # before the worker goes: no agent outlives its server
        await self.stop()


@contextlib.asynccontextmanager
async def temporal_stack(home: Path, *server_args: str) -> AsyncIterator[Client]:
    """A dev server (given `server_args`) and a worker in this process on the local runtime
    at `home`.

    TEMPORAL_ADDRESS names the server meanwhile, so node agents provisioned from here report
    to it."""
    env = await dev_server(*server_args)
    saved = {"TEMPORAL_ADDRESS": os.environ.get("TEMPORAL_ADDRESS")}
    os.environ["TEMPORAL_ADDRESS"] = env.client.service_client.config.target_host
    try:
        async with LocalWorker(env.client, home):
            yield env.client
    finally:
        await env.shutdown()
        _restore(saved)


@contextlib.contextmanager
def port_taken(host: str, port: int) -> Iterator[None]:
    """Something else listens on the port: a mariadbd that wants it cannot start."""
    deadline = time.monotonic() + 5
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT only
        while True:
            try:
                taken.bind((host, port))
                break
            except OSError:
                # A SIGKILLed mariadbd's main thread shows as a zombie while its other threads
                # still hold its sockets, for a few milliseconds.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        taken.listen()
        yield
