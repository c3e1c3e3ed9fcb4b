"""Real clusters: mariadbd + galera-4 + HAProxy + node agents, driven by a worker in this
process against the session's Temporal dev server. Everything started here is stopped here
(workers/sandbox.py, shared with the benchmarks).

Tests act as a user does, through the CLI (`mysqlops`), and watch the status through the
client library (workers/client.py), as JSON: what `mysqlops status NAME --json` prints."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.cluster import ClusterStatus
from workers.client import ClusterClient
from workers.errors import NotReached
from workers.sandbox import LocalWorker, private_home
from workers.temporal import Connection

POLL_SECONDS = 0.3

Status = dict[str, Any]  # a status as `mysqlops status NAME --json` prints it


@pytest.fixture(scope="session")
def local_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private state dir and port range; on exit, every process found in it is stopped."""
    with private_home(tmp_path_factory.mktemp("mysqlops-home")) as home:
        yield home


@pytest.fixture(scope="session")
def cli_env(local_home: Path, temporal_env: WorkflowEnvironment) -> dict[str, str]:
    target = temporal_env.client.service_client.config.target_host
    os.environ["TEMPORAL_ADDRESS"] = target  # the agents report to this server
    return {**os.environ, "MYSQLOPS_HOME": str(local_home), "TEMPORAL_ADDRESS": target}


@pytest_asyncio.fixture(scope="session")
async def worker(
    temporal_env: WorkflowEnvironment, local_home: Path, cli_env: dict[str, str]
) -> AsyncIterator[LocalWorker]:
    async with LocalWorker(temporal_env.client, local_home) as running:
        yield running


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


async def app_credentials(env: dict[str, str], name: str) -> dict[str, Any]:
    """`mysqlops connect NAME --json`, and the password read from the file it names (the CLI
    never prints it)."""
    info = await mysqlops(env, "connect", name, "--json", timeout=60)
    assert info.returncode == 0, info.stderr
    data: dict[str, Any] = json.loads(info.stdout)
    data["password"] = Path(data["password_file"]).read_text().strip()
    return data


def cluster_yaml(name: str, spec: str = "") -> str:
    """A 3-node MySQLCluster probed twice a second; `spec` adds lines under `spec:` (indented
    by two spaces)."""
    return (
        "apiVersion: mysqlops.io/v1alpha1\nkind: MySQLCluster\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n  replicas: 3\n  health:\n    probeIntervalSeconds: 0.5\n" + spec
    )


_clients: dict[tuple[str, str], Client] = {}


async def cluster_client(env: dict[str, str], name: str) -> ClusterClient:
    """The client library on cluster `name` of the Temporal that `env` names."""
    connection = Connection.load(env)
    key = (connection.address, connection.namespace)
    if key not in _clients:
        _clients[key] = await connection.connect()
    return ClusterClient.of(_clients[key], "default", name, poll_seconds=POLL_SECONDS)


def as_json(current: ClusterStatus) -> Status:
    data: Status = current.model_dump(mode="json", by_alias=True)
    return data


async def cluster_status(env: dict[str, str], *, name: str) -> Status:
    return as_json(await (await cluster_client(env, name)).status())


async def until_status(
    env: dict[str, str], check: Callable[[Status], bool], timeout: float, *, name: str
) -> Status:
    """Until `check` holds; the test fails with the last status after `timeout`, or as soon as
    automation pauses for a human without `check` holding."""
    cluster = await cluster_client(env, name)
    try:
        current = await cluster.wait_until(
            lambda s: check(as_json(s)), timeout, "the test's condition"
        )
    except NotReached as error:
        pytest.fail(f"{error}\nlast status: {json.dumps(as_json(error.status))}")
    return as_json(current)


def node_named(current: Status, name: str) -> dict[str, Any]:
    return next(n for n in current["nodes"] if n["name"] == name)
