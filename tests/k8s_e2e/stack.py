"""A MySQL cluster on (simulated) Kubernetes, end to end: the emulated API server, the test
StatefulSet/Deployment controllers and kubelet (tests/kube/), the real watcher (`mysqlops
operator`) and a real worker with the Kubernetes runtime as processes, and real mariadbd +
galera + HAProxy in the Pods. What differs from a real cluster: docs/kubernetes.md ("The test
cluster"). The Temporal dev server is the caller's.

The worker runs as a process of this machine that uses the cluster's DNS (as a worker Pod
would): in a mount namespace of its own with the kubelet's cluster hosts file on /etc/hosts.

`running_stack` builds it for the end-to-end scenarios (conftest.py) and for
`bench/kubernetes.py`.
"""

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pymysql
import yaml
from kubernetes import client as k8s

from tests.kube.cluster import KubeCluster
from tests.kube.informer import PODS, SECRETS, Api, Kind

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "k8s" / "mysqlcluster.yaml"
GROUP, VERSION = "mysqlops.io", "v1alpha1"
MYSQLBACKUP, MYSQLRESTORE = "mysqlbackups", "mysqlrestores"
T = TypeVar("T")
Obj = dict[str, Any]


@dataclass
class Stack:
    cluster: KubeCluster
    namespace: str
    root: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def api(self) -> Api:
        assert self.cluster.api is not None
        return self.cluster.api

    @property
    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.cluster.api_client())

    def get(self, kind: Kind, name: str) -> Obj | None:
        return self.api.get(kind, self.namespace, name)

    def delete_pod(self, name: str) -> None:
        self.api.delete(PODS, self.namespace, name)

    def apply_cluster(self, name: str, **spec: Any) -> Obj:
        """`kubectl apply -f examples/k8s/mysqlcluster.yaml`, renamed, `spec` merged in."""
        body = yaml.safe_load(EXAMPLE.read_text())
        body["metadata"] = {"name": name, "namespace": self.namespace}
        body["spec"].update(spec)
        created = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "mysqlclusters", body
        )
        assert isinstance(created, dict)
        return created

    def patch_cluster(self, name: str, spec: Obj) -> None:
        """`kubectl patch mysqlcluster NAME --type merge -p '{"spec": ...}'`."""
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "mysqlclusters", name, {"spec": spec}
        )

    def delete_cluster(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "mysqlclusters", name
        )

    def create(self, plural: str, name: str, spec: Obj) -> None:
        """A MySQLBackup or MySQLRestore, as `kubectl apply` makes it."""
        kind = {MYSQLBACKUP: "MySQLBackup", MYSQLRESTORE: "MySQLRestore"}[plural]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)

    def resource_status(self, plural: str, name: str) -> Obj:
        found = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        )
        assert isinstance(found, dict)
        status: Obj = found.get("status") or {}
        return status

    def mysqlcluster(self, name: str) -> Obj | None:
        try:
            found = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "mysqlclusters", name
            )
        except k8s.ApiException as error:
            if error.status == 404:
                return None
            raise
        assert isinstance(found, dict)
        return found

    def status(self, name: str) -> Obj:
        return (self.mysqlcluster(name) or {}).get("status") or {}

    def wait_green(self, name: str, timeout: float = 300) -> Obj:
        return wait(
            lambda: (
                (s := self.status(name)).get("state") == "Green" and not s.get("currentTask") and s
            ),
            timeout,
            f"{name} Green and idle",
            self.diagnose,
        )

    def secret(self, name: str, key: str) -> str:
        secret = self.get(SECRETS, f"{name}-secrets") or {}
        return base64.b64decode(secret["data"][key]).decode()

    def pod_ip(self, pod: str) -> str:
        ip = self.cluster.pod_ip(self.namespace, pod)
        assert ip, f"pod {pod} has no IP"
        return ip

    def haproxy_ip(self, name: str) -> str:
        pods, _ = self.api.list(PODS, self.namespace)
        ready = [
            str(pod["status"]["podIP"])
            for pod in pods
            if pod["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == name
            and pod["metadata"]["labels"].get("app.kubernetes.io/component") == "load-balancer"
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (pod.get("status") or {}).get("conditions") or []
            )
        ]
        assert ready, f"no Ready HAProxy pod of {name}"
        return sorted(ready)[0]

    def connect(self, host: str, name: str, port: int = 3306) -> "pymysql.Connection[Any]":
        return pymysql.connect(
            host=host,
            port=port,
            user="app",
            password=self.secret(name, "app-password"),
            connect_timeout=5,
            autocommit=True,
        )

    def wait_started(self, timeout: float = 60) -> None:
        """Until the worker and the watcher have said they serve."""
        said = {"worker": "worker started", "operator": "operator started"}
        wait(
            lambda: all(line in self.log(what) for what, line in said.items()),
            timeout,
            "the worker and the watcher started",
            self.diagnose,
        )

    def log(self, what: str) -> str:
        path = self.root / f"{what}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def diagnose(self) -> str:
        """What to read when a wait fails: the processes' last lines."""
        return "\n".join(
            f"--- {what} (exit {process.poll()}):\n{self.log(what)[-3000:]}"
            for what, process in self.processes.items()
        )


def wait(
    check: Callable[[], T | bool | None],
    timeout: float,
    what: str,
    diagnose: Callable[[], str] | None = None,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found  # type: ignore[return-value]
        if time.monotonic() > deadline:
            extra = f"\n{diagnose()}" if diagnose else ""
            raise AssertionError(f"not reached within {timeout} s: {what}{extra}")
        time.sleep(0.5)


@contextlib.contextmanager
def running_stack(root: Path, temporal_address: str) -> Iterator[Stack]:
    """The simulated cluster under `root` (which keeps the processes' logs), the watcher and
    the worker on a task queue of their own, reporting to the Temporal server at
    `temporal_address`, in a new namespace; yielded once both serve. On the way out, the two
    processes (SIGTERM, then SIGKILL after 15 s), then the cluster: the kubelet ends every
    container it started."""
    with KubeCluster(root / "cluster") as cluster:
        cluster.require_dns()
        stack = Stack(cluster, f"e2e{uuid.uuid4().hex[:6]}", root)
        kubeconfig = cluster.server.kubeconfig(root / "kubeconfig", stack.namespace)
        queue = f"k8s-e2e-{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": temporal_address,
            "MYSQLOPS_IMAGE": "mysqlops:e2e",  # the kubelet runs this checkout whatever it says
            "MYSQLOPS_BACKUP_DIR": str(root / "backups"),
            "MYSQLOPS_HAPROXY_REPLICAS": "2",
            "MYSQLOPS_POD_WAIT": "120",
            "PYTHONUNBUFFERED": "1",
        }
        python = [sys.executable, "-m"]
        commands = {
            "worker": cluster.dns_command(
                [
                    *python,
                    "workers.worker",
                    "--runtime=kubernetes",
                    f"--kubeconfig={kubeconfig}",
                    f"--task-queue={queue}",
                    "--metrics-address=",
                    "--sdk-metrics-address=",
                ]
            ),
            "operator": [
                sys.executable,
                "-c",
                "from workers.cli import main; main()",
                "operator",
                f"--kubeconfig={kubeconfig}",
                f"--task-queue={queue}",
                "--metrics-address=",
            ],
        }
        try:
            for what, command in commands.items():
                with open(root / f"{what}.log", "ab") as log:
                    stack.processes[what] = subprocess.Popen(
                        command, env=env, stdout=log, stderr=log, cwd=REPO, start_new_session=True
                    )
            stack.wait_started()
            yield stack
        finally:
            for process in stack.processes.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            for process in stack.processes.values():
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
