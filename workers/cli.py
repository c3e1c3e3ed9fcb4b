"""`mysqlops`: apply resources, read status, connect, and run the local stack.

Exit codes: 0 success, 1 the operation failed, 2 bad input (nothing was changed).
"""

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import yaml
from temporalio.client import Client
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError

from activities.local.paths import state_home
from api.backup import (
    BackupManifest,
    BackupPhase,
    BackupRecord,
    MySQLBackup,
    RestoreRecord,
)
from api.cluster import ClusterStatus, MySQLCluster
from api.crd import crds
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
from workers.backup_control import (
    follow_backup,
    follow_restore,
    schedule_summary,
    start_backup,
    start_restore,
    stored_backups,
    with_progress,
)
from workers.chaos import report, runner
from workers.chaos.cluster import LocalCluster
from workers.chaos.faults import KINDS
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
        if node.last_join is not None and node.last_join.at is not None:
            join = node.last_join
            print(f"    last joined {join.at:%Y-%m-%d %H:%M:%S} by {join.detail}")
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
        for joined in [action.join for action in record.actions if action.join]:
            print(f"           {joined.detail}")
    for taken in current.backups[-3:]:
        size = f"{taken.size_bytes / 2**20:.1f} MiB" if taken.size_bytes else ""
        done = f"{taken.progress_bytes / 2**20:.0f} MiB streamed" if taken.progress_bytes else ""
        print(
            f"backup   {taken.name} {taken.phase.value} {taken.node or ''} {size or done} "
            f"{taken.error or ''}".rstrip()
        )
    for restored in current.restores[-1:]:
        print(
            f"restore  {restored.task_id} of {restored.backup or 'latest'}: "
            f"{restored.phase.value} {restored.error or ''}".rstrip()
        )
        if restored.phase is BackupPhase.FAILED and restored.rollback:
            print(f"  {restored.rollback}")
    if current.message:
        print(f"message  {current.message}")


async def _run(args: argparse.Namespace) -> int:
    if args.command == "crd":
        print(yaml.safe_dump_all(crds(), sort_keys=False), end="")
        return 0
    if args.command == "up":
        return await stack.up(Path(args.file), timeout=args.timeout)
    if args.command == "down":
        return await stack.down()
    if args.command == "apply":
        return await _apply(args)
    if args.command == "chaos":
        return await _chaos(args)
    if args.command in ("resume", "force-action") and not args.reason.strip():
        raise UsageError(f"{args.command} needs --reason: it is kept in the record and history")
    client = await temporal.connect()
    ns, name = args.namespace, args.name
    if args.command == "status":
        current = await with_progress(client, ns, name, await status(client, ns, name))
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
    if args.command in ("backup", "backups", "restore"):
        return await _backup_command(client, args)
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


async def _backup_command(client: Client, args: argparse.Namespace) -> int:
    ns, name = args.namespace, args.name
    if args.command == "backups":
        stored = await stored_backups(client, ns, name)
        if args.json:
            print(json.dumps([_manifest_json(m) for m in stored], indent=2))
            return 0
        print(await schedule_summary(client, ns, name) or "no backup schedule")
        _print_backups(stored)
        return 0
    if args.command == "backup":
        backup = await start_backup(client, ns, name, args.backup, args.reason or "mysqlops backup")
        if not args.wait:
            print(json.dumps({"name": backup}) if args.json else f"backup {backup} queued")
            return 0
        taken = await follow_backup(client, ns, name, backup, args.timeout, _show_progress)
        _print_record(taken, args.json)
        return 0 if taken.phase is BackupPhase.SUCCEEDED else 1
    wanted = None if args.backup == "latest" else args.backup
    task_id = await start_restore(client, ns, name, wanted, args.reason or "mysqlops restore")
    if not args.wait:
        print(json.dumps({"taskId": task_id}) if args.json else f"restore queued as {task_id}")
        return 0
    restored, _ = await follow_restore(client, ns, name, task_id, args.timeout)
    _print_record(restored, args.json)
    return 0 if restored.phase is BackupPhase.SUCCEEDED else 1


async def _chaos(args: argparse.Namespace) -> int:
    if args.faults < 1 or args.partition_seconds <= 0:
        raise UsageError("--faults must be at least 1 and --partition-seconds more than 0")
    options = runner.ChaosOptions(
        namespace=args.namespace,
        name=args.name,
        faults=args.faults,
        seed=args.seed,
        kinds=runner.parse_kinds(args.kinds),
        partition_seconds=args.partition_seconds,
    )
    runner.preflight(options.kinds)
    LocalCluster.find(state_home(), options.namespace, options.name)  # before any connection
    client = await temporal.connect()
    chaos = await runner.run(
        client, state_home(), options, lambda line: print(line, file=sys.stderr, flush=True)
    )
    print(json.dumps(chaos.to_json(), indent=2) if args.json else report.render(chaos))
    return 0 if chaos.passed else 1


async def _apply(args: argparse.Namespace) -> int:
    resources = load_resources(Path(args.file))  # validate everything before any change
    client = await temporal.connect()
    waits: list[Callable[[], Awaitable[object]]] = []
    for resource in resources:
        ns, name = resource.metadata.namespace, resource.metadata.name
        if isinstance(resource, MySQLCluster):
            print(await apply(client, resource))
            waits.append(partial(wait_for, client, ns, name, is_green, args.timeout, "Green"))
        elif isinstance(resource, MySQLBackup):
            cluster = resource.spec.cluster
            known = await status(client, ns, cluster)
            if any(b.name == name for b in known.backups):
                print(f"mysqlbackup {name} unchanged")
            else:
                await start_backup(client, ns, cluster, name, f"MySQLBackup {name} applied")
                print(f"mysqlbackup {name} queued on mysqlcluster {cluster}")
            waits.append(
                partial(follow_backup, client, ns, cluster, name, args.timeout, _show_progress)
            )
        else:
            cluster, backup = resource.spec.cluster, resource.spec.backup
            known = await status(client, ns, cluster)
            done = next((r for r in known.restores if r.name == name), None)
            if done is not None:
                print(f"mysqlrestore {name} unchanged ({done.phase.value}): a restore runs once")
                continue
            task_id = await start_restore(
                client, ns, cluster, backup, f"MySQLRestore {name} applied", resource=name
            )
            print(f"mysqlrestore {name} queued on mysqlcluster {cluster} as {task_id}")
            waits.append(partial(follow_restore, client, ns, cluster, task_id, args.timeout))
    failed = 0
    if args.wait:
        for wait in waits:
            ended = await wait()
            record = ended[0] if isinstance(ended, tuple) else ended
            if isinstance(record, BackupRecord | RestoreRecord):
                what = record.name if isinstance(record, BackupRecord) else record.task_id
                print(f"{what}: {record.phase.value} {record.error or ''}".rstrip())
                failed += record.phase is BackupPhase.FAILED
    return 1 if failed else 0


def _show_progress(record: BackupRecord) -> None:
    done = f"{record.progress_bytes / 2**20:.0f} MiB streamed" if record.progress_bytes else ""
    print(f"backup {record.name}: {record.phase.value} {done}".rstrip(), file=sys.stderr)


def _print_record(record: BackupRecord | RestoreRecord, as_json: bool) -> None:
    data = record.model_dump(mode="json", by_alias=True)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if value not in (None, [], {}):
            print(f"{key:<20} {value}")


def _manifest_json(manifest: BackupManifest) -> dict[str, object]:
    data = manifest.model_dump(mode="json", by_alias=True)
    data["position"] = manifest.position
    return data


def _print_backups(stored: list[BackupManifest]) -> None:
    if not stored:
        print("no backups")
        return
    print(f"{'NAME':<28} {'FINISHED (UTC)':<20} {'SIZE':>10}  {'POSITION':<44} PATH")
    for m in stored:
        print(
            f"{m.name:<28} {m.finished_at:%Y-%m-%d %H:%M:%S} {m.stored_bytes / 2**20:>8.1f}Mi  "
            f"{m.position:<44} {m.location}"
        )


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
    backup = named("backup", "take a hot backup now (queued behind running tasks)")
    backup.add_argument("--backup", help="its name (default: <cluster>-<UTC time>)")
    backup.add_argument("--reason", default="")
    backup.add_argument("--wait", action="store_true", help="until it ended; exit 1 unless done")
    backup.add_argument("--json", action="store_true")
    backup.add_argument("--timeout", type=float, default=6 * 3600)
    backups = named("backups", "list the stored backups of a cluster")
    backups.add_argument("--json", action="store_true")
    restore = named("restore", "restore a backup into the cluster, in place")
    restore.add_argument("--backup", required=True, help="a backup name, or 'latest'")
    restore.add_argument("--reason", default="")
    restore.add_argument("--wait", action="store_true", help="until Green again; exit 1 unless")
    restore.add_argument("--json", action="store_true")
    restore.add_argument("--timeout", type=float, default=6 * 3600)
    chaos = named("chaos", "inject faults one at a time under a writer, then check the data")
    chaos.add_argument("--faults", type=int, default=6, help="how many faults, one at a time")
    chaos.add_argument("--seed", type=int, default=1, help="seed of the choice of faults")
    chaos.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated, among {','.join(KINDS)}"
    )
    chaos.add_argument(
        "--partition-seconds", type=float, default=15, help="how long a partition is held"
    )
    chaos.add_argument("--json", action="store_true")
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
