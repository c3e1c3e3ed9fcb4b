"""Real clusters: mariadbd + galera-4 + HAProxy + node agents, driven by a worker in this
process against the session's Temporal dev server. Everything started here is stopped here."""

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.local.runtime import LocalRuntime
from activities.runtime import StopMode
from workers.worker import build_worker


@pytest.fixture(scope="session")
def local_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private state dir and port range; on exit, every process found in it is stopped."""
    home = tmp_path_factory.mktemp("mysqlops-home")
    saved = {k: os.environ.get(k) for k in ("MYSQLOPS_HOME", "MYSQLOPS_PORT_BASE")}
    os.environ["MYSQLOPS_HOME"] = str(home)
    os.environ["MYSQLOPS_PORT_BASE"] = str(random.randrange(10000, 30000, 100))
    yield home
    stop_everything(home)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def stop_everything(home: Path) -> None:
    runtime = LocalRuntime(home)
    for layout in runtime.saved_layouts():
        for problem in runtime.stop_cluster_processes(layout, StopMode.KILL):
            print(f"cleanup: {problem}", file=sys.stderr)


@pytest.fixture(scope="session")
def cli_env(local_home: Path, temporal_env: WorkflowEnvironment) -> dict[str, str]:
    target = temporal_env.client.service_client.config.target_host
    os.environ["TEMPORAL_ADDRESS"] = target  # the agents report to this server
    return {**os.environ, "MYSQLOPS_HOME": str(local_home), "TEMPORAL_ADDRESS": target}


async def mysqlops(
    env: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would; in a thread, as the worker shares this event loop."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from workers.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cluster_yaml(name: str, spec: str = "") -> str:
    """A 3-node MySQLCluster probed twice a second; `spec` adds lines under `spec:` (indented
    by two spaces)."""
    return (
        "apiVersion: mysqlops.io/v1alpha1\nkind: MySQLCluster\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n  replicas: 3\n  health:\n    probeIntervalSeconds: 0.5\n" + spec
    )


async def cluster_status(env: dict[str, str], *, name: str) -> dict[str, Any]:
    """`mysqlops status NAME --json`, as a user reads it."""
    result = await mysqlops(env, "status", name, "--json", timeout=30)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def until_status(
    env: dict[str, str], check: Callable[[dict[str, Any]], bool], timeout: float, *, name: str
) -> dict[str, Any]:
    """Poll the status until `check` holds; fail the test with the last status after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        current = await cluster_status(env, name=name)
        if check(current):
            return current
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {current}"
        await asyncio.sleep(0.3)


def node_named(current: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in current["nodes"] if n["name"] == name)


class WorkerControl:
    """The worker under test, which a test may stop and replace."""

    def __init__(self, env: WorkflowEnvironment, home: Path) -> None:
        self.env, self.home = env, home
        self.executor = ThreadPoolExecutor(max_workers=64)
        self.worker: Worker | None = None

    async def start(self) -> None:
        self.worker = build_worker(self.env.client, LocalRuntime(self.home), self.executor)
        await self.worker.__aenter__()

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.__aexit__(None, None, None)
            self.worker = None


@pytest_asyncio.fixture(scope="session")
async def worker(
    temporal_env: WorkflowEnvironment, local_home: Path, cli_env: dict[str, str]
) -> AsyncIterator[WorkerControl]:
    control = WorkerControl(temporal_env, local_home)
    await control.start()
    yield control
    await control.stop()
    control.executor.shutdown(wait=False, cancel_futures=True)
