"""Every log line an activity writes says which cluster, node, workflow and attempt it is for.

`LogContext` is a worker interceptor: around each activity it binds, with structlog's
context variables, `cluster` (`namespace/name`, from the input's `cluster` or
`layout.cluster`), `node` (the input's `node`, when it names one), `workflow_id`, `run_id`,
`activity` (its type) and `attempt`. `workers/logs.py` merges them into every event, from
structlog or the standard library (`activity.logger`, a library's own logger). Async activities
run in a task of their own, whose context holds the bindings; the SDK copies that context into
the thread a synchronous activity runs in.

Workflow code does not use it: it logs with `workflow.logger`, which knows the workflow and
stays silent while a workflow replays.
"""

from collections.abc import Sequence
from typing import Any

import structlog
import temporalio.activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from api.layout import ClusterRef


def _cluster(argument: object) -> ClusterRef | None:
    cluster = getattr(argument, "cluster", None)
    if not isinstance(cluster, ClusterRef):
        cluster = getattr(getattr(argument, "layout", None), "cluster", None)
    return cluster if isinstance(cluster, ClusterRef) else None


def activity_fields(info: temporalio.activity.Info, args: Sequence[Any]) -> dict[str, object]:
    """What to bind for an activity with `info` called with `args` (one model, by convention
    in this project: activities/messages.py)."""
    fields: dict[str, object] = {
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "activity": info.activity_type,
        "attempt": info.attempt,
    }
    argument = args[0] if args else None
    if (cluster := _cluster(argument)) is not None:
        fields["cluster"] = cluster.key
    node = getattr(argument, "node", None)
    if isinstance(node, str) and node:
        fields["node"] = node
    return {key: value for key, value in fields.items() if value is not None}


class _Activity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        fields = activity_fields(temporalio.activity.info(), input.args)
        with structlog.contextvars.bound_contextvars(**fields):
            return await self.next.execute_activity(input)


class LogContext(Interceptor):
    """Pass to `Worker(..., interceptors=[LogContext()])`."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Activity(next)
