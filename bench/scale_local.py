"""Benchmark: what watching real clusters costs, on the local runtime.

As many 3-node clusters as this machine holds (`--clusters`, default 5, buffer pools and Galera
caches of 16 MiB) are created through their workflows by one worker process
(`python -m workers.worker`, as `make up` runs it). Then, while nothing changes, two windows of
`--seconds` each:
  watched    the worker watches every cluster (probe interval 1 s, the default).
  reference  the worker stopped; a probe loop as a person would script it instead: every
             second, for each node, a new connection as the monitoring user and
             `SHOW GLOBAL STATUS` (a cron job or a shell loop around `mysql -e`).
Measured in each window: the new connections a second each node receives (the server's
`Connections` counter, read over one admin connection kept open), and CPU a second per node:
for the worker its whole process (probes, process facts, the load balancer's view, heartbeats,
Temporal), for the reference only its probe thread.

Targets: at most 0.15 new connections a second per node while watched (a new one every 10
probes; one a probe before), and the worker's CPU per node at most that of the bare reference
loop, which does less (no process facts, no load balancer, no Temporal).

Run from the repository root:  .venv/bin/python -m bench.scale_local [--clusters 5] [--seconds 60]
Exit status 0 when the targets are met, 1 when one is missed.
"""

import argparse
import asyncio
import getpass
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
from temporalio.client import Client

from activities.local.paths import ClusterPaths
from activities.local.runtime import LocalRuntime
from activities.runtime import ClusterRef
from activities.users import MONITOR_SECRET, MONITOR_USER
from api.cluster import MySQLClusterSpec, NodeStatus
from bench.common import cluster_resource, finish, start_cluster
from workers.sandbox import dev_server, private_home

MAX_CONNECTIONS_PER_SECOND = 0.15
TICKS = os.sysconf("SC_CLK_TCK")
SPEC = MySQLClusterSpec.model_validate(
    {"mysql": {"innodbBufferPoolSize": "16Mi", "gcacheSize": "16Mi"}}
)


@dataclass(frozen=True)
class Window:
    connections_per_node_second: float
    cpu_ms_per_node_second: float


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Counters:
    """The `Connections` counter of every node, over admin connections kept open (so reading
    it opens none)."""

    def __init__(self, home: Path, nodes: list[tuple[str, NodeStatus]]) -> None:
        self.conns = [
            pymysql.connect(
                unix_socket=str(ClusterPaths.of(home, "default", cluster).node(n.name).socket),
                user=getpass.getuser(),
                autocommit=True,
            )
            for cluster, n in nodes
        ]

    def read(self) -> list[int]:
        counts = []
        for conn in self.conns:
            with conn.cursor() as cursor:
                cursor.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
                row: Any = cursor.fetchone()
                counts.append(int(row[1]))
        return counts

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def window(counters: Counters, seconds: float, cpu: Callable[[], float]) -> Window:
    """`cpu()` gives CPU seconds so far of what is measured."""
    before, cpu_before, started = counters.read(), cpu(), time.monotonic()
    time.sleep(seconds)
    after, cpu_after, elapsed = counters.read(), cpu(), time.monotonic() - started
    nodes = len(before)
    opened = sum(a - b for a, b in zip(after, before, strict=True))
    return Window(opened / nodes / elapsed, (cpu_after - cpu_before) * 1000 / nodes / elapsed)


class ReferenceLoop:
    """Every second, each node: a new connection, SHOW GLOBAL STATUS, close. Its CPU is its
    thread's own."""

    def __init__(self, targets: list[tuple[int, str]]) -> None:
        self.targets = targets  # (port, monitor password)
        self.stop = threading.Event()
        self.cpu = 0.0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            for port, password in self.targets:
                conn = pymysql.connect(
                    host="127.0.0.1", port=port, user=MONITOR_USER, password=password
                )
                with conn.cursor() as cursor:
                    cursor.execute("SHOW GLOBAL STATUS LIKE 'wsrep%'")
                    cursor.fetchall()
                conn.close()
            self.cpu = resource.getrusage(resource.RUSAGE_THREAD).ru_utime + (
                resource.getrusage(resource.RUSAGE_THREAD).ru_stime
            )
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))


async def create(client: Client, names: list[str], parallel: int) -> list[tuple[str, NodeStatus]]:
    """The clusters, `parallel` at a time, each until Green; (cluster, node) of every node."""
    gate = asyncio.Semaphore(parallel)
    nodes: dict[str, list[NodeStatus]] = {}

    async def one(name: str) -> None:
        async with gate:
            started = time.monotonic()
            applied = await start_cluster(client, cluster_resource(name, SPEC))
            nodes[name] = (await applied.until_green(600)).nodes
            print(f"  {name} Green in {time.monotonic() - started:.0f} s", flush=True)

    await asyncio.gather(*(one(name) for name in names))
    return [(name, node) for name in names for node in nodes[name]]


async def run(clusters: int, seconds: float, parallel: int) -> bool:
    with private_home(prefix="mysqlops-scale-local-") as home:
        env = await dev_server()
        os.environ["TEMPORAL_ADDRESS"] = env.client.service_client.config.target_host
        log = (home / "worker.log").open("w")
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers.worker"], stdout=log, stderr=subprocess.STDOUT
        )
        (home / "worker.pid").write_text(str(worker.pid))
        try:
            names = [f"scale{i}" for i in range(clusters)]
            print(f"creating {clusters} clusters, {parallel} at a time", flush=True)
            started = time.monotonic()
            nodes = await create(env.client, names, parallel)
            print(f"all Green in {time.monotonic() - started:.0f} s", flush=True)
            await asyncio.sleep(10)  # the creates' last activities end
            counters = Counters(home, nodes)
            try:
                watched = await asyncio.to_thread(
                    window, counters, seconds, lambda: cpu_seconds(worker.pid)
                )
                worker_rss = rss_mib(worker.pid)
                worker.send_signal(signal.SIGTERM)
                worker.wait(60)
                runtime = LocalRuntime(home)
                targets = [
                    (
                        n.port,
                        runtime.read_secret(
                            ClusterRef(namespace="default", name=c), MONITOR_SECRET
                        ),
                    )
                    for c, n in nodes
                ]
                loop = ReferenceLoop(targets)
                loop.thread.start()
                reference = await asyncio.to_thread(window, counters, seconds, lambda: loop.cpu)
                loop.stop.set()
                loop.thread.join()
            finally:
                counters.close()
        finally:
            if worker.poll() is None:
                worker.kill()
            await env.shutdown()
    ratio = watched.cpu_ms_per_node_second / reference.cpu_ms_per_node_second
    connections_met = watched.connections_per_node_second <= MAX_CONNECTIONS_PER_SECOND
    print(
        f"\n{clusters} clusters, {len(nodes)} nodes, {seconds:.0f} s windows\n"
        f"  new connections a second per node: watched {watched.connections_per_node_second:.2f}"
        f" (target <= {MAX_CONNECTIONS_PER_SECOND}), reference"
        f" {reference.connections_per_node_second:.2f}\n"
        f"  CPU per node: worker {watched.cpu_ms_per_node_second:.2f} ms/s, reference probe loop"
        f" {reference.cpu_ms_per_node_second:.2f} ms/s, ratio {ratio:.2f} (target <= 1)\n"
        f"  worker RSS {worker_rss:.0f} MiB"
    )
    return connections_met and ratio <= 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--parallel", type=int, default=2, help="clusters created at once")
    args = parser.parse_args()
    finish(0 if asyncio.run(run(args.clusters, args.seconds, args.parallel)) else 1)


if __name__ == "__main__":
    main()
