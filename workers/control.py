"""Client-side operations on cluster workflows, shared by the CLI and the local stack.

Bad input raises `UsageError` (the CLI exits 2, nothing changed).
"""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.local.config_check import spec_config_errors
from activities.local.runtime import LocalRuntime
from activities.users import APP_SECRET, APP_USER
from api.backup import MySQLBackup, MySQLRestore
from api.cluster import ClusterStatus, MySQLCluster, MySQLClusterSpec, cluster_workflow_id
from api.layout import ClusterRef
from api.messages import (
    QUERY_SPEC,
    QUERY_STATUS,
    UPDATE_APPLY_SPEC,
    ApplySpecRequest,
    ClusterWorkflowInput,
    CommandResult,
)
from api.remediation import RemediationRecord
from workers import temporal
from workflows.cluster import ClusterWorkflow
from workflows.search import CLUSTER_STATE

GIVE_UP_AFTER = 15.0  # seconds a failed task may stand with nothing queued after it


class UsageError(Exception):
    """Bad input: reported with exit status 2, nothing changed."""


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


async def apply(client: Client, cluster: MySQLCluster) -> str:
    """Start the cluster's workflow, or update a running one. Returns what happened."""
    workflow_id = cluster.workflow_id
    try:
        await client.start_workflow(
            ClusterWorkflow.run,
            ClusterWorkflowInput(cluster=cluster),
            id=workflow_id,
            task_queue=temporal.TASK_QUEUE,
            search_attributes=TypedSearchAttributes([SearchAttributePair(CLUSTER_STATE, "Red")]),
        )
        return f"mysqlcluster {cluster.metadata.name} created (workflow {workflow_id})"
    except WorkflowAlreadyStartedError:
        pass
    handle = client.get_workflow_handle(workflow_id)
    current = await handle.query(QUERY_SPEC, result_type=MySQLClusterSpec)
    if current == cluster.spec:
        return f"mysqlcluster {cluster.metadata.name} unchanged"
    result = await handle.execute_update(
        UPDATE_APPLY_SPEC,
        ApplySpecRequest(spec=cluster.spec, generation=cluster.metadata.generation),
        result_type=CommandResult,
    )
    return f"mysqlcluster {cluster.metadata.name} configured ({result.message})"


async def running_handle(client: Client, namespace: str, name: str) -> WorkflowHandle[Any, Any]:
    handle = client.get_workflow_handle(cluster_workflow_id(namespace, name))
    try:
        description = await handle.describe()
    except RPCError:
        raise UsageError(f"mysqlcluster {namespace}/{name} not found") from None
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise UsageError(f"mysqlcluster {namespace}/{name} not found (its workflow has ended)")
    return handle


async def status(client: Client, namespace: str, name: str) -> ClusterStatus:
    handle = await running_handle(client, namespace, name)
    result: ClusterStatus = await handle.query(QUERY_STATUS, result_type=ClusterStatus)
    return result


async def command(
    client: Client, namespace: str, name: str, update: str, payload: BaseModel
) -> CommandResult:
    """Send an operator command (an update); a validator's refusal becomes a UsageError."""
    handle = await running_handle(client, namespace, name)
    try:
        result: CommandResult = await handle.execute_update(
            update, payload, result_type=CommandResult
        )
    except Exception as error:  # a validator's refusal: nothing was written
        cause = getattr(error, "cause", None) or error
        raise UsageError(f"{update} refused: {getattr(cause, 'message', cause)}") from None
    return result


async def wait_for_record(
    client: Client, namespace: str, name: str, record_id: str, timeout: float
) -> RemediationRecord:
    """Until the task that keeps this record (a repair or a forced action) has ended."""

    def ended(current: ClusterStatus) -> bool:
        return any(r.id == record_id and r.ended_at for r in current.remediations)

    current = await wait_for(client, namespace, name, ended, timeout, f"the end of {record_id}")
    return next(r for r in current.remediations if r.id == record_id)


async def wait_for(
    client: Client,
    namespace: str,
    name: str,
    done: Callable[[ClusterStatus], bool],
    timeout: float,
    what: str,
) -> ClusterStatus:
    """Poll the status until `done`. Gives up early when the controller has stopped trying:
    automation paused for a human, or a failed task followed by nothing for `GIVE_UP_AFTER`."""
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    while True:
        current = await status(client, namespace, name)
        if done(current):
            return current
        idle = current.current_task is None and not current.queued_tasks
        if idle and (paused := current.manual_intervention) is not None:
            raise RuntimeError(f"{what} not reached: manual intervention: {paused.reason}")
        if idle and " failed: " in current.message:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > GIVE_UP_AFTER:
                raise RuntimeError(f"{what} not reached: {current.message}")
        else:
            idle_since = None
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s: {current.message}")
        await asyncio.sleep(0.5)


def is_green(current: ClusterStatus) -> bool:
    return (
        current.state.value == "Green" and current.current_task is None and not current.queued_tasks
    )


def connection_info(current: ClusterStatus, namespace: str, name: str) -> dict[str, Any]:
    if current.endpoints is None:
        raise UsageError(f"mysqlcluster {namespace}/{name} has no endpoints yet")
    runtime = LocalRuntime()
    ref = ClusterRef(namespace=namespace, name=name)
    return {
        "host": current.endpoints.host,
        "port": current.endpoints.writer_port,
        "reader_port": current.endpoints.reader_port,
        "user": APP_USER,
        "password": runtime.read_secret(ref, APP_SECRET),
        "password_file": str(runtime.secret_path(ref, APP_SECRET)),
    }
