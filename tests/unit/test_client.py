"""The client library against a scripted workflow handle: how a command's failure is told apart
(refused: nothing written, exit 2; lost answer: outcome unknown, exit 1), and how waits end:
on the task's structured outcome, never on words in a message."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.cluster import ClusterStatus, TaskInfo, TaskOutcome
from api.messages import UPDATE_STOP, CommandResult, LifecycleRequest
from api.remediation import FaultClass, ManualIntervention, Outcome
from api.states import ClusterState, Phase, TaskKind
from workers.cli import exit_status
from workers.client import ClusterClient, green_and_idle
from workers.errors import (
    CommandRefused,
    NotReached,
    OutcomeUnknown,
    TaskFailed,
    Unreachable,
    UsageError,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Description:
    def __init__(self, status: WorkflowExecutionStatus) -> None:
        self.status = status


class ScriptedHandle:
    """A workflow handle whose status query answers `statuses` in turn (the last one again
    once they are used up) and whose updates raise `refusal` when it is set."""

    id = "mysqlcluster/default/demo"

    def __init__(self, *statuses: ClusterStatus, refusal: BaseException | None = None) -> None:
        self.statuses: Iterator[ClusterStatus] = iter(statuses)
        self.last = statuses[0] if statuses else None
        self.refusal = refusal
        self.running = True
        self.queries = 0

    async def query(self, name: str, result_type: type) -> ClusterStatus:
        self.queries += 1
        self.last = next(self.statuses, self.last)
        assert self.last is not None
        return self.last

    async def execute_update(self, name: str, payload: Any, result_type: type) -> CommandResult:
        if self.refusal is not None:
            raise self.refusal
        return CommandResult(accepted=True, task_id="stop-7", message="queued as stop-7")

    async def describe(self) -> Description:
        running = WorkflowExecutionStatus.RUNNING
        return Description(running if self.running else WorkflowExecutionStatus.COMPLETED)


def cluster(handle: ScriptedHandle) -> ClusterClient:
    return ClusterClient(cast(Any, handle), poll_seconds=0)


def status(
    *,
    state: ClusterState = ClusterState.GREEN,
    running: str | None = None,
    queued: tuple[str, ...] = (),
    ended: tuple[TaskOutcome, ...] = (),
    paused: bool = False,
    message: str = "",
) -> ClusterStatus:
    def info(task_id: str) -> TaskInfo:
        return TaskInfo(id=task_id, kind=TaskKind(task_id.split("-")[0]), requested_at=NOW)

    return ClusterStatus(
        workflow_id=ScriptedHandle.id,
        phase=Phase.RUNNING,
        state=state,
        replicas=3,
        current_task=info(running) if running else None,
        queued_tasks=[info(t) for t in queued],
        outcomes=list(ended),
        message=message,
        manual_intervention=ManualIntervention(
            since=NOW, fault=FaultClass.STORAGE_ERROR, reason="disk full on demo-1", evidence=""
        )
        if paused
        else None,
    )


def outcome(task_id: str, ended: Outcome, error: str = "") -> TaskOutcome:
    kind = TaskKind(task_id.split("-")[0])
    return TaskOutcome(
        id=task_id, kind=kind, outcome=ended, error=error, requested_at=NOW, ended_at=NOW
    )


# -- a command's failure: refused, or outcome unknown ----------------------------------------


async def send_stop(refusal: BaseException) -> CommandResult:
    return await cluster(ScriptedHandle(refusal=refusal)).command(
        UPDATE_STOP, LifecycleRequest(reason="test")
    )


async def test_a_validator_refusal_is_refused_nothing_written_exit_2() -> None:
    refused = WorkflowUpdateFailedError(
        ApplicationError("the cluster is being deleted", type="ValueError")
    )
    with pytest.raises(CommandRefused, match="stop refused: the cluster is being deleted") as got:
        await send_stop(refused)
    assert exit_status(got.value) == 2


@pytest.mark.parametrize(
    "lost",
    [
        RPCError("connection reset", RPCStatusCode.UNAVAILABLE, b""),
        RPCError("deadline", RPCStatusCode.DEADLINE_EXCEEDED, b""),
        WorkflowUpdateRPCTimeoutOrCancelledError(),
        WorkflowUpdateFailedError(CancelledError("workflow closed")),
    ],
    ids=["unavailable", "deadline", "update-call-timed-out", "not-a-validator-failure"],
)
async def test_a_transport_error_is_an_unknown_outcome_exit_1(lost: BaseException) -> None:
    with pytest.raises(OutcomeUnknown) as got:
        await send_stop(lost)
    message = str(got.value)
    assert "refused" not in message and "nothing" not in message
    assert "outcome is unknown" in message and "`mysqlops status demo`" in message
    assert exit_status(got.value) == 1


async def test_a_workflow_that_is_gone_is_not_found_exit_2() -> None:
    gone = RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b"")
    with pytest.raises(UsageError, match="mysqlcluster default/demo not found") as got:
        await send_stop(gone)
    assert exit_status(got.value) == 2


def test_exit_statuses_of_the_other_errors() -> None:
    assert exit_status(Unreachable("could not reach Temporal at 127.0.0.1:1")) == 1
    assert exit_status(TaskFailed(outcome("stop-1", Outcome.FAILED, "boom"))) == 1
    assert exit_status(NotReached("Green not reached", status())) == 1
    assert exit_status(KeyError("a bug")) is None  # not hidden: a traceback


# -- waiting for a task ------------------------------------------------------------------------


async def test_wait_for_task_returns_its_outcome_once_it_ended() -> None:
    handle = ScriptedHandle(
        status(queued=("stop-7",)),
        status(running="stop-7"),
        status(ended=(outcome("stop-7", Outcome.SUCCEEDED),)),
    )
    ended = await cluster(handle).wait_for_task("stop-7", timeout=5)
    assert (ended.id, ended.outcome) == ("stop-7", Outcome.SUCCEEDED)
    assert handle.queries == 3


@pytest.mark.parametrize("ended", [Outcome.FAILED, Outcome.REFUSED])
async def test_a_task_that_did_not_succeed_raises_when_checked(ended: Outcome) -> None:
    done = status(ended=(outcome("force-3", ended, "demo-1 is behind demo-0"),))
    with pytest.raises(TaskFailed, match=f"force-3 \\(force\\) {ended.value}: demo-1 is behind"):
        await cluster(ScriptedHandle(done)).wait_for_task("force-3", timeout=5)
    unchecked = await cluster(ScriptedHandle(done)).wait_for_task("force-3", 5, check=False)
    assert unchecked.outcome is ended and unchecked.error == "demo-1 is behind demo-0"


async def test_words_in_the_message_end_nothing() -> None:
    handle = ScriptedHandle(
        status(running="stop-7", message="task stop-6 failed: boom"),
        status(ended=(outcome("stop-7", Outcome.SUCCEEDED),), message="task stop-6 failed: x"),
    )
    assert (await cluster(handle).wait_for_task("stop-7", 5)).outcome is Outcome.SUCCEEDED


async def test_a_task_nowhere_to_be_seen_is_not_waited_for() -> None:
    with pytest.raises(NotReached, match="stop-9 is neither queued, running nor among"):
        await cluster(ScriptedHandle(status())).wait_for_task("stop-9", timeout=5)


async def test_waiting_for_a_task_times_out_with_the_last_status() -> None:
    with pytest.raises(NotReached, match="not reached within 0 s") as got:
        await cluster(ScriptedHandle(status(running="stop-7"))).wait_for_task("stop-7", 0)
    assert got.value.status.current_task is not None


# -- waiting for a state -----------------------------------------------------------------------


async def test_wait_until_returns_the_status_that_satisfies_it() -> None:
    handle = ScriptedHandle(status(state=ClusterState.YELLOW, running="create-1"), status())
    reached = await cluster(handle).wait_until(green_and_idle, 5, "Green")
    assert reached.state is ClusterState.GREEN


async def test_wait_until_gives_up_when_a_task_it_depends_on_failed() -> None:
    failed = status(
        state=ClusterState.YELLOW, ended=(outcome("apply-2", Outcome.FAILED, "node demo-3 down"),)
    )
    with pytest.raises(NotReached, match=r"Green not reached: task apply-2 .* demo-3 down"):
        await cluster(ScriptedHandle(failed)).wait_until(
            green_and_idle, 60, "Green", depends_on=["apply-2", None]
        )
    # Another task's failure is not this wait's business: it goes on to its deadline.
    with pytest.raises(NotReached, match="within 0 s"):
        await cluster(ScriptedHandle(failed)).wait_until(
            green_and_idle, 0, "Green", depends_on=["create-1"]
        )


async def test_wait_until_gives_up_when_automation_waits_for_a_human() -> None:
    paused = status(state=ClusterState.YELLOW, paused=True)
    with pytest.raises(NotReached, match="paused for a human \\(StorageError\\): disk full"):
        await cluster(ScriptedHandle(paused)).wait_until(green_and_idle, 60, "Green")
    # ... unless the wait is for something a pause does not stop, or is told to go on.
    seen = await cluster(ScriptedHandle(paused)).wait_until(
        lambda s: s.manual_intervention is not None, 60, "a pause"
    )
    assert seen.manual_intervention is not None
    with pytest.raises(NotReached, match="within 0 s"):
        await cluster(ScriptedHandle(paused)).wait_until(
            green_and_idle, 0, "Green", manual_intervention_ends_it=False
        )


async def test_a_failed_delete_leaves_the_cluster_and_says_so() -> None:
    handle = ScriptedHandle(status(ended=(outcome("delete-4", Outcome.FAILED, "stop failed"),)))
    with pytest.raises(TaskFailed, match="delete-4 \\(delete\\) Failed: stop failed"):
        await cluster(handle).wait_deleted("delete-4", timeout=5)
