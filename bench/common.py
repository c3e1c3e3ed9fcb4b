"""Shared pieces of the benchmark scripts: one cluster's lifecycle through its workflow (with
the client library, polled every POLL_SECONDS), a sysbench dataset of a given size, and the
exit that skips the interpreter's teardown. The private home, Temporal dev server, in-process
worker and clean-up are workers/sandbox.py's, shared with the integration tests.

Not a benchmark itself; run the scripts beside it as modules: `python -m bench.create`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pymysql
from temporalio.client import Client

from api.base import ObjectMeta
from api.cluster import MySQLCluster, MySQLClusterSpec
from api.messages import UPDATE_DELETE, LifecycleRequest
from workers.client import ClusterClient
from workers.resources import Applied, apply_cluster
from workers.sandbox import ensure_nothing_runs

REPO = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.2  # how often the status is read while a clock runs


# -- one cluster through its workflow ---------------------------------------------------------


def cluster_resource(name: str, spec: MySQLClusterSpec | None = None) -> MySQLCluster:
    return MySQLCluster(metadata=ObjectMeta(name=name), spec=spec or MySQLClusterSpec())


async def start_cluster(client: Client, cluster: MySQLCluster) -> Applied:
    """What `mysqlops apply` does for a new cluster: start its workflow."""
    return await apply_cluster(client, cluster, poll_seconds=POLL_SECONDS)


async def delete_cluster(cluster: ClusterClient, home: Path, timeout: float) -> None:
    """The `delete` update, then the workflow's end; then no process of the cluster may run."""
    result = await cluster.command(UPDATE_DELETE, LifecycleRequest(reason="benchmark done"))
    await cluster.wait_deleted(result.task_id, timeout)
    ensure_nothing_runs(home)


# -- a sysbench dataset ----------------------------------------------------------------------

SYSBENCH_DATABASE = "sbtest"
SYSBENCH_TABLES = 4  # few tables: two loader threads keep both cores busy
# data + indexes of a sysbench row in information_schema (2.12 GB for 8.8M rows, bench/backup.py)
SYSBENCH_ROW_BYTES = 240


@dataclass(frozen=True)
class Dataset:
    tables: int
    rows: int  # per table
    schema_bytes: int  # data + indexes in information_schema, after ANALYZE TABLE
    seconds: float  # `sysbench prepare`, until every node has applied it

    def __str__(self) -> str:
        return (
            f"{self.tables} sysbench tables x {self.rows} rows, "
            f"{self.schema_bytes / 2**20:.0f} MiB in information_schema, "
            f"loaded in {self.seconds:.0f} s"
        )


def sysbench_load(
    target: list[str],
    connect: Callable[[], pymysql.Connection[Any]],
    nodes: list[Callable[[], pymysql.Connection[Any]]],
    megabytes: int,
    log: Path,
) -> Dataset:
    """`sysbench oltp_read_write prepare` of about `megabytes` MiB (data + indexes) into the
    database SYSBENCH_DATABASE, through the connection options `target` (`--mysql-socket=...`
    or host, port, user, password); `connect` reaches the same server, `nodes` each node of
    the cluster directly. Returns once every node has applied the load."""
    rows = max(1, megabytes * 2**20 // (SYSBENCH_ROW_BYTES * SYSBENCH_TABLES))
    started = time.monotonic()
    conn = connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {SYSBENCH_DATABASE}")
    finally:
        conn.close()
    with open(log, "ab") as out:
        code = subprocess.run(
            [
                "sysbench",
                "oltp_read_write",
                "--db-driver=mysql",
                *target,
                f"--mysql-db={SYSBENCH_DATABASE}",
                f"--tables={SYSBENCH_TABLES}",
                f"--table-size={rows}",
                "--threads=2",
                "--rand-seed=1",
                "prepare",
            ],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        ).returncode
    if code != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"sysbench prepare failed (exit status {code}): {tail}")
    last = f"{SYSBENCH_DATABASE}.sbtest{SYSBENCH_TABLES}"
    for node in nodes:  # until each has applied everything committed before
        conn = node()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET SESSION wsrep_sync_wait=1")
                cursor.execute(f"SELECT 1 FROM {last} LIMIT 1")
        finally:
            conn.close()
    took = time.monotonic() - started
    names = ", ".join(f"{SYSBENCH_DATABASE}.sbtest{n}" for n in range(1, SYSBENCH_TABLES + 1))
    conn = connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"ANALYZE TABLE {names}")
            cursor.fetchall()
            cursor.execute(
                "SELECT SUM(data_length + index_length) FROM information_schema.tables "
                f"WHERE table_schema = '{SYSBENCH_DATABASE}'"
            )
            row = cursor.fetchone()
    finally:
        conn.close()
    return Dataset(SYSBENCH_TABLES, rows, int(row[0]) if row and row[0] else 0, took)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def finish(code: int) -> NoReturn:
    """Exit without interpreter teardown, as workers/cli.py main() does: the Temporal core's
    threads can crash while torn down after the event loop closed. All clean-up has run."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
