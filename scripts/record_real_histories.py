"""Record workflow histories of real Galera clusters for the replay tests (tests/test_replay.py).

    .venv/bin/python -m scripts.record_real_histories [SCENARIO ...]      (as root)

records the named scenarios (by default those with no recorded history yet), one after the
other: each on a 3-node cluster of the local runtime (real mariadbd with galera-4, HAProxy,
node agents) in a private home with a Temporal dev server of its own and a worker in this
process (workers/sandbox.py). A scenario creates its cluster, brings about what it is named
for, deletes the cluster, and writes the history of each run of its workflow to
tests/histories/real-<scenario>.json (real-<scenario>-<n>.json, n from 1, when the workflow
continued as new). Before anything is written every history must
- replay with the current workflow code,
- show what the scenario claims, asserted on its own events and payloads (the final status in
  the completion event, the activities scheduled, the input a continue-as-new carried),
- hold no value of the cluster's secrets/ files,
- stay under 1.5 MB.
Every process, directory and socket a scenario started is gone when it ends, failed or not;
when a check fails nothing is written here, and the rejected histories are left in a temporary
directory the output names, to be looked at.

    crash-ist           a node SIGKILLed: NodeCrashed, RestartNode, rejoined by IST
    forced-restart      force_action RestartNode of a running node: stopped, then started
    forced-reprovision  force_action ReprovisionNode (forced: the node is Green): its data
                        directory moved aside (set_aside_data), rejoined by SST
    quorum-lost         two of three nodes SIGKILLed: QuorumLost, a Primary re-formed in place
                        on the survivor (pc.bootstrap), the others restarted
    continue-as-new     the dev server suggests continue-as-new early; a repair fails (the
                        node's Galera port is taken), so its backoff is pending; a backup and an
                        apply are queued while a forced restart runs, and the suggestion comes
                        meanwhile; the workflow continues as new once they ran (the main loop
                        runs its queue dry first), carrying the backoff; the next run repairs
                        the node when the backoff ends. Two files: -1 and -2, one per run.

scripts/record_histories.py records the scripted ones (tests/workflows/harness.py).
"""

import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.local.paths import ClusterPaths
from activities.local.process import alive, cmdline
from activities.local.runtime import LocalRuntime
from activities.messages import NodeInput, StartInput, StopInput
from activities.runtime import StopMode
from activities.users import APP_SECRET
from api.backup import BackupRequest
from api.cluster import ClusterStatus, MySQLClusterSpec
from api.layout import ClusterLayout, ClusterRef
from api.messages import (
    UPDATE_APPLY_SPEC,
    UPDATE_BACKUP,
    UPDATE_FORCE_ACTION,
    ApplySpecRequest,
    ClusterWorkflowInput,
    CommandResult,
)
from api.remediation import (
    Action,
    FaultClass,
    ForceActionRequest,
    ForcedAction,
    Outcome,
    RemediationRecord,
)
from api.states import JoinMethod, Phase, TaskKind
from bench.common import cluster_resource, delete_cluster, start_cluster
from workers.chaos.cluster import LocalCluster, galera_ports
from workers.chaos.writer import app_connection
from workers.client import ClusterClient, green_and_idle, idle
from workers.sandbox import port_taken, private_home, temporal_stack
from workflows.cluster import ClusterWorkflow

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "histories"
NAMESPACE = "default"
MAX_BYTES = 1_500_000
CREATE_TIMEOUT = 600.0
TIMEOUT = 300.0  # a repair, a forced action, the switch to a new run
# The switch must be suggested once the failed repair is behind, while tasks are still queued
# (before the queued backup's last activity, the apply being queued behind it); the scenario
# checks that it was. Recorded: the failed repair over at events 268 to 302, the backup's last
# activity at 410 to 444: aim at the middle.
SUGGEST_CONTINUE_AS_NEW = 355
CAN_BACKOFF_SECONDS = 90.0  # the failed repair's backoff: longer than the tasks queued meanwhile

T = TypeVar("T")


def say(line: str) -> None:
    print(line, flush=True)


# -- a recorded run ---------------------------------------------------------------------------


def decode(payloads: Payloads, kind: type[T]) -> T:
    value: T = pydantic_data_converter.payload_converter.from_payloads(
        list(payloads.payloads), [kind]
    )[0]
    return value


@dataclass
class Run:
    """One run of the workflow, as its history holds it."""

    history: WorkflowHistory

    @property
    def events(self) -> list[HistoryEvent]:
        return list(self.history.events)

    @property
    def run_id(self) -> str:
        started = self.events[0].workflow_execution_started_event_attributes
        return started.original_execution_run_id

    def of(self, kind: "EventType.ValueType") -> list[HistoryEvent]:
        return [e for e in self.events if e.event_type == kind]

    @property
    def input(self) -> ClusterWorkflowInput:
        started = self.events[0].workflow_execution_started_event_attributes
        return decode(started.input, ClusterWorkflowInput)

    @property
    def final_status(self) -> ClusterStatus:
        last = self.events[-1]
        assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, last
        return decode(last.workflow_execution_completed_event_attributes.result, ClusterStatus)

    @property
    def continued(self) -> HistoryEvent | None:
        last = self.events[-1]
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return last
        return None

    @property
    def carried(self) -> ClusterWorkflowInput:
        """The input the continue-as-new handed to the next run."""
        event = self.continued
        assert event is not None, "this run did not continue as new"
        return decode(
            event.workflow_execution_continued_as_new_event_attributes.input, ClusterWorkflowInput
        )

    def activities(self, name: str, after: int = 0) -> list[HistoryEvent]:
        """ActivityTaskScheduled events of activity `name`, after event id `after`."""
        return [
            e
            for e in self.of(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
            if e.activity_task_scheduled_event_attributes.activity_type.name == name
            and e.event_id > after
        ]

    def activity_result(self, scheduled: HistoryEvent, kind: type[T]) -> T:
        for event in self.of(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED):
            attributes = event.activity_task_completed_event_attributes
            if attributes.scheduled_event_id == scheduled.event_id:
                return decode(attributes.result, kind)
        raise AssertionError(f"activity of event {scheduled.event_id} never completed")

    def update_accepted(self, name: str) -> list[HistoryEvent]:
        return [
            e
            for e in self.of(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
            if e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            == name
        ]

    def suggested_at(self) -> int | None:
        """The first workflow task told that the server suggests continue-as-new."""
        return next(
            (
                e.event_id
                for e in self.of(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
                if e.workflow_task_started_event_attributes.suggest_continue_as_new
            ),
            None,
        )


def argument(event: HistoryEvent, kind: type[T]) -> T:
    return decode(event.activity_task_scheduled_event_attributes.input, kind)


def record_of(records: Sequence[RemediationRecord], record_id: str) -> RemediationRecord:
    found = [r for r in records if r.id == record_id]
    assert len(found) == 1, f"no remediation record {record_id}: {records}"
    return found[0]


def seconds(start: datetime | None, end: datetime | None) -> str:
    return f"{(end - start).total_seconds():.1f} s" if start and end else "?"


def summary(record: RemediationRecord, detail: int = 400) -> str:
    """A repair's record in a few lines, for the notes."""
    lines = [
        f"{record.id} {record.fault.value} {','.join(record.nodes)} attempt {record.attempt}: "
        f"{record.outcome.value} in {seconds(record.started_at, record.ended_at)}"
    ]
    for action in record.actions:
        lines.append(
            f"    {action.action.value} {action.node or ''} "
            f"{seconds(action.started_at, action.ended_at)}: {action.detail[:detail]}"
        )
    return "\n".join(lines)


def when(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


# -- the cluster a scenario acts on -----------------------------------------------------------


@dataclass
class Cluster:
    home: Path
    name: str
    control: ClusterClient
    layout: ClusterLayout
    first_run: str

    def note(self, line: str) -> None:
        """What the scenario saw: printed as it goes."""
        say(f"  {line}")

    def pid(self, node: str) -> int | None:
        return LocalCluster(self.home, self.layout, self.control.handle).pid(node)

    async def status(self) -> ClusterStatus:
        return await self.control.status()

    async def until(
        self,
        check: Callable[[ClusterStatus], bool],
        what: str,
        task: str | None = None,
        timeout: float = TIMEOUT,
    ) -> ClusterStatus:
        """Until `check` holds (and `task` ended, Succeeded: given up otherwise); noted with
        how long it took."""
        started = time.monotonic()
        status = await self.control.wait_until(
            lambda s: check(s) and (task is None or any(o.id == task for o in s.outcomes)),
            timeout,
            what,
            depends_on=[task],
        )
        self.note(f"{what}: {time.monotonic() - started:.1f} s")
        return status

    async def events(self) -> int:
        """The length of the current run's history."""
        return (await self.control.handle.describe()).history_length

    async def run_id(self) -> str:
        return (await self.control.handle.describe()).run_id

    async def roles(self) -> tuple[str, list[str]]:
        """The writer, and the other nodes in order."""
        status = await self.status()
        assert status.writer is not None, "no writer"
        return status.writer, [n.name for n in status.nodes if n.name != status.writer]

    async def readers(self) -> list[str]:
        """The nodes that are not the writer, in order."""
        return (await self.roles())[1]

    def galera_address(self, node: str) -> tuple[str, int]:
        """Where the node's mariadbd listens for its peers (gmcast.listen_addr)."""
        config = ClusterPaths.of(self.home, NAMESPACE, self.name).node(node).config
        return self.layout.node(node).host, galera_ports(config.read_text())[0]

    def kill(self, *nodes: str) -> dict[str, int]:
        """SIGKILL the nodes' mariadbd, all at once; their pids, once gone."""
        pids = {}
        for node in nodes:
            pid = self.pid(node)
            assert pid is not None and "mariadbd" in cmdline(pid), f"{node} does not run"
            pids[node] = pid
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids.values()):
            assert time.monotonic() < deadline, "a SIGKILLed mariadbd still runs"
            time.sleep(0.01)
        return pids

    async def force(
        self, action: ForcedAction, node: str, reason: str, force: bool = False
    ) -> CommandResult:
        request = ForceActionRequest(action=action, node=node, reason=reason, force=force)
        result = await self.control.command(UPDATE_FORCE_ACTION, request)
        assert result.task_id is not None, result
        return result

    async def write_rows(self, rows: int) -> None:
        """Rows through the writer node, as user app, acknowledged (a peer that was just
        killed may hold the commits until the group has evicted it)."""
        status = await self.status()
        writer = next(n for n in status.nodes if n.name == status.writer)
        password = LocalRuntime(self.home).read_secret(
            ClusterRef(namespace=NAMESPACE, name=self.name), APP_SECRET
        )

        def write() -> None:
            conn = app_connection(writer.host, writer.port, password, read_timeout=60)
            try:
                with conn.cursor() as cursor:
                    cursor.execute("CREATE DATABASE IF NOT EXISTS recorded")
                    cursor.execute(
                        "CREATE TABLE IF NOT EXISTS recorded.rows "
                        "(id INT AUTO_INCREMENT PRIMARY KEY, at VARCHAR(40) NOT NULL)"
                    )
                    for _ in range(rows):
                        cursor.execute(
                            "INSERT INTO recorded.rows (at) VALUES (%s)",
                            (datetime.now(UTC).isoformat(),),
                        )
            finally:
                conn.close()

        await asyncio.to_thread(write)


def repaired(
    fault: FaultClass, node: str | None, attempt: int = 1
) -> Callable[[ClusterStatus], bool]:
    """Green and idle, with a successful repair of `fault` (of `node`) at `attempt`."""

    def check(status: ClusterStatus) -> bool:
        return green_and_idle(status) and any(
            r.fault is fault
            and (node is None or r.nodes == [node])
            and r.attempt == attempt
            and r.outcome is Outcome.SUCCEEDED
            for r in status.remediations
        )

    return check


Check = Callable[[list[Run]], None]  # asserts what the recorded runs must show


# -- the scenarios ----------------------------------------------------------------------------


async def crash_ist(c: Cluster) -> Check:
    victim = (await c.readers())[-1]
    await c.write_rows(10)
    old = c.kill(victim)[victim]
    await c.write_rows(20)  # the writes it misses: its IST
    done = await c.until(repaired(FaultClass.NODE_CRASHED, victim), f"{victim} killed, Green again")
    assert c.pid(victim) not in (None, old)
    record = next(r for r in done.remediations if r.fault is FaultClass.NODE_CRASHED)
    c.note(summary(record))

    def check(runs: list[Run]) -> None:
        (run,) = runs
        final = record_of(run.final_status.remediations, record.id)
        assert final.fault is FaultClass.NODE_CRASHED and final.nodes == [victim]
        assert final.outcome is Outcome.SUCCEEDED and final.attempt == 1
        (action,) = final.actions
        assert action.action is Action.RESTART_NODE and action.outcome is Outcome.SUCCEEDED
        assert action.join is not None and action.join.method is JoinMethod.IST, action.join
        starts = [argument(e, StartInput).node for e in run.activities("start_node")]
        assert starts.count(victim) == 2, starts  # created, then restarted
        assert not run.activities("set_aside_data")

    return check


async def forced_restart(c: Cluster) -> Check:
    victim = (await c.readers())[0]
    old = c.pid(victim)
    await c.write_rows(5)
    result = await c.force(ForcedAction.RESTART_NODE, victim, "record: restart a running node")
    assert result.task_id is not None
    done = await c.until(green_and_idle, f"{victim} running, forced restart: Green", result.task_id)
    assert c.pid(victim) not in (None, old), "the running node was not restarted"
    record = record_of(done.remediations, result.task_id)
    c.note(summary(record))

    def check(runs: list[Run]) -> None:
        (run,) = runs
        final = record_of(run.final_status.remediations, record.id)
        assert final.fault is FaultClass.OPERATOR_REQUEST and final.nodes == [victim]
        assert final.outcome is Outcome.SUCCEEDED
        assert [a.action for a in final.actions] == [Action.RESTART_NODE] * 2  # check, restart
        assert all(a.outcome is Outcome.SUCCEEDED for a in final.actions)
        (accepted,) = run.update_accepted(UPDATE_FORCE_ACTION)
        stops = run.activities("stop_node", after=accepted.event_id)
        starts = run.activities("start_node", after=accepted.event_id)
        stop = argument(stops[0], StopInput)
        assert (stop.node, stop.mode) == (victim, StopMode.GRACEFUL), stop
        assert argument(starts[0], StartInput).node == victim
        assert stops[0].event_id < starts[0].event_id  # stopped, then started

    return check


async def forced_reprovision(c: Cluster) -> Check:
    victim = (await c.readers())[-1]
    await c.write_rows(5)
    result = await c.force(
        ForcedAction.REPROVISION_NODE, victim, "record: a fresh copy of a Green node", force=True
    )
    assert result.task_id is not None
    done = await c.until(
        green_and_idle, f"{victim} Green, forced reprovision: Green", result.task_id
    )
    record = record_of(done.remediations, result.task_id)
    c.note(summary(record))
    node = ClusterPaths.of(c.home, NAMESPACE, c.name).node(victim)
    aside = sorted(node.root.glob("data.aside-*"))
    assert len(aside) == 1 and (aside[0] / "grastate.dat").exists(), aside

    def check(runs: list[Run]) -> None:
        (run,) = runs
        final = record_of(run.final_status.remediations, record.id)
        assert final.fault is FaultClass.OPERATOR_REQUEST and final.nodes == [victim]
        assert final.outcome is Outcome.SUCCEEDED
        assert [a.action for a in final.actions] == [Action.REPROVISION_NODE] * 2
        step = final.actions[-1]
        assert "old data directory kept at" in step.detail and "SST on purpose" in step.detail
        assert step.join is not None and step.join.method is JoinMethod.SST, step.join
        (accepted,) = run.update_accepted(UPDATE_FORCE_ACTION)
        (moved,) = run.activities("set_aside_data", after=accepted.event_id)
        assert argument(moved, NodeInput).node == victim
        assert run.activity_result(moved, str) == str(aside[0])

    return check


async def quorum_lost(c: Cluster) -> Check:
    survivor, victims = await c.roles()
    kept = c.pid(survivor)
    await c.write_rows(10)
    c.kill(*victims)
    done = await c.until(
        repaired(FaultClass.QUORUM_LOST, None), f"{', '.join(victims)} killed, Green again"
    )
    assert c.pid(survivor) == kept, "the survivor was restarted: no Primary re-formed in place"
    record = next(r for r in done.remediations if r.fault is FaultClass.QUORUM_LOST)
    c.note(summary(record))
    c.note(f"repairs: {[(r.id, r.fault.value, r.outcome.value) for r in done.remediations]}")

    def check(runs: list[Run]) -> None:
        (run,) = runs
        final = record_of(run.final_status.remediations, record.id)
        assert final.outcome is Outcome.SUCCEEDED
        assert [a.action for a in final.actions] == [Action.REFORM_PRIMARY]
        (bootstrap,) = run.activities("bootstrap_primary")
        assert argument(bootstrap, NodeInput).node == survivor
        restarted = [argument(e, StartInput).node for e in run.activities("start_node")]
        restarted = restarted[len(c.layout.nodes) :]  # after those of the create
        assert sorted(restarted) == sorted(victims), restarted
        assert not run.activities("set_aside_data")

    return check


async def continue_as_new(c: Cluster) -> Check:
    restarted, victim = await c.readers()
    await c.write_rows(10)
    crashed = f"{FaultClass.NODE_CRASHED.value}/{victim}"

    def failed(status: ClusterStatus) -> bool:
        return idle(status) and any(
            r.fault is FaultClass.NODE_CRASHED and r.outcome is Outcome.FAILED
            for r in status.remediations
        )

    c.kill(victim)
    with port_taken(*c.galera_address(victim)):
        status = await c.until(failed, f"{victim} killed, its Galera port taken: a failed repair")
        record = next(r for r in status.remediations if r.fault is FaultClass.NODE_CRASHED)
        c.note(summary(record))
        assert await c.run_id() == c.first_run, "continued as new before the failed repair ended"
        c.note(f"history after the failed repair: {await c.events()} events")
        forced = await c.force(
            ForcedAction.RESTART_NODE, restarted, "record: a long task, others queue behind it"
        )
        await c.control.wait_until(
            lambda s: s.current_task is not None and s.current_task.id == forced.task_id,
            TIMEOUT,
            "the forced restart running",
        )
        backup = await c.control.command(UPDATE_BACKUP, BackupRequest(name="queued"))
        spec = (await c.control.spec()).model_copy(deep=True)
        spec.remediation.partition_grace_seconds += 30
        apply = await c.control.command(
            UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec, generation=2)
        )
        queued = await c.status()
        assert queued.current_task is not None and queued.current_task.id == forced.task_id
        assert [(t.id, t.kind) for t in queued.queued_tasks] == [
            (backup.task_id, TaskKind.BACKUP),
            (apply.task_id, TaskKind.APPLY),
        ], queued.queued_tasks
        c.note(f"queued behind {forced.task_id}: {backup.task_id}, {apply.task_id}")
        for task in (forced, backup, apply):
            assert task.task_id is not None
            await c.control.wait_for_task(task.task_id, TIMEOUT)
        deadline = time.monotonic() + 60
        while await c.run_id() == c.first_run:
            assert time.monotonic() < deadline, "never continued as new"
            await asyncio.sleep(0.2)
        c.note("continued as new; the Galera port is free again")
    done = await c.until(
        repaired(FaultClass.NODE_CRASHED, victim, attempt=2), f"{victim} repaired by the next run"
    )
    second = next(r for r in done.remediations if r.attempt == 2)
    c.note(summary(second))
    last_outcomes = done.outcomes

    def check(runs: list[Run]) -> None:
        first, last = runs
        switch = first.continued
        assert switch is not None
        carried = first.carried
        memory = carried.memory
        assert memory is not None and memory.phase is Phase.RUNNING
        # A repair's backoff pending across the switch: attempted once, failed, due later.
        assert memory.attempts.get(crashed) == 1, memory.attempts
        assert memory.retry_after[crashed] > when(switch), (memory.retry_after, when(switch))
        assert record_of(memory.remediations, record.id).outcome is Outcome.FAILED
        # The switch was suggested while tasks were queued: it came between two tasks and
        # carried those still queued; the next run ran them.
        suggested = first.suggested_at()
        assert suggested is not None, "the server never suggested continue-as-new"
        (forced_accepted,) = first.update_accepted(UPDATE_FORCE_ACTION)
        say(
            f"  first run: continue-as-new suggested at event {suggested} (limit "
            f"{SUGGEST_CONTINUE_AS_NEW}); continued as new at {switch.event_id} carrying "
            f"{[t.id for t in memory.queue]}"
        )
        assert forced_accepted.event_id < suggested < switch.event_id
        carried_tasks = [t.id for t in memory.queue]
        assert carried_tasks, "nothing queued was carried through the switch"
        assert set(carried_tasks) <= {backup.task_id, apply.task_id}, carried_tasks
        ended = {o.id: o.outcome for o in last_outcomes}
        for task in (forced, backup, apply):
            assert ended.get(task.task_id or "") is Outcome.SUCCEEDED, (task, ended)
        # The next run starts from exactly what was carried, and repairs the node.
        assert last.input.model_dump() == carried.model_dump()
        assert (
            last.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
            == first.run_id
        )
        repair = record_of(last.final_status.remediations, second.id)
        assert repair.fault is FaultClass.NODE_CRASHED and repair.attempt == 2
        assert repair.outcome is Outcome.SUCCEEDED
        assert when(last.events[0]) < memory.retry_after[crashed]  # it had to wait for it

    return check


# -- recording --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    act: Callable[[Cluster], Awaitable[Check]]
    runs: int = 1  # of the workflow: more when it continues as new
    remediation: dict[str, Any] = field(default_factory=dict)  # spec.remediation
    server: tuple[str, ...] = ()  # the dev server's extra arguments


SCENARIOS: dict[str, Scenario] = {
    "crash-ist": Scenario(crash_ist),
    "forced-restart": Scenario(forced_restart),
    "forced-reprovision": Scenario(forced_reprovision),
    "quorum-lost": Scenario(quorum_lost),
    "continue-as-new": Scenario(
        continue_as_new,
        runs=2,
        remediation={"backoffSeconds": CAN_BACKOFF_SECONDS},
        server=(
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_CONTINUE_AS_NEW}",
        ),
    ),
}


def outputs(name: str, scenario: Scenario) -> list[Path]:
    if scenario.runs == 1:
        return [OUT / f"real-{name}.json"]
    return [OUT / f"real-{name}-{n}.json" for n in range(1, scenario.runs + 1)]


def secret_values(home: Path, name: str) -> set[str]:
    """Every value in the cluster's secrets/: password files whole, option files by line."""
    values = set()
    for path in ClusterPaths.of(home, NAMESPACE, name).secrets.iterdir():
        text = path.read_text()
        values.add(text.strip())
        for line in text.splitlines():
            key, equals, value = line.partition("=")
            if equals and "password" in key:
                values.add(value.strip())
    values = {v for v in values if v}
    assert len(values) >= 2, f"secrets not found in {home}"
    return values


def forget_sockets(home: Path, name: str) -> None:
    """Remove the stand-ins of the nodes' sockets outside `home` (activities.local.paths): a
    SIGKILLed mariadbd leaves its socket file, and the home's removal does not reach there.
    Called once every process of the home has stopped."""
    paths = ClusterPaths.of(home, NAMESPACE, name)
    for node in sorted((paths.root / "nodes").glob("*")):
        standin = paths.node(node.name).socket
        if not standin.is_relative_to(home):
            standin.unlink(missing_ok=True)


async def fetch_runs(client: Client, workflow_id: str, run_id: str) -> list[Run]:
    """The first run and every run it continued as."""
    runs = []
    next_run: str | None = run_id
    while next_run:
        handle = client.get_workflow_handle(workflow_id, run_id=next_run)
        runs.append(Run(await handle.fetch_history()))
        continued = runs[-1].continued
        next_run = (
            continued.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if continued
            else None
        )
    return runs


async def verify(runs: list[Run], scenario: Scenario, check: Check, secrets: set[str]) -> None:
    """Everything a recorded history must be, before any is written."""
    assert len(runs) == scenario.runs, f"{len(runs)} runs, {scenario.runs} expected"
    assert all(r.continued is not None for r in runs[:-1])
    assert runs[-1].final_status.phase is Phase.DELETED
    replayer = Replayer(workflows=[ClusterWorkflow], data_converter=pydantic_data_converter)
    for run in runs:
        text = run.history.to_json()
        assert len(text.encode()) < MAX_BYTES, f"{len(text.encode())} bytes"
        leaked = [s for s in secrets if s in text]
        assert not leaked, "a secret is in the history"
        result = await replayer.replay_workflow(run.history, raise_on_replay_failure=True)
        assert result.replay_failure is None
    check(runs)


async def record(name: str, scenario: Scenario) -> list[str]:
    """Run the scenario on a cluster of its own; the files written."""
    spec = MySQLClusterSpec.model_validate({"remediation": scenario.remediation})
    with private_home(prefix=f"mysqlops-record-{name}-") as home:
        try:
            async with temporal_stack(home, *scenario.server) as client:
                applied = await start_cluster(client, cluster_resource(name, spec))
                control = applied.cluster
                first_run = (await control.handle.describe()).run_id
                try:
                    started = time.monotonic()
                    await applied.until_green(CREATE_TIMEOUT)
                    say(f"  3-node cluster Green in {time.monotonic() - started:.1f} s")
                    layout = LocalCluster.find(home, NAMESPACE, name)
                    cluster = Cluster(home, name, control, layout, first_run)
                    secrets = secret_values(home, name)
                    check = await scenario.act(cluster)
                finally:
                    try:
                        await delete_cluster(control, home, timeout=TIMEOUT)
                    except Exception as error:  # the clean-up of private_home still runs
                        say(f"  cleanup: delete failed: {error!r}")
                runs = await fetch_runs(client, control.handle.id, first_run)
        finally:
            forget_sockets(home, name)
    try:
        await verify(runs, scenario, check, secrets)
    except Exception:
        kept = Path(tempfile.mkdtemp(prefix=f"mysqlops-rejected-{name}-"))
        for run, path in zip(runs, outputs(name, scenario), strict=False):
            (kept / path.name).write_text(run.history.to_json())
        say(f"  not written: the checks failed; the histories are in {kept} to look at")
        raise
    written = []
    OUT.mkdir(exist_ok=True)
    for run, path in zip(runs, outputs(name, scenario), strict=True):
        text = run.history.to_json()
        path.write_text(text)
        written.append(f"{path.relative_to(REPO)}: {len(run.events)} events, {len(text)} bytes")
    return written


async def main(names: list[str]) -> None:
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    wanted = names or [
        n for n, s in SCENARIOS.items() if not all(p.exists() for p in outputs(n, s))
    ]
    for name in wanted:
        say(f"{name}:")
        for line in await record(name, SCENARIOS[name]):
            say(f"  wrote {line}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, which can crash in the Temporal core's threads
