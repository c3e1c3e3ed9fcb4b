"""A chaos run against a running local cluster: the recorded writer through the writer
endpoint, `faults` faults drawn with random.Random(seed) among `kinds`, one at a time, then the
end checks.

The writer's table is `mysqlops_chaos.acked_<run>`; it is dropped when the run passes and kept
for inspection when it does not. SIGINT and SIGTERM end the run early: partitions are healed at
once (every rule, chain and cgroup removed), a hung node is continued, and the run fails.
"""

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client

from workers.chaos.cluster import LocalCluster
from workers.chaos.faults import KINDS, PARTITIONS, FaultResult, inject, wait_ready
from workers.chaos.netfault import CleanupError, NetFault, Unsupported
from workers.chaos.verify import Verdict, verify
from workers.chaos.writer import DATABASE, Writer, app_connection
from workers.errors import UsageError

WRITER_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class ChaosOptions:
    namespace: str
    name: str
    faults: int
    seed: int
    kinds: tuple[str, ...] = KINDS
    partition_seconds: float = 15.0
    fault_timeout: float = 240.0  # seconds from an injection to Green again


@dataclass
class ChaosRun:
    run_id: str
    options: ChaosOptions
    table: str
    results: list[FaultResult] = field(default_factory=list)
    verdict: Verdict | None = None

    @property
    def passed(self) -> bool:
        return self.verdict is not None and self.verdict.passed

    def to_json(self) -> dict[str, Any]:
        o = self.options
        return {
            "runId": self.run_id,
            "cluster": f"{o.namespace}/{o.name}",
            "seed": o.seed,
            "kinds": list(o.kinds),
            "partitionSeconds": o.partition_seconds,
            "table": self.table,
            "faults": [r.to_json() for r in self.results],
            "checks": self.verdict.to_json() if self.verdict else None,
            "passed": self.passed,
        }


def parse_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise UsageError(
            f"unknown fault kind {', '.join(unknown) or '(none given)'}: "
            f"choose among {','.join(KINDS)}"
        )
    return kinds


def preflight(kinds: tuple[str, ...]) -> None:
    """What every run needs before anything is touched; UsageError otherwise."""
    if any(k in PARTITIONS for k in kinds) and shutil.which("iptables") is None:
        raise UsageError(
            "partitions need iptables, which is not installed (Debian package iptables; "
            "`make setup` installs it)"
        )
    if os.geteuid() != 0:
        raise UsageError(
            "mysqlops chaos must run as root: it signals the cluster's processes "
            "and cuts their traffic with iptables and cgroups"
        )


@contextlib.contextmanager
def _interruptible(net: NetFault | None, say: Callable[[str], None]) -> Iterator[None]:
    """SIGINT and SIGTERM heal at once and cancel the run (its `finally`s then clean up)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def interrupted(sig: signal.Signals) -> None:
        say(f"{sig.name}: ending the run")
        if task is not None:
            task.cancel()
        if net is not None:
            try:
                net.close()
            except CleanupError as error:
                say(f"cleanup: {error}")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted, sig)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run(
    client: Client, home: Path, options: ChaosOptions, say: Callable[[str], None]
) -> ChaosRun:
    """Refuses (UsageError) before touching anything when the machine or the cluster cannot
    take the run. `say` receives a line of progress per step."""
    preflight(options.kinds)
    cluster = await LocalCluster.attach(client, home, options.namespace, options.name)
    run_id = secrets.token_hex(4)
    chaos = ChaosRun(run_id, options, f"{DATABASE}.acked_{run_id}")
    net = NetFault(run_id) if any(k in PARTITIONS for k in options.kinds) else None
    try:
        with _interruptible(net, say):
            if net is not None:
                try:
                    net.open()
                except Unsupported as error:
                    raise UsageError(str(error)) from None
            await _run(cluster, chaos, net, say)
    except asyncio.CancelledError:
        raise RuntimeError("interrupted: the faults were undone; no verdict") from None
    finally:
        if net is not None:
            net.close()
    return chaos


async def _run(
    cluster: LocalCluster, chaos: ChaosRun, net: NetFault | None, say: Callable[[str], None]
) -> None:
    options = chaos.options
    set_aside_before = cluster.set_aside()
    status = await wait_ready(cluster, options.fault_timeout)
    if status.endpoints is None:
        raise RuntimeError("the cluster has no writer endpoint")
    password = cluster.password()
    host, port = status.endpoints.host, status.endpoints.writer_port
    writer = Writer(lambda: app_connection(host, port, password), chaos.table)
    writer.start()
    problems = []
    try:
        if not await asyncio.to_thread(writer.ready.wait, WRITER_READY_TIMEOUT):
            raise RuntimeError(f"the writer acknowledged nothing: {writer.last_errors()}")
        say(f"run {chaos.run_id}: writing into {chaos.table} through {host}:{port}")
        rng = random.Random(options.seed)
        for number in range(1, options.faults + 1):
            kind = rng.choice(options.kinds)
            try:
                result = await inject(
                    cluster,
                    writer,
                    net,
                    number,
                    kind,
                    rng,
                    options.partition_seconds,
                    options.fault_timeout,
                )
            except (TimeoutError, RuntimeError) as error:
                problems.append(f"fault {number} ({kind}): {error}")
                say(f"fault {number}/{options.faults}: {kind}: {error}; stopping the injection")
                break
            chaos.results.append(result)
            say(progress_line(result, options.faults))
            if result.manual or result.green is None:
                say("stopping the injection")
                break
    finally:
        await asyncio.to_thread(writer.stop)
    verdict = await verify(
        cluster, writer.acked_ids(), chaos.table, set_aside_before, options.fault_timeout
    )
    verdict.problems[:0] = problems
    chaos.verdict = verdict
    if verdict.passed:
        await asyncio.to_thread(_drop, host, port, password, chaos.table)


def _drop(host: str, port: int, password: str, table: str) -> None:
    with app_connection(host, port, password) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def progress_line(result: FaultResult, total: int) -> str:
    joins = " ".join(f"{r.node}:{r.method or '-'}" for r in result.rejoins)
    return (
        f"fault {result.number}/{total}: {result.kind} {','.join(result.victims)}: detected "
        f"{seconds(result.detected)} s, out of LB {seconds(result.out_of_lb)} s, Green again "
        f"{seconds(result.green)} s, {result.errors} write errors, longest stall "
        f"{result.stall:.1f} s, rejoined {joins}, repairs {' '.join(result.repairs) or '-'}"
    )
