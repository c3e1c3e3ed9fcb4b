"""The workflow test harness: a worker with the scripted runtime, and the client library's view
of a cluster started through it (`cluster`), with short names for the common reads."""

import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner

from activities.kubernetes.client import ApiClient
from activities.scripted.runtime import ScriptedRuntime
from api.cluster import ClusterStatus, MySQLCluster, MySQLClusterSpec
from api.messages import ClusterWorkflowInput
from workers.client import ClusterClient
from workers.client import green_and_idle as green_and_idle
from workers.worker import Limits, Workers
from workflows.cluster import ClusterWorkflow

POLL_SECONDS = 0.1  # the scripted runtime answers at once


@dataclass
class Harness:
    client: Client
    runtime: ScriptedRuntime
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
    env: WorkflowEnvironment,
    sandboxed: bool = True,
    limits: Limits | None = None,
    kubernetes: ApiClient | None = None,
) -> AsyncIterator[Harness]:
    """A worker process's workers on a queue of their own. Unsandboxed, the workflow runs the
    very modules the test imported, so a test can plant a fault or shrink a limit with
    monkeypatch (the sandbox would re-import clean copies)."""
    runtime = ScriptedRuntime()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    runner = None if sandboxed else UnsandboxedWorkflowRunner()
    workers = Workers(
        env.client, runtime, queue, limits or Limits(), runtime.probe, runner, kubernetes
    )
    async with workers:
        yield Harness(env.client, runtime, queue)
        runtime.gate.set()
    if runtime.backups_home is not None:
        shutil.rmtree(runtime.backups_home, ignore_errors=True)
