"""`mysqlops`: apply resources, read status, connect, and run the local stack.

Exit codes: 0 success, 1 the operation failed, 2 bad input (nothing was changed).
"""

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import TemporalError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.local.runtime import LocalRuntime
from activities.users import APP_SECRET, APP_USER
from api.cluster import ClusterStatus, MySQLCluster, MySQLClusterSpec, cluster_workflow_id
from api.layout import ClusterRef
from api.messages import (
    QUERY_SPEC,
    QUERY_STATUS,
    UPDATE_APPLY_SPEC,
    UPDATE_DELETE,
    UPDATE_START,
    UPDATE_STOP,
    ApplySpecRequest,
    ClusterWorkflowInput,
    CommandResult,
    LifecycleRequest,
)
from workers import stack, temporal
from workflows.cluster import CLUSTER_STATE, ClusterWorkflow


class UsageError(Exception):
    """Bad input: reported with exit status 2, nothing changed."""


def load_resources(path: Path) -> list[MySQLCluster]:
    """Every MySQLCluster in a YAML file, validated; UsageError naming the field otherwise."""
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
    clusters = []
    for document in documents:
        if not isinstance(document, dict):
            raise UsageError(f"{path}: a resource must be a mapping")
        kind = document.get("kind")
        if kind != "MySQLCluster":
            raise UsageError(f"{path}: kind {kind!r} is not supported here (MySQLCluster)")
        if document.get("status") is not None:
            raise UsageError(f"{path}: status is written by mysqlops, not applied")
        try:
            clusters.append(MySQLCluster.model_validate(document))
        except ValidationError as error:
            raise UsageError(_explain(path, error)) from None
    return clusters


def _explain(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid MySQLCluster:"]
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


async def command(client: Client, namespace: str, name: str, update: str, reason: str) -> str:
    handle = await running_handle(client, namespace, name)
    try:
        result = await handle.execute_update(
            update, LifecycleRequest(reason=reason), result_type=CommandResult
        )
    except Exception as error:  # a validator's refusal: nothing was written
        raise UsageError(f"{update} refused: {getattr(error, 'cause', None) or error}") from None
    return str(result.message)


async def wait_for(
    client: Client, namespace: str, name: str, done: Any, timeout: float, what: str
) -> ClusterStatus:
    deadline = time.monotonic() + timeout
    while True:
        current = await status(client, namespace, name)
        if done(current):
            return current
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


def print_status(current: ClusterStatus) -> None:
    print(
        f"cluster  {current.workflow_id}  state={current.state.value}  phase={current.phase.value}"
    )
    print(f"writer   {current.writer or '-'}    ready {current.ready_replicas}/{current.replicas}")
    if current.endpoints:
        e = current.endpoints
        print(f"endpoint writer {e.host}:{e.writer_port}  reader {e.host}:{e.reader_port}")
    for node in current.nodes:
        facts = node.facts
        print(
            f"  {node.name:<14} {node.state.value:<12} {node.host}:{node.port:<6} "
            f"pid={node.pid or '-':<8} wsrep={facts.wsrep_state or '-'}/"
            f"{facts.wsrep_cluster_status or '-'}  {node.reason}"
        )
    if current.current_task:
        print(f"task     {current.current_task.id} running")
    for task in current.queued_tasks:
        print(f"queued   {task.id}")
    if current.message:
        print(f"message  {current.message}")


async def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        return await stack.up(Path(args.file), timeout=args.timeout)
    if args.command == "down":
        return await stack.down()
    if args.command == "apply":
        clusters = load_resources(Path(args.file))  # validate everything before any change
        client = await temporal.connect()
        for cluster in clusters:
            print(await apply(client, cluster))
        if args.wait:
            for cluster in clusters:
                await wait_for(
                    client,
                    cluster.metadata.namespace,
                    cluster.metadata.name,
                    is_green,
                    args.timeout,
                    "Green",
                )
        return 0
    client = await temporal.connect()
    ns, name = args.namespace, args.name
    if args.command == "status":
        current = await status(client, ns, name)
        if args.json:
            print(json.dumps(current.model_dump(mode="json", by_alias=True), indent=2))
        else:
            print_status(current)
        return 0
    if args.command == "connect":
        info = connection_info(await status(client, ns, name), ns, name)
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print(
                f"mariadb -h {info['host']} -P {info['port']} -u {info['user']} "
                f'-p"$(cat {info["password_file"]})"'
            )
            print(f"# reader endpoint: port {info['reader_port']}")
        return 0
    if args.command in ("stop", "start"):
        update = UPDATE_STOP if args.command == "stop" else UPDATE_START
        print(await command(client, ns, name, update, args.reason))
        if args.wait:
            want = "Stopped" if args.command == "stop" else "Running"
            await wait_for(
                client,
                ns,
                name,
                lambda s: s.phase.value == want and s.current_task is None and not s.queued_tasks,
                args.timeout,
                want,
            )
        return 0
    if args.command == "delete":
        handle = await running_handle(client, ns, name)
        print(await command(client, ns, name, UPDATE_DELETE, args.reason))
        if args.wait:
            await asyncio.wait_for(handle.result(), timeout=args.timeout)
            print(f"mysqlcluster {name} deleted")
        return 0
    raise UsageError(f"unknown command {args.command}")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mysqlops", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    def named(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("name", help="cluster name")
        command.add_argument("-n", "--namespace", default="default")
        return command

    apply_cmd = sub.add_parser("apply", help="create or update clusters from a YAML file")
    apply_cmd.add_argument("-f", "--file", required=True)
    apply_cmd.add_argument("--wait", action="store_true", help="until every cluster is Green")
    apply_cmd.add_argument("--timeout", type=float, default=600)
    status_cmd = named("status", "show a cluster's status")
    status_cmd.add_argument("--json", action="store_true")
    connect_cmd = named("connect", "how to reach a cluster through its load balancer")
    connect_cmd.add_argument("--json", action="store_true")
    for verb, text in (
        ("stop", "stop every node gracefully (data kept)"),
        ("start", "start a stopped cluster"),
        ("delete", "stop the cluster and end its workflow (data kept unless deletionPolicy)"),
    ):
        cmd = named(verb, text)
        cmd.add_argument("--reason", default="")
        cmd.add_argument("--wait", action="store_true")
        cmd.add_argument("--timeout", type=float, default=300)
    up = sub.add_parser("up", help="start the local stack and the demo cluster")
    up.add_argument("-f", "--file", default="examples/demo-cluster.yaml")
    up.add_argument("--timeout", type=float, default=300)
    sub.add_parser("down", help="stop the local stack (data kept)")
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = asyncio.run(_run(args))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    except (RuntimeError, TimeoutError, RPCError, TemporalError) as error:
        print(f"error: {error}", file=sys.stderr)
        code = 1
    # Exit without interpreter teardown: the Temporal core's threads can crash while being
    # torn down after the event loop closed (seen as SIGSEGV under load); all output is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
