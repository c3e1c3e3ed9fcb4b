"""A worker's limits: watching clusters never takes the slots repairs need, and a worker with
no room left for a watch says so, in its log and in the status of the cluster left unwatched."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
import structlog
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.cluster import ClusterStatus
from tests.workflows.harness import Harness, green_and_idle, running_harness, status, until
from workers.worker import Limits, Workers
from workflows import context

FAST = {"backoffSeconds": 0.5, "hungGraceSeconds": 2}
Handle = WorkflowHandle[Any, Any]


@pytest_asyncio.fixture
async def four_task_slots(temporal_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    async for h in running_harness(temporal_env, limits=Limits(task_activities=4)):
        yield h


async def test_more_clusters_than_task_slots_are_all_watched_and_the_last_repaired(
    four_task_slots: Harness,
) -> None:
    """Before the watches had a queue of their own, each held one of the 4 slots for good: the
    fifth cluster was never created and no crash was repaired."""
    h = four_task_slots
    handles = [await h.start(remediation=FAST) for _ in range(6)]
    ready = await asyncio.gather(*(until(c, green_and_idle, timeout=60) for c in handles))
    last, victim = handles[-1], ready[-1].nodes[1]
    h.runtime.crash(victim.name, detail="killed by SIGKILL")
    healed = await until(
        last, lambda s: green_and_idle(s) and bool(s.remediations) and s.nodes[1].pid != victim.pid
    )
    assert healed.remediations[-1].nodes == [victim.name]
    for other in handles[:-1]:
        seen = await status(other)
        assert green_and_idle(seen) and not seen.remediations


@pytest_asyncio.fixture
async def two_watch_slots(
    temporal_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    monkeypatch.setattr(context, "WATCH_PICKUP", timedelta(seconds=2))
    async for h in running_harness(temporal_env, sandboxed=False, limits=Limits(watches=2)):
        yield h


async def test_a_full_worker_says_so_and_another_worker_takes_the_watch_left_waiting(
    two_watch_slots: Harness,
) -> None:
    h = two_watch_slots
    with structlog.testing.capture_logs() as logs:
        handles = [await h.start(remediation=FAST) for _ in range(3)]
        for handle in handles:
            await until(handle, lambda s: s.phase.value == "Running")
        waiting, seen = await _unwatched(handles, expected=1)
    assert any("every watch slot of this worker is taken" in e["event"] for e in logs)
    assert seen.unwatched is not None and "watch slots are taken" in seen.unwatched.reason
    assert any(t.to_state == "unwatched" for t in seen.transitions)

    # A second worker process with room (a client of its own, as a process has): it takes the
    # waiting watch, which then repairs.
    client = await Client.connect(
        h.client.service_client.config.target_host, data_converter=h.client.data_converter
    )
    async with Workers(client, h.runtime, h.task_queue, probe=h.runtime.probe):
        watched = await until(waiting, lambda s: s.unwatched is None and green_and_idle(s))
        assert any(t.to_state == "watched" for t in watched.transitions)
        victim = watched.nodes[0]
        h.runtime.crash(victim.name, detail="killed by SIGKILL")
        await until(waiting, lambda s: green_and_idle(s) and s.nodes[0].pid != victim.pid)


async def _unwatched(handles: list[Handle], expected: int) -> tuple[Handle, ClusterStatus]:
    """A cluster left unwatched and its status, once exactly `expected` are."""
    for _ in range(100):
        seen = [await status(c) for c in handles]
        left = [(c, s) for c, s in zip(handles, seen, strict=True) if s.unwatched is not None]
        if len(left) == expected:
            return left[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {expected} cluster(s) unwatched: {[s.unwatched for s in seen]}")
