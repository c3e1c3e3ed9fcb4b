"""What a client of mysqlops can be told went wrong, each with the exit status the CLI gives it.

| error            | meaning                                                        | exit |
|------------------|----------------------------------------------------------------|------|
| `UsageError`     | bad input; nothing was sent or changed                         | 2    |
| `CommandRefused` | the workflow's validator refused the command; nothing written  | 2    |
| `Unreachable`    | Temporal could not be reached; nothing was sent                | 1    |
| `OutcomeUnknown` | the command may or may not have been accepted                  | 1    |
| `TaskFailed`     | the command's task ended Failed or Refused                     | 1    |
| `NotReached`     | a wait ended without its goal (timeout, human needed, failure) | 1    |
"""

from api.cluster import ClusterStatus, TaskOutcome


class UsageError(Exception):
    """Bad input: nothing was changed."""


class CommandRefused(UsageError):
    """An update's validator refused the command: nothing was written to the history."""


class Unreachable(RuntimeError):
    """Temporal did not answer the connection: nothing was sent."""


class OutcomeUnknown(RuntimeError):
    """The command was sent but its answer was lost (transport error, timeout): it may have
    been accepted. `mysqlops status` tells."""


class TaskFailed(RuntimeError):
    """A task ended other than Succeeded."""

    def __init__(self, outcome: TaskOutcome) -> None:
        detail = f": {outcome.error}" if outcome.error else ""
        kind, ended = outcome.kind.value, outcome.outcome.value
        super().__init__(f"task {outcome.id} ({kind}) {ended}{detail}")
        self.outcome = outcome


class NotReached(RuntimeError):
    """A wait gave up: timed out, automation paused for a human, or a task it depended on
    failed. `status` is the last status seen."""

    def __init__(self, message: str, status: ClusterStatus) -> None:
        super().__init__(message)
        self.status = status
