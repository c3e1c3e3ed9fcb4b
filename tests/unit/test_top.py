"""`mysqlops top`: what the live view shows of every cluster, its flags, Ctrl-C, and one snapshot
of a real cluster through Temporal."""

import asyncio
import io
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from temporalio.testing import WorkflowEnvironment

from api.backup import BackupRecord, BackupTrigger
from api.cluster import ClusterStatus, NodeStatus, TaskInfo
from api.layout import ClusterRef
from api.remediation import FaultClass, ManualIntervention, Outcome, RemediationRecord
from api.resource_status import Unwatched
from api.states import BackupPhase, ClusterState, NodeState, Phase, TaskKind
from tests.unit.test_cli_bad_input import ROOT, run_cli
from tests.workflows.harness import running_harness, until
from workers import top
from workers.client import green_and_idle
from workers.clusters import Census, Schedule

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def nodes(name: str, *states: NodeState) -> list[NodeStatus]:
    return [
        NodeStatus(name=f"{name}-{i}", host="127.0.0.1", port=23010 + i, state=state)
        for i, state in enumerate(states)
    ]


def cluster(
    name: str, state: ClusterState, *node_states: NodeState, **fields: object
) -> ClusterStatus:
    green = sum(s is NodeState.GREEN for s in node_states)
    return ClusterStatus.model_validate(
        {
            "workflow_id": f"mysqlcluster/default/{name}",
            "phase": Phase.RUNNING,
            "state": state,
            "writer": f"{name}-0",
            "replicas": len(node_states),
            "ready_replicas": green,
            "nodes": nodes(name, *node_states),
            **fields,
        }
    )


def census() -> Census:
    g, r, u = NodeState.GREEN, NodeState.RED_UNCLEAN, NodeState.RED_CLEAN
    healthy = cluster(
        "alpha",
        ClusterState.GREEN,
        g,
        g,
        g,
        backups=[
            BackupRecord(
                task_id="backup-3",
                name="alpha-20260501-090000",
                trigger=BackupTrigger.SCHEDULE,
                phase=BackupPhase.SUCCEEDED,
                requested_at=ago(3 * 3600 + 60),
                started_at=ago(3 * 3600 + 50),
                finished_at=ago(3 * 3600),
            )
        ],
    )
    repairing = cluster(
        "bravo",
        ClusterState.YELLOW,
        g,
        r,
        g,
        current_task=TaskInfo(
            id="remediate-7",
            kind=TaskKind.REMEDIATE,
            requested_at=ago(14),
            started_at=ago(12),
        ),
        queued_tasks=[TaskInfo(id="backup-8", kind=TaskKind.BACKUP, requested_at=ago(5))],
        remediations=[
            RemediationRecord(
                id="remediate-7",
                fault=FaultClass.NODE_CRASHED,
                nodes=["bravo-1"],
                evidence="mariadbd exited with signal 9",
                attempt=1,
                started_at=ago(12),
            )
        ],
    )
    paused = cluster(
        "charlie",
        ClusterState.RED,
        u,
        u,
        u,
        manual_intervention=ManualIntervention(
            since=ago(300),
            fault=FaultClass.STORAGE_ERROR,
            reason="disk full on charlie-0",
            evidence="No space left on device",
        ),
        unwatched=Unwatched(since=ago(90), reason="no worker answers the health checks"),
    )
    return Census(
        statuses=[healthy, repairing, paused],
        schedules={healthy.workflow_id: Schedule(86400, ago(86400 * 3), paused=False)},
        missed=["mysqlcluster/default/delta"],
    )


def text_of(census: Census, width: int = 160, styles: bool = False) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=styles)
    console.print(top.render(census, NOW))
    return console.export_text(styles=styles)


def cells(text: str, name: str) -> dict[str, str]:
    """The table row of the cluster `name`, by column, each cell's wrapped lines joined."""
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith(" CLUSTER "))
    starts: list[int | None] = [header.index(column) for column in top.COLUMNS]
    start = next(i for i, line in enumerate(lines) if line.startswith(f" {name} "))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].strip())
    row = lines[start:end]
    return {
        column: " ".join(part for line in row if (part := line[begin:until].strip()))
        for column, begin, until in zip(top.COLUMNS, starts, [*starts[1:], None], strict=True)
    }


def test_the_summary_counts_every_cluster() -> None:
    text = text_of(census())
    assert "2026-05-01 12:00:00 UTC  4 clusters: 1 Green, 1 Yellow, 1 Red, 1 not answering" in text
    order = [text.index(f" {name} ") for name in ("delta", "charlie", "bravo", "alpha")]
    assert order == sorted(order)  # not answering, then trouble first: a cropped view shows it


def test_a_green_cluster_shows_its_nodes_and_last_backup() -> None:
    assert cells(text_of(census()), "alpha") == {
        "CLUSTER": "alpha",
        "STATE": "Green 3/3 Running",
        "WRITER": "alpha-0",
        "AUTOMATION": "active",
        "TASK": "idle",
        "NODES": "alpha-0 Green alpha-1 Green alpha-2 Green",
        "LAST REPAIR": "-",
        "LAST BACKUP": "alpha-20260501-090000 Succeeded 3h00m ago schedule every 1d00h",
    }


def test_a_repair_shows_the_fault_the_node_and_the_task() -> None:
    row = cells(text_of(census()), "bravo")
    assert row["STATE"] == "Yellow 2/3 Running"
    assert row["NODES"] == "bravo-0 Green bravo-1 Red-unclean bravo-2 Green"
    assert row["TASK"] == "remediate-7 12s queue 1"  # running for 12 s, one task waiting
    assert row["LAST REPAIR"] == "NodeCrashed bravo-1 Running for 12s"
    assert row["LAST BACKUP"] == "none"


def test_manual_intervention_shows_its_fault_and_reason_in_red() -> None:
    row = cells(text_of(census()), "charlie")
    assert row["STATE"] == "Red 0/3 Running"
    assert row["AUTOMATION"] == "MANUAL INTERVENTION StorageError 5m00s ago disk full on charlie-0"
    assert row["NODES"] == "charlie-0 Red-clean charlie-1 Red-clean charlie-2 Red-clean"
    assert row["CLUSTER"] == "charlie UNWATCHED 1m30s ago no worker answers the health checks"
    styled = text_of(census(), styles=True)
    assert "\x1b[1;31mStorageError" in styled  # bold red
    assert "\x1b[1;31mRed-unclean" in styled and "\x1b[32mGreen" in styled


def test_a_cluster_that_did_not_answer_is_named() -> None:
    assert cells(text_of(census()), "delta")["STATE"] == "not answering"


def test_no_clusters() -> None:
    assert "no clusters running" in text_of(Census())


def test_a_finished_repair_and_a_failed_backup_say_when_and_why() -> None:
    status = cluster(
        "echo",
        ClusterState.GREEN,
        NodeState.GREEN,
        remediations=[
            RemediationRecord(
                id="remediate-2",
                fault=FaultClass.NODE_HUNG,
                nodes=["echo-0"],
                evidence="",
                attempt=2,
                started_at=ago(2 * 86400 + 3700),
                ended_at=ago(2 * 86400 + 3600),
                outcome=Outcome.SUCCEEDED,
            )
        ],
        backups=[
            BackupRecord(
                task_id="backup-4",
                name="echo-nightly",
                trigger=BackupTrigger.MANUAL,
                phase=BackupPhase.FAILED,
                requested_at=ago(40),
                error="no node to take it from",
            )
        ],
        workflow_id="mysqlcluster/team/echo",
    )
    row = cells(text_of(Census(statuses=[status])), "team/echo")
    assert row["LAST REPAIR"] == "NodeHung echo-0 Succeeded 2d01h ago (attempt 2)"
    assert row["LAST BACKUP"] == "echo-nightly Failed 40s ago no node to take it from"


def test_a_narrow_terminal_gets_a_few_lines_per_cluster() -> None:
    text = " ".join(text_of(census(), width=80).split())  # the lines wrap: compare words
    assert "bravo Yellow 2/3 Running writer bravo-0 automation active task remediate-7 12s" in text
    assert "nodes bravo-0 Green bravo-1 Red-unclean bravo-2 Green" in text
    assert "repair NodeCrashed bravo-1 Running for 12s backup none" in text
    assert "automation MANUAL INTERVENTION StorageError 5m00s ago disk full on charlie-0" in text
    assert "UNWATCHED 1m30s ago: no worker answers the health checks" in text
    assert "delta not answering" in text
    assert "CLUSTER" not in text  # no table


# -- the loop: one snapshot off a terminal, redraws on one, Ctrl-C ends it with 0 --------------


async def test_off_a_terminal_it_prints_one_snapshot() -> None:
    calls = 0

    async def source() -> Census:
        nonlocal calls
        calls += 1
        return census()

    out = io.StringIO()
    assert await top.watch(source, 0.01, False, Console(file=out, width=160)) == 0
    assert calls == 1 and "bravo-1 Red-unclean" in out.getvalue()


@pytest.fixture
def stray_sigint() -> Iterator[list[int]]:
    """A SIGINT the view does not catch lands here, not on the test run."""
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _: caught.append(signum))
    yield caught
    signal.signal(signal.SIGINT, previous)


async def test_ctrl_c_ends_the_live_view_with_0(stray_sigint: list[int]) -> None:
    calls = 0

    async def source() -> Census:
        nonlocal calls
        calls += 1
        if calls == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return census()

    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=True)
    assert await asyncio.wait_for(top.watch(source, 0.01, False, console), 5) == 0
    assert calls == 3 and not stray_sigint
    assert "Ctrl-C to quit" in out.getvalue() and "bravo-1" in out.getvalue()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back


async def test_a_failed_census_is_shown_and_the_view_goes_on(stray_sigint: list[int]) -> None:
    calls = 0

    async def source() -> Census:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("Temporal went away")
        if calls == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return census()

    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=True)
    assert await asyncio.wait_for(top.watch(source, 0.01, False, console), 5) == 0
    assert "could not list the clusters (Temporal went away)" in out.getvalue()


# -- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["top", "--interval", "0"], "--interval"),
        (["top", "--interval", "abc"], "--interval"),
        (["top", "--interval", "-1"], "--interval"),
        (["top", "--interval", "nan"], "--interval"),
        (["status", "--watch", "--interval", "0"], "--interval"),
        (["status", "demo", "--watch", "--json"], "--json"),
        (["status"], "cluster name"),
    ],
    ids=["zero", "text", "negative", "nan", "status-zero", "watch-json", "status-no-name"],
)
def test_bad_flags_are_refused(tmp_path: Path, args: list[str], says: str) -> None:
    result = run_cli(tmp_path, *args)
    assert result.returncode == 2, result
    assert says in result.stderr and "Traceback" not in result.stderr


# -- end to end: a real Temporal, the scripted runtime -----------------------------------------


async def test_top_once_shows_a_created_cluster(temporal_env: WorkflowEnvironment) -> None:
    async with asynccontextmanager(running_harness)(temporal_env) as harness:  # closed on failure
        handle = await harness.start(replicas=3)
        await until(handle, green_and_idle)
        name = handle.id.split("/")[-1]
        text = ""
        for _ in range(50):  # the visibility store lists a new workflow within a moment
            console = Console(record=True, width=160, file=io.StringIO())
            assert await top.run(harness.client, 2, once=True, console=console) == 0
            text = console.export_text()
            if name in text:
                break
            await asyncio.sleep(0.2)
        row = cells(text, name)
        assert row["STATE"] == "Green 3/3 Running"
        assert row["NODES"] == f"{name}-0 Green {name}-1 Green {name}-2 Green"
        alone = Console(record=True, width=160, file=io.StringIO())  # status NAME --watch
        ref = ClusterRef(namespace="default", name=name)
        assert await top.run(harness.client, 2, once=True, cluster=ref, console=alone) == 0
        only = alone.export_text()
        assert "1 cluster: 1 Green, 0 Yellow, 0 Red" in only
        assert cells(only, name)["WRITER"] == f"{name}-0"
        await handle.terminate("test over")


def test_ctrl_c_ends_mysqlops_top_on_a_terminal_with_0(temporal_env: WorkflowEnvironment) -> None:
    """The command itself, its output a terminal (a pty), interrupted as a user would."""
    address = temporal_env.client.service_client.config.target_host
    terminal, stdout = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", "from workers.cli import main; main()", "top", "--interval", "0.2"],
        cwd=ROOT,
        env=os.environ | {"TEMPORAL_ADDRESS": address, "COLUMNS": "160", "LINES": "40"},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(stdout)
    seen, deadline = b"", time.monotonic() + 30
    try:
        while seen.count(b"Ctrl-C to quit") < 2 and time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.5)[0]:
                seen += os.read(terminal, 65536)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        os.close(terminal)
    assert seen.count(b"Ctrl-C to quit") >= 2, seen  # drawn, then drawn again
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
