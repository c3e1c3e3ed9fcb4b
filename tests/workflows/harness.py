"""The workflow test harness: a worker with the scripted runtime, and status helpers."""

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.cluster import ClusterActivities
from api.cluster import ClusterStatus, MySQLCluster, MySQLClusterSpec
from api.messages import QUERY_STATUS, ClusterWorkflowInput
from tests.workflows.fake_runtime import FakeRuntime
from workers.worker import build_worker
from workflows.cluster import ClusterWorkflow


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


async def status(handle: WorkflowHandle[object, object]) -> ClusterStatus:
    result: ClusterStatus = await handle.query(QUERY_STATUS, result_type=ClusterStatus)
    return result


async def until(
    handle: WorkflowHandle[object, object],
    check: Callable[[ClusterStatus], bool],
    timeout: float = 30,
) -> ClusterStatus:
    async def poll() -> ClusterStatus:
        while True:
            current = await status(handle)
            if check(current):
                return current
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(poll(), timeout)


def spec_with(replicas: int) -> MySQLClusterSpec:
    return MySQLClusterSpec.model_validate(
        {"replicas": replicas, "health": {"probeIntervalSeconds": 0.2}}
    )


def green_and_idle(s: ClusterStatus) -> bool:
    return s.state.value == "Green" and s.current_task is None and not s.queued_tasks


async def history_json(handle: WorkflowHandle[object, object]) -> str:
    return (await handle.fetch_history()).to_json()


async def running_harness(env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    runtime = FakeRuntime()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    activities = ClusterActivities(runtime, prober=runtime.probe)
    with ThreadPoolExecutor(max_workers=64) as executor:
        async with build_worker(
            env.client, runtime, executor, task_queue=queue, activities=activities
        ):
            yield Harness(env.client, runtime, queue)
        runtime.gate.set()
    shutil.rmtree(runtime.backups_home, ignore_errors=True)
