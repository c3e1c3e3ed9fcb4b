"""How a task ends when it cannot finish: the kinds every task module raises and the loop reads."""


class TaskFailed(Exception):
    """A task could not finish; the reason goes to the status. A change that failed this way is
    retried (with backoff) where the controller converges to a spec."""


class Refused(TaskFailed):
    """Found unsafe or invalid when about to act (a forced action's checks, options the server
    refuses): nothing was changed, and the same request is not retried until asked again."""
