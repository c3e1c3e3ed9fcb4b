"""`mysqlops top` (and `mysqlops status --watch`): every cluster at a glance, refreshed in place.

`render` turns a census (`workers.clusters.take_census`) into one table, a row per cluster:
state, phase, ready nodes, writer, automation, the running task and the queue, each node's
state, the last repair and the last backup, with their ages; clusters that did not answer and
clusters in trouble come first. On a console narrower than `WIDE` columns, a few wrapped lines
per cluster say the same. It is pure: the same census and the same `now` give the same picture.

`run` draws it with `rich.live.Live`, which redraws the table in place with the terminal's own
cursor movements (any terminal rich supports: over SSH too; `NO_COLOR` is honoured), every
`interval` seconds until Ctrl-C, which ends it with exit status 0. When standard output is not
a terminal (a pipe, a file, `watch mysqlops top`), or with `--once`, it prints one snapshot and
ends: a log of redraws would be useless to read.
"""

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text
from temporalio.client import Client
from temporalio.exceptions import TemporalError

from api.cluster import ClusterStatus, NodeStatus, cluster_workflow_id
from api.layout import ClusterRef
from api.messages import QUERY_STATUS
from api.remediation import Outcome, RemediationRecord
from api.states import BackupPhase, ClusterState, NodeState
from workers.clusters import Census, Schedule, take_census

CENSUS_TIMEOUT_SECONDS = 5.0  # a cluster that does not answer in this time is shown as such

CLUSTER_STYLES = {
    ClusterState.GREEN: "bold green",
    ClusterState.YELLOW: "bold yellow",
    ClusterState.RED: "bold red",
}
NODE_STYLES = {
    NodeState.GREEN: "green",
    NodeState.YELLOW: "yellow",
    NodeState.RED_CLEAN: "red",
    NodeState.RED_UNCLEAN: "bold red",
    NodeState.UNKNOWN: "magenta",
}
OUTCOME_STYLES = {
    Outcome.RUNNING: "cyan",
    Outcome.SUCCEEDED: "green",
    Outcome.FAILED: "bold red",
    Outcome.REFUSED: "red",
}
PHASE_STYLES = {
    BackupPhase.PENDING: "dim",
    BackupPhase.RUNNING: "cyan",
    BackupPhase.SUCCEEDED: "green",
    BackupPhase.FAILED: "bold red",
}

Source = Callable[[], Awaitable[Census]]


# -- the picture -----------------------------------------------------------------------------


def render(census: Census, now: datetime, *, error: str | None = None) -> RenderableType:
    """The census, with a summary line above it; `error`: why this census is not a fresh one
    (shown above it, in red). A table, a row per cluster, on a console at least `WIDE`
    columns wide; on a narrower one (an 80-column SSH window), a few lines per cluster."""
    return View(census, now, error)


WIDE = 140  # the narrowest console the table is drawn on; below, a few lines per cluster

COLUMNS = (
    "CLUSTER",
    "STATE",
    "WRITER",
    "AUTOMATION",
    "TASK",
    "NODES",
    "LAST REPAIR",
    "LAST BACKUP",
)


@dataclass(frozen=True)
class View:
    """What `render` returns: it picks its layout when drawn, by the console's width."""

    census: Census
    now: datetime
    error: str | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield _summary(self.census, self.now)
        if self.error:
            yield Text(self.error, style="bold red")
        if not self.census.statuses and not self.census.missed:
            yield Text("no clusters running", style="dim")
        elif options.max_width >= WIDE:
            yield self._table()
        else:
            yield from self._lines()

    def _statuses(self) -> list[ClusterStatus]:
        """Trouble first (a cropped view still shows it), then by name."""
        return sorted(self.census.statuses, key=lambda s: (_severity(s), s.workflow_id))

    def _rows(self) -> list[list[Text]]:
        """The table's rows: the clusters that did not answer first."""
        blank = [Text("")] * (len(COLUMNS) - 2)
        rows = [
            [Text(_short(workflow_id), "bold"), Text("not answering", "bold magenta"), *blank]
            for workflow_id in self.census.missed
        ]
        for status in self._statuses():
            rows.append(_row(status, self.census.schedules.get(status.workflow_id), self.now))
        return rows

    def _table(self) -> Table:
        # No vertical rules, a blank line between clusters: more room for what the cells say.
        table = Table(box=box.SIMPLE_HEAD, show_lines=True, header_style="bold", pad_edge=False)
        for column in COLUMNS:  # the short ones kept whole while there is room
            whole = column in ("STATE", "WRITER", "NODES")
            table.add_column(column, overflow="fold", max_width=30, no_wrap=whole)
        for row in self._rows():
            table.add_row(*row)
        return table

    def _lines(self) -> Iterator[Text]:
        """Per cluster: its name, state and what it is doing; its nodes; its last repair and
        backup. Each line wraps as the console needs."""
        for workflow_id in self.census.missed:
            yield Text.assemble(
                (_short(workflow_id), "bold"), "  ", ("not answering", "bold magenta")
            )
        for status in self._statuses():
            cells = _row(status, self.census.schedules.get(status.workflow_id), self.now)
            _, state, writer, automation, task, _, repair, backup = map(_flat, cells)
            yield Text("  ").join(
                [
                    Text(_short(status.workflow_id), "bold"),
                    state,
                    Text.assemble(("writer ", "dim"), writer),
                    Text.assemble(("automation ", "dim"), automation),
                    Text.assemble(("task ", "dim"), task),
                ]
            )
            if status.unwatched is not None:
                yield Text(
                    f"  UNWATCHED {_age(status.unwatched.since, self.now)}: "
                    f"{status.unwatched.reason}",
                    "bold yellow",
                )
            yield Text.assemble(("  nodes ", "dim"), _flat(cells[5], "  "))
            yield Text.assemble(("  repair ", "dim"), repair, ("  backup ", "dim"), backup)


def _flat(cell: Text, separator: str = " ") -> Text:
    """A table cell's lines on one line."""
    return Text(separator).join(cell.split("\n"))


def _severity(status: ClusterStatus) -> int:
    if status.manual_intervention is not None or status.state is ClusterState.RED:
        return 0
    return 1 if status.state is ClusterState.YELLOW or status.unwatched is not None else 2


def _summary(census: Census, now: datetime) -> Text:
    counts = {state: 0 for state in ClusterState}
    for status in census.statuses:
        counts[status.state] += 1
    total = len(census.statuses) + len(census.missed)
    line = Text.assemble(
        ("mysqlops top", "bold"),
        f"  {_utc(now):%Y-%m-%d %H:%M:%S} UTC  {total} cluster{'' if total == 1 else 's'}: ",
    )
    line.append_text(
        Text(", ").join(
            Text(f"{n} {state.value}", CLUSTER_STYLES[state]) for state, n in counts.items()
        )
    )
    if census.missed:
        line.append(f", {len(census.missed)} not answering", style="bold magenta")
    return line


def _row(status: ClusterStatus, schedule: Schedule | None, now: datetime) -> list[Text]:
    """The cells of a cluster's row, in the order of COLUMNS."""
    name = Text(_short(status.workflow_id), style="bold")
    if status.unwatched is not None:
        name.append(f"\nUNWATCHED {_age(status.unwatched.since, now)}", style="bold yellow")
        name.append(f"\n{status.unwatched.reason}", style="yellow")
    ready_style = "green" if status.ready_replicas >= status.replicas else "yellow"
    state = Text.assemble(
        (status.state.value, CLUSTER_STYLES[status.state]),
        " ",
        (f"{status.ready_replicas}/{status.replicas}", ready_style),
        (f"\n{status.phase.value}", "dim"),
    )
    return [
        name,
        state,
        Text(status.writer or "-"),
        _automation(status, now),
        _task(status, now),
        Text("\n").join(_node(node) for node in status.nodes) if status.nodes else Text("-"),
        _repair(status.remediations[-1], now) if status.remediations else Text("-", "dim"),
        _backup(status, schedule, now),
    ]


def _automation(status: ClusterStatus, now: datetime) -> Text:
    manual = status.manual_intervention
    if manual is None:
        return Text("active", style="green")
    return Text.assemble(
        ("MANUAL INTERVENTION", "bold red"),
        (f"\n{manual.fault.value}", "bold red"),
        f" {_age(manual.since, now)}\n",
        (manual.reason, "red"),
    )


def _task(status: ClusterStatus, now: datetime) -> Text:
    current = status.current_task
    if current is None:
        task = Text("idle", style="dim")
    else:
        task = Text(current.id, style="cyan")
        if current.started_at is not None:
            task.append(f" {_age(current.started_at, now, ago=False)}")
    if status.queued_tasks:
        task.append(f"\nqueue {len(status.queued_tasks)}", style="yellow")
    return task


def _node(node: NodeStatus) -> Text:
    return Text.assemble(f"{node.name} ", (node.state.value, NODE_STYLES[node.state]))


def _repair(record: RemediationRecord, now: datetime) -> Text:
    text = Text(record.fault.value, style="bold")
    if record.nodes:
        text.append(f" {','.join(record.nodes)}")
    text.append("\n")
    text.append(record.outcome.value, style=OUTCOME_STYLES[record.outcome])
    if record.outcome is Outcome.RUNNING:
        text.append(f" for {_age(record.started_at, now, ago=False)}")
    else:
        text.append(f" {_age(record.ended_at or record.started_at, now)}")
    if record.attempt > 1:
        text.append(f" (attempt {record.attempt})")
    return text


def _backup(status: ClusterStatus, schedule: Schedule | None, now: datetime) -> Text:
    if not status.backups:
        text = Text("none", style="dim")
    else:
        last = max(status.backups, key=lambda b: b.requested_at)
        when = last.finished_at or last.started_at or last.requested_at
        text = Text(last.name)
        text.append("\n")
        text.append(last.phase.value, style=PHASE_STYLES[last.phase])
        text.append(f" {_age(when, now)}")
        if last.phase is BackupPhase.FAILED and last.error:
            text.append(f"\n{last.error}", style="red")
    if schedule is not None:
        every = f"every {_duration(schedule.interval_seconds)}" if schedule.interval_seconds else ""
        text.append(f"\nschedule {every}".rstrip(), style="dim")
        if schedule.paused:
            text.append(" paused", style="yellow")
    return text


def _short(workflow_id: str) -> str:
    """`mysqlcluster/default/demo` -> `demo`; another namespace stays: `team/demo`."""
    _, namespace, name = workflow_id.split("/", 2)
    return name if namespace == "default" else f"{namespace}/{name}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _age(then: datetime, now: datetime, *, ago: bool = True) -> str:
    seconds = max(0.0, (_utc(now) - _utc(then)).total_seconds())
    return f"{_duration(seconds)} ago" if ago else _duration(seconds)


def _duration(seconds: float) -> str:
    """12s, 4m05s, 3h07m, 2d05h: two units at most."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


# -- the live view ---------------------------------------------------------------------------


def one_cluster(client: Client, ref: ClusterRef) -> Source:
    """A census of one cluster (`mysqlops status NAME --watch`): its status query alone."""
    workflow_id = cluster_workflow_id(ref.namespace, ref.name)

    async def look() -> Census:
        handle = client.get_workflow_handle(workflow_id)
        try:
            status = await asyncio.wait_for(
                handle.query(QUERY_STATUS, result_type=ClusterStatus), CENSUS_TIMEOUT_SECONDS
            )
        except Exception:  # as the census does: a cluster that does not answer is shown so
            return Census(missed=[workflow_id])
        return Census(statuses=[status])

    return look


async def run(
    client: Client,
    interval: float,
    once: bool,
    *,
    cluster: ClusterRef | None = None,
    console: Console | None = None,
) -> int:
    """Every cluster (or `cluster` alone), every `interval` seconds until Ctrl-C; one snapshot
    with `once` or when the console is not a terminal. The exit status: 0."""

    async def census() -> Census:
        return await take_census(client, timeout=CENSUS_TIMEOUT_SECONDS)

    source = one_cluster(client, cluster) if cluster is not None else census
    return await watch(source, interval, once, console or Console())


async def watch(source: Source, interval: float, once: bool, console: Console) -> int:
    """`run` on any source of censuses. Ctrl-C (SIGINT) ends it with 0, without a traceback:
    the signal cancels the view's task instead of raising KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    if once or not console.is_terminal:
        view = asyncio.create_task(_snapshot(source, console))
    else:
        view = asyncio.create_task(_live(source, interval, console))
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        view.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, interrupt)
        handled = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, no signals
        handled = False
    try:
        await view
    except asyncio.CancelledError:
        if not interrupted:
            raise
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
    return 0


async def _snapshot(source: Source, console: Console) -> None:
    console.print(render(await source(), datetime.now(UTC)))


async def _live(source: Source, interval: float, console: Console) -> None:
    hint = Text(f"every {interval:g}s; Ctrl-C to quit", style="dim")
    last: Census | None = None
    with Live(
        Text("asking every cluster for its status...", style="dim"),
        console=console,
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as live:
        while True:
            error = None
            try:
                last = await source()
            except (TemporalError, RuntimeError, TimeoutError, OSError) as failure:
                error = f"could not list the clusters ({failure}); showing the last answers"
            if last is None:  # nothing to show yet but the error
                picture: RenderableType = Text(error or "", style="bold red")
            else:
                picture = render(last, datetime.now(UTC), error=error)
            live.update(Group(picture, hint), refresh=True)
            await asyncio.sleep(interval)
