"""Benchmark: how fast a cluster's workflow history grows while nothing changes, in every
phase the controller can rest in.

Target: at most 60 history events per hour (the watcher's periodic re-examination every
`resyncSeconds`) for a cluster that stays healthy, and the same for a stopped cluster, a
cluster with a node in maintenance after a failed repair, and one paused for a human: history
grows with changes, never with time, in every phase (a stale backoff once cost a timer every
100 ms there).

Each scenario creates a 3-node cluster (default spec, health.resyncSeconds 600) through its
workflow, brings it to the state named, waits until its history has held still, then leaves it
alone for `--minutes` and counts the history events added, extrapolated to an hour:
- healthy: Green and idle.
- stopped: a node SIGKILLed whose restart fails (its port is taken), the repair recorded as
  failed with a backoff pending, then the cluster stopped; measured after the backoff ended.
- maintenance: the same failed repair, then the node put in `remediation.maintenance`.
- manual: a node whose my.cnf was broken by hand, SIGKILLed: ConfigError, manual intervention.
The event types added are printed so a reader sees where they come from. The cluster is
deleted and every process stopped at the end of each scenario.

Run from the repository root:
    .venv/bin/python -m bench.history [--minutes 12] [--scenarios healthy,stopped,...]
Exit status 0 when every target is met, 1 when one is missed.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from activities.local.paths import ClusterPaths
from api.cluster import ClusterStatus, MySQLClusterSpec, NodeStatus
from api.messages import UPDATE_APPLY_SPEC, UPDATE_STOP, ApplySpecRequest, LifecycleRequest
from api.remediation import Outcome
from api.states import ClusterState, Phase
from bench.common import cluster_resource, delete_cluster, finish, start_cluster
from workers.client import ClusterClient, idle
from workers.sandbox import port_taken, private_home, temporal_stack

SHOWN = 15  # event types shown from each end of the window
BACKOFF_SECONDS = 20  # after the failed repair: the window opens once it has passed
# events per hour: the periodic re-examination (resyncSeconds) is the only cost of time allowed
TARGETS = {"healthy": 60.0, "stopped": 60.0, "maintenance": 60.0, "manual": 60.0}


@dataclass(frozen=True)
class Window:
    before: int  # history length when the window opened
    added: list[str]  # event types added during the window, in order
    seconds: float
    run_changed: bool  # a continue-as-new happened: `added` covers only the new run
    stayed: bool  # no transition during the window

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


async def stayed(cluster: ClusterClient, since: datetime) -> bool:
    """No transition of any kind since the window opened."""
    status = await cluster.status()
    return not [t for t in status.transitions if t.at >= since]


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
    print(f"settled; history has {len(events_before)} events; waiting {minutes:g} min")
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
        stayed=await stayed(cluster, opened_at),
    )


def report(scenario: str, window: Window) -> bool:
    minutes = window.seconds / 60
    target = TARGETS[scenario]
    print()
    print(f"== {scenario}")
    print(f"history length at rest:  {window.before} events")
    print(f"events added:            {len(window.added)} in {minutes:.1f} min")
    print(f"extrapolated:            {window.per_hour:.1f} events per hour")
    print(f"no transition meanwhile: {'yes' if window.stayed else 'NO'}")
    if window.run_changed:
        print("note: a continue-as-new happened; the count covers only the new run")
    print(f"first {SHOWN} added: {', '.join(window.added[:SHOWN]) or '-'}")
    print(f"last {SHOWN} added:  {', '.join(window.added[-SHOWN:]) or '-'}")
    for kind, count in Counter(window.added).most_common():
        print(f"  {count:>4}  {kind}")
    met = window.per_hour <= target and window.stayed
    verdict = "meets" if met else "MISSES"
    print(f"{verdict} the target (at most {target:g} events per hour)")
    return met


# -- bringing a cluster to the state measured ------------------------------------------------

Prepare = Callable[[ClusterClient, ClusterPaths], Awaitable[None]]


def victim_of(status: ClusterStatus) -> NodeStatus:
    return next(n for n in status.nodes if n.name != status.writer)


async def failed_repair(cluster: ClusterClient, ports: contextlib.ExitStack) -> str:
    """A non-writer SIGKILLed, then its port taken: the repair's restart fails."""
    victim = victim_of(await cluster.status())
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    ports.enter_context(port_taken("127.0.0.1", victim.port))
    await cluster.wait_until(
        lambda s: any(r.outcome is Outcome.FAILED for r in s.remediations),
        timeout=180,
        what=f"a failed repair of {victim.name}",
    )
    return victim.name


async def rest(cluster: ClusterClient, what: str) -> None:
    await cluster.wait_until(idle, timeout=120, what=what, manual_intervention_ends_it=False)
    await asyncio.sleep(BACKOFF_SECONDS)  # the backoff is over: nothing is pending any more


async def healthy(cluster: ClusterClient, paths: ClusterPaths) -> None:
    await cluster.wait_until(
        lambda s: s.state is ClusterState.GREEN and idle(s), timeout=120, what="Green"
    )


def stopped(ports: contextlib.ExitStack) -> Prepare:
    async def prepare(cluster: ClusterClient, paths: ClusterPaths) -> None:
        await failed_repair(cluster, ports)
        await cluster.command(UPDATE_STOP, LifecycleRequest(reason="benchmark"))
        await cluster.wait_until(
            lambda s: s.phase is Phase.STOPPED and idle(s), timeout=300, what="Stopped"
        )
        await rest(cluster, "stopped")

    return prepare


def maintenance(ports: contextlib.ExitStack) -> Prepare:
    async def prepare(cluster: ClusterClient, paths: ClusterPaths) -> None:
        victim = await failed_repair(cluster, ports)
        spec = await cluster.spec()
        rules = spec.remediation.model_copy(update={"maintenance": [victim]})
        changed = spec.model_copy(update={"remediation": rules})
        result = await cluster.command(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=changed))
        if result.task_id:
            await cluster.wait_for_task(result.task_id, timeout=120)
        await rest(cluster, f"{victim} in maintenance")

    return prepare


async def manual(cluster: ClusterClient, paths: ClusterPaths) -> None:
    victim = victim_of(await cluster.status())
    config = paths.node(victim.name).config
    assert "[mariadbd]" in config.read_text(), f"{config}: no [mariadbd] group to break"
    config.write_text(config.read_text().replace("[mariadbd]", "[mariadbd]\nno_such_option = 1", 1))
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    await cluster.wait_until(
        lambda s: s.manual_intervention is not None and idle(s),
        timeout=120,
        what="manual intervention",
        manual_intervention_ends_it=False,
    )


def spec_for(scenario: str) -> MySQLClusterSpec:
    if scenario in ("stopped", "maintenance"):
        return MySQLClusterSpec.model_validate({"remediation": {"backoffSeconds": BACKOFF_SECONDS}})
    return MySQLClusterSpec()


async def measure(scenario: str, minutes: float) -> bool:
    with (
        private_home(prefix=f"mysqlops-bench-history-{scenario}-") as home,
        contextlib.ExitStack() as ports,
    ):
        prepare: Prepare = {
            "healthy": healthy,
            "stopped": stopped(ports),
            "maintenance": maintenance(ports),
            "manual": manual,
        }[scenario]
        async with temporal_stack(home) as client:
            applied = await start_cluster(client, cluster_resource(scenario, spec_for(scenario)))
            paths = ClusterPaths.of(home, "default", scenario)
            try:
                await applied.until_green(timeout=600)
                await prepare(applied.cluster, paths)
                window = await idle_window(client, applied.cluster, minutes)
            finally:
                ports.close()
                await delete_cluster(applied.cluster, home, timeout=300)
    return report(scenario, window)


async def main(minutes: float, scenarios: list[str]) -> int:
    results = [await measure(scenario, minutes) for scenario in scenarios]
    return 0 if all(results) else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=12, help="length of each idle window")
    parser.add_argument(
        "--scenarios",
        default=",".join(TARGETS),
        help=f"comma-separated, from {', '.join(TARGETS)}",
    )
    args = parser.parse_args()
    unknown = set(args.scenarios.split(",")) - set(TARGETS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    finish(asyncio.run(main(arguments.minutes, arguments.scenarios.split(","))))
