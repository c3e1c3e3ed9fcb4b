"""`mysqlops`: apply resources, read status, connect, and run the local stack.

Exit codes: 0 success, 1 the operation failed or its outcome is unknown, 2 bad input or a
command the cluster refused (nothing was changed).
"""

import argparse
import asyncio
import importlib
import json
import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError
from temporalio.client import Client
from temporalio.exceptions import TemporalError

from activities.local.paths import state_home
from api.backup import Duration, MySQLBackup, MySQLRestore
from api.cluster import MySQLCluster
from api.crd import crds, write_crds
from api.layout import ClusterRef
from api.messages import (
    UPDATE_DELETE,
    UPDATE_FORCE_ACTION,
    UPDATE_RESUME,
    UPDATE_START,
    UPDATE_STOP,
    CommandResult,
    LifecycleRequest,
)
from api.remediation import ForceActionRequest, ForcedAction, Outcome, ResumeRequest
from api.states import BackupPhase, Phase
from workers import logs, show, stack, top
from workers.backup_client import (
    finished_backup,
    finished_restore,
    schedule_summary,
    start_backup,
    start_restore,
    stored_backups,
    with_progress,
)
from workers.chaos import report, runner
from workers.chaos.cluster import LocalCluster
from workers.chaos.faults import KINDS
from workers.client import ClusterClient, settled_in
from workers.credentials import app_access
from workers.errors import UsageError
from workers.resources import apply_cluster, load_resources
from workers.temporal import connection, temporal_flags

FORCED_ACTIONS = {
    "restart": ForcedAction.RESTART_NODE,
    "kill-and-restart": ForcedAction.KILL_AND_RESTART_NODE,
    "reprovision": ForcedAction.REPROVISION_NODE,
    "bootstrap-from": ForcedAction.BOOTSTRAP_FROM_NODE,
}

Wait = Callable[[], Awaitable[bool]]  # waits for one applied resource; whether it succeeded


# -- reaching Temporal and the cluster --------------------------------------------------------


async def connect(args: argparse.Namespace) -> Client:
    return await connection(args).connect()


async def cluster_of(args: argparse.Namespace) -> ClusterClient:
    return await ClusterClient.attach(await connect(args), args.namespace, args.name)


def reason_given(args: argparse.Namespace) -> str:
    if not args.reason.strip():
        raise UsageError(f"{args.command} needs --reason: it is kept in the record and history")
    return str(args.reason)


# -- commands: one function each, bound by the parser -----------------------------------------


async def crd_command(args: argparse.Namespace) -> int:
    if args.output_dir is None:
        print(yaml.safe_dump_all(crds(), sort_keys=False), end="")
        return 0
    for path in write_crds(Path(args.output_dir)):
        print(f"wrote {path}")
    return 0


async def up_command(args: argparse.Namespace) -> int:
    return await stack.up(Path(args.file), args.timeout, connection(args), args.prometheus)


async def down_command(args: argparse.Namespace) -> int:
    return await stack.down(connection(args))


async def status_command(args: argparse.Namespace) -> int:
    if args.watch:
        if args.json:
            raise UsageError("status --watch draws a live view: it has no --json")
        return await watch_command(args)
    if args.name is None:
        raise UsageError("status needs a cluster name (or --watch: every cluster, live)")
    cluster = await cluster_of(args)
    current = await with_progress(cluster, await cluster.status())
    if args.json:
        print(json.dumps(current.model_dump(mode="json", by_alias=True), indent=2))
    else:
        show.status(current)
    return 0


async def top_command(args: argparse.Namespace) -> int:
    return await top.run(await connect(args), args.interval, args.once)


async def watch_command(args: argparse.Namespace) -> int:
    """status --watch: every cluster as `top` does, or the one named."""
    client = await connect(args)
    if args.name is None:
        return await top.run(client, args.interval, once=False)
    await ClusterClient.attach(client, args.namespace, args.name)  # not running: exit 2
    ref = ClusterRef(namespace=args.namespace, name=args.name)
    return await top.run(client, args.interval, once=False, cluster=ref)


async def connect_command(args: argparse.Namespace) -> int:
    cluster = await cluster_of(args)
    ref = ClusterRef(namespace=args.namespace, name=args.name)
    access = app_access(await cluster.status(), ref)
    if args.json:
        print(json.dumps(access.to_json(), indent=2))
    else:
        print(access.command())
        print(f"# reader endpoint: {access.command(port=access.reader_port)}")
    return 0


async def lifecycle_command(args: argparse.Namespace) -> int:
    """stop, start: a task, waited for with --wait."""
    update, phase = {
        "stop": (UPDATE_STOP, Phase.STOPPED),
        "start": (UPDATE_START, Phase.RUNNING),
    }[args.command]
    cluster = await cluster_of(args)
    result = await cluster.command(update, LifecycleRequest(reason=args.reason))
    print(result.message)
    if args.wait:
        await wait_for_command(cluster, result, args.timeout, phase)
    return 0


async def wait_for_command(
    cluster: ClusterClient, result: CommandResult, timeout: float, phase: Phase
) -> None:
    """Until the command's task succeeded (TaskFailed otherwise); a start asked while the
    cluster is being created has no task of its own: until the cluster runs."""
    if result.task_id is not None:
        await cluster.wait_for_task(result.task_id, timeout)
    else:
        await cluster.wait_until(settled_in(phase), timeout, phase.value)


async def delete_command(args: argparse.Namespace) -> int:
    cluster = await cluster_of(args)
    result = await cluster.command(UPDATE_DELETE, LifecycleRequest(reason=args.reason))
    print(result.message)
    if args.wait:
        await cluster.wait_deleted(result.task_id, args.timeout)
        print(f"mysqlcluster {args.name} deleted")
    return 0


async def resume_command(args: argparse.Namespace) -> int:
    request = ResumeRequest(reason=reason_given(args))
    result = await (await cluster_of(args)).command(UPDATE_RESUME, request)
    print(result.message)
    return 0


async def force_action_command(args: argparse.Namespace) -> int:
    request = ForceActionRequest(
        action=FORCED_ACTIONS[args.action],
        node=args.node,
        reason=reason_given(args),
        force=args.force,
    )
    cluster = await cluster_of(args)
    result = await cluster.command(UPDATE_FORCE_ACTION, request)
    print(result.message)
    if not args.wait or result.task_id is None:
        return 0
    ended = await cluster.wait_for_task(result.task_id, args.timeout, check=False)
    record = await cluster.remediation(result.task_id)  # the forced action's task id is its id
    if record is not None:
        show.remediation(record)
    else:
        print(f"{ended.id}: {ended.outcome.value} {ended.error}".rstrip())
    done = ended.outcome is Outcome.SUCCEEDED
    return 0 if done and (record is None or record.outcome is Outcome.SUCCEEDED) else 1


async def backup_command(args: argparse.Namespace) -> int:
    cluster = await cluster_of(args)
    reason = args.reason or "mysqlops backup"
    result = await start_backup(cluster, args.backup, reason, keep_for=args.keep_for)
    if not args.wait or result.task_id is None:
        queued = {"name": result.name, "taskId": result.task_id}
        print(json.dumps(queued) if args.json else f"backup {result.name} queued")
        return 0
    record = await finished_backup(cluster, result.task_id, args.timeout, show.backup_progress)
    show.record(record, args.json)
    return 0 if record.phase is BackupPhase.SUCCEEDED else 1


async def backups_command(args: argparse.Namespace) -> int:
    client = await connect(args)
    stored = await stored_backups(client, args.namespace, args.name)
    if args.json:
        print(json.dumps([show.manifest_json(m) for m in stored], indent=2))
        return 0
    print(await schedule_summary(client, args.namespace, args.name) or "no backup schedule")
    show.backups(stored)
    return 0


async def restore_command(args: argparse.Namespace) -> int:
    cluster = await cluster_of(args)
    wanted = None if args.backup == "latest" else args.backup
    result = await start_restore(cluster, wanted, args.reason or "mysqlops restore")
    if not args.wait or result.task_id is None:
        print(json.dumps({"taskId": result.task_id}) if args.json else result.message)
        return 0
    restored, _ = await finished_restore(cluster, result.task_id, args.timeout)
    show.record(restored, args.json)
    return 0 if restored.phase is BackupPhase.SUCCEEDED else 1


async def chaos_command(args: argparse.Namespace) -> int:
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
    client = await connect(args)
    chaos = await runner.run(
        client, state_home(), options, lambda line: print(line, file=sys.stderr, flush=True)
    )
    print(json.dumps(chaos.to_json(), indent=2) if args.json else report.render(chaos))
    return 0 if chaos.passed else 1


# -- apply: each resource applied at once, waited for in turn with --wait -----------------------


async def apply_command(args: argparse.Namespace) -> int:
    resources = load_resources(Path(args.file))  # validate everything before any change
    client = await connect(args)
    waits: list[Wait] = []
    for resource in resources:
        if isinstance(resource, MySQLCluster):
            waits.append(await apply_cluster_resource(client, resource, args.timeout))
        elif isinstance(resource, MySQLBackup):
            waits.append(await apply_backup(client, resource, args.timeout))
        elif (wait := await apply_restore(client, resource, args.timeout)) is not None:
            waits.append(wait)
    if not args.wait:
        return 0
    succeeded = [await wait() for wait in waits]
    return 0 if all(succeeded) else 1


async def apply_cluster_resource(client: Client, resource: MySQLCluster, timeout: float) -> Wait:
    applied = await apply_cluster(client, resource)
    print(applied.message)

    async def green() -> bool:
        await applied.until_green(timeout)
        return True

    return green


async def apply_backup(client: Client, resource: MySQLBackup, timeout: float) -> Wait:
    """A MySQLBackup is taken once: applied again, it is reported, not taken again."""
    name = resource.metadata.name
    cluster = await ClusterClient.attach(client, resource.metadata.namespace, resource.spec.cluster)
    known = next((b for b in (await cluster.status()).backups if b.name == name), None)
    task_id: str | None
    if known is not None:
        print(f"mysqlbackup {name} unchanged")
        task_id = known.task_id
    else:
        reason = f"MySQLBackup {name} applied"
        result = await start_backup(cluster, name, reason, keep_for=resource.spec.keep_for)
        print(f"mysqlbackup {name} queued on mysqlcluster {resource.spec.cluster}")
        task_id = result.task_id

    async def taken() -> bool:
        if known is not None and known.phase in (BackupPhase.SUCCEEDED, BackupPhase.FAILED):
            record = known
        elif task_id is None:
            raise RuntimeError(f"backup {name} was queued without a task to follow")
        else:
            record = await finished_backup(cluster, task_id, timeout, show.backup_progress)
        print(f"{record.name}: {record.phase.value} {record.error or ''}".rstrip())
        return record.phase is BackupPhase.SUCCEEDED

    return taken


async def apply_restore(client: Client, resource: MySQLRestore, timeout: float) -> Wait | None:
    """A MySQLRestore runs once: applied again, it changes nothing (and has nothing to wait
    for)."""
    name, target = resource.metadata.name, resource.spec.cluster
    cluster = await ClusterClient.attach(client, resource.metadata.namespace, target)
    done = next((r for r in (await cluster.status()).restores if r.name == name), None)
    if done is not None:
        print(f"mysqlrestore {name} unchanged ({done.phase.value}): a restore runs once")
        return None
    reason = f"MySQLRestore {name} applied"
    result = await start_restore(cluster, resource.spec.backup, reason, resource=name)
    print(f"mysqlrestore {name} queued on mysqlcluster {target} as {result.task_id}")
    task_id = result.task_id
    if task_id is None:
        raise RuntimeError(f"mysqlrestore {name} was queued without a task to follow")

    async def restored() -> bool:
        record, _ = await finished_restore(cluster, task_id, timeout)
        print(f"{record.task_id}: {record.phase.value} {record.error or ''}".rstrip())
        return record.phase is BackupPhase.SUCCEEDED

    return restored


# -- the command line -------------------------------------------------------------------------


def duration(text: str) -> str:
    """A duration such as '30d' or '12h', checked as the resources check it."""
    try:
        return str(TypeAdapter(Duration).validate_python(text))
    except ValidationError as error:
        raise argparse.ArgumentTypeError(error.errors()[0]["msg"]) from None


def positive_seconds(text: str) -> float:
    """A number of seconds more than 0 ('2', '0.5')."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return seconds


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mysqlops", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    flags = temporal_flags()

    def command(
        name: str, func: Callable[[argparse.Namespace], Awaitable[int]], help_text: str
    ) -> argparse.ArgumentParser:
        parsed = sub.add_parser(name, help=help_text, parents=[flags])
        parsed.set_defaults(func=func)
        return parsed

    def named(
        name: str, func: Callable[[argparse.Namespace], Awaitable[int]], help_text: str
    ) -> argparse.ArgumentParser:
        parsed = command(name, func, help_text)
        parsed.add_argument("name", help="cluster name")
        parsed.add_argument("-n", "--namespace", default="default")
        return parsed

    apply = command("apply", apply_command, "create or update clusters from a YAML file")
    apply.add_argument("-f", "--file", required=True)
    apply.add_argument("--wait", action="store_true", help="until every cluster is Green")
    apply.add_argument("--timeout", type=float, default=600)
    status = command("status", status_command, "show a cluster's status (--watch: live)")
    status.add_argument("name", nargs="?", help="cluster name (with --watch: default every one)")
    status.add_argument("-n", "--namespace", default="default")
    status.add_argument("--json", action="store_true")
    status.add_argument("--watch", action="store_true", help="redraw it in place, as top does")
    status.add_argument(
        "--interval", type=positive_seconds, default=2.0, metavar="SECONDS", help="with --watch"
    )
    live = command("top", top_command, "every cluster, live: states, tasks, repairs, backups")
    live.add_argument(
        "--interval", type=positive_seconds, default=2.0, metavar="SECONDS", help="default 2"
    )
    live.add_argument("--once", action="store_true", help="print one snapshot and exit")
    named(
        "connect", connect_command, "a mariadb command line for the cluster's writer endpoint"
    ).add_argument("--json", action="store_true")
    for verb, func, text in (
        ("stop", lifecycle_command, "stop every node gracefully (data kept)"),
        ("start", lifecycle_command, "start a stopped cluster"),
        (
            "delete",
            delete_command,
            "stop the cluster and end its workflow (data kept unless deletionPolicy)",
        ),
    ):
        lifecycle = named(verb, func, text)
        lifecycle.add_argument("--reason", default="")
        lifecycle.add_argument("--wait", action="store_true", help="until done; exit 1 unless")
        lifecycle.add_argument("--timeout", type=float, default=300)
    resume = named("resume", resume_command, "hand control back to automation after a pause")
    resume.add_argument("--reason", required=True, help="why it is safe now (kept in history)")
    force = named("force-action", force_action_command, "make the controller act now")
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
    backup = named("backup", backup_command, "take a hot backup now (queued behind running tasks)")
    backup.add_argument("--backup", help="its name (default: <cluster>-<UTC time>)")
    backup.add_argument(
        "--keep-for",
        type=duration,
        metavar="DURATION",
        help="delete it once this has passed ('30d'); default: keep until deleted by hand",
    )
    backup.add_argument("--reason", default="")
    backup.add_argument("--wait", action="store_true", help="until it ended; exit 1 unless done")
    backup.add_argument("--json", action="store_true")
    backup.add_argument("--timeout", type=float, default=6 * 3600)
    named("backups", backups_command, "list the stored backups of a cluster").add_argument(
        "--json", action="store_true"
    )
    restore = named("restore", restore_command, "restore a backup into the cluster, in place")
    restore.add_argument("--backup", required=True, help="a backup name, or 'latest'")
    restore.add_argument("--reason", default="")
    restore.add_argument("--wait", action="store_true", help="until Green again; exit 1 unless")
    restore.add_argument("--json", action="store_true")
    restore.add_argument("--timeout", type=float, default=6 * 3600)
    chaos = named("chaos", chaos_command, "inject faults under a writer, then check the data")
    chaos.add_argument("--faults", type=int, default=6, help="how many faults, one at a time")
    chaos.add_argument("--seed", type=int, default=1, help="seed of the choice of faults")
    chaos.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated, among {','.join(KINDS)}"
    )
    chaos.add_argument(
        "--partition-seconds", type=float, default=15, help="how long a partition is held"
    )
    chaos.add_argument("--json", action="store_true")
    up = command("up", up_command, "start the local stack and the demo cluster")
    up.add_argument("-f", "--file", default="examples/demo-cluster.yaml")
    up.add_argument("--timeout", type=float, default=300)
    up.add_argument(
        "--prometheus",
        action="store_true",
        default=os.environ.get("MYSQLOPS_PROMETHEUS", "") not in ("", "0"),
        help="also a Prometheus scraping the stack, with the alert rules "
        f"({stack.PROMETHEUS_ADDRESS}; MYSQLOPS_PROMETHEUS=1)",
    )
    command("down", down_command, "stop the local stack (data kept)")
    for name, (_, text) in SERVICES.items():
        sub.add_parser(name, help=text, add_help=False)  # dispatched by main before parsing
    crd = sub.add_parser("crd", help="print the CustomResourceDefinitions, generated from api/")
    crd.add_argument(
        "--output-dir", help="write one file per CRD there instead (make crds: the chart's crds/)"
    )
    crd.set_defaults(func=crd_command)
    return root


def exit_status(error: BaseException) -> int | None:
    """The exit status an error ends the CLI with; None: not one the CLI reports (a bug)."""
    if isinstance(error, UsageError):  # CommandRefused too: nothing was changed
        return 2
    if isinstance(error, RuntimeError | TimeoutError | TemporalError):
        return 1  # Unreachable, OutcomeUnknown, TaskFailed, NotReached, RPC errors
    return None


# Long-running processes with parsers of their own: `mysqlops worker --help` tells their flags.
SERVICES = {
    "worker": ("workers.worker", "run cluster workflows and their activities"),
    "operator": ("workers.operator.main", "watch MySQLCluster/Backup/Restore objects (Kubernetes)"),
    "agent": ("workers.agent.main", "the node agent beside one mariadbd"),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SERVICES:
        service: Any = importlib.import_module(SERVICES[argv[0]][0])
        sys.exit(service.main(argv[1:]))
    logs.configure()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `mysqlops status x | head` ends quietly
    args = parser().parse_args(argv)
    try:
        code = asyncio.run(args.func(args))
    except Exception as error:
        code_for = exit_status(error)
        if code_for is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        code = code_for
    # Exit without interpreter teardown: the Temporal core's threads can crash while being
    # torn down after the event loop closed (seen as SIGSEGV under load); all output is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
