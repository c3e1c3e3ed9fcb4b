"""The workflow test harness: a worker with the scripted runtime, and the client library's view
of a cluster started through it (`cluster`), with short names for the common reads."""

import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.cluster import ClusterActivities
from api.cluster import ClusterStatus, MySQLCluster, MySQLClusterSpec
from api.messages import ClusterWorkflowInput
from tests.workflows.fake_runtime import FakeRuntime
from workers.client import ClusterClient
from workers.client import green_and_idle as green_and_idle
from workers.worker import build_worker
from workflows.cluster import ClusterWorkflow

POLL_SECONDS = 0.1  # the scripted runtime answers at once


@dataclass
class Harness:
    client: Client
    runtime: FakeRuntime
    task_queue: str

    async def start(self, replicas: int = 3, **spec: object) -> WorkflowHandle[Any, Any]:
        cluster = MySQLCluster.model_validate(
            {
                "metadata": {"name": f"c{uuid.uuid4().hex[:8]}"},
                "spec": {"replicas": replicas, "health": {"probeIntervalSeconds": 0.2}, **spec},
            }
        )
        return await self.client.start_workflow(
            ClusterWorkflow.run,
            ClusterWorkflowInput(cluster=cluster),
            id=cluster.workflow_id,
            task_queue=self.task_queue,
        )


def cluster(handle: WorkflowHandle[Any, Any]) -> ClusterClient:
    """The client library on a workflow the harness started: commands, wait_for_task, ..."""
    return ClusterClient(handle, poll_seconds=POLL_SECONDS)


async def status(handle: WorkflowHandle[Any, Any]) -> ClusterStatus:
    return await cluster(handle).status()


async def until(
    handle: WorkflowHandle[Any, Any], check: Callable[[ClusterStatus], object], timeout: float = 30
) -> ClusterStatus:
    """Until `check` is true (NotReached after `timeout`); a pause for a human does not end
    the wait: tests look at what happens during one."""
    return await cluster(handle).wait_until(
        lambda s: bool(check(s)), timeout, "the test's condition", manual_intervention_ends_it=False
    )


def spec_with(replicas: int) -> MySQLClusterSpec:
    return MySQLClusterSpec.model_validate(
        {"replicas": replicas, "health": {"probeIntervalSeconds": 0.2}}
    )


async def history_json(handle: WorkflowHandle[Any, Any]) -> str:
    return (await handle.fetch_history()).to_json()


async def running_harness(
    env: WorkflowEnvironment, sandboxed: bool = True
) -> AsyncIterator[Harness]:
    """A worker on a queue of its own. Unsandboxed, the workflow runs the very modules the
    test imported, so a test can plant a fault or shrink a limit with monkeypatch (the sandbox
    would re-import clean copies)."""
    runtime = FakeRuntime()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    activities = ClusterActivities(runtime, prober=runtime.probe)
    with ThreadPoolExecutor(max_workers=64) as executor:
        # A worker registers its queue when built: the unsandboxed one copies the config of a
        # worker built for a queue nobody polls.
        built = queue if sandboxed else f"{queue}-template"
        worker = build_worker(env.client, runtime, executor, built, activities)
        if not sandboxed:
            config = worker.config()
            config["task_queue"], config["workflow_runner"] = queue, UnsandboxedWorkflowRunner()
            worker = Worker(**config)
        async with worker:
            yield Harness(env.client, runtime, queue)
        runtime.gate.set()
    shutil.rmtree(runtime.backups_home, ignore_errors=True)
