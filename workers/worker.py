"""The mysqlops worker: runs cluster workflows and their activities on the local runtime.

Stopping it never stops MySQL: cluster processes run in their own sessions, and a new worker
resumes every workflow where it stood.
"""

import asyncio
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.backup.activities import BackupActivities
from activities.cluster import ClusterActivities
from activities.local.runtime import LocalRuntime
from activities.runtime import Runtime
from workers import logs, temporal
from workflows.backup_trigger import BackupTriggerWorkflow
from workflows.cluster import ClusterWorkflow

log = structlog.get_logger()


def build_worker(
    client: Client,
    runtime: Runtime,
    executor: ThreadPoolExecutor,
    task_queue: str = temporal.TASK_QUEUE,
    activities: ClusterActivities | None = None,
) -> Worker:
    """A worker for cluster workflows and their activities (`activities` replaces the cluster
    activities, e.g. with another prober, in tests)."""
    activities = activities or ClusterActivities(runtime)
    backups = BackupActivities(runtime, client, task_queue)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ClusterWorkflow, BackupTriggerWorkflow],
        activities=[
            activities.cluster_layout,
            activities.ensure_secrets,
            activities.provision_node,
            activities.config_errors,
            activities.start_node,
            activities.stop_node,
            activities.node_positions,
            activities.ensure_users,
            activities.wait_synced,
            activities.configure_load_balancer,
            activities.remove_node,
            activities.set_aside_data,
            activities.bootstrap_primary,
            activities.retire_cluster,
            activities.watch_health,
            backups.take_backup,
            backups.resync_node,
            backups.apply_retention,
            backups.find_backup,
            backups.receive_backup,
            backups.install_restored_data,
            backups.sync_backup_schedule,
        ],
        activity_executor=executor,
        max_concurrent_activities=64,
    )


async def serve() -> None:
    client = await temporal.connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=64) as executor:
        worker = build_worker(client, LocalRuntime(), executor)
        log.info("worker started", address=temporal.address(), task_queue=temporal.TASK_QUEUE)
        async with worker:
            await stop.wait()
    log.info("worker stopped")


def main() -> None:
    logs.configure()
    asyncio.run(serve())
    # The SDK's native threads can abort the interpreter's teardown (PyGILState_Release) in a
    # few percent of exits; everything is flushed and stopped by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
