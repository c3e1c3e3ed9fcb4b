"""The mysqlops worker: runs cluster workflows and their activities on the local runtime.

One process serves two task queues: the cluster queue (workflows and every task activity:
create, repair, backup, ...) and its watch queue (the long health watches), each with limits of
its own, so that watching many clusters never takes the slots that acting needs. The limits are
flags (or `MYSQLOPS_*` variables); docs/design.md ("Many clusters") says how to size them.

Stopping it never stops MySQL: cluster processes run in their own sessions, and a new worker
resumes every workflow where it stood.
"""

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import structlog
from prometheus_client import REGISTRY
from temporalio.client import Client
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.backup.activities import BackupActivities
from activities.cluster import ClusterActivities
from activities.kubernetes import runtime as kube_runtime
from activities.kubernetes.client import ApiClient, api_client, has_config
from activities.kubernetes.publish import KubernetesActivities
from activities.local.runtime import LocalRuntime
from activities.observe import Observer, Probe
from activities.probe import ProbePool
from activities.runtime import Runtime
from activities.scripted.shared import connect_from_env
from activities.watch import WATCH_QUEUE_SUFFIX, HealthWatch, WatchLoad, watch_queue
from workers import logs, metrics, temporal
from workers.census import CENSUS_EVERY, CensusCollector
from workers.log_context import LogContext
from workflows.backup_trigger import BackupTriggerWorkflow
from workflows.cluster import ClusterWorkflow

log = structlog.get_logger()


@dataclass(frozen=True)
class Limits:
    """What one worker process takes on at once."""

    task_activities: int = 64  # create, repair, backup...: each holds a thread while it runs
    watches: int = 1000  # clusters watched: each costs a coroutine and its nodes' connections
    probe_threads: int = 16  # shared by every watch; a probe holds one for milliseconds
    cached_workflows: int = 1000  # beyond, a cluster's workflow task replays its history first


class Workers:
    """The two Temporal workers of one process, and the threads and connections they share."""

    def __init__(
        self,
        client: Client,
        runtime: Runtime,
        task_queue: str = temporal.TASK_QUEUE,
        limits: Limits = Limits(),
        probe: Probe | None = None,
        workflow_runner: WorkflowRunner | None = None,
        kubernetes: ApiClient | None = None,
    ) -> None:
        """`probe` replaces the SQL probe (the scripted runtime's), `workflow_runner` the
        sandbox (tests that monkeypatch workflow modules); `kubernetes` is the API server the
        clusters created from custom resources write their status to."""
        self.pool: ProbePool | None = None
        if probe is None:
            self.pool = ProbePool()
            probe = self.pool.probe
        observer = Observer(runtime, probe)
        self.threads = ThreadPoolExecutor(limits.task_activities, thread_name_prefix="task")
        self.probes = ThreadPoolExecutor(limits.probe_threads, thread_name_prefix="probe")
        cluster = ClusterActivities(runtime, observer)
        backups = BackupActivities(runtime, client, task_queue)
        survey = HealthWatch(observer, self.probes)  # a task's one look, on the task queue
        watch = HealthWatch(observer, self.probes, WatchLoad(limits.watches))
        publisher = KubernetesActivities(kubernetes)
        self.tasks = Worker(
            client,
            task_queue=task_queue,
            workflows=[ClusterWorkflow, BackupTriggerWorkflow],
            activities=[
                cluster.cluster_layout,
                cluster.ensure_secrets,
                cluster.provision_node,
                cluster.config_errors,
                cluster.start_node,
                cluster.stop_node,
                cluster.node_positions,
                cluster.ensure_users,
                cluster.wait_synced,
                cluster.configure_load_balancer,
                cluster.remove_node,
                cluster.set_aside_data,
                cluster.bootstrap_primary,
                cluster.retire_cluster,
                survey.watch_health,
                backups.take_backup,
                backups.resync_node,
                backups.apply_retention,
                backups.find_backup,
                backups.receive_backup,
                backups.install_restored_data,
                backups.sync_backup_schedule,
                publisher.publish_to_kubernetes,
            ],
            activity_executor=self.threads,
            max_concurrent_activities=limits.task_activities,
            workflow_runner=workflow_runner or SandboxedWorkflowRunner(),
            max_cached_workflows=limits.cached_workflows,
            interceptors=[LogContext()],
        )
        self.watches = Worker(
            client,
            task_queue=watch_queue(task_queue),
            activities=[watch.watch_health],
            max_concurrent_activities=limits.watches,
            interceptors=[LogContext()],
        )
        self.stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> "Workers":
        await self.stack.enter_async_context(self.tasks)
        await self.stack.enter_async_context(self.watches)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self.stack.aclose()
        finally:
            self.threads.shutdown(wait=False, cancel_futures=True)
            self.probes.shutdown(wait=False, cancel_futures=True)
            if self.pool is not None:
                self.pool.close()


@dataclass(frozen=True)
class Settings:
    runtime: str = "local"  # or "scripted": a ScriptedRuntime a benchmark shares
    task_queue: str = temporal.TASK_QUEUE  # and its watch queue
    limits: Limits = Limits()
    kubeconfig: str | None = None  # in a pod: its service account; else KUBECONFIG, ~/.kube/config
    metrics_address: str = metrics.WORKER  # "" turns an endpoint off
    sdk_metrics_address: str = metrics.WORKER_SDK
    census_seconds: float = CENSUS_EVERY


def parse_args(argv: list[str] | None = None) -> Settings:
    default = Limits()
    parser = argparse.ArgumentParser(prog="python -m workers.worker", description=__doc__)
    parser.add_argument(
        "--runtime",
        choices=("local", "kubernetes", "scripted"),
        default=os.environ.get("MYSQLOPS_RUNTIME", "local"),
        help="where the nodes run: local processes (default); Pods of a StatefulSet per "
        "cluster (MYSQLOPS_IMAGE, MYSQLOPS_BACKUP_DIR, ...: docs/kubernetes.md); or the "
        "scripted runtime shared by a benchmark (MYSQLOPS_SCRIPTED_ADDRESS, "
        "MYSQLOPS_SCRIPTED_AUTHKEY_FILE)",
    )
    parser.add_argument(
        "--task-queue",
        default=os.environ.get("MYSQLOPS_TASK_QUEUE", temporal.TASK_QUEUE),
        help=f"the cluster task queue (default {temporal.TASK_QUEUE}); watches run on "
        f"<queue>{WATCH_QUEUE_SUFFIX}",
    )

    def limit(flag: str, variable: str, value: int, text: str) -> None:
        parser.add_argument(
            flag, type=_positive, default=os.environ.get(variable, str(value)), help=text
        )

    limit(
        "--max-task-activities",
        "MYSQLOPS_MAX_TASK_ACTIVITIES",
        default.task_activities,
        f"task activities at once (creates, repairs, backups); default {default.task_activities}",
    )
    limit(
        "--max-watches",
        "MYSQLOPS_MAX_WATCHES",
        default.watches,
        f"clusters this process watches at once; default {default.watches}",
    )
    limit(
        "--probe-threads",
        "MYSQLOPS_PROBE_THREADS",
        default.probe_threads,
        f"threads running the watches' probes; default {default.probe_threads}",
    )
    limit(
        "--max-cached-workflows",
        "MYSQLOPS_MAX_CACHED_WORKFLOWS",
        default.cached_workflows,
        "cluster workflows kept in memory (about 0.5 MiB each); past it a workflow task "
        f"replays the cluster's history first; default {default.cached_workflows}",
    )
    parser.add_argument(
        "--kubeconfig",
        help="the Kubernetes API server clusters created from custom resources write their "
        "status to (default: in a pod, its service account; else KUBECONFIG, ~/.kube/config)",
    )
    metrics.address_flags(parser, metrics.WORKER, metrics.WORKER_SDK)
    parser.add_argument(
        "--census-seconds",
        type=_positive,
        default=os.environ.get("MYSQLOPS_CENSUS_SECONDS", str(int(CENSUS_EVERY))),
        help="how often the cluster gauges are refreshed from the workflows (a status query "
        f"per cluster); default {int(CENSUS_EVERY)}",
    )
    args = parser.parse_args(argv)
    if args.runtime == "kubernetes" and not os.environ.get("MYSQLOPS_IMAGE"):
        parser.error("--runtime kubernetes needs MYSQLOPS_IMAGE: the image of the node pods")
    limits = Limits(
        args.max_task_activities, args.max_watches, args.probe_threads, args.max_cached_workflows
    )
    return Settings(
        args.runtime,
        args.task_queue,
        limits,
        args.kubeconfig,
        args.metrics_address,
        args.sdk_metrics_address,
        args.census_seconds,
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _raise_open_files_limit() -> None:
    """Each watched node keeps a connection open: allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(settings: Settings) -> None:
    client = await temporal.connect(metrics.sdk_runtime(settings.sdk_metrics_address))
    census = CensusCollector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    queue, limits = settings.task_queue, settings.limits
    kubernetes = await api_client(settings.kubeconfig) if has_config(settings.kubeconfig) else None
    if settings.runtime == "scripted":
        scripted = connect_from_env()
        workers = Workers(client, scripted, queue, limits, scripted.probe, kubernetes=kubernetes)
    elif settings.runtime == "kubernetes":
        nodes = kube_runtime.from_environment(settings.kubeconfig, temporal.address())
        workers = Workers(client, nodes, queue, limits, kubernetes=kubernetes)
    else:
        workers = Workers(client, LocalRuntime(), queue, limits, kubernetes=kubernetes)
    async with contextlib.AsyncExitStack() as stack:
        if kubernetes is not None:
            stack.push_async_callback(kubernetes.close)
        await stack.enter_async_context(workers)
        endpoint = metrics.serve(settings.metrics_address)
        if endpoint is not None:  # the census costs a query per cluster: only when served
            stack.callback(endpoint.close)
            REGISTRY.register(census)
            stack.callback(REGISTRY.unregister, census)
            counting = asyncio.create_task(census.run(client, settings.census_seconds))
            stack.callback(counting.cancel)
        log.info(
            "worker started",
            runtime=settings.runtime,
            address=temporal.address(),
            identity=client.identity,
            task_queue=queue,
            watch_queue=watch_queue(queue),
            max_task_activities=limits.task_activities,
            max_watches=limits.watches,
            kubernetes=kubernetes is not None,
            metrics=endpoint.address if endpoint else None,
            sdk_metrics=settings.sdk_metrics_address or None,
        )
        await stop.wait()
    log.info("worker stopped")


def main(argv: list[str] | None = None) -> None:
    logs.configure()
    settings = parse_args(argv)
    _raise_open_files_limit()
    asyncio.run(serve(settings))
    # The SDK's native threads can abort the interpreter's teardown (PyGILState_Release) in a
    # few percent of exits; everything is flushed and stopped by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
