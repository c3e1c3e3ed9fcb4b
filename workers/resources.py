"""Resources from YAML files (`mysqlops apply -f`): every document read and validated before
anything is sent (UsageError naming the field otherwise), then a MySQLCluster applied: its
workflow started, or the running one given the new spec."""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.local.config_check import spec_config_errors
from api.backup import MySQLBackup, MySQLRestore
from api.cluster import ClusterStatus, MySQLCluster, TaskInfo, TaskOutcome
from api.messages import UPDATE_APPLY_SPEC, ApplySpecRequest, ClusterWorkflowInput
from api.states import TaskKind
from workers import temporal
from workers.client import DEFAULT_POLL_SECONDS, ClusterClient, green_and_idle
from workers.errors import UsageError
from workflows.cluster import ClusterWorkflow
from workflows.search import CLUSTER_STATE

Resource = MySQLCluster | MySQLBackup | MySQLRestore
KINDS: dict[str, type[Resource]] = {
    "MySQLCluster": MySQLCluster,
    "MySQLBackup": MySQLBackup,
    "MySQLRestore": MySQLRestore,
}


def load_resources(path: Path) -> list[Resource]:
    """Every resource in a YAML file, validated; UsageError naming the field otherwise."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is not valid YAML: {error}") from None
    if not documents:
        raise UsageError(f"{path} holds no resource")
    resources: list[Resource] = []
    for document in documents:
        if not isinstance(document, dict):
            raise UsageError(f"{path}: a resource must be a mapping")
        kind = document.get("kind")
        if kind not in KINDS:
            raise UsageError(f"{path}: kind {kind!r} is not supported here ({', '.join(KINDS)})")
        if document.get("status") is not None:
            raise UsageError(f"{path}: status is written by mysqlops, not applied")
        try:
            resource = KINDS[kind].model_validate(document)
        except ValidationError as error:
            raise UsageError(_explain(path, kind, error)) from None
        if isinstance(resource, MySQLCluster) and (refused := spec_config_errors(resource.spec)):
            raise UsageError(
                f"{path}: invalid {kind}: spec.mysql.config: the server refuses it: {refused}"
            )
        resources.append(resource)
    return resources


def _explain(path: Path, kind: str, error: ValidationError) -> str:
    lines = [f"{path}: invalid {kind}:"]
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown field"
        lines.append(f"  {field}: {message}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Applied:
    """What `apply_cluster` did: `task_id` is the task applying the change (None when the
    cluster was created, see `task`, or nothing changed)."""

    cluster: ClusterClient
    message: str
    created: bool
    task_id: str | None

    async def until_green(
        self, timeout: float, depends_on: Iterable[str | None] = ()
    ) -> ClusterStatus:
        """Until the cluster is Green with nothing to do; gives up when the applying task (or
        one of `depends_on`) failed, or automation paused for a human."""
        depends = [await self.task(), *depends_on]
        return await self.cluster.wait_until(green_and_idle, timeout, "Green", depends_on=depends)

    async def task(self) -> str | None:
        """The task to wait for: the update's, or the creation's, read from the status (which
        answers once a worker has run the workflow's first step)."""
        if not self.created:
            return self.task_id
        current = await self.cluster.status()
        running = [current.current_task] if current.current_task else []
        tasks: list[TaskInfo | TaskOutcome] = [*running, *current.queued_tasks, *current.outcomes]
        return next((t.id for t in tasks if t.kind is TaskKind.CREATE), None)


async def start_cluster(
    client: Client,
    cluster: MySQLCluster,
    task_queue: str = temporal.TASK_QUEUE,
    conflict: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.FAIL,
) -> None:
    """Start the cluster's workflow, `mysqlcluster/<namespace>/<name>`. With the default
    conflict policy, a running one raises WorkflowAlreadyStartedError; with USE_EXISTING it is
    left as it is (a watcher started twice never makes two)."""
    await client.start_workflow(
        ClusterWorkflow.run,
        ClusterWorkflowInput(cluster=cluster),
        id=cluster.workflow_id,
        task_queue=task_queue,
        id_conflict_policy=conflict,
        search_attributes=TypedSearchAttributes([SearchAttributePair(CLUSTER_STATE, "Red")]),
    )


async def apply_cluster(
    client: Client, cluster: MySQLCluster, poll_seconds: float = DEFAULT_POLL_SECONDS
) -> Applied:
    """Start the cluster's workflow, or give the running one this spec. The same spec again
    changes nothing, unless the last attempt at it failed: then it is tried again."""
    name = cluster.metadata.name
    target = ClusterClient.of(client, cluster.metadata.namespace, name, poll_seconds)
    try:
        await start_cluster(client, cluster)
        message = f"mysqlcluster {name} created (workflow {cluster.workflow_id})"
        return Applied(target, message, created=True, task_id=None)
    except WorkflowAlreadyStartedError:
        pass
    if await target.spec() == cluster.spec and (await target.status()).spec_progress.converged:
        return Applied(target, f"mysqlcluster {name} unchanged", created=False, task_id=None)
    result = await target.command(
        UPDATE_APPLY_SPEC,
        ApplySpecRequest(spec=cluster.spec, generation=cluster.metadata.generation),
    )
    message = f"mysqlcluster {name} configured ({result.message})"
    return Applied(target, message, created=False, task_id=result.task_id)
