"""Reports to the cluster workflow: a signal per state transition (edge-triggered, never a
heartbeat stream); while Temporal is unreachable only the newest report waits."""

import asyncio
import contextlib

import structlog
from temporalio.client import Client

from api.agent import AgentConfig
from api.messages import SIGNAL_NODE_REPORT, NodeReport
from workers.agent_metrics import AgentMetrics
from workers.temporal import Connection

log = structlog.get_logger()


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
            # TLS as every mysqlops process takes it: TEMPORAL_TLS_* files (in a Pod, the
            # mounted Secret the runtime names; locally, what the worker that started us had).
            connection = Connection.load(
                address=self._config.temporal_address, namespace=self._config.temporal_namespace
            )
            self._client = await asyncio.wait_for(connection.connect(), timeout=3)
        handle = self._client.get_workflow_handle(self._config.workflow_id)
        await asyncio.wait_for(handle.signal(SIGNAL_NODE_REPORT, report), timeout=3)
        log.info("reported", state=report.state.value, sequence=report.sequence)
