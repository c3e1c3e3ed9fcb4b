"""The health watch: one long async activity per cluster, on a task queue of its own.

Watching and acting never compete. The workers serve the watches from `<queue>-watch` with a
limit of their own (`--max-watches`), and every other activity from the cluster queue with
theirs, so a worker full of watches still runs every repair. A watch waits on the event loop
(no thread while it sleeps); each round's probes run in a small shared pool of probe threads,
over connections kept between probes (`activities.probe.ProbePool`).

A worker that is full says so: it logs when its last watch slot is taken and when room comes
back, and the cluster workflow, whose watch no worker picks up in time, shows it in its status.
"""

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import structlog
from temporalio import activity

from activities.cluster import worker_shutting_down
from activities.messages import Observation, WatchInput
from activities.metrics import WATCH_SLOTS, WATCHES
from activities.observe import Observer, observation
from activities.probe import Target

log = structlog.get_logger()

WATCH_QUEUE_SUFFIX = "-watch"


def watch_queue(task_queue: str) -> str:
    """The task queue of the health watches of clusters run on `task_queue`."""
    return task_queue + WATCH_QUEUE_SUFFIX


class WatchLoad:
    """How many watches this worker runs against its limit; logs the moments it fills up and
    has room again (never silently full)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.full = False
        WATCH_SLOTS.set(limit)

    @contextlib.contextmanager
    def watching(self, cluster: str) -> Iterator[None]:
        self.running += 1
        WATCHES.inc()
        if self.running >= self.limit and not self.full:
            self.full = True
            log.warning(
                "every watch slot of this worker is taken: further clusters wait for a slot "
                "here or on another worker (start one, or raise --max-watches)",
                watches=self.running,
                limit=self.limit,
                last=cluster,
            )
        try:
            yield
        finally:
            self.running -= 1
            WATCHES.dec()
            if self.full and self.running < self.limit:
                self.full = False
                log.info("room for watches again", watches=self.running, limit=self.limit)


class HealthWatch:
    """`watch_health`: probe every node each interval and return only when what is seen differs
    from the baseline, or after `resync_seconds`, so history grows with changes, not with time.
    Without a baseline it returns the first look at once (a task's survey, a new watcher)."""

    def __init__(
        self, observer: Observer, probes: ThreadPoolExecutor, load: WatchLoad | None = None
    ) -> None:
        self.observer = observer
        self.probes = probes
        self.load = load  # None where it only serves surveys (the task queue)

    @activity.defn(name="watch_health")
    async def watch_health(self, request: WatchInput) -> Observation:
        loop = asyncio.get_running_loop()
        started = loop.time()
        targets = await loop.run_in_executor(self.probes, self.observer.targets, request.layout)
        baseline = request.baseline.signature() if request.baseline else None
        counted = self.load.watching(request.layout.cluster.key) if self.load else None
        with counted or contextlib.nullcontext():
            try:
                interval = request.health.probe_interval_seconds
                while True:
                    round_started = loop.time()
                    seen = await self._observe(request, targets)
                    if seen.signature() != baseline:
                        return seen
                    if loop.time() - started > request.health.resync_seconds:
                        seen.resync = True
                        return seen
                    activity.heartbeat()
                    # One round each interval, however long a round took on a busy worker.
                    await asyncio.sleep(max(0.0, round_started + interval - loop.time()))
            except asyncio.CancelledError:
                if activity.is_worker_shutdown():
                    # Not a cancel the workflow asked for: fail, so that it retries elsewhere.
                    raise worker_shutting_down() from None
                raise

    async def _observe(self, request: WatchInput, targets: dict[str, Target]) -> Observation:
        loop = asyncio.get_running_loop()
        layout, timeout = request.layout, request.health.probe_timeout_seconds
        nodes = await asyncio.gather(
            *(
                loop.run_in_executor(self.probes, self.observer.node, layout, name, target, timeout)
                for name, target in targets.items()
            )
        )
        view = await loop.run_in_executor(self.probes, self.observer.load_balancer, layout)
        return observation(list(nodes), view, request.health.serve_from_donor)
