"""How a task ends when it cannot finish: the kinds every task module raises, and the one
reading of any exception a task or a repair step let through."""

from temporalio.exceptions import ActivityError, TemporalError

from api.remediation import Outcome
from galera.bootstrap import NoSafeBootstrap


class TaskFailed(Exception):
    """A task could not finish; the reason goes to the status. A change that failed this way is
    retried (with backoff) where the controller converges to a spec."""


class Refused(TaskFailed):
    """Found unsafe or invalid when about to act (a forced action's checks, options the server
    refuses): nothing was changed, and the same request is not retried until asked again."""


def failure(error: Exception) -> tuple[Outcome, str]:
    """How a task (or one step of a repair) that raised `error` ended, and why in words. A bug
    in our own code (an assertion, a KeyError) fails the task, not the workflow: the
    controller goes on. Temporal's own errors (nondeterminism) are raised again, so that the
    workflow task fails and is retried by a fixed worker."""
    if isinstance(error, ActivityError):
        return Outcome.FAILED, str(error.cause or error)
    if isinstance(error, Refused):
        return Outcome.REFUSED, str(error)
    if isinstance(error, TaskFailed | NoSafeBootstrap):
        return Outcome.FAILED, str(error)
    if isinstance(error, TemporalError):
        raise error
    return Outcome.FAILED, f"internal error: {error!r}"
