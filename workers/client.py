"""One cluster's workflow seen from outside: the client library of the CLI, the benchmarks and
the tests.

Read the status, send commands (updates), and wait the one way:
- for a task: every accepted command answers with a task id, and every task ends with a
  structured outcome among `status.outcomes` (Succeeded, Failed or Refused, with its error);
  `wait_for_task` returns it;
- for a state (Green, Stopped, ...): `wait_until` polls the status until a predicate holds, and
  gives up early when automation has paused for a human or a task it depends on did not
  succeed.
Nothing here decides on `status.message`: it is for people.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, TemporalError
from temporalio.service import RPCError, RPCStatusCode

from api.cluster import ClusterStatus, MySQLClusterSpec, TaskOutcome, cluster_workflow_id
from api.messages import QUERY_SPEC, QUERY_STATUS, CommandResult
from api.remediation import Outcome, RemediationRecord
from api.states import ClusterState, Phase
from workers.errors import (
    CommandRefused,
    NotReached,
    OutcomeUnknown,
    TaskFailed,
    UsageError,
)

DEFAULT_POLL_SECONDS = 0.5

Check = Callable[[ClusterStatus], bool]
Watch = Callable[[ClusterStatus], Awaitable[None]]
Found = TypeVar("Found")


def idle(status: ClusterStatus) -> bool:
    """No task running or queued."""
    return status.current_task is None and not status.queued_tasks


def green_and_idle(status: ClusterStatus) -> bool:
    return status.state is ClusterState.GREEN and idle(status)


def settled_in(phase: Phase) -> Check:
    """In `phase` with no task running or queued."""
    return lambda status: status.phase is phase and idle(status)


def outcome_of(status: ClusterStatus, task_id: str) -> TaskOutcome | None:
    return next((o for o in status.outcomes if o.id == task_id), None)


def _pending(status: ClusterStatus, task_id: str) -> bool:
    running = [status.current_task] if status.current_task else []
    return any(t.id == task_id for t in [*running, *status.queued_tasks])


@dataclass
class ClusterClient:
    """The workflow of one cluster, `mysqlcluster/<namespace>/<name>`."""

    handle: WorkflowHandle[Any, ClusterStatus]
    poll_seconds: float = DEFAULT_POLL_SECONDS

    @classmethod
    def of(
        cls, client: Client, namespace: str, name: str, poll_seconds: float = DEFAULT_POLL_SECONDS
    ) -> "ClusterClient":
        handle = client.get_workflow_handle(
            cluster_workflow_id(namespace, name), result_type=ClusterStatus
        )
        return cls(handle, poll_seconds)

    @classmethod
    async def attach(
        cls, client: Client, namespace: str, name: str, poll_seconds: float = DEFAULT_POLL_SECONDS
    ) -> "ClusterClient":
        """The cluster, once its workflow is known to run; UsageError otherwise."""
        cluster = cls.of(client, namespace, name, poll_seconds)
        try:
            description = await cluster.handle.describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise UsageError(f"{cluster.title} not found") from None
            raise
        if description.status is not WorkflowExecutionStatus.RUNNING:
            raise UsageError(f"{cluster.title} not found (its workflow has ended)")
        return cluster

    @property
    def namespace(self) -> str:
        return self.handle.id.split("/", 2)[1]

    @property
    def name(self) -> str:
        return self.handle.id.split("/", 2)[2]

    @property
    def title(self) -> str:
        """`mysqlcluster <namespace>/<name>`, as messages name it."""
        return f"mysqlcluster {self.namespace}/{self.name}"

    @property
    def _status_command(self) -> str:
        namespace = "" if self.namespace == "default" else f" -n {self.namespace}"
        return f"mysqlops status {self.name}{namespace}"

    async def status(self) -> ClusterStatus:
        result: ClusterStatus = await self.handle.query(QUERY_STATUS, result_type=ClusterStatus)
        return result

    async def spec(self) -> MySQLClusterSpec:
        """The spec last applied by a user (what the cluster converges to)."""
        result: MySQLClusterSpec = await self.handle.query(QUERY_SPEC, result_type=MySQLClusterSpec)
        return result

    async def command(self, update: str, payload: BaseModel) -> CommandResult:
        """Send a command. A validator's refusal (nothing written) raises CommandRefused; an
        error after which the update may have been accepted raises OutcomeUnknown.

        The workflow's update handlers only queue a task and never raise: an ApplicationError
        as the update's failure can only be a validator's refusal."""
        try:
            result: CommandResult = await self.handle.execute_update(
                update, payload, result_type=CommandResult
            )
        except WorkflowUpdateFailedError as error:
            if isinstance(error.cause, ApplicationError):
                raise CommandRefused(f"{update} refused: {error.cause.message}") from None
            raise self._unknown(update, error.cause) from error
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:  # the workflow ended: nothing written
                raise UsageError(f"{self.title} not found (its workflow has ended)") from None
            raise self._unknown(update, error) from error
        except TemporalError as error:  # e.g. the update call timed out or was cancelled
            raise self._unknown(update, error) from error
        return result

    def _unknown(self, update: str, error: BaseException) -> OutcomeUnknown:
        return OutcomeUnknown(
            f"{update} sent to {self.title}, but its answer was lost (could not reach Temporal: "
            f"{error or type(error).__name__}); the update's outcome is unknown: check "
            f"`{self._status_command}`"
        )

    async def wait_for_task(
        self, task_id: str, timeout: float, *, check: bool = True, watch: Watch | None = None
    ) -> TaskOutcome:
        """Until the task has ended; its outcome. With `check`, an outcome other than
        Succeeded raises TaskFailed. `watch` sees every status polled meanwhile."""

        def ended(current: ClusterStatus) -> TaskOutcome | None:
            outcome = outcome_of(current, task_id)
            if outcome is None and not _pending(current, task_id):
                raise NotReached(
                    f"task {task_id} is neither queued, running nor among the latest outcomes",
                    current,
                )
            return outcome

        outcome = await self._poll(ended, timeout, f"the end of task {task_id}", watch)
        if check and outcome.outcome is not Outcome.SUCCEEDED:
            raise TaskFailed(outcome)
        return outcome

    async def wait_until(
        self,
        done: Check,
        timeout: float,
        what: str,
        *,
        depends_on: Iterable[str | None] = (),
        manual_intervention_ends_it: bool = True,
        watch: Watch | None = None,
    ) -> ClusterStatus:
        """Until `done(status)`; that status. Gives up (NotReached) when a task named in
        `depends_on` ended other than Succeeded, and, unless told otherwise, when automation
        has paused for a human with nothing left to run."""
        tasks = {task for task in depends_on if task is not None}

        def reached(current: ClusterStatus) -> ClusterStatus | None:
            if done(current):
                return current
            for outcome in current.outcomes:
                if outcome.id in tasks and outcome.outcome is not Outcome.SUCCEEDED:
                    raise NotReached(f"{what} not reached: {TaskFailed(outcome)}", current)
            paused = current.manual_intervention
            if manual_intervention_ends_it and paused is not None and idle(current):
                raise NotReached(
                    f"{what} not reached: automation paused for a human "
                    f"({paused.fault.value}): {paused.reason}",
                    current,
                )
            return None

        return await self._poll(reached, timeout, what, watch)

    async def wait_deleted(self, task_id: str | None, timeout: float) -> ClusterStatus:
        """Until the workflow has ended after a delete; its final status. TaskFailed when the
        delete task failed: the cluster is still there, and a delete may be tried again."""
        deadline = time.monotonic() + timeout
        while True:
            if (await self.handle.describe()).status is not WorkflowExecutionStatus.RUNNING:
                return await self.handle.result()
            current = await self.status()
            outcome = outcome_of(current, task_id) if task_id else None
            if outcome is not None and outcome.outcome is not Outcome.SUCCEEDED:
                raise TaskFailed(outcome)
            if time.monotonic() > deadline:
                raise NotReached(f"{self.title} not deleted within {timeout:.0f} s", current)
            await asyncio.sleep(self.poll_seconds)

    async def remediation(self, record_id: str) -> RemediationRecord | None:
        """The record of a repair or of a forced action (whose task id is the record's id),
        while the status keeps it."""
        current = await self.status()
        return next((r for r in current.remediations if r.id == record_id), None)

    async def _poll(
        self,
        settle: Callable[[ClusterStatus], Found | None],
        timeout: float,
        what: str,
        watch: Watch | None,
    ) -> Found:
        """The one polling loop: the status every `poll_seconds` until `settle` returns
        something (or raises)."""
        deadline = time.monotonic() + timeout
        while True:
            current = await self.status()
            if watch is not None:
                await watch(current)
            found = settle(current)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                last = f" (last message: {current.message})" if current.message else ""
                raise NotReached(f"{what} not reached within {timeout:.0f} s{last}", current)
            await asyncio.sleep(self.poll_seconds)
