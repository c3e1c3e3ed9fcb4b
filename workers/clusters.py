"""Every running cluster at once: the census behind the worker's metrics and `mysqlops top`.

Temporal's visibility lists the running `MySQLCluster` workflows (one call per page), then each
is asked for its status with a query (nothing is added to its history), a few at a time. A
cluster that does not answer in time is counted as missed, not waited for.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.backup.activities import schedule_id
from api.cluster import ClusterStatus
from api.messages import QUERY_STATUS

LISTING = "WorkflowType = 'MySQLCluster' AND ExecutionStatus = 'Running'"


@dataclass(frozen=True)
class Schedule:
    """A cluster's backup schedule as Temporal runs it."""

    interval_seconds: float | None  # between its next two runs; None when it has fewer
    created_at: datetime | None
    paused: bool


@dataclass
class Census:
    statuses: list[ClusterStatus] = field(default_factory=list)
    schedules: dict[str, Schedule] = field(default_factory=dict)  # by workflow id
    missed: list[str] = field(default_factory=list)  # workflow ids that did not answer


def cluster_of(workflow_id: str) -> tuple[str, str]:
    """`mysqlcluster/<namespace>/<name>` -> (namespace, name)."""
    _, namespace, name = workflow_id.split("/", 2)
    return namespace, name


async def running_cluster_ids(client: Client) -> list[str]:
    return sorted([execution.id async for execution in client.list_workflows(LISTING)])


async def take_census(
    client: Client, *, concurrency: int = 8, timeout: float = 5.0, schedules: bool = True
) -> Census:
    """The status of every running cluster (and its backup schedule, with `schedules`)."""
    census = Census()
    gate = asyncio.Semaphore(concurrency)

    async def look(workflow_id: str) -> None:
        async with gate:
            try:
                handle = client.get_workflow_handle(workflow_id)
                status = await asyncio.wait_for(
                    handle.query(QUERY_STATUS, result_type=ClusterStatus), timeout
                )
                if schedules:
                    found = await asyncio.wait_for(_schedule(client, workflow_id), timeout)
                    if found is not None:
                        census.schedules[workflow_id] = found
            except Exception:  # one cluster that does not answer must not cost the census
                census.missed.append(workflow_id)
                return
            census.statuses.append(status)

    await asyncio.gather(*(look(i) for i in await running_cluster_ids(client)))
    census.statuses.sort(key=lambda s: s.workflow_id)
    census.missed.sort()
    return census


async def _schedule(client: Client, workflow_id: str) -> Schedule | None:
    namespace, name = cluster_of(workflow_id)
    try:
        described = await client.get_schedule_handle(schedule_id(namespace, name)).describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    upcoming = described.info.next_action_times
    interval = (upcoming[1] - upcoming[0]).total_seconds() if len(upcoming) > 1 else None
    return Schedule(interval, described.info.created_at, described.schedule.state.paused)
