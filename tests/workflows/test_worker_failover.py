"""Two worker processes: one is SIGKILLed, the other takes over every watch and repairs.

Worker A is a real process (`python -m workers.worker --runtime scripted`) on a scripted
runtime shared from this test process, where worker B runs and faults are planted.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.scripted.runtime import ScriptedRuntime
from activities.scripted.shared import share
from tests.workflows.harness import Harness, green_and_idle, until
from workers.worker import Workers

CLUSTERS = 3
FAST = {"backoffSeconds": 0.5, "hungGraceSeconds": 2}
STARTED = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED


@pytest.fixture
def worker_a(temporal_env: WorkflowEnvironment, tmp_path: Path) -> Iterator[tuple[Harness, int]]:
    """A harness whose only worker, for now, is another process; and that process's pid."""
    runtime = ScriptedRuntime()
    shared = share(runtime, tmp_path)
    queue = f"failover-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        **shared.env,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
    }
    with (tmp_path / "worker-a.log").open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workers.worker",
                "--runtime",
                "scripted",
                "--task-queue",
                queue,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Harness(temporal_env.client, runtime, queue), process.pid
    finally:
        process.kill()
        process.wait()
        shared.stop()


async def watchers(handles: list[WorkflowHandle[Any, Any]]) -> list[str]:
    """The identity of the worker running each cluster's watch ("" when none runs it)."""
    found = []
    for handle in handles:
        pending = (await handle.describe()).raw_description.pending_activities
        running = [
            p.last_worker_identity
            for p in pending
            if p.activity_type.name == "watch_health" and p.state == STARTED
        ]
        found.append(running[0] if len(running) == 1 else "")
    return found


async def settled(
    handles: list[WorkflowHandle[Any, Any]], check: Callable[[list[str]], bool], timeout: float
) -> None:
    """Until `check` holds for the watchers (a watch is replaced after every task: for a
    moment the new one is only scheduled)."""
    deadline = time.monotonic() + timeout
    while not check(found := await watchers(handles)):
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.5)


async def test_a_killed_worker_s_watches_move_to_the_other_which_repairs(
    worker_a: tuple[Harness, int],
) -> None:
    h, pid = worker_a
    handles = [await h.start(remediation=FAST) for _ in range(CLUSTERS)]
    await asyncio.gather(*(until(c, green_and_idle, timeout=60) for c in handles))
    await settled(handles, lambda found: {w.split("@")[0] for w in found} == {str(pid)}, 10)

    client = await Client.connect(
        h.client.service_client.config.target_host, data_converter=h.client.data_converter
    )
    async with Workers(client, h.runtime, h.task_queue, probe=h.runtime.probe):
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        await settled(handles, lambda found: found == [client.identity] * CLUSTERS, 30)
        print(f"every watch on the other worker {time.monotonic() - killed:.1f} s after the kill")

        ready = await until(handles[1], green_and_idle)
        victim = ready.nodes[2]
        h.runtime.crash(victim.name, detail="killed by SIGKILL")
        await until(
            handles[1], lambda s: green_and_idle(s) and s.nodes[2].pid != victim.pid, timeout=60
        )
