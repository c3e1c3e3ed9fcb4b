"""List, then watch: the watcher's view of one kind of custom resource.

The loop a real API server expects of a client (as client-go's reflector does it): list, then
watch from the list's resourceVersion, moving the version on with every event and BOOKMARK; a
stream that ends or drops is watched again from the last version; a 410 Gone (the version was
compacted) means relist; every `resync` seconds, a relist anyway. Level-triggered: each
(re)list hands every object to `seen` again, and the ones missing from it to `gone`, so
whatever events were lost, the handlers end up with the objects that exist now.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from kubernetes.aio.client import CustomObjectsApi
from kubernetes.aio.watch import Watch

from activities.kubernetes.client import PLURALS, ApiClient, ApiException, as_object
from api.crd import GROUP, VERSION
from workers.operator import metrics

log = structlog.get_logger()

Handler = Callable[[dict[str, Any], bool], Awaitable[None]]  # object, from a (re)list
Gone = Callable[[dict[str, Any]], Awaitable[None]]
WATCH_SECONDS = 300  # a real server ends a watch after about this long anyway
RETRY = (0.5, 30.0)  # seconds between attempts after an error, doubling between these


def key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class Informer:
    def __init__(
        self,
        api: ApiClient,
        plural: str,
        seen: Handler,
        gone: Gone,
        namespace: str | None = None,
        resync_seconds: float = 300,
    ) -> None:
        self.objects = CustomObjectsApi(api)
        self.plural, self.namespace = plural, namespace
        self.seen, self.gone = seen, gone
        self.resync_seconds = resync_seconds
        self.known: dict[str, dict[str, Any]] = {}
        self.version: str | None = None  # where the watch goes on from; None: list first
        self.lists = 0  # how many times the whole collection was read
        self.synced = asyncio.Event()  # set once the first list was handled
        self.kind = next((k for k, p in PLURALS.items() if p == plural), plural)

    def _call(self) -> tuple[Callable[..., Awaitable[object]], tuple[str, ...]]:
        if self.namespace is None:
            return self.objects.list_cluster_custom_object, (GROUP, VERSION, self.plural)
        return self.objects.list_namespaced_custom_object, (
            GROUP,
            VERSION,
            self.namespace,
            self.plural,
        )

    async def run(self) -> None:
        pause = RETRY[0]
        while True:
            try:
                if self.version is None:
                    self.version = await self.relist()
                self.version = await self.watch(self.version)
                pause = RETRY[0]
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the API server unreachable, a 5xx...: try again
                log.warning("watch failed", plural=self.plural, error=str(error), retry_in=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY[1])

    async def relist(self) -> str:
        func, args = self._call()
        metrics.SYNCED.labels(self.kind).set(0)
        listing = as_object(await func(*args))
        self.lists += 1
        metrics.RELISTS.labels(self.kind).inc()
        current = {key(obj): obj for obj in listing.get("items", [])}
        for name, obj in list(self.known.items()):
            if name not in current:
                del self.known[name]
                await self.gone(obj)
        self.known = current
        for obj in current.values():
            await self._handle(obj, listed=True)
        self.synced.set()
        metrics.SYNCED.labels(self.kind).set(1)
        version: str = listing.get("metadata", {}).get("resourceVersion", "")
        return version

    async def watch(self, version: str) -> str | None:
        """Events from `version` on; the version to go on from, or None to relist (410 Gone,
        or time for the periodic resync)."""
        func, args = self._call()
        deadline = time.monotonic() + self.resync_seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with Watch() as stream:  # type: ignore[no-untyped-call]
                    events = stream.stream(
                        func,
                        *args,
                        resource_version=version,
                        allow_watch_bookmarks=True,
                        timeout_seconds=max(1, int(min(left, WATCH_SECONDS))),
                    )
                    async for event in events:
                        version = self.version = self._version(event, version)
                        await self._event(event)
            except ApiException as error:
                if error.status == 410:
                    log.info("watch version expired: relisting", plural=self.plural)
                    return None
                raise
        return None

    @staticmethod
    def _version(event: dict[str, Any], version: str) -> str:
        raw = event.get("raw_object") or {}
        found = raw.get("metadata", {}).get("resourceVersion")
        return str(found) if found else version

    async def _event(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("raw_object") or {}
        if kind == "BOOKMARK":
            return
        metrics.EVENTS.labels(self.kind, str(kind)).inc()
        if kind == "DELETED":
            if self.known.pop(key(obj), None) is not None:
                await self.gone(obj)
            return
        self.known[key(obj)] = obj
        await self._handle(obj, listed=False)

    async def _handle(self, obj: dict[str, Any], listed: bool) -> None:
        try:
            await self.seen(obj, listed)
        except asyncio.CancelledError:
            raise
        except Exception:  # one object's trouble must not stop the others: the resync retries
            metrics.RECONCILES.labels(self.kind, "error").inc()
            log.exception("handling failed", plural=self.plural, object=key(obj))
        else:
            metrics.RECONCILES.labels(self.kind, "ok").inc()
