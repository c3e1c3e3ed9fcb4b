"""Every line an activity logs carries its cluster, node, workflow, run, activity type and
attempt (workers/log_context.py), for async activities and for synchronous ones in the
worker's thread pool, from structlog and from the standard library alike; on a real Temporal
dev server."""

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import temporalio.activity
import temporalio.workflow
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.local.runtime import LocalRuntime
from activities.messages import LayoutInput, NodeInput
from activities.runtime import ClusterLayout, ClusterRef, NodeLayout
from workers import logs
from workers.log_context import LogContext
from workers.worker import Workers

LAYOUT = ClusterLayout(
    cluster=ClusterRef(namespace="team", name="shop"),
    host="127.0.0.1",
    writer_port=1,
    reader_port=2,
    nodes=[NodeLayout(name="shop-1", ordinal=1, host="127.0.0.1", port=3)],
)


@activity.defn
async def async_step(request: LayoutInput) -> str:
    structlog.get_logger("test.async").info("async step", replicas=request.replicas)
    await asyncio.sleep(0)
    activity.logger.info("from the activity logger")
    return "ok"


attempts: dict[str, int] = {}


@activity.defn
def sync_step(request: NodeInput) -> str:
    key = activity.info().workflow_id or ""
    attempts[key] = attempts.get(key, 0) + 1
    structlog.get_logger("test.sync").info("sync step")
    logging.getLogger("some.library").warning("a library speaks")
    if attempts[key] == 1:
        raise RuntimeError("fails once")  # the second attempt's lines say attempt 2
    return "ok"


@workflow.defn(sandboxed=False)
class Steps:
    @workflow.run
    async def run(self) -> None:
        options: dict[str, Any] = {
            "start_to_close_timeout": timedelta(seconds=30),
            "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=10)),
        }
        await workflow.execute_activity(
            async_step, LayoutInput(cluster=LAYOUT.cluster, replicas=3), **options
        )
        await workflow.execute_activity(
            sync_step, NodeInput(layout=LAYOUT, node="shop-1"), **options
        )


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level, handlers, config = root.level, root.handlers[:], structlog.get_config()
    on_message = (
        temporalio.workflow.logger.workflow_info_on_message,
        temporalio.activity.logger.activity_info_on_message,
    )
    out = io.StringIO()
    logs.configure(stream=out, json=True)
    yield out
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(**config)
    (
        temporalio.workflow.logger.workflow_info_on_message,
        temporalio.activity.logger.activity_info_on_message,
    ) = on_message


async def test_activity_lines_carry_their_context(
    temporal_env: WorkflowEnvironment, captured: io.StringIO
) -> None:
    queue = f"log-context-{uuid.uuid4().hex[:8]}"
    workflow_id = f"steps-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(2) as threads:
        async with Worker(
            temporal_env.client,
            task_queue=queue,
            workflows=[Steps],
            activities=[async_step, sync_step],
            activity_executor=threads,
            interceptors=[LogContext()],
        ):
            handle = await temporal_env.client.start_workflow(
                Steps.run, id=workflow_id, task_queue=queue
            )
            await handle.result()
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    mine = {line["event"]: line for line in lines if line.get("workflow_id") == workflow_id}
    common = {"workflow_id": workflow_id, "run_id": handle.result_run_id, "cluster": "team/shop"}
    for event in ("async step", "from the activity logger"):
        line = mine[event]
        assert line.items() >= {**common, "activity": "async_step", "attempt": 1}.items()
        assert "node" not in line
    assert mine["async step"]["replicas"] == 3
    for event in ("sync step", "a library speaks"):
        line = mine[event]  # the last one: the second attempt, in a pool thread
        expected = {**common, "activity": "sync_step", "attempt": 2, "node": "shop-1"}
        assert line.items() >= expected.items()
    # Nothing leaks out of an activity: the worker's own lines carry none of it.
    assert all("activity" not in line for line in lines if line.get("workflow_id") is None)


async def test_the_worker_installs_it_on_both_queues(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # A queue of its own: the session's client may already run workers on the default one.
    workers = Workers(temporal_env.client, LocalRuntime(tmp_path), f"test-{uuid.uuid4().hex[:8]}")
    try:
        for worker in (workers.tasks, workers.watches):
            assert any(isinstance(i, LogContext) for i in worker.config()["interceptors"])
    finally:
        await workers.__aexit__(None, None, None)
