"""Benchmark: how fast a healthy, idle cluster's workflow history grows.

Target: at most 60 history events per hour for a cluster that stays healthy.

Creates a 3-node cluster with the default spec (health.resyncSeconds 600) through its workflow,
waits until it is Green with no task, then leaves it alone for `--minutes` and counts the
history events added meanwhile, extrapolated to an hour. The event types added are printed so a
reader sees where they come from. The cluster is deleted and every process stopped at the end.

Run from the repository root:  .venv/bin/python -m bench.history [--minutes 12]
Exit status 0 when the target is met, 1 when it is missed.
"""

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from api.states import ClusterState
from bench.common import cluster_resource, delete_cluster, finish, start_cluster
from workers.client import ClusterClient
from workers.sandbox import private_home, temporal_stack

TARGET_PER_HOUR = 60
SHOWN = 15  # event types shown from each end of the window


@dataclass(frozen=True)
class Window:
    before: int  # history length when the window opened
    added: list[str]  # event types added during the window, in order
    seconds: float
    run_changed: bool  # a continue-as-new happened: `added` covers only the new run
    stayed_green: bool

    @property
    def per_hour(self) -> float:
        return len(self.added) * 3600 / self.seconds


def event_type(event: HistoryEvent) -> str:
    return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")


async def history(client: Client, workflow_id: str) -> tuple[str, list[HistoryEvent]]:
    """The run id and events of the workflow's latest run."""
    handle = client.get_workflow_handle(workflow_id)
    run_id = (await handle.describe()).run_id
    events = (await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()).events
    return run_id, list(events)


async def stayed_green(cluster: ClusterClient, since: datetime) -> bool:
    status = await cluster.status()
    changed = [t for t in status.transitions if t.at >= since]
    return status.state is ClusterState.GREEN and not changed


async def settled(client: Client, workflow_id: str, quiet: float = 30) -> None:
    """Wait until the history has not grown for `quiet` seconds: the creation's tail (late
    agent reports, the re-examination after the last task) is not part of the idle window."""
    length, since = -1, time.monotonic()
    while time.monotonic() - since < quiet:
        _, events = await history(client, workflow_id)
        if len(events) != length:
            length, since = len(events), time.monotonic()
        await asyncio.sleep(2)


async def idle_window(client: Client, cluster: ClusterClient, minutes: float) -> Window:
    workflow_id = cluster.handle.id
    await settled(client, workflow_id)
    run_before, events_before = await history(client, workflow_id)
    opened_at, started = datetime.now(UTC), time.monotonic()
    print(f"Green and idle; history has {len(events_before)} events; waiting {minutes:g} min")
    await asyncio.sleep(minutes * 60)
    seconds = time.monotonic() - started
    run_after, events_after = await history(client, workflow_id)
    run_changed = run_after != run_before
    added = events_after if run_changed else events_after[len(events_before) :]
    return Window(
        before=len(events_before),
        added=[event_type(e) for e in added],
        seconds=seconds,
        run_changed=run_changed,
        stayed_green=await stayed_green(cluster, opened_at),
    )


def report(window: Window) -> bool:
    minutes = window.seconds / 60
    print()
    print(f"history length at Green: {window.before} events")
    print(f"events added:            {len(window.added)} in {minutes:.1f} min")
    print(f"extrapolated:            {window.per_hour:.1f} events per hour")
    print(f"cluster stayed Green:    {'yes' if window.stayed_green else 'NO'}")
    if window.run_changed:
        print("note: a continue-as-new happened; the count covers only the new run")
    print(f"first {SHOWN} added: {', '.join(window.added[:SHOWN]) or '-'}")
    print(f"last {SHOWN} added:  {', '.join(window.added[-SHOWN:]) or '-'}")
    for kind, count in Counter(window.added).most_common():
        print(f"  {count:>4}  {kind}")
    met = window.per_hour <= TARGET_PER_HOUR
    verdict = "meets" if met else "MISSES"
    print(f"{verdict} the target (at most {TARGET_PER_HOUR} events per hour)")
    return met


async def main(minutes: float) -> int:
    with private_home(prefix="mysqlops-bench-history-") as home:
        async with temporal_stack(home) as client:
            applied = await start_cluster(client, cluster_resource("history"))
            try:
                await applied.until_green(timeout=600)
                window = await idle_window(client, applied.cluster, minutes)
            finally:
                await delete_cluster(applied.cluster, home, timeout=300)
    return 0 if report(window) else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=12, help="length of the idle window")
    return parser.parse_args()


if __name__ == "__main__":
    finish(asyncio.run(main(parse_args().minutes)))
