"""The ``kube`` fixture: the Kubernetes API emulator (tests/kube/emulator.py) over real HTTP."""

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import aiohttp.web
import pytest
import yaml
from kubernetes import client as k8s

from tests.kube.emulator import Call, KubeEmulator

if TYPE_CHECKING:
    from tests.kube.cluster import KubeCluster


class KubeServer:
    """A ``KubeEmulator`` served on a free port of 127.0.0.1 by a thread with its own loop.

    Its own loop keeps it serving while a test's loop is blocked in a synchronous client call.
    Use it as a context manager (or ``start()``/``stop()``); stopping drops open watches, closes
    the port and joins the thread. The emulator's test helpers are forwarded for brevity.
    """

    def __init__(self, emulator: KubeEmulator | None = None) -> None:
        self.emulator = emulator or KubeEmulator()
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self.drop_watches = self.emulator.drop_watches
        self.expire_next_watch = self.emulator.expire_next_watch
        self.compact = self.emulator.compact
        self.fail_next = self.emulator.fail_next

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def calls(self) -> list[Call]:
        """The request log: every request served, oldest first."""
        return self.emulator.calls

    def configuration(self) -> k8s.Configuration:
        """A ``Configuration`` of the official client for this server."""
        config = k8s.Configuration()
        config.host = self.url
        return config

    def api_client(self) -> k8s.ApiClient:
        """An ``ApiClient`` of the official client, configured for this server."""
        return k8s.ApiClient(self.configuration())

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """Write a kubeconfig file for this server (for ``--kubeconfig``); return its path."""
        context = {"cluster": "emulator", "user": "emulator", "namespace": namespace}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator-token"}}],
            "contexts": [{"name": "emulator", "context": context}],
            "current-context": "emulator",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise RuntimeError("the Kubernetes emulator did not start") from self._failure
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)
        if self._thread.is_alive():
            raise RuntimeError("the Kubernetes emulator thread did not stop")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        runner = aiohttp.web.ServerRunner(aiohttp.web.Server(self.emulator), shutdown_timeout=1)
        await runner.setup()
        try:
            site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            async with self.emulator:
                self.port = runner.addresses[0][1]
                self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
                self._ready.set()
                await self._stopping.wait()
                self.emulator.drop_watches()
                await asyncio.sleep(0.05)  # let the watch handlers end
        finally:
            await runner.cleanup()


@pytest.fixture
def kube() -> Iterator[KubeServer]:
    """A fresh emulated Kubernetes API server (starting one takes a few milliseconds)."""
    with KubeServer() as server:
        yield server


@pytest.fixture
def kube_cluster(tmp_path: Path) -> "Iterator[KubeCluster]":
    """A test cluster (tests/kube/cluster.py): API server, controllers and a kubelet running
    pods as local processes under ``tmp_path``. Every process it started is gone afterwards,
    whatever the test did."""
    from tests.kube.cluster import KubeCluster  # cluster.py imports this module

    with KubeCluster(tmp_path / "cluster") as cluster:
        yield cluster
