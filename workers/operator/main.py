"""`mysqlops operator`: watch the custom resources, make the Temporal calls they stand for.

Stateless: everything durable is in Temporal (the workflows) and in the API server (the
objects). Several replicas may run: every call is idempotent (docs/kubernetes.md says why no
Lease is needed).
"""

import argparse
import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass

import structlog
from temporalio.client import Client

from activities.kubernetes.client import PLURALS, ApiClient, api_client
from workers import logs, metrics, temporal
from workers.errors import UsageError
from workers.operator.informer import Informer
from workers.operator.reconcile import Reconciler

log = structlog.get_logger()


@dataclass(frozen=True)
class Settings:
    kubeconfig: str | None = None
    namespace: str | None = None  # None: every namespace
    resync_seconds: float = 300
    task_queue: str = temporal.TASK_QUEUE


class Operator:
    """Three informers (clusters, backups, restores) feeding one reconciler."""

    def __init__(self, temporal_client: Client, kube: ApiClient, settings: Settings) -> None:
        instance = os.environ.get("POD_NAME") or socket.gethostname()
        self.reconciler = Reconciler(temporal_client, kube, settings.task_queue, instance)
        handlers = {
            "MySQLCluster": self.reconciler.cluster,
            "MySQLBackup": self.reconciler.backup,
            "MySQLRestore": self.reconciler.restore,
        }
        self.informers = {
            kind: Informer(
                kube,
                PLURALS[kind],
                handler,
                self.reconciler.forget,
                settings.namespace,
                settings.resync_seconds,
            )
            for kind, handler in handlers.items()
        }

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for informer in self.informers.values():
                    group.create_task(informer.run())
        finally:
            await self.reconciler.close()


def parse_args(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="mysqlops operator", description=__doc__, parents=[temporal.temporal_flags()]
    )
    parser.add_argument(
        "--kubeconfig",
        help="default: in a pod, its service account; else KUBECONFIG, ~/.kube/config",
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("MYSQLOPS_WATCH_NAMESPACE") or None,
        help="watch only this namespace (default: all; MYSQLOPS_WATCH_NAMESPACE)",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=float(os.environ.get("MYSQLOPS_RESYNC_SECONDS", "300")),
        help="relist everything this often, whatever the watch said (default 300)",
    )
    parser.add_argument(
        "--task-queue", default=os.environ.get("MYSQLOPS_TASK_QUEUE", temporal.TASK_QUEUE)
    )
    metrics.address_flags(parser, metrics.WATCHER)
    args = parser.parse_args(argv)
    if args.resync_seconds < 1:
        parser.error(f"--resync-seconds must be at least 1, got {args.resync_seconds}")
    settings = Settings(args.kubeconfig, args.namespace, args.resync_seconds, args.task_queue)
    return settings, args


async def serve(settings: Settings, args: argparse.Namespace) -> None:
    connection = temporal.connection(args)
    client = await connection.connect()
    kube = await api_client(settings.kubeconfig)
    operator = Operator(client, kube, settings)
    endpoint = metrics.serve(args.metrics_address)
    runner = asyncio.create_task(operator.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.cancel)
    log.info(
        "operator started",
        namespace=settings.namespace or "(all)",
        temporal=connection.address,
        metrics=endpoint.address if endpoint else None,
    )
    try:
        await runner
    except asyncio.CancelledError:
        pass
    finally:
        await kube.close()  # type: ignore[no-untyped-call]
        if endpoint is not None:
            endpoint.close()
    log.info("operator stopped")


def main(argv: list[str] | None = None) -> None:
    logs.configure()
    settings, args = parse_args(argv)
    try:
        asyncio.run(serve(settings, args))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
