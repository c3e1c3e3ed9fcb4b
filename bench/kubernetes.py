"""Benchmark: a 3-node cluster under the simulated Kubernetes side by side with the local
runtime, on the same machine in the same run: created until Green, one node killed until Green
again, every node killed until Green again.

Both sides run the cluster of examples/k8s/mysqlcluster.yaml (`deletionPolicy: Delete`: a local
round's cluster is deleted with its data), one side at a time, each with a Temporal dev server
of its own; `--rounds` rounds on each, every round on a new cluster (on Kubernetes on a new
stack too, ended with the round: see kubernetes_side):

  local runtime   first, and torn down before the other side starts; the worker runs in this
                  process (workers/sandbox.py, as in bench/create.py and bench/faults.py)
    create        what `mysqlops apply -f` does: the cluster's workflow started
    kill one      SIGKILL of node 1's mariadbd (a standby: the writer is node 0)
    kill all      SIGKILL of the three mariadbd at once
  simulated Kubernetes   the stack of the end-to-end tests (tests/k8s_e2e/stack.py: the test
                  API server, controllers and kubelet; the watcher and a worker as processes)
    create        the MySQLCluster created in the API server (`kubectl apply`)
    kill one      Pod 1's container SIGKILLed (the kubelet's kill_container: its agent,
                  mariadbd and mysqld_exporter); the kubelet restarts it
    delete one    Pod 1 deleted (preStop, SIGTERM); the StatefulSet makes a new one
    delete all    the three Pods deleted at once

Each clock starts at the action and stops when the cluster's workflow answers Green with no task
running or queued (its status query, polled every 0.2 s on both sides) after having shown the
fault, with every victim on a new mariadbd process (bench/faults.py's criterion). A creation
also records when each node was first Green (the bootstrap, then each join) and, on Kubernetes,
when the MySQLCluster's own status said Green (what `kubectl get mysqlclusters` shows; the
worker publishes it from the workflow's; polled every 0.5 s).

Run from the repository root, as root (the kubelet gives containers mount namespaces), with no
other simulated Kubernetes cluster running (its DNS port is fixed):
    .venv/bin/python -m bench.kubernetes [--rounds 3]
Exit status 0 once every round has ended Green, 1 otherwise (what was measured is printed).
There is no target: the figures are medians and ratios against the local runtime of the same
invocation.
"""

import argparse
import asyncio
import os
import signal
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError

from activities.local.process import cmdline
from api.base import ObjectMeta
from api.cluster import ClusterStatus, MySQLCluster
from api.states import ClusterState, NodeState
from bench.common import POLL_SECONDS, delete_cluster, finish, median, start_cluster
from tests.k8s_e2e.stack import EXAMPLE, Stack, running_stack
from workers.client import ClusterClient, green_and_idle
from workers.resources import load_resources
from workers.sandbox import dev_server, private_home, temporal_stack

REPLICAS = 3  # the example's
VICTIM = 1  # the ordinal of the node a single fault hits
GREEN_TIMEOUT = 600.0  # seconds, any one clock
DELETE_TIMEOUT = 300.0  # seconds, a local round's cluster deleted

Victims = dict[str, int | None]  # node -> its mariadbd's pid before the fault
# The table's rows: (what, the Kubernetes step, the local step it is compared with).
ROWS = (
    ("created, Green", "create", "create"),
    ("one node killed, Green again", "kill one", "kill one"),
    ("one node's Pod deleted, Green again", "delete one", "kill one"),
    ("every node killed, Green again", "delete all", "kill all"),
)
CR_STATUS = "create, MySQLCluster status"
NODE_GREEN = [f"node {n} Green" for n in ("1st", "2nd", "3rd")]


@dataclass
class Figures:
    """Seconds per step, one value a round."""

    seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, step: str, took: float) -> None:
        self.seconds.setdefault(step, []).append(took)

    def line(self, side: str, number: int) -> str:
        steps = ", ".join(f"{step} {values[-1]:.1f} s" for step, values in self.seconds.items())
        return f"{side} round {number}: {steps}"


def say(line: str) -> None:
    print(line, flush=True)


def nodes(name: str) -> list[str]:
    return [f"{name}-{ordinal}" for ordinal in range(REPLICAS)]


# -- the clocks --------------------------------------------------------------------------------


async def green_again(cluster: ClusterClient, started: float, victims: Victims) -> float:
    """Seconds from `started` until the workflow answers Green and idle, having shown the fault
    (the cluster or a victim not Green), every victim on a new mariadbd."""
    seen = False

    def back(status: ClusterStatus) -> bool:
        nonlocal seen
        hit = [n for n in status.nodes if n.name in victims]
        seen = seen or status.state is not ClusterState.GREEN
        seen = seen or any(n.state is not NodeState.GREEN for n in hit)
        renewed = all(n.pid is not None and n.pid != victims[n.name] for n in hit)
        return seen and renewed and green_and_idle(status)

    await cluster.wait_until(back, GREEN_TIMEOUT, "Green again")
    return time.monotonic() - started


async def created(cluster: ClusterClient, started: float, figures: Figures) -> None:
    """Until the new cluster is Green and idle; also when its nodes were first Green, in the
    order they were (the bootstrap, then each join)."""
    green: dict[str, float] = {}

    async def note(status: ClusterStatus) -> None:
        for n in status.nodes:
            if n.state is NodeState.GREEN:
                green.setdefault(n.name, time.monotonic() - started)

    await cluster.wait_until(green_and_idle, GREEN_TIMEOUT, "Green", watch=note)
    figures.add("create", time.monotonic() - started)
    for order, took in enumerate(sorted(green.values())):
        figures.add(NODE_GREEN[order], took)


async def fault(cluster: ClusterClient, names: list[str], act: Callable[[Victims], None]) -> float:
    """`act` on the nodes `names` of a cluster Green and idle; seconds until Green again."""
    before = await cluster.status()
    if not green_and_idle(before):
        raise RuntimeError(f"not Green and idle before the fault: {before.message}")
    victims = {n.name: n.pid for n in before.nodes if n.name in names}
    started = time.monotonic()
    act(victims)
    return await green_again(cluster, started, victims)


# -- the local runtime -------------------------------------------------------------------------


def local_resource(name: str) -> MySQLCluster:
    """The example as `mysqlops apply -f` reads it, renamed, its data deleted with it."""
    [resource] = load_resources(EXAMPLE)
    assert isinstance(resource, MySQLCluster) and resource.spec.replicas == REPLICAS
    spec = resource.spec.model_copy(update={"deletion_policy": "Delete"})
    return resource.model_copy(update={"metadata": ObjectMeta(name=name), "spec": spec})


def kill_mariadbd(victims: Victims) -> None:
    for name, pid in victims.items():
        if pid is None or "mariadbd" not in cmdline(pid):
            raise RuntimeError(f"{name}: pid {pid} is not a running mariadbd")
    for pid in victims.values():
        assert pid is not None
        os.kill(pid, signal.SIGKILL)


async def local_round(client: Client, home: Path, name: str, figures: Figures) -> None:
    started = time.monotonic()
    applied = await start_cluster(client, local_resource(name))
    try:
        cluster = applied.cluster
        await created(cluster, started, figures)
        figures.add("kill one", await fault(cluster, [f"{name}-{VICTIM}"], kill_mariadbd))
        figures.add("kill all", await fault(cluster, nodes(name), kill_mariadbd))
    finally:
        await delete_cluster(applied.cluster, home, timeout=DELETE_TIMEOUT)


async def local_side(rounds: int, figures: Figures) -> None:
    with private_home(prefix="mysqlops-bench-kubernetes-") as home:
        async with temporal_stack(home) as client:
            for number in range(1, rounds + 1):
                await local_round(client, home, f"local{number}", figures)
                say(figures.line("local", number))


# -- the simulated Kubernetes ------------------------------------------------------------------


async def workflow_started(cluster: ClusterClient) -> None:
    """Until the watcher has started the cluster's workflow and a worker answers its query."""
    deadline = time.monotonic() + GREEN_TIMEOUT
    while True:
        try:
            await cluster.status()
            return
        except RPCError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(POLL_SECONDS)


async def kubernetes_round(stack: Stack, client: Client, name: str, figures: Figures) -> None:
    cluster = ClusterClient.of(client, stack.namespace, name, POLL_SECONDS)
    namespace, victim = stack.namespace, f"{name}-{VICTIM}"

    def kill_containers(victims: Victims) -> None:
        for pod in victims:
            stack.cluster.kill_container(namespace, pod)

    def delete_pods(victims: Victims) -> None:
        for pod in victims:
            stack.delete_pod(pod)

    started = time.monotonic()
    stack.apply_cluster(name, deletionPolicy="Delete")
    await workflow_started(cluster)
    await created(cluster, started, figures)
    await asyncio.to_thread(stack.wait_green, name, GREEN_TIMEOUT)
    figures.add(CR_STATUS, time.monotonic() - started)
    figures.add("kill one", await fault(cluster, [victim], kill_containers))
    figures.add("delete one", await fault(cluster, [victim], delete_pods))
    figures.add("delete all", await fault(cluster, nodes(name), delete_pods))


async def kubernetes_side(rounds: int, figures: Figures) -> None:
    """Every round on a new stack, ended with it (the kubelet ends the Pods' processes, the
    directory goes): the test API server serves more slowly the more requests it has served
    (kmock keeps them all and walks them for each new one), so one stack for every round would
    time the later rounds on a slower API server."""
    temporal = await dev_server()
    try:
        address = temporal.client.service_client.config.target_host
        for number in range(1, rounds + 1):
            with (
                tempfile.TemporaryDirectory(prefix="mysqlops-bench-kubernetes-") as root,
                running_stack(Path(root), address) as stack,
            ):
                await kubernetes_round(stack, temporal.client, f"kube{number}", figures)
            say(figures.line("k8s", number))
    finally:
        await temporal.shutdown()


# -- the report --------------------------------------------------------------------------------


def spread(values: list[float] | None) -> str:
    """The median and the range."""
    if not values:
        return "-"
    return f"{median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def report(kube: Figures, local: Figures) -> None:
    print()
    print(
        f"{'seconds: median (range)':<38}  {'simulated k8s':>18}  {'local':>18}  {'k8s/local':>9}"
    )
    for what, kube_step, local_step in ROWS:
        k, here = kube.seconds.get(kube_step), local.seconds.get(local_step)
        ratio = f"{median(k) / median(here):.2f}x" if k and here else "-"
        print(f"{what:<38}  {spread(k):>18}  {spread(here):>18}  {ratio:>9}")
    print(f"{'created, MySQLCluster status Green':<38}  {spread(kube.seconds.get(CR_STATUS)):>18}")
    for step in NODE_GREEN:
        k, here = kube.seconds.get(step), local.seconds.get(step)
        print(f"{'created, ' + step:<38}  {spread(k):>18}  {spread(here):>18}")
    print(
        "k8s: one container SIGKILLed (agent, mariadbd, exporter), one Pod deleted, the three "
        "Pods deleted at once; local: one mariadbd SIGKILLed (the Pod row's reference too), the "
        "three SIGKILLed at once"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds on each side")
    return parser.parse_args()


async def main(rounds: int) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # clean up too
    local, kube = Figures(), Figures()
    try:
        await local_side(rounds, local)
        await kubernetes_side(rounds, kube)
    except (Exception, asyncio.CancelledError):
        traceback.print_exc()
        report(kube, local)
        return 1
    report(kube, local)
    return 0


if __name__ == "__main__":
    finish(asyncio.run(main(parse_args().rounds)))
