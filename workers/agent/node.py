"""One node's mariadbd under its agent: the runs, the controller's order, the watch over the
running process, and the operations on the node's data directory.

Every start of a node that has data passes its committed position (`--wsrep-start-position`,
recovered with `--wsrep-recover` after a crash), like `galera_recovery` in mysqld_safe: a
restart then costs an IST of the writes it missed, not a full SST, and a bootstrap continues
the cluster's history instead of starting a new one.

Operations that change the node (start, stop, recover the position, move or replace data) hold
one lock, so two callers (a retried activity, the kubelet's restart and the controller) never
interleave: a start while a run is alive answers that run's pid.
"""

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pymysql
import structlog

from activities.local import backup, haproxy, logfiles
from activities.local import exporter as exporter_lib
from activities.local.config_check import server_config_errors
from activities.local.datadir import initialize
from activities.local.paths import NodePaths, ensure_socket_dir
from activities.local.position import has_data, set_safe_to_bootstrap, stored_position
from activities.local.process import (
    alive,
    exit_kind_from_log,
    exit_kind_from_returncode,
    last_run_errors,
    mariadbd_pid,
    read_json,
    suspended,
    write_json,
)
from activities.probe import Prober, Target
from activities.users import APP_SECRET, MONITOR_SECRET, user_statements
from api.agent import AgentConfig, NodeStatus, Order, OrderKind, ProcessFacts, StopMode
from api.cluster import NodeFacts
from api.messages import NodeReport
from api.states import ExitKind
from galera.diagnosis import NEVER_STARTED, node_state, serves
from galera.log import Join, last_join
from galera.position import GaleraPosition, start_arguments
from workers.agent.reporter import Reporter
from workers.agent_metrics import AgentMetrics

PROBE_INTERVAL = 0.25  # seconds: how soon a node that stops serving leaves HAProxy
CONFIG_WAIT = 150.0  # a kubelet refreshes a mounted ConfigMap within its sync period + TTL
log = structlog.get_logger()


class NodeFailed(Exception):
    """mariadbd failed at start (refused configuration, exited at once)."""


class Conflict(Exception):
    """The node is in the wrong state for the operation (running, or not running)."""


class Run:
    """One run of mariadbd: our child, or one adopted from an earlier agent."""

    def __init__(
        self,
        pid: int | None,
        child: subprocess.Popen[bytes] | None,
        start_position: str | None,
        log_offset: int,
        refused: str | None = None,
    ) -> None:
        self.pid = pid
        self.child = child
        self.start_position = start_position
        self.log_offset = log_offset
        self.refused = refused
        self.started_at = datetime.now(UTC)
        self.ended: tuple[ExitKind, str] | None = None  # recorded once seen

    def record(self) -> dict[str, object]:
        """What the state file keeps of this run (a restarted agent adopts it from there)."""
        kept: dict[str, object] = {
            "pid": self.pid,
            "started_at": self.started_at,
            "start_position": self.start_position,
            "log_offset": self.log_offset,
            "running": self.ended is None,
        }
        if self.ended is not None:
            kept |= {
                "exit_kind": self.ended[0].value,
                "exit_detail": self.ended[1],
                "exited_at": datetime.now(UTC),
            }
        return kept

    def exited(self, error_log: Path) -> tuple[ExitKind, str] | None:
        if self.ended is not None:
            return self.ended
        if self.refused:
            return ExitKind.UNCLEAN, self.refused
        if self.child is not None:
            code = self.child.poll()
            if code is None and not alive(self.child.pid):
                # Exited, and another thread is reaping it (poll() then says nothing): wait.
                code = self.child.wait()
            return None if code is None else exit_kind_from_returncode(code)
        if alive(self.pid):
            return None
        return exit_kind_from_log(error_log) or (
            ExitKind.UNCLEAN,
            "exited while adopted; no clean shutdown recorded",
        )


@dataclass
class Health:
    healthy: bool = False
    detail: str = "stopped"


class Node:
    def __init__(
        self,
        load: Callable[[], AgentConfig],
        paths: NodePaths,
        metrics: AgentMetrics,
    ) -> None:
        config = load()
        self._load = load  # read again at every start: the runtime may have changed it
        self.config = config
        self.paths = paths
        self.metrics = metrics
        self.reporter = Reporter(config, metrics)
        self.health = Health()
        self.lock = asyncio.Lock()
        self.run: Run | None = None
        self.runs = 0
        self.starting = False
        self.started_at = datetime.now(UTC)  # the agent's: reports are ordered within it
        self._sequence = 0
        self._last: tuple[object, ...] | None = None
        self._wake = asyncio.Event()
        self._reported_end: Run | None = None  # the last run whose end was reported
        self._exporter: subprocess.Popen[bytes] | None = None
        self._prober = Prober(Target(user=config.os_user, unix_socket=config.socket), timeout=1.0)

    @property
    def state_file(self) -> Path:
        return Path(self.config.state_file)

    @property
    def order_file(self) -> Path:
        return self.paths.root / "order.json"

    # -- orders ----------------------------------------------------------------------------

    def order(self) -> Order | None:
        data = read_json(self.order_file)
        try:
            return Order.model_validate(data) if data else None
        except ValueError:
            return None

    def _set_order(self, order: Order) -> None:
        write_json(self.order_file, order.model_dump(mode="json"))

    # -- start and stop --------------------------------------------------------------------

    def adopt(self) -> bool:
        """Take over a mariadbd an earlier agent started (this agent was restarted)."""
        pid = mariadbd_pid(Path(self.config.pid_file), self.state_file)
        if pid is None:
            return False
        earlier = read_json(self.state_file) or {}
        offset, position = earlier.get("log_offset"), earlier.get("start_position")
        self.run = Run(
            pid,
            None,
            position if isinstance(position, str) else None,
            offset if isinstance(offset, int) else 0,
        )
        log.info("adopted a running mariadbd", pid=pid)
        self._wake.set()
        return True

    async def start(self, bootstrap: bool, persist: bool, config_sha256: str | None = None) -> int:
        async with self.lock:
            self._set_order(Order(kind=OrderKind.RUN, bootstrap=bootstrap, persist=persist))
            run = self.run
            if run is not None and run.exited(Path(self.config.error_log)) is None:
                return run.pid or 0
            if run is not None:
                self._settle(run)
            if config_sha256 is not None:
                await self._delivered(config_sha256)
            self.config = self._load()
            self.starting = True
            # Recovery can take a while after a crash: callers reading the state file wait.
            write_json(self.state_file, {"running": True, "recovering": True})
            try:
                run = await asyncio.to_thread(self._launch, bootstrap)
            finally:
                self.starting = False
            self.run = run
            self.runs += 1
            self.start_exporter()
            write_json(self.state_file, run.record())
            self._wake.set()
            if run.refused:
                log.error("not starting mariadbd", reason=run.refused)
                raise NodeFailed(run.refused)
            await asyncio.sleep(0.05)  # one that fails at once (a bad option) fails here
            ended = run.exited(Path(self.config.error_log))
            if ended is not None:
                self._settle(run)
                said = logfiles.tail(Path(self.config.error_log), 1500) or ""
                raise NodeFailed(f"mariadbd exited at start ({ended[1]}): {said}")
            assert run.pid is not None
            return run.pid

    async def _delivered(self, digest: str) -> None:
        """Wait for the configuration the caller delivered (a mounted ConfigMap reaches the
        Pod within about a minute of its change)."""
        source = Path(self.config.config_source or self.config.mycnf)
        deadline = asyncio.get_running_loop().time() + CONFIG_WAIT
        while True:
            try:
                seen = hashlib.sha256(source.read_bytes()).hexdigest()
            except OSError:
                seen = None
            if seen == digest:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise NodeFailed(
                    f"{source} is not the configuration the controller delivered (sha256 "
                    f"{digest[:12]}..., found {seen and seen[:12]}...) after {CONFIG_WAIT:.0f} s"
                )
            await asyncio.sleep(0.5)

    def _launch(self, bootstrap: bool) -> Run:
        offset = _size(Path(self.config.error_log))
        refused = _config_refused(Path(self.config.mycnf))
        if refused:
            return Run(None, None, None, offset, refused=refused)
        if bootstrap:
            set_safe_to_bootstrap(self.paths.grastate)
        ensure_socket_dir(Path(self.config.socket))
        self.paths.data.mkdir(exist_ok=True)  # a new volume is empty: a joiner gets it by SST
        Path(self.config.pid_file).unlink(missing_ok=True)
        position = stored_position(self.paths)
        args = ["mariadbd", f"--defaults-file={self.config.mycnf}", *start_arguments(position)]
        start_position = None
        if position.uuid and position.seqno >= 0 and not position.unreadable:
            start_position = f"{position.uuid}:{position.seqno}"
        if bootstrap:
            args.append("--wsrep-new-cluster")
        log.info("starting mariadbd", position=start_position, bootstrap=bootstrap)
        offset = _size(Path(self.config.error_log))
        with open(self.config.error_log, "ab") as err:
            child = subprocess.Popen(args, stdout=err, stderr=err, stdin=subprocess.DEVNULL)
        return Run(child.pid, child, start_position, offset)

    async def stop(self, mode: StopMode, timeout: float, hold: bool) -> None:
        async with self.lock:
            if hold:
                self._set_order(Order(kind=OrderKind.HOLD))
            pid = self._running_pid()
            if pid is not None:
                if mode is StopMode.KILL:
                    os.kill(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGCONT)  # a suspended process cannot shut down
                    os.kill(pid, signal.SIGTERM)
                if not await _wait_gone(pid, timeout):
                    raise TimeoutError(
                        f"mariadbd on {self.config.node} (pid {pid}) still runs after {timeout} s"
                    )
            if self.run is not None:
                self._settle(self.run)

    def _running_pid(self) -> int | None:
        run = self.run
        if run is not None and run.exited(Path(self.config.error_log)) is None:
            return run.pid
        return mariadbd_pid(Path(self.config.pid_file), self.state_file)

    def _settle(self, run: Run) -> None:
        """Record how a run ended, once: the state file, HAProxy, the exporter."""
        if run.ended is not None:
            return
        ended = run.exited(Path(self.config.error_log))
        if ended is None:
            return
        if run.child is not None:
            run.child.wait()  # reap it
        run.ended = ended
        write_json(self.state_file, run.record())
        self.health.healthy = False
        self.health.detail = f"stopped: {ended[1]}"
        log.info("mariadbd exited", kind=ended[0].value, detail=ended[1])

    # -- the watch -------------------------------------------------------------------------

    async def watch(self) -> None:
        """Probe the running node four times a second; report every transition; take the node
        out of HAProxy at once when it stops serving. Idle while no run is alive."""
        while True:
            run = self.run
            if run is None or run is self._reported_end:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1)
                continue
            ended = run.exited(Path(self.config.error_log))
            if ended is None:
                with self.metrics.probe.time():
                    facts = await asyncio.to_thread(self._prober)
                facts.process_alive = True
                if self.run is not run:
                    continue
            else:
                facts = NodeFacts(process_alive=False, exit_kind=ended[0], exit_detail=ended[1])
            await self._observe(facts, alive=ended is None)
            if ended is not None:
                self._settle(run)
                self._reported_end = run
                await self._mark_down()
                continue
            await asyncio.sleep(PROBE_INTERVAL)

    async def _observe(self, facts: NodeFacts, alive: bool) -> None:
        state, reason = node_state(facts)
        was_healthy = self.health.healthy
        self.health.healthy = serves(facts, self.config.donor_serves)
        self.health.detail = f"{state.value}: {reason}"
        self.metrics.state(state, self.health.healthy)
        if was_healthy and not self.health.healthy and alive:
            # Alive but no longer serving (cut off from the Primary component, desynced...):
            # out of HAProxy now, not after its failed checks; its checks bring it back.
            await self._mark_down()
        key = (state, facts.wsrep_state, facts.wsrep_cluster_status, facts.process_alive)
        if key == self._last:
            return
        self._last = key
        self._sequence += 1
        self.reporter.submit(
            NodeReport(
                node=self.config.node,
                state=state,
                reason=reason,
                facts=facts,
                observed_at=datetime.now(UTC),
                sequence=self._sequence,
                agent_started_at=self.started_at,
            )
        )

    async def _mark_down(self) -> None:
        if not self.config.haproxy_socket:
            return  # HAProxy in Pods of its own: its checks of /health take the node out
        with contextlib.suppress(Exception):
            await asyncio.to_thread(
                haproxy.mark_down, Path(self.config.haproxy_socket), self.config.node
            )

    # -- facts -----------------------------------------------------------------------------

    def status(self) -> NodeStatus:
        run = self.run
        return NodeStatus(
            facts=self.facts(),
            starting=self.starting,
            runs=self.runs,
            start_position=run.start_position if run is not None else None,
            order=self.order(),
            serving=self.health.healthy,
            state=self.health.detail,
        )

    def facts(self) -> ProcessFacts:
        if not Path(self.config.mycnf).exists():
            return ProcessFacts(alive=False, provisioned=False)
        if self.starting:
            return ProcessFacts(alive=False)  # recovering its position before it runs
        pid = self._running_pid()
        if pid is not None:
            return ProcessFacts(alive=True, pid=pid, stopped=suspended(pid))
        state = read_json(self.state_file) or {}
        error_log, recover_log = Path(self.config.error_log), self.paths.recover_log
        # The latest attempt to run it speaks: its last start, or a later recovery run.
        logs = [each for each in (error_log, recover_log) if each.exists()]
        latest = max(logs, key=lambda each: each.stat().st_mtime, default=error_log)
        errors = last_run_errors(latest)
        hint = f"; errors: {errors}" if errors else ""
        if state.get("running") is False and state.get("exit_kind"):
            return ProcessFacts(
                alive=False,
                exit_kind=ExitKind(str(state["exit_kind"])),
                exit_detail=f"{state.get('exit_detail')}{hint}",
            )
        if self.run is not None and self.run.ended is None:
            return ProcessFacts(alive=False)  # the watch is recording how it ended
        if not error_log.exists():
            return ProcessFacts(alive=False, exit_detail=NEVER_STARTED)
        judged = exit_kind_from_log(error_log) or (
            ExitKind.UNCLEAN,
            "exit not recorded and no clean shutdown in the error log",
        )
        return ProcessFacts(alive=False, exit_kind=judged[0], exit_detail=judged[1] + hint)

    def last_join(self) -> Join | None:
        return run_join(Path(self.config.error_log), self.state_file)

    # -- data ------------------------------------------------------------------------------

    async def position(self) -> GaleraPosition:
        async with self.lock:
            self._refuse_running("its position can only be read when stopped")
            ensure_socket_dir(Path(self.config.socket))  # a recovery (--wsrep-recover) binds it
            return await asyncio.to_thread(stored_position, self.paths)

    async def initialize(self) -> bool:
        async with self.lock:
            self._refuse_running("a running node has its data")
            return await asyncio.to_thread(initialize, self.paths)

    async def set_aside(self) -> str:
        async with self.lock:
            self._refuse_running("stop it before moving its data")
            data = self.paths.data
            if not has_data(data):
                # Nothing to keep. An earlier set-aside's directory is not this one's:
                # reporting it would make a restore record another node's data as this one's.
                data.mkdir(exist_ok=True)
                return ""
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = self.paths.root / f"data.aside-{stamp}"
            data.rename(aside)
            data.mkdir()
            return str(aside)

    async def install(self, staging: Path) -> None:
        async with self.lock:
            self._refuse_running("stop it before replacing its data")
            await asyncio.to_thread(backup.install, self.paths, staging)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.paths.root).free

    def sql(self, statements: list[str]) -> None:
        # Autocommit: these are SET GLOBAL and account statements. A COMMIT after
        # `pc.bootstrap=YES` would reach a node not yet ready for SQL (1047) and fail the step.
        conn = pymysql.connect(
            unix_socket=self.config.socket,
            user=self.config.os_user,
            connect_timeout=5,
            autocommit=True,
        )
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()

    def ensure_users(self) -> None:
        """Create the application and monitoring users, or reset them to the passwords of the
        cluster's Secret; the anonymous users the data directory was initialised with go."""
        app, monitor = self.config.secret(APP_SECRET), self.config.secret(MONITOR_SECRET)
        for key, password in ((APP_SECRET, app), (MONITOR_SECRET, monitor)):
            if "'" in password or "\\" in password:  # they are quoted into the statements
                raise ValueError(f"the cluster's secret {key} holds a quote or a backslash")
        try:
            self.sql(user_statements(app, monitor, socket.gethostname()))
        except pymysql.MySQLError as error:  # its text goes back to the caller's history
            said = str(error).replace(app, "***").replace(monitor, "***")
            raise RuntimeError(f"creating the users failed: {said}") from None

    def is_running(self) -> bool:
        return self._running_pid() is not None

    def _refuse_running(self, why: str) -> None:
        if self.starting or self._running_pid() is not None:
            raise Conflict(f"{self.config.node} is running: {why}")

    # -- the exporter ----------------------------------------------------------------------

    def start_exporter(self) -> None:
        """The node's mysqld_exporter, a child that ends with the agent (`mysql_up` 0 while
        the node is down)."""
        config = self.config
        if self._exporter is not None and self._exporter.poll() is None:
            return
        if config.exporter_port is None or not config.exporter_config or not config.exporter_log:
            return
        try:
            self._exporter = exporter_lib.start(
                Path(config.exporter_config),
                config.host,
                config.exporter_port,
                Path(config.exporter_log),
            )
        except OSError as error:
            log.warning("mysqld_exporter not started", error=str(error)[:200])

    def close(self) -> None:
        exporter_lib.stop(self._exporter)
        self._prober.close()


def run_join(error_log: Path, state_file: Path) -> Join | None:
    """How the current run joined, from its error log since the offset the run recorded."""
    state = read_json(state_file) or {}
    offset = state.get("log_offset")  # absolute: rotation does not move it
    try:
        since = logfiles.read_since(error_log, offset if isinstance(offset, int) else 0)
    except OSError:
        return None
    return last_join(since)


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


async def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while alive(pid):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
