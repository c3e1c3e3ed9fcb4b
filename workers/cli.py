"""`mysqlops`: apply resources, read status, connect, and run the local stack.

Exit codes: 0 success, 1 the operation failed, 2 bad input (nothing was changed).
"""

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import yaml
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError

from api.cluster import ClusterStatus
from api.crd import mysqlcluster_crd
from api.messages import (
    UPDATE_DELETE,
    UPDATE_FORCE_ACTION,
    UPDATE_RESUME,
    UPDATE_START,
    UPDATE_STOP,
    LifecycleRequest,
)
from api.remediation import ForceActionRequest, ForcedAction, Outcome, ResumeRequest
from workers import stack, temporal
from workers.control import (
    UsageError,
    apply,
    command,
    connection_info,
    is_green,
    load_resources,
    running_handle,
    status,
    wait_for,
    wait_for_record,
)

FORCED_ACTIONS = {
    "restart": ForcedAction.RESTART_NODE,
    "kill-and-restart": ForcedAction.KILL_AND_RESTART_NODE,
    "reprovision": ForcedAction.REPROVISION_NODE,
    "bootstrap-from": ForcedAction.BOOTSTRAP_FROM_NODE,
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
    if current.manual_intervention:
        m = current.manual_intervention
        print(f"MANUAL INTERVENTION since {m.since:%Y-%m-%d %H:%M:%S}: {m.reason}")
        print(f"  evidence: {m.evidence}")
        print(
            f"  when it is safe: mysqlops resume {current.workflow_id.split('/')[-1]} --reason ..."
        )
    for record in current.remediations[-3:]:
        print(
            f"repair   {record.id} {record.fault.value} {','.join(record.nodes)} "
            f"attempt {record.attempt}: {record.outcome.value}"
        )
    if current.message:
        print(f"message  {current.message}")


async def _run(args: argparse.Namespace) -> int:
    if args.command == "crd":
        print(yaml.safe_dump(mysqlcluster_crd(), sort_keys=False), end="")
        return 0
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
    if args.command in ("resume", "force-action") and not args.reason.strip():
        raise UsageError(f"{args.command} needs --reason: it is kept in the record and history")
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
        result = await command(client, ns, name, update, LifecycleRequest(reason=args.reason))
        print(result.message)
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
    if args.command == "resume":
        result = await command(client, ns, name, UPDATE_RESUME, ResumeRequest(reason=args.reason))
        print(result.message)
        return 0
    if args.command == "force-action":
        request = ForceActionRequest(
            action=FORCED_ACTIONS[args.action], node=args.node, reason=args.reason, force=args.force
        )
        result = await command(client, ns, name, UPDATE_FORCE_ACTION, request)
        print(result.message)
        if not args.wait or result.task_id is None:
            return 0
        record = await wait_for_record(client, ns, name, result.task_id, args.timeout)
        for entry in record.actions:
            print(
                f"  {entry.action.value} {entry.node or ''}: {entry.outcome.value} {entry.detail}"
            )
        print(f"{record.id}: {record.outcome.value}")
        return 0 if record.outcome is Outcome.SUCCEEDED else 1
    if args.command == "delete":
        handle = await running_handle(client, ns, name)
        result = await command(
            client, ns, name, UPDATE_DELETE, LifecycleRequest(reason=args.reason)
        )
        print(result.message)
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
    resume = named("resume", "hand control back to automation after manual intervention")
    resume.add_argument("--reason", required=True, help="why it is safe now (kept in history)")
    force = named("force-action", "make the controller carry out one named action now")
    force.add_argument("action", choices=sorted(FORCED_ACTIONS), help="what to do")
    force.add_argument("--node", required=True, help="the node it is done to (or from)")
    force.add_argument("--reason", required=True, help="why (kept in the record and history)")
    force.add_argument(
        "--force",
        action="store_true",
        help="carry out a request the safety checks call risky (data is still never deleted)",
    )
    force.add_argument("--wait", action="store_true", help="until it ended; exit 1 unless done")
    force.add_argument("--timeout", type=float, default=600)
    up = sub.add_parser("up", help="start the local stack and the demo cluster")
    up.add_argument("-f", "--file", default="examples/demo-cluster.yaml")
    up.add_argument("--timeout", type=float, default=300)
    sub.add_parser("down", help="stop the local stack (data kept)")
    sub.add_parser("crd", help="print the CustomResourceDefinitions, generated from api/")
    return root


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `mysqlops status x | head` ends quietly
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
