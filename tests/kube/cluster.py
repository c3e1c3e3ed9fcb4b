"""``KubeCluster``: a Kubernetes cluster for tests, on this machine.

The emulated API server (``tests/kube/emulator.py``, served over HTTP by ``KubeServer``), the
controllers (``tests/kube/controllers.py``: StatefulSet, Deployment, claim binding, garbage
collection) and one kubelet for every node (``tests/kube/kubelet.py``: each container a local
process, each pod a loopback address, claims as directories, DNS as hosts files and a small
DNS server, ``tests/kube/dns.py``). Their module docstrings say what is faithful and what
differs. Use it as a context manager (the ``kube_cluster`` fixture of
``tests/kube/conftest.py`` does): leaving it stops the kubelet first (every process it
started ends, then its DNS server), then the controllers, then the server. One cluster per
``pod_cidr`` runs on a machine at a time: its DNS server takes port 53 of the CIDR's first
address.

The test defaults are fast: back-off 0.5 s doubling to 5 s, probe periods and initial delays
x 0.1, 2 s of grace when the kubelet stops.
"""

import signal
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from kubernetes import client as k8s

from tests.kube.conftest import KubeServer
from tests.kube.controllers import ControllerManager
from tests.kube.informer import PODS, Api, Obj, wait_for
from tests.kube.kubelet import Container, Kubelet

T = TypeVar("T")


class KubeCluster:
    def __init__(
        self,
        root: Path,
        *,
        pod_cidr: str = "127.11.0.0/24",
        backoff_base: float = 0.5,
        backoff_cap: float = 5.0,
        probe_period_scale: float = 0.1,
        stop_grace: float = 2.0,
        server: KubeServer | None = None,
    ) -> None:
        self.root, self.pod_cidr, self.stop_grace = root, pod_cidr, stop_grace
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.probe_period_scale = probe_period_scale
        self._own_server, self._server_started = server is None, False
        self.server = server or KubeServer()
        self.controllers: ControllerManager | None = None
        self.kubelet: Kubelet | None = None
        self.api: Api | None = None  # JSON calls (tests/kube/informer.py), for tests

    def start(self) -> Self:
        try:
            if self._own_server:
                self.server.start()
                self._server_started = True
            configuration = self.configuration()
            self.api = Api(configuration)
            self.controllers = ControllerManager(configuration)
            self.controllers.start()
            self.kubelet = Kubelet(
                configuration,
                self.root,
                pod_cidr=self.pod_cidr,
                backoff_base=self.backoff_base,
                backoff_cap=self.backoff_cap,
                probe_period_scale=self.probe_period_scale,
                stop_grace=self.stop_grace,
            )
            self.kubelet.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """The kubelet (its processes), the controllers, the server: each even if one fails."""
        try:
            if self.kubelet is not None:
                self.kubelet.stop()
        finally:
            try:
                if self.controllers is not None:
                    self.controllers.stop()
            finally:
                if self.api is not None:
                    self.api.close()
                if self._server_started:
                    self._server_started = False
                    self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the API --------------------------------------------------------------------------------

    def configuration(self) -> k8s.Configuration:
        return self.server.configuration()

    def api_client(self) -> k8s.ApiClient:
        """An ``ApiClient`` of the official client for this cluster's API server."""
        return self.server.api_client()

    def pod(self, namespace: str, name: str) -> Obj | None:
        assert self.api is not None
        return self.api.get(PODS, namespace, name)

    # --- the node -------------------------------------------------------------------------------

    @property
    def node(self) -> Kubelet:
        assert self.kubelet is not None, "the cluster is not started"
        return self.kubelet

    def pod_ip(self, namespace: str, pod: str) -> str | None:
        """The address of a pod running now (``None`` if it does not run here)."""
        return self.node.pod_ip(namespace, pod)

    def pvc_dir(self, namespace: str, claim: str) -> Path:
        """The directory that is a claim's volume (whether it exists yet or not)."""
        return self.node.claim_path(namespace, claim)[0]

    def container(self, namespace: str, pod: str, container: str | None = None) -> Container:
        return self.node.container(namespace, pod, container)

    def kill_container(
        self, namespace: str, pod: str, container: str | None = None, sig: int = signal.SIGKILL
    ) -> None:
        """Signal only the container's process group; the kubelet restarts it per policy."""
        self.node.kill_container(namespace, pod, container, sig)

    def oom_kill(self, namespace: str, pod: str, container: str | None = None) -> None:
        """SIGKILL the container's group; its termination reason is OOMKilled."""
        self.node.oom_kill(namespace, pod, container)

    def dns_command(self, argv: list[str]) -> list[str]:
        """A command line running ``argv`` with the cluster's DNS names of the pods (hosts file
        and resolv.conf, see ``Kubelet.dns_command``); the caller starts the process and ends
        it."""
        return self.node.dns_command(argv)

    def require_dns(self) -> None:
        """Raise a clear error unless pods resolve each other's names (root, unshare, and an
        /etc/resolv.conf to mount over)."""
        self.node.require_dns()

    def logs(
        self, namespace: str, pod: str, container: str | None = None, previous: bool = False
    ) -> str:
        """What a container (its current or previous run) wrote to stdout and stderr."""
        obj = self.pod(namespace, pod)
        if obj is None:
            raise KeyError(f"no pod {namespace}/{pod}")
        statuses = (obj.get("status") or {}).get("containerStatuses") or []
        status = next((s for s in statuses if container in (None, s["name"])), None)
        if status is None:
            return ""  # not started yet
        run = status["restartCount"] - previous
        uid = obj["metadata"]["uid"]
        path = self.root / "logs" / f"{namespace}_{pod}_{uid}" / status["name"] / f"{run}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- waiting --------------------------------------------------------------------------------

    @staticmethod
    def wait_for(predicate: Callable[[], T | None], timeout: float = 30.0, message: str = "") -> T:
        """Poll until ``predicate()`` is true; return its value (or fail with ``message``)."""
        try:
            return wait_for(predicate, timeout)
        except TimeoutError:
            raise TimeoutError(f"{message or predicate!r}: not true after {timeout} s") from None

    def wait_pod_ready(self, namespace: str, pod: str, timeout: float = 30.0) -> Obj:
        """Wait until the pod is Running and Ready; return it."""

        def ready() -> Obj | None:
            obj = self.pod(namespace, pod)
            status = (obj or {}).get("status") or {}
            conditions = status.get("conditions") or []
            ok = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            return obj if ok and status.get("phase") == "Running" else None

        return self.wait_for(ready, timeout, f"pod {namespace}/{pod} Ready")
