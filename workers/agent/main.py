"""The agent process: the API server, the watch over the node, the reports, and what a
restarted agent does about its node before any order arrives."""

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from activities.agent_client import AgentClient, AgentError, AgentUnreachable
from activities.local.paths import NodePaths
from activities.local.position import has_data
from activities.local.process import agent_pid
from api.agent import HEALTH, AgentConfig, OrderKind, StopMode
from workers import logs, metrics
from workers.agent import pod
from workers.agent.node import Node, NodeFailed
from workers.agent.server import make_app
from workers.agent_metrics import AgentMetrics

REJOIN_POLL = 2.0  # seconds between looks for a serving peer
STOP_TIMEOUT = 600  # a clean InnoDB shutdown of a busy node (the Pod's grace period covers it)
log = structlog.get_logger()


def _version() -> str:
    try:
        return version("mysqlops")
    except PackageNotFoundError:
        return "source"


async def serve(load: Callable[[], AgentConfig], paths: NodePaths, token: str) -> int:
    config = load()
    metrics = AgentMetrics(config.cluster_namespace, config.cluster, config.node)
    node = Node(load, paths, metrics)
    runner = web.AppRunner(make_app(node, token, _version()), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.health_port, reuse_address=True)
    await site.start()
    tasks = [asyncio.create_task(node.reporter.run()), asyncio.create_task(node.watch())]
    node.start_exporter()
    if not node.adopt():
        tasks.append(asyncio.create_task(on_boot(node)))
    log.info("serving", address=f"{config.host}:{config.health_port}")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for each in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(each, stopping.set)
    await stopping.wait()
    if config.stop_node_on_exit:
        log.info("agent stopping; stopping mariadbd cleanly")
        with contextlib.suppress(Exception):
            await node.stop(StopMode.GRACEFUL, STOP_TIMEOUT, hold=False)
    else:
        log.info("agent stopping; mariadbd keeps running", pid=node.run and node.run.pid)
    await node.reporter.drain(timeout=2)
    for task in tasks:
        task.cancel()
    await runner.cleanup()
    node.close()
    return 0


async def on_boot(node: Node) -> None:
    """What a freshly started agent does before any order: carry out a persisted run order;
    stay down when the controller held the node; otherwise rejoin once a peer serves. Never a
    bootstrap: only the controller, which sees every node's position, may start a cluster."""
    order = node.order()
    if order is not None and order.kind is OrderKind.HOLD:
        log.info("held by the controller: waiting for an order")
        return
    if order is not None and order.persist and not order.bootstrap:
        await _start(node, "a persisted order")
        return
    if not has_data(node.paths.data) or not node.config.peers:
        log.info("waiting for an order", data=has_data(node.paths.data))
        return
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        while node.run is None and node.order() == order:
            if await _any_serves(session, node.config.peers):
                await _start(node, "a peer serves: rejoining")
                return
            await asyncio.sleep(REJOIN_POLL)


async def _any_serves(session: aiohttp.ClientSession, peers: list[str]) -> bool:
    for peer in peers:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"http://{peer}{HEALTH}") as answer:
                if answer.status == 200:
                    return True
    return False


async def _start(node: Node, why: str) -> None:
    log.info("starting mariadbd by itself", why=why)
    try:
        await node.start(bootstrap=False, persist=False)
    except NodeFailed as error:
        log.error("start failed", error=str(error)[:500])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("node_dir", type=Path, nargs="?", help="holds agent.json (local runtime)")
    parser.add_argument(
        "--from-env", action="store_true", help="a Pod's entrypoint: configured by environment"
    )
    parser.add_argument(
        "--stop",
        action="store_true",
        help="the Pod's preStop: ask the running agent to stop mariadbd cleanly, then exit",
    )
    args = parser.parse_args(argv)
    if args.from_env == (args.node_dir is not None):
        parser.error("give either NODE_DIR or --from-env")
    root = pod.node_dir(os.environ) if args.from_env else args.node_dir
    paths = NodePaths(root)

    def load() -> AgentConfig:
        if args.from_env:
            return pod.config_from_env(os.environ)
        return AgentConfig.load(paths.root)

    if args.stop:
        return stop_running_agent(load())
    # Its own log, and the logs of the processes it starts:
    logs.configure(file=paths.agent_log, rotate=[paths.error_log, paths.root / "exporter.log"])
    config = load()
    other = agent_pid(paths.agent_pid, paths.root)
    if other is not None and other != os.getpid():
        print(f"an agent already runs for {config.node} (pid {other})", file=sys.stderr)
        return 1
    try:
        token = config.token()
    except (OSError, ValueError) as error:
        print(f"cannot serve the agent API: {error}", file=sys.stderr)
        return 2
    paths.agent_pid.write_text(str(os.getpid()))
    structlog.contextvars.bind_contextvars(node=config.node)
    if config.metrics_port is not None:
        metrics.serve(f"{config.host}:{config.metrics_port}")
    return asyncio.run(serve(load, paths, token))


def stop_running_agent(config: AgentConfig) -> int:
    """A clean shutdown that does not hold the node: it left because its Pod goes, and the
    Pod's next container may rejoin by itself."""
    client = AgentClient(f"{config.host}:{config.health_port}", config.token())
    try:
        client.stop(StopMode.GRACEFUL, STOP_TIMEOUT, hold=False)
    except (AgentUnreachable, AgentError, TimeoutError) as error:
        print(f"preStop: {error}", file=sys.stderr)
        return 1
    return 0
