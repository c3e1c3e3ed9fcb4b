"""The node agent: supervises one run of a node's mariadbd.

It checks the node's my.cnf with the server and recovers the node's position, then starts
mariadbd as its child (so it knows how it ended: exit status or signal), probes it over the
local socket four times a second, answers HAProxy's health check (200 only when the node is
Synced in the Primary component, or Donor when allowed), and reports every state transition to
the cluster workflow as a signal (edge-triggered: a report per change, never a heartbeat
stream; when Temporal is unreachable only the newest report waits). When the node stops
serving (it exited, or it was cut off from the Primary component) the agent takes it out of
HAProxy at once; when mariadbd exits it records the exit, reports, and ends.

Started detached by the local runtime: `python -m workers.agent NODE_DIR [--bootstrap]`.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.local import exporter as exporter_lib
from activities.local import haproxy, logfiles
from activities.local.config_check import server_config_errors
from activities.local.paths import NodePaths
from activities.local.position import stored_position
from activities.local.process import (
    agent_pid,
    alive,
    exit_kind_from_log,
    exit_kind_from_returncode,
    mariadbd_pid,
    read_json,
    write_json,
)
from activities.probe import Prober, Target
from api.cluster import NodeFacts
from api.messages import SIGNAL_NODE_REPORT, NodeReport
from api.states import ExitKind
from galera.diagnosis import node_state, serves
from galera.position import start_arguments
from workers import logs, metrics
from workers.agent_metrics import AgentMetrics

PROBE_INTERVAL = 0.25  # seconds: how soon a node that stops serving leaves HAProxy
log = structlog.get_logger()


class AgentConfig(BaseModel):
    """Written by the local runtime into the node directory as agent.json (no secrets)."""

    node: str
    workflow_id: str
    temporal_address: str
    temporal_namespace: str
    mycnf: str
    socket: str
    pid_file: str
    error_log: str
    state_file: str
    host: str
    health_port: int
    haproxy_socket: str
    donor_serves: bool = False
    os_user: str
    # Metrics (written by runtimes since issue 13; older agent.json files have none).
    cluster_namespace: str = ""
    cluster: str = ""
    metrics_port: int | None = None  # the agent's own endpoint
    exporter_port: int | None = None  # the node's mysqld_exporter
    exporter_config: str | None = None  # its client settings (monitoring user), mode 0600
    exporter_log: str | None = None


class Reporter:
    """Delivers reports to the workflow in order; while undeliverable, keeps only the newest."""

    def __init__(self, config: AgentConfig, metrics: AgentMetrics) -> None:
        self._config = config
        self._metrics = metrics
        self._pending: NodeReport | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._client: Client | None = None

    def submit(self, report: NodeReport) -> None:
        if self._pending is not None:
            self._metrics.superseded.inc()
        self._pending = report
        self._idle.clear()
        self._wake.set()

    async def drain(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (report := self._pending) is not None:
                try:
                    await self._send(report)
                except Exception as error:
                    self._metrics.failed.inc()
                    log.warning("report undelivered", error=str(error)[:200], retry_in=backoff)
                    self._client = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10)
                    continue
                backoff = 0.5
                self._metrics.sent.inc()
                if self._pending is report:
                    self._pending = None
            self._idle.set()

    async def _send(self, report: NodeReport) -> None:
        if self._client is None:
            self._client = await asyncio.wait_for(
                Client.connect(
                    self._config.temporal_address,
                    namespace=self._config.temporal_namespace,
                    data_converter=pydantic_data_converter,
                ),
                timeout=3,
            )
        handle = self._client.get_workflow_handle(self._config.workflow_id)
        await asyncio.wait_for(handle.signal(SIGNAL_NODE_REPORT, report), timeout=3)
        log.info("reported", state=report.state.value, sequence=report.sequence)


@dataclass
class Health:
    healthy: bool = False
    detail: str = "starting"


async def serve_health(config: AgentConfig, health: Health) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=2)
        status = "200 OK" if health.healthy else "503 Service Unavailable"
        body = health.detail.encode()
        writer.write(
            f"HTTP/1.0 {status}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(Exception):
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, config.host, config.health_port, reuse_address=True)


class Mariadbd:
    """The supervised process: our child, or one adopted from an earlier agent.

    Like `galera_recovery` in mysqld_safe, every start of a node that has data passes its
    committed position (`--wsrep-start-position`, recovered with `--wsrep-recover` after a
    crash): a restart then costs an IST of the writes it missed, not a full SST, and a
    bootstrap continues the cluster's history instead of starting a new one."""

    def __init__(self, config: AgentConfig, paths: NodePaths, bootstrap: bool) -> None:
        self.config = config
        adopted = mariadbd_pid(Path(config.pid_file), Path(config.state_file))
        self.child: subprocess.Popen[bytes] | None = None
        self.start_position: str | None = None
        self.log_offset = _size(Path(config.error_log))
        self.refused = _config_refused(Path(config.mycnf)) if adopted is None else None
        self.pid: int | None = adopted
        if self.refused:
            log.error("not starting mariadbd", reason=self.refused)
        elif adopted is None:
            # Recovery can take a while after a crash: the runtime waits while this says so.
            write_json(Path(config.state_file), {"running": True, "recovering": True})
            position = stored_position(paths)
            args = ["mariadbd", f"--defaults-file={config.mycnf}", *start_arguments(position)]
            if position.uuid and position.seqno >= 0 and not position.unreadable:
                self.start_position = f"{position.uuid}:{position.seqno}"
            if bootstrap:
                args.append("--wsrep-new-cluster")
            log.info("starting mariadbd", position=self.start_position, bootstrap=bootstrap)
            self.log_offset = _size(Path(config.error_log))
            with open(config.error_log, "ab") as err:
                self.child = subprocess.Popen(
                    args, stdout=err, stderr=err, stdin=subprocess.DEVNULL
                )
            self.pid = self.child.pid
        else:
            earlier = read_json(Path(config.state_file)) or {}
            offset, started = earlier.get("log_offset"), earlier.get("start_position")
            self.log_offset = offset if isinstance(offset, int) else 0
            self.start_position = started if isinstance(started, str) else None

    def exited(self) -> tuple[ExitKind, str] | None:
        if self.refused:
            return ExitKind.UNCLEAN, self.refused
        if self.child is not None:
            code = self.child.poll()
            return None if code is None else exit_kind_from_returncode(code)
        if alive(self.pid):
            return None
        return exit_kind_from_log(Path(self.config.error_log)) or (
            ExitKind.UNCLEAN,
            "exited while adopted; no clean shutdown recorded",
        )


async def supervise(config: AgentConfig, paths: NodePaths, bootstrap: bool) -> int:
    started_at = datetime.now(UTC)
    health = Health()
    metrics = AgentMetrics(config.cluster_namespace, config.cluster, config.node)
    reporter = Reporter(config, metrics)
    reporter_task = asyncio.create_task(reporter.run())
    server = await serve_health(config, health)
    state_file = Path(config.state_file)
    mariadbd = Mariadbd(config, paths, bootstrap)
    run = {
        "pid": mariadbd.pid,
        "started_at": started_at,
        "start_position": mariadbd.start_position,
        "log_offset": mariadbd.log_offset,
    }
    write_json(state_file, {**run, "running": True})
    log.info("supervising", pid=mariadbd.pid, bootstrap=bootstrap)
    exporter = _start_exporter(config) if mariadbd.exited() is None else None
    prober = Prober(Target(user=config.os_user, unix_socket=config.socket), timeout=1.0)
    sequence = 0
    last: tuple[object, ...] | None = None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    while True:
        ended = mariadbd.exited()
        if ended is None:
            with metrics.probe.time():
                facts = await asyncio.to_thread(prober)
            facts.process_alive = True
        else:
            facts = NodeFacts(process_alive=False, exit_kind=ended[0], exit_detail=ended[1])
        state, reason = node_state(facts)
        was_healthy, health.healthy = health.healthy, serves(facts, config.donor_serves)
        health.detail = f"{state.value}: {reason}"
        metrics.state(state, health.healthy)
        if was_healthy and not health.healthy and ended is None:
            # Alive but no longer serving (cut off from the Primary component, desynced...):
            # out of HAProxy now, not after its failed checks; its checks bring it back.
            await _mark_down(config)
        key = (state, facts.wsrep_state, facts.wsrep_cluster_status, facts.process_alive)
        if key != last:
            last = key
            sequence += 1
            reporter.submit(
                NodeReport(
                    node=config.node,
                    state=state,
                    reason=reason,
                    facts=facts,
                    observed_at=datetime.now(UTC),
                    sequence=sequence,
                    agent_started_at=started_at,
                )
            )
        if ended is not None:
            break
        if stopping.is_set():
            log.info("agent stopping; mariadbd keeps running", pid=mariadbd.pid)
            exporter_lib.stop(exporter)
            await reporter.drain(timeout=2)
            return 0
        await asyncio.sleep(PROBE_INTERVAL)
    server.close()
    prober.close()
    exporter_lib.stop(exporter)
    await _mark_down(config)
    write_json(
        state_file,
        {
            **run,
            "running": False,
            "exit_kind": ended[0].value,
            "exit_detail": ended[1],
            "exited_at": datetime.now(UTC),
        },
    )
    log.info("mariadbd exited", kind=ended[0].value, detail=ended[1])
    await reporter.drain(timeout=5)
    reporter_task.cancel()
    return 0


def _start_exporter(config: AgentConfig) -> subprocess.Popen[bytes] | None:
    """The node's mysqld_exporter, a child that ends with the agent."""
    if config.exporter_port is None or not config.exporter_config or not config.exporter_log:
        return None
    try:
        return exporter_lib.start(
            Path(config.exporter_config),
            config.host,
            config.exporter_port,
            Path(config.exporter_log),
        )
    except OSError as error:
        log.warning("mysqld_exporter not started", error=str(error)[:200])
        return None


async def _mark_down(config: AgentConfig) -> None:
    with contextlib.suppress(Exception):
        await asyncio.to_thread(haproxy.mark_down, Path(config.haproxy_socket), config.node)


def _config_refused(mycnf: Path) -> str | None:
    """Why the server refuses the node's my.cnf (an unknown option, a bad value), asked before
    it starts: a node with a broken configuration would otherwise join, take a full SST and
    only then abort, costing its donor the copy and its peers a view change."""
    try:
        errors = server_config_errors(mycnf.read_text())
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("configuration not checked", error=str(error)[:200])
        return None
    return f"configuration refused by the server: {errors}" if errors else None


def _size(path: Path) -> int:
    """Where the error log ends now, counting what rotation moved out of it (an absolute
    offset, which `logfiles.read_since` reads from)."""
    try:
        return logfiles.end_offset(path)
    except OSError:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("node_dir", type=Path)
    parser.add_argument("--bootstrap", action="store_true", help="start a new cluster")
    args = parser.parse_args(argv)
    node = NodePaths(args.node_dir)  # its own log, and the logs of the processes it starts:
    logs.configure(file=node.agent_log, rotate=[node.error_log, node.root / "exporter.log"])
    config = AgentConfig.model_validate_json((args.node_dir / "agent.json").read_text())
    pid_file = args.node_dir / "agent.pid"
    other = agent_pid(pid_file, args.node_dir)
    if other is not None and other != os.getpid():
        print(f"an agent already runs for {config.node} (pid {other})", file=sys.stderr)
        return 1
    pid_file.write_text(str(os.getpid()))
    structlog.contextvars.bind_contextvars(node=config.node)
    if config.metrics_port is not None:
        metrics.serve(f"{config.host}:{config.metrics_port}")
    return asyncio.run(supervise(config, NodePaths(args.node_dir), args.bootstrap))


if __name__ == "__main__":
    sys.exit(main())
