"""The end checks of a chaos run: every acknowledged row on every node (read from each node
directly, `wsrep_sync_wait=1`), the same `CHECKSUM TABLE` everywhere, the cluster Green with
no manual intervention, and no data directory set aside by the controller during the run."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pymysql

from api.cluster import ClusterStatus
from api.states import ClusterState
from workers.chaos.cluster import LocalCluster
from workers.chaos.faults import wait_ready
from workers.chaos.writer import app_connection


@dataclass
class Verdict:
    acked: int
    lost_per_node: dict[str, int]
    checksums: dict[str, int | None]
    final_state: str
    manual: str | None
    set_aside: list[str]  # data directories moved aside during the run
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return max(self.lost_per_node.values(), default=self.acked)

    @property
    def checksums_identical(self) -> bool:
        values = set(self.checksums.values())
        return len(values) == 1 and None not in values

    @property
    def passed(self) -> bool:
        return (
            not self.problems
            and self.acked > 0
            and self.lost == 0
            and self.checksums_identical
            and self.final_state == ClusterState.GREEN
            and self.manual is None
            and not self.set_aside
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "acknowledged": self.acked,
            "lost": self.lost,
            "lostPerNode": self.lost_per_node,
            "checksums": self.checksums,
            "checksumsIdentical": self.checksums_identical,
            "finalState": self.final_state,
            "manualIntervention": self.manual,
            "setAside": self.set_aside,
            "problems": self.problems,
            "passed": self.passed,
        }


def read_node(host: str, port: int, password: str, table: str) -> tuple[set[int], int | None]:
    """The ids in `table` on one node, once it has applied everything it has received, and
    the table's checksum."""
    conn = app_connection(host, port, password, read_timeout=60)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION wsrep_sync_wait=1")
            cursor.execute(f"SELECT id FROM {table}")
            ids = {int(row[0]) for row in cursor.fetchall()}
            cursor.execute(f"CHECKSUM TABLE {table}")
            row = cursor.fetchone()
        return ids, (int(row[1]) if row and row[1] is not None else None)
    finally:
        conn.close()


async def verify(
    cluster: LocalCluster,
    acked: set[int],
    table: str,
    set_aside_before: set[str],
    timeout: float,
) -> Verdict:
    problems: list[str] = []
    status: ClusterStatus
    try:
        status = await wait_ready(cluster, timeout)
    except (TimeoutError, RuntimeError) as exc:
        problems.append(str(exc))
        status = await cluster.status()
    password = cluster.password()
    lost: dict[str, int] = {}
    checksums: dict[str, int | None] = {}
    for node in status.nodes:
        try:
            ids, checksum = await asyncio.to_thread(
                read_node, node.host, node.port, password, table
            )
        except pymysql.err.MySQLError as exc:
            problems.append(f"{node.name}: {exc}")
            lost[node.name], checksums[node.name] = len(acked), None
            continue
        lost[node.name], checksums[node.name] = len(acked - ids), checksum
    mi = status.manual_intervention
    return Verdict(
        acked=len(acked),
        lost_per_node=lost,
        checksums=checksums,
        final_state=str(status.state),
        manual=f"{mi.fault}: {mi.reason}" if mi else None,
        set_aside=sorted(cluster.set_aside() - set_aside_before),
        problems=problems,
    )
