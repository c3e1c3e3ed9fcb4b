"""The kubelet of the test cluster: every Pod's containers as local processes.

No kubelet can run on a test machine, so this one runs each container's command as a process
of this machine, and reports to the API server as a kubelet does. It talks to the API server
only over HTTP with the official client (``tests/kube/informer.py``: list+watch of pods,
persistentvolumeclaims, configmaps and secrets). One kubelet plays every node, and the
scheduler: it binds every unbound Pod to its ``node_name`` (``pods/binding``) once the Pod's
claims exist (else the Pod stays Pending with PodScheduled=False, reason Unschedulable, as the
real scheduler leaves it). Pods bound to another node name are left alone. One thread per
Pod; ``stop()`` stops every container and joins every thread.

What it does as a real kubelet does (what a runtime may rely on):

1. **Containers.** One process per container (1+ containers; a pod with ``initContainers``
   waits with CreateContainerConfigError; ephemeral containers are ignored), started by
   ``subprocess.Popen`` in a session of its own: the container is its process group.
   Killing the container kills the group; when the container's main process ends, the rest
   of its group is killed too (as a container's PID namespace ends with its init). Stop:
   ``lifecycle.preStop`` (exec or httpGet), then SIGTERM to the main process only (as a
   container runtime signals PID 1), then after the grace period SIGKILL to the whole group.
   A child that left the group (``setsid``) is still found and killed by an environment
   variable every container process inherits, ``TEST_KUBELET_CONTAINER`` (a cgroup
   stand-in; a child started with a clean environment and a session of its own would escape
   it). If the test process itself is killed (SIGKILL), its containers outlive it.
2. **The image stand-in.** There are no images: ``image`` is only reported. The command runs
   with cwd = the repository root and ``PATH`` = the directory of ``sys.executable`` first
   (so ``python`` is the venv's), then this process's PATH, then an image's usual
   ``/usr/local/sbin:...:/bin`` (haproxy, mariadbd are the host's); ``HOME``, ``HOSTNAME``
   (the pod's hostname), ``KUBERNETES_SERVICE_HOST``/``_PORT`` (the emulator's address;
   plain HTTP, no service account token is mounted) and the container's ``env``. Nothing
   else of this process's environment is passed. Without ``command`` the container cannot
   start (CreateContainerConfigError: the stand-in has no ENTRYPOINT). ``command`` +
   ``args`` are combined and ``$(VAR)`` expanded (``$$`` escapes; unknown variables stay as
   they are) as Kubernetes does; so are ``env`` values, from the variables defined before
   them.
3. **Environment.** ``env`` with ``value`` or ``valueFrom``: ``fieldRef`` (metadata.name,
   namespace, uid, labels['k'], annotations['k'], spec.nodeName, spec.serviceAccountName,
   status.podIP, podIPs, hostIP, hostIPs), ``secretKeyRef``, ``configMapKeyRef`` (missing and
   not ``optional``: the container waits with CreateContainerConfigError); ``envFrom``
   (configMapRef, secretRef, prefix). ``resourceFieldRef`` is not supported. The environment
   is resolved when a container starts, as a real kubelet does.
4. **Pod IPs.** Each Pod gets a loopback address of its own from ``pod_cidr`` (from .2): a
   process binds it without any setup (all of 127.0.0.0/8 is local on Linux). ``hostIP`` is
   127.0.0.1. A Pod recreated with the same name gets its old address again if free (a real
   cluster gives a new one). Pods are not isolated from each other or from the host: no
   network namespace, ports of all pods and of the host share one loopback.
5. **Status** (``pods/status`` JSON patches that first ``test`` the pod's uid, as a real
   kubelet's patch carries it, only when it changes):
   phase Pending (until a container started) → Running; Succeeded/Failed only with
   ``restartPolicy`` Never/OnFailure, when every container ended without a restart to come.
   podIP(s), hostIP(s), startTime, conditions PodScheduled, Initialized, ContainersReady,
   Ready (with lastTransitionTime; readiness gates are ignored), and ``containerStatuses``:
   name, image, imageID "", containerID ``pid://<pid>``, ready, started, restartCount, state
   (running.startedAt, waiting with reason ContainerCreating / CrashLoopBackOff /
   CreateContainerConfigError, terminated), lastState.terminated (exitCode, reason
   Completed / Error / OOMKilled, startedAt, finishedAt, and for a death by signal
   ``signal`` with exitCode 128+signal). ``oom_kill()`` SIGKILLs a container's group and
   reports OOMKilled; there are no memory limits.
6. **Restarts.** ``restartPolicy`` Always (the default), OnFailure, Never. As the kubelet's
   back-off: the first restart at once, then after ``backoff_base`` seconds (10 s in
   Kubernetes), doubling up to ``backoff_cap`` (300 s); the back-off starts over when the
   container ran longer than 2 x ``backoff_cap`` (the 10 minutes of Kubernetes). While it
   waits the state is waiting/CrashLoopBackOff. restartCount counts the starts after the first.
7. **Probes.** startupProbe, livenessProbe, readinessProbe with ``exec``, ``httpGet`` (host
   = podIP unless ``host``; port number or named container port; path; ``httpHeaders``;
   HTTP or HTTPS without verification; 200-399 is success) or ``tcpSocket``; ``grpc`` always
   fails. initialDelaySeconds, periodSeconds (10), timeoutSeconds (1), successThreshold (1),
   failureThreshold (3), and a probe's terminationGracePeriodSeconds. **periodSeconds and
   initialDelaySeconds are multiplied by ``probe_period_scale``** so tests run fast;
   timeouts are not. Liveness and readiness start once the startup probe succeeded.
   Readiness drives ``ready`` and Ready/ContainersReady; a container without readiness probe
   is ready once started. A failed liveness or startup probe stops the container (preStop,
   SIGTERM, grace, SIGKILL) and it restarts per ``restartPolicy`` (a restart, counted).
8. **Deletion.** The emulator deletes a bound Pod gracefully (its assumption 12): it sets
   ``deletionTimestamp`` and ``deletionGracePeriodSeconds``; the kubelet then runs each
   running container's preStop and stops it as in 1 within that grace period (from when it
   sees the deletion; not scaled), reports the final status, and deletes the Pod with
   ``gracePeriodSeconds: 0`` and its uid as precondition: only then is the object gone (so
   a StatefulSet's replacement, of the same name, can only be created after the old Pod's
   processes ended). A Pod removed at once (force delete) gets SIGTERM and, after
   ``stop_grace``, SIGKILL, without preStop.
9. **Volumes.** Each volume is a directory of this machine under ``root``:
   ``persistentVolumeClaim``: ``<root>/pvc/<namespace>/<claim>/``, one per claim, kept across
   container restarts and pod recreation, removed once the claim object is gone and no pod
   uses it any more (instead of a pvc-protection finalizer); a claim deleted and created
   again under the same name gets a new, empty directory. ``emptyDir``: one per pod instance
   (``<root>/pods/<uid>/volumes/<name>``), removed with the pod. ``configMap`` and
   ``secret``: their data (secrets' base64-decoded; ``items`` key→path with their ``mode``;
   ``optional``) written as a real kubelet's atomic writer does (``..data`` symlink to a
   timestamped directory, one symlink per top-level entry), with ``defaultMode`` if given,
   else 0644 for a configMap and **0600 for a secret (a real kubelet's default is 0644: a
   runtime that needs 0600 must set defaultMode)**; rewritten within a tick (``tick``,
   0.1 s) after the object changes (a real kubelet takes up to about a minute), also below a
   subPath (a real kubelet does not update subPath mounts). Other volume types keep the
   container waiting (CreateContainerConfigError). ``readOnly`` is not enforced; there are
   no ``fsGroup`` or ownership changes.
10. **Mount paths (the main difference).** Containers share this machine's file system, so
   a volumeMount's ``mountPath`` does not exist for them. Instead, in the container's env
   values and in its command/args (after ``$(VAR)`` expansion), **every value equal to a
   mountPath or starting with mountPath + "/" is rewritten to the volume's host directory**
   (joined with ``subPath``, created if missing); the longest mountPath wins. Only whole
   values: ``--datadir=/var/lib/mysql`` is not rewritten, ``/var/lib/mysql/x`` is. Programs
   must take all their paths from env or args. Exec probes and hooks get the same rewriting.
   A value that is a path of this machine under a mountPath is rewritten too (a test's
   ``/tmp/pytest-...`` file given to a pod with a volume on ``/tmp``).
11. **DNS.** As root, each container (and each exec probe or hook) runs in a private mount
   namespace (``unshare --mount --uts --propagation private``) where a per-pod hosts file
   (``<root>/pods/<uid>/etc-hosts``) is bind-mounted on /etc/hosts and a per-pod
   ``resolv.conf`` on /etc/resolv.conf (on the file it points to if it is a symlink: the
   host's files never change), and its hostname is the pod's (``spec.hostname`` or its name).
   The names (``dns_records()``, the one source of both files and of the DNS server): every
   Pod with a podIP and a ``spec.subdomain`` that is not terminating or finished is
   ``<hostname>.<subdomain>.<ns>.svc.cluster.local``, Ready or not (as with
   ``publishNotReadyAddresses: true``) and whether or not a headless Service of that name
   exists or selects it. Service names themselves do not resolve.

   - **The hosts file**, kept up to date in place (written then truncated, never renamed, so
     the bind mount sees it): the real kubelet's (localhost lines, the pod's own ``<ip>
     <hostname>.<subdomain>.<ns>.svc.cluster.local <hostname>``), plus the pod's own
     ``<hostname>.<subdomain>.<ns>.svc`` and every other pod's name in each form a search list
     finds: ``<ip> <fqdn> <hostname>.<subdomain>.<ns>.svc <hostname>.<subdomain>.<ns>
     <hostname>.<subdomain>`` (the last only within the same namespace). libc reads it
     before asking DNS.
   - **The cluster DNS** (``tests/kube/dns.py``, CoreDNS's stand-in): a server on the first
     address of ``pod_cidr`` (127.11.0.1), port 53, UDP and TCP, authoritative for
     ``cluster.local`` with the same names (updated with the hosts files), TTL 5 s; NXDOMAIN
     for other names of the zone, REFUSED outside it (no recursion: pods in tests need only
     cluster names). The resolv.conf is what a real kubelet writes for ``dnsPolicy:
     ClusterFirst``: ``search <ns>.svc.cluster.local svc.cluster.local cluster.local``,
     ``nameserver 127.11.0.1``, ``options ndots:5`` (the host's search domains are not
     appended). It serves programs that ask DNS themselves, such as HAProxy's ``resolvers``
     with ``parse-resolv-conf`` (following a pod's new IP). Those apply no search list: as in
     a real cluster, only the full ``....svc.cluster.local`` resolves for them (``x.svc``
     asked as it is: REFUSED here, NXDOMAIN from a real cluster's upstream resolver).

   ``dns_command(argv)`` gives a process of this machine (a worker standing for a pod) the
   same names: the cluster-wide hosts file ``<root>/cluster-hosts`` (no short
   ``<hostname>.<subdomain>`` form) and ``<root>/cluster-resolv.conf`` (search ``svc.cluster.local
   cluster.local``). One machine runs one kubelet per ``pod_cidr``: a second one cannot bind
   its DNS address and fails to start. Not root (``dns=False``): no namespaces, no files, no
   DNS server, the host's name and resolver; a test that needs DNS calls ``require_dns()``,
   which raises a clear error.
12. **Ignored**: ``securityContext`` (users, fsGroup, read-only root file system,
   capabilities: every process runs as the test's user, root), ``resources`` (no limits, no
   QoS class), ``affinity``, ``nodeSelector``, ``tolerations`` (every pod lands on the one
   node: a required anti-affinity never leaves a pod Pending), ``shareProcessNamespace``,
   ``hostNetwork``, ``dnsPolicy``/``dnsConfig`` (every pod is ClusterFirst),
   ``enableServiceLinks`` (no service variables are ever set),
   ``automountServiceAccountToken`` (no token is mounted), image pull policies. There is no
   ``pods/eviction``, ``pods/exec`` or ``pods/log`` endpoint (``KubeCluster.logs`` reads the
   log files).
13. ``stop()`` (SIGTERM, ``stop_grace`` seconds, SIGKILL; no preStop, no API calls: the Pod
   objects stay as they are, as when a node dies) leaves no process it started, removes the
   pods' directories (hosts files, emptyDirs; claim directories and logs stay), stops the
   DNS server. Container output goes to
   ``<root>/logs/<ns>_<pod>_<uid>/<container>/<restartCount>.log``.
"""

import base64
import contextlib
import datetime
import http.client
import ipaddress
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from kubernetes import client as k8s

from tests.kube.dns import ZONE as CLUSTER_DOMAIN
from tests.kube.dns import DnsServer
from tests.kube.informer import (
    CONFIGMAPS,
    PODS,
    PVCS,
    SECRETS,
    Api,
    Informer,
    Kind,
    Obj,
    start_synced,
)

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER = "TEST_KUBELET_CONTAINER"
# Run in the container's mount and UTS namespaces: $0 the hosts file, $1 resolv.conf, $2 the
# hostname. /etc/resolv.conf may be a symlink: mount(2) follows it, in this namespace only.
IN_NAMESPACES = (
    'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && hostname "$2" '
    '&& shift 2 && exec "$@"'
)
# The same for a process of this machine (dns_command): $0 the hosts file, $1 resolv.conf.
IN_MOUNT_NAMESPACE = (
    'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
)
HOSTS_HEADER = (
    "# Kubernetes-managed hosts file (tests/kube/kubelet.py).\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # a usual image's
SECRET_DEFAULT_MODE = 0o600  # a real kubelet's is 0644 (see 9. above)
CONFIGMAP_DEFAULT_MODE = 0o644
DEFAULT_GRACE = 30
RESOLV_CONF = Path("/etc/resolv.conf")  # the host's; a symlink to it is fine


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def terminating(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


class ConfigError(Exception):
    """What keeps a container from starting: its waiting reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known variables replaced, ``$$`` → ``$``."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            end = value.find(")", i + 2) if nxt == "(" else -1
            if end != -1:
                name = value[i + 2 : end]
                out.append(env[name] if name in env else value[i : end + 1])
                i = end + 1
                continue
        out.append(value[i])
        i += 1
    return "".join(out)


def rewrite(value: str, mounts: list[tuple[str, Path]]) -> str:
    """A mountPath (or a path below it) as the volume's host directory (see 10. above)."""
    for mount_path, host in mounts:  # the longest first
        if value == mount_path:
            return str(host)
        if value.startswith(mount_path + "/"):
            return str(host) + value[len(mount_path) :]
    return value


def exited(pid: int) -> bool:
    """Whether a child ended, without reaping it: its pid (and process group id) stays ours."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def marked(prefix: str) -> list[int]:
    """Live processes whose environment carries our marker with this prefix."""
    needle = f"{MARKER}={prefix}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(v.startswith(needle) for v in environ.split(b"\0")):
            found.append(int(entry))
    return found


def sweep(prefix: str) -> None:
    for pid in marked(prefix):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def write_in_place(path: Path, content: str) -> None:
    """Write then truncate the same inode (never a rename): bind mounts of it see the change."""
    data = content.encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def decode(data: dict[str, str] | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (data or {}).items()}


def atomic_write(directory: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """A real kubelet's AtomicWriter: new files in a fresh ``..<time>`` directory, the
    ``..data`` symlink swapped to it by a rename, one symlink per top-level entry."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{uuid.uuid4().hex[:8]}"
    target = directory / stamp
    target.mkdir()
    for relative, (data, mode) in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    link = directory / "..data_tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(stamp)
    link.rename(directory / "..data")
    tops = {relative.split("/")[0] for relative in files}
    for top in tops:
        if not (directory / top).is_symlink():
            (directory / top).symlink_to(f"..data/{top}")
    for entry in directory.iterdir():
        if entry.name.startswith("..") and entry.name not in ("..data", stamp):
            shutil.rmtree(entry, ignore_errors=True)
        elif not entry.name.startswith("..") and entry.name not in tops and entry.is_symlink():
            entry.unlink()


@dataclass(frozen=True)
class DnsRecord:
    """A pod's name in the cluster DNS: ``<hostname>.<subdomain>.<ns>.svc.cluster.local``."""

    hostname: str
    subdomain: str
    namespace: str
    ip: str
    uid: str

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.subdomain}.{self.namespace}.svc.{CLUSTER_DOMAIN}"

    def hosts_line(self, namespace: str | None) -> str:
        """Its hosts-file line: every form libc finds through the search list of a pod in
        ``namespace`` (``None``: of ``dns_command``, which has no namespace)."""
        stem = f"{self.hostname}.{self.subdomain}.{self.namespace}"
        forms = [self.fqdn, f"{stem}.svc", stem]
        forms += [f"{self.hostname}.{self.subdomain}"] * (self.namespace == namespace)
        return f"{self.ip}\t{' '.join(forms)}\n"


@dataclass
class Probe:
    kind: str  # startup, liveness, readiness
    spec: Obj
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    in_flight: bool = False
    result: tuple[int, bool] | None = None  # (container instance, success) to be applied

    def seconds(self, name: str, default: float) -> float:
        return float(self.spec.get(name, default))


@dataclass
class Container:
    """One container of a Pod: its process group, restarts and probes. Only the pod's thread
    changes it (and reaps); other threads only signal it, under ``lock``."""

    pod: "PodWorker"
    spec: Obj
    proc: "subprocess.Popen[bytes] | None" = None
    instance: int = 0  # how many times it was started
    restart_count: int = 0
    started_at: str = ""
    state_terminated: Obj | None = None  # ended for good (no restart to come)
    last_terminated: Obj | None = None
    waiting: tuple[str, str] = ("ContainerCreating", "")
    next_start: float = 0.0
    backoff: float | None = None
    backoff_since: float = 0.0
    ready: bool = False
    started: bool = False
    oom: bool = False
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[tuple[str, Path]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    stopper: threading.Thread | None = None
    pid: int = 0  # of the last start
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def marker(self) -> str:
        return f"{self.pod.marker}{self.name}/{self.instance}/"

    def step(self, now: float) -> None:
        self.reap()
        if self.proc is None and self.pod.may_start(self) and now >= self.next_start:
            self.start(now)
        if self.proc is not None and self.stopper is None:
            self.probe(now)

    def start(self, now: float) -> None:
        pod, kubelet = self.pod, self.pod.kubelet
        try:
            self.env, self.mounts, argv = pod.resolve(self.spec)
        except ConfigError as exc:
            self.waiting, self.next_start = (exc.reason, exc.message), now + 0.5
            return
        self.restart_count += self.instance > 0
        self.instance += 1
        logs = kubelet.root / "logs" / f"{pod.namespace}_{pod.name}_{pod.uid}" / self.name
        logs.mkdir(parents=True, exist_ok=True)
        env = {**self.env, MARKER: self.marker}
        with open(logs / f"{self.restart_count}.log", "ab") as out:
            try:
                self.proc = subprocess.Popen(
                    kubelet.wrap(argv, pod),
                    env=env,
                    cwd=kubelet.image_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                out.write(f"cannot start: {exc}\n".encode())
                self.started_at = now_rfc3339()
                self.ended(128, None, now, "StartError")
                return
        self.started_at, self.waiting, self.pid = now_rfc3339(), ("", ""), self.proc.pid
        self.probes = [
            Probe(kind, self.spec[f"{kind}Probe"])
            for kind in ("startup", "liveness", "readiness")
            if self.spec.get(f"{kind}Probe")
        ]
        scale = kubelet.probe_period_scale
        for probe in self.probes:
            probe.next_at = now + probe.seconds("initialDelaySeconds", 0) * scale
        self.started = not any(p.kind == "startup" for p in self.probes)
        self.ready = self.started and not any(p.kind == "readiness" for p in self.probes)

    def reap(self) -> None:
        """If the main process ended: kill the rest of the group, reap, decide the restart."""
        proc = self.proc
        if proc is None or not exited(proc.pid):
            return
        with self.lock:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            sweep(self.marker)
            code = proc.wait()
            self.proc = None
        if self.stopper is not None:
            self.stopper.join()
            self.stopper = None
        sig = -code if code < 0 else None
        self.ended(128 + sig if sig else code, sig, time.monotonic())

    def ended(self, code: int, sig: int | None, now: float, reason: str = "") -> None:
        reason = reason or ("OOMKilled" if self.oom else "Completed" if code == 0 else "Error")
        terminated = {"exitCode": code, "reason": reason, "startedAt": self.started_at}
        terminated.update(finishedAt=now_rfc3339(), containerID=f"pid://{self.pid}")
        terminated.update({"signal": sig} if sig else {})
        self.oom = self.ready = self.started = False
        self.probes = []
        if not self.pod.restarts(code):
            self.state_terminated = terminated
            return
        self.last_terminated = terminated
        kubelet = self.pod.kubelet
        if self.backoff is not None and now - self.backoff_since > 2 * kubelet.backoff_cap:
            self.backoff = None  # it ran long enough: start over
        if self.backoff is None:  # the first restart at once, the next after backoff_base
            delay, self.backoff = 0.0, kubelet.backoff_base
        else:
            delay, self.backoff = self.backoff, min(2 * self.backoff, kubelet.backoff_cap)
        self.backoff_since, self.next_start = now, now + delay
        pod = self.pod
        message = (
            f"back-off {delay:g}s restarting failed container={self.name} "
            f"pod={pod.name}_{pod.namespace}({pod.uid})"
        )
        self.waiting = ("CrashLoopBackOff", message) if delay else ("", "")

    def signal_main(self, sig: int) -> None:
        with self.lock:
            if self.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, sig)

    def signal_group(self, sig: int) -> None:
        with self.lock:
            if self.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)

    def stop(self, deadline: float, hook: bool) -> None:
        """preStop, SIGTERM to the main process, SIGKILL to the group at the deadline. Does not
        reap (the pod's thread does)."""
        proc = self.proc
        if proc is None:
            return
        pre_stop = (self.spec.get("lifecycle") or {}).get("preStop")
        if hook and pre_stop:
            self.pod.handle(pre_stop, self, max(0.0, deadline - time.monotonic()))
        self.signal_main(signal.SIGTERM)
        while not exited(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.signal_group(signal.SIGKILL)

    def kill_now(self) -> None:
        """SIGKILL the group, wait for the main process, reap it."""
        proc = self.proc
        if proc is None:
            return
        self.signal_group(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not exited(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.reap()

    def stop_later(self, grace: float) -> None:
        """Stop it (liveness or startup failure) on a thread: the pod's other containers go on."""
        deadline = time.monotonic() + grace
        self.stopper = threading.Thread(target=self.stop, args=(deadline, True), daemon=True)
        self.stopper.start()

    def probe(self, now: float) -> None:
        scale = self.pod.kubelet.probe_period_scale
        for probe in self.probes:
            if probe.result is not None:
                instance, ok = probe.result
                probe.result, probe.in_flight = None, False
                if instance == self.instance:
                    self.judge(probe, ok)
            active = (probe.kind == "startup") != self.started
            if not active or probe.in_flight or now < probe.next_at or self.stopper:
                continue
            probe.in_flight = True
            probe.next_at = now + probe.seconds("periodSeconds", 10) * scale
            thread = threading.Thread(
                target=self.run_probe, args=(probe, self.instance), daemon=True
            )
            thread.start()

    def run_probe(self, probe: Probe, instance: int) -> None:
        ok = self.pod.check(probe.spec, self, probe.seconds("timeoutSeconds", 1))
        probe.result = (instance, ok)
        self.pod.wake.set()

    def judge(self, probe: Probe, ok: bool) -> None:
        probe.successes, probe.failures = (
            (probe.successes + 1, 0) if ok else (0, probe.failures + 1)
        )
        failed = probe.failures >= probe.seconds("failureThreshold", 3)
        if probe.kind == "readiness":
            if ok and probe.successes >= probe.seconds("successThreshold", 1):
                self.ready = True
            elif failed:
                self.ready = False
        elif probe.kind == "startup" and ok:
            self.started = True
            self.ready = not any(p.kind == "readiness" for p in self.probes)
        elif failed:  # liveness, or startup: kill, restart per policy
            log.info("%s probe of %s/%s failed: stopping it", probe.kind, self.pod.name, self.name)
            grace = probe.spec.get("terminationGracePeriodSeconds", self.pod.grace)
            self.stop_later(float(grace))

    def status(self) -> Obj:
        state: Obj
        if self.proc is not None:
            state = {"running": {"startedAt": self.started_at}}
        elif self.state_terminated is not None:
            state = {"terminated": self.state_terminated}
        else:
            reason, message = self.waiting
            waiting = {"reason": reason or "ContainerCreating"}
            state = {"waiting": {**waiting, **({"message": message} if message else {})}}
        status = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.ready and self.proc is not None,
            "started": self.started and self.proc is not None,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.proc is not None:
            status["containerID"] = f"pid://{self.proc.pid}"
        return status


class PodWorker:
    """One Pod on this node: its volumes, hosts file, containers and status, on a thread."""

    def __init__(self, kubelet: "Kubelet", pod: Obj) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        self.kubelet, self.pod = kubelet, pod
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.hostname = spec.get("hostname") or self.name
        self.subdomain = spec.get("subdomain")
        self.dir = kubelet.root / "pods" / self.uid
        self.hosts_file = self.dir / "etc-hosts"
        self.resolv_file = self.dir / "resolv.conf"
        self.marker = f"{kubelet.id}/{self.uid}/"
        self.grace = float(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE))
        self.policy = spec.get("restartPolicy", "Always")
        self.claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in spec.get("volumes") or []
            if v.get("persistentVolumeClaim")
        }
        self.containers = [Container(self, c) for c in spec.get("containers") or []]
        self.ip: str | None = None
        self.volumes: dict[str, Path] | None = None
        self.written: dict[str, dict[str, tuple[bytes, int]]] = {}  # config volumes as written
        self.config_changed = False
        self.start_time = now_rfc3339()
        self.transitions: dict[str, tuple[str, str]] = {}  # condition: (status, since)
        self.reported: Obj | None = None
        self.hosts: str | None = None  # the hosts file as written
        self.wake = threading.Event()
        self.shutdown = threading.Event()  # the kubelet stops, or the Pod was removed at once
        self.done = False
        self.thread = threading.Thread(target=self.run, name=f"pod-{self.namespace}-{self.name}")

    @property
    def deleting(self) -> bool:
        return terminating(self.pod)

    @property
    def finished(self) -> bool:
        return self.phase() in ("Succeeded", "Failed")

    def update(self, pod: Obj) -> None:
        if pod["metadata"]["resourceVersion"] != self.pod["metadata"]["resourceVersion"]:
            self.pod = pod
            self.wake.set()

    def run(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_in_place(self.resolv_file, self.kubelet.resolv_conf(self.namespace))
            self.ip = self.kubelet.allocate_ip(self)
            self.kubelet.refresh_hosts()
            while True:
                if self.shutdown.is_set():
                    self.terminate(self.kubelet.stop_grace, hooks=False)
                    return
                if self.deleting:
                    grace = self.pod["metadata"].get("deletionGracePeriodSeconds", self.grace)
                    self.terminate(float(grace), hooks=True)
                    self.report()
                    self.kubelet.api.delete(PODS, self.namespace, self.name, self.uid, 0)
                    return
                try:
                    self.sync()
                except Exception as exc:  # the API server failing: try again, as a kubelet does
                    log.warning("pod %s/%s: %r; trying again", self.namespace, self.name, exc)
                self.wake.wait(self.kubelet.tick)
                self.wake.clear()
        except Exception:
            log.exception("pod %s/%s failed in the kubelet", self.namespace, self.name)
        finally:
            for container in self.containers:
                container.kill_now()
            sweep(self.marker)
            self.done = True
            self.kubelet.forget(self)

    def sync(self) -> None:
        now = time.monotonic()
        if self.volumes is None or self.config_changed:
            self.prepare_volumes()
        for container in self.containers:
            if self.volumes is not None:
                container.step(now)
        self.report()

    def terminate(self, grace: float, hooks: bool) -> None:
        """Stop every container (each on a thread: preStop, SIGTERM, SIGKILL at the deadline)
        and reap them. The kubelet stopping meanwhile cuts the grace to ``stop_grace``."""
        deadline = time.monotonic() + grace
        for container in self.containers:
            if container.proc is not None:
                threading.Thread(target=container.stop, args=(deadline, hooks), daemon=True).start()
        while any(c.proc is not None for c in self.containers):
            for container in self.containers:
                container.reap()
            now = time.monotonic()
            if self.shutdown.is_set():
                deadline = min(deadline, now + self.kubelet.stop_grace)
            if now > deadline:  # a hook still runs, or the kubelet stops: no more waiting
                for container in self.containers:
                    container.signal_group(signal.SIGKILL)
            time.sleep(0.02)
        # A hook still running is killed with the pod's other processes (see run's finally).

    def may_start(self, container: Container) -> bool:
        return not (self.deleting or self.shutdown.is_set() or container.state_terminated)

    def restarts(self, code: int) -> bool:
        if self.deleting or self.shutdown.is_set():
            return False
        return self.policy == "Always" or (self.policy == "OnFailure" and code != 0)

    # --- status -----------------------------------------------------------------------------------

    def phase(self) -> str:
        if not any(c.instance or c.state_terminated for c in self.containers):
            return "Pending"
        if self.containers and all(c.state_terminated for c in self.containers):
            codes = [c.state_terminated["exitCode"] for c in self.containers if c.state_terminated]
            return "Succeeded" if not any(codes) else "Failed"
        return "Running"

    def condition(self, kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        status = "True" if ok else "False"
        if self.transitions.get(kind, ("",))[0] != status:
            self.transitions[kind] = (status, now_rfc3339())
        condition = {
            "type": kind,
            "status": status,
            "lastTransitionTime": self.transitions[kind][1],
        }
        condition.update({"reason": reason} if reason and not ok else {})
        condition.update({"message": message} if message and not ok else {})
        return condition

    def status(self) -> Obj:
        containers = [c.status() for c in self.containers]
        unready = [c["name"] for c in containers if not c["ready"]]
        message = f"containers with unready status: [{' '.join(unready)}]"
        scheduled = next(
            (
                c
                for c in (self.pod.get("status") or {}).get("conditions") or []
                if c.get("type") == "PodScheduled"
            ),
            {"type": "PodScheduled", "status": "True"},
        )
        conditions = [
            scheduled,
            self.condition("Initialized", True),
            self.condition("ContainersReady", not unready, "ContainersNotReady", message),
            self.condition("Ready", not unready, "ContainersNotReady", message),
        ]
        host = [{"ip": "127.0.0.1"}]
        status: Obj = {"phase": self.phase(), "conditions": conditions, "hostIP": "127.0.0.1"}
        status.update(hostIPs=host, startTime=self.start_time, containerStatuses=containers)
        status.update({"podIP": self.ip, "podIPs": [{"ip": self.ip}]} if self.ip else {})
        return status

    def report(self) -> None:
        status = self.status()
        if status == self.reported:
            return
        if not self.kubelet.api.update_status(PODS, self.namespace, self.name, self.uid, status):
            self.shutdown.set()  # the Pod is gone (or a new one has its name)
        self.reported = status

    # --- volumes, environment, command ------------------------------------------------------------

    def prepare_volumes(self) -> None:
        self.config_changed = False
        volumes: dict[str, Path] = {}
        try:
            if self.pod["spec"].get("initContainers"):
                raise ConfigError("CreateContainerConfigError", "initContainers are not emulated")
            for volume in self.pod["spec"].get("volumes") or []:
                name = volume["name"]
                if volume.get("persistentVolumeClaim"):
                    claim = volume["persistentVolumeClaim"]["claimName"]
                    volumes[name] = self.kubelet.claim_dir(self.namespace, claim)
                elif "emptyDir" in volume:
                    volumes[name] = self.dir / "volumes" / name
                    volumes[name].mkdir(parents=True, exist_ok=True)
                elif volume.get("configMap") or volume.get("secret"):
                    volumes[name] = self.dir / "volumes" / name
                    files = self.config_files(volume)
                    if files != self.written.get(name):
                        atomic_write(volumes[name], files)
                        self.written[name] = files
                else:
                    raise ConfigError(
                        "CreateContainerConfigError",
                        f"volume {name!r}: only persistentVolumeClaim, emptyDir, configMap and "
                        "secret volumes are emulated",
                    )
        except ConfigError as exc:
            if self.volumes is None:
                for container in self.containers:
                    container.waiting = (exc.reason, exc.message)
            return  # tried again next tick (a config volume keeps its last files meanwhile)
        self.volumes = volumes

    def config_files(self, volume: Obj) -> dict[str, tuple[bytes, int]]:
        if volume.get("configMap"):
            source, kind, name = volume["configMap"], CONFIGMAPS, volume["configMap"]["name"]
            default = CONFIGMAP_DEFAULT_MODE
        else:
            source, kind, name = volume["secret"], SECRETS, volume["secret"]["secretName"]
            default = SECRET_DEFAULT_MODE
        mode = int(source.get("defaultMode", default))
        data = self.kubelet.data(kind, self.namespace, name, bool(source.get("optional")))
        if source.get("items"):
            files = {}
            for item in source["items"]:
                if item["key"] not in data:
                    if source.get("optional"):
                        continue
                    message = f"{kind.kind.lower()} {name!r} has no key {item['key']!r}"
                    raise ConfigError("ContainerCreating", message)
                files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
            return files
        return {key: (value, mode) for key, value in data.items()}

    def resolve(self, spec: Obj) -> tuple[dict[str, str], list[tuple[str, Path]], list[str]]:
        """The environment, mounts and argv of a container about to start."""
        assert self.volumes is not None
        mounts: list[tuple[str, Path]] = []
        for mount in spec.get("volumeMounts") or []:
            if mount["name"] not in self.volumes:
                message = f"volumeMount {mount['name']!r}: no such volume"
                raise ConfigError("CreateContainerConfigError", message)
            host = self.volumes[mount["name"]]
            if mount.get("subPath"):
                host = host / mount["subPath"]
                if not host.exists():
                    host.mkdir(parents=True)
            mounts.append((mount["mountPath"].rstrip("/") or "/", host))
        mounts.sort(key=lambda m: len(m[0]), reverse=True)
        env = self.environment(spec)
        command = [expand(a, env) for a in spec.get("command") or []]
        if not command:
            message = "no command: the image stand-in has no ENTRYPOINT (see kubelet.py, 2.)"
            raise ConfigError("CreateContainerConfigError", message)
        argv = [
            rewrite(a, mounts) for a in command + [expand(a, env) for a in spec.get("args") or []]
        ]
        kubelet = self.kubelet
        dirs = [str(Path(sys.executable).parent), *os.environ.get("PATH", "").split(":")]
        base = {
            "PATH": ":".join(dict.fromkeys(d for d in [*dirs, *IMAGE_PATH.split(":")] if d)),
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": self.hostname,
            "KUBERNETES_SERVICE_HOST": kubelet.service_host,
            "KUBERNETES_SERVICE_PORT": kubelet.service_port,
        }
        return {**base, **{k: rewrite(v, mounts) for k, v in env.items()}}, mounts, argv

    def environment(self, spec: Obj) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in spec.get("envFrom") or []:
            ref = source.get("configMapRef") or source.get("secretRef") or {}
            kind = CONFIGMAPS if source.get("configMapRef") else SECRETS
            data = self.kubelet.data(kind, self.namespace, ref.get("name", ""), ref.get("optional"))
            for key, raw in data.items():
                env[source.get("prefix", "") + key] = raw.decode()
        for var in spec.get("env") or []:
            value = self.env_value(var, env)
            if value is not None:
                env[var["name"]] = value
        return env

    def env_value(self, var: Obj, env: dict[str, str]) -> str | None:
        if "valueFrom" not in var:
            return expand(str(var.get("value", "")), env)
        source = var["valueFrom"]
        if source.get("fieldRef"):
            return self.field(source["fieldRef"]["fieldPath"])
        for key, kind in (("secretKeyRef", SECRETS), ("configMapKeyRef", CONFIGMAPS)):
            if source.get(key):
                ref = source[key]
                data = self.kubelet.data(kind, self.namespace, ref["name"], ref.get("optional"))
                if ref["key"] in data:
                    return data[ref["key"]].decode()
                if ref.get("optional"):
                    return None
                message = f"couldn't find key {ref['key']} in {kind.kind} {ref['name']}"
                raise ConfigError("CreateContainerConfigError", message)
        message = f"env {var['name']}: only fieldRef, secretKeyRef and configMapKeyRef are emulated"
        raise ConfigError("CreateContainerConfigError", message)

    def field(self, path: str) -> str:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        for prefix, values in (
            ("metadata.labels", "labels"),
            ("metadata.annotations", "annotations"),
        ):
            if path.startswith(f"{prefix}['") and path.endswith("']"):
                return str((meta.get(values) or {}).get(path[len(prefix) + 2 : -2], ""))
        fields: dict[str, str] = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
            "status.podIP": self.ip or "",
            "status.podIPs": self.ip or "",
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
        }
        if path not in fields:
            raise ConfigError("CreateContainerConfigError", f"fieldRef {path!r} is not emulated")
        return fields[path]

    # --- probes and hooks -------------------------------------------------------------------------

    def check(self, spec: Obj, container: Container, timeout: float) -> bool:
        """One probe (or hook) run: success or not. Never raises."""
        try:
            if spec.get("exec"):
                return self.run_exec(spec["exec"].get("command") or [], container, timeout) == 0
            if spec.get("httpGet"):
                return self.http_get(spec["httpGet"], container, timeout)
            if spec.get("tcpSocket"):
                port = self.port(spec["tcpSocket"]["port"], container)
                host = spec["tcpSocket"].get("host") or self.ip or "127.0.0.1"
                socket.create_connection((host, port), timeout).close()
                return True
        except Exception as exc:
            log.debug("probe of %s/%s: %r", self.name, container.name, exc)
        return False

    def handle(self, handler: Obj, container: Container, timeout: float) -> None:
        """A lifecycle hook (preStop): exec or httpGet, bounded by ``timeout``."""
        self.check(handler, container, timeout)

    def port(self, port: int | str, container: Container) -> int:
        if isinstance(port, int) or port.isdigit():
            return int(port)
        for spec in container.spec.get("ports") or []:
            if spec.get("name") == port:
                return int(spec["containerPort"])
        raise ValueError(f"no container port named {port!r}")

    def http_get(self, spec: Obj, container: Container, timeout: float) -> bool:
        host = spec.get("host") or self.ip or "127.0.0.1"
        port = self.port(spec["port"], container)
        headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
        headers.setdefault("User-Agent", "kube-probe/1.31")
        connection: http.client.HTTPConnection
        if spec.get("scheme", "HTTP").upper() == "HTTPS":
            context = ssl._create_unverified_context()
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request("GET", spec.get("path") or "/", headers=headers)
            return 200 <= connection.getresponse().status < 400
        finally:
            connection.close()

    def run_exec(self, command: list[str], container: Container, timeout: float) -> int | None:
        """Run a command as the container would (its env, mounts rewritten, namespaces); its
        exit code, or ``None`` after ``timeout`` (its group killed)."""
        argv = [rewrite(a, container.mounts) for a in command]
        env = {**container.env, MARKER: f"{container.marker}exec"}
        proc = subprocess.Popen(
            self.kubelet.wrap(argv, self),
            env=env,
            cwd=self.kubelet.image_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not exited(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        in_time = exited(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
        return code if in_time else None


class Kubelet:
    """The kubelet (and scheduler) of every node; ``start()``, ``stop()``, or ``with``."""

    def __init__(
        self,
        configuration: k8s.Configuration,
        root: Path,
        *,
        node_name: str = "kube-node",
        pod_cidr: str = "127.11.0.0/24",
        backoff_base: float = 10.0,
        backoff_cap: float = 300.0,
        probe_period_scale: float = 1.0,
        stop_grace: float = 2.0,
        tick: float = 0.1,
        image_dir: Path = REPO_ROOT,
        dns: bool | None = None,
    ) -> None:
        self.root, self.node_name, self.image_dir = root, node_name, image_dir
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.probe_period_scale, self.stop_grace, self.tick = probe_period_scale, stop_grace, tick
        self.unshare = shutil.which("unshare")
        if dns is None:
            dns = os.geteuid() == 0 and self.unshare is not None and RESOLV_CONF.exists()
        self.dns = dns
        self.id = uuid.uuid4().hex[:12]  # in every container's marker
        host = urlparse(configuration.host)
        self.service_host = host.hostname or "127.0.0.1"
        self.service_port = str(host.port or (443 if host.scheme == "https" else 80))
        network = ipaddress.ip_network(pod_cidr)
        self.dns_address = str(network.network_address + 1)  # pods start at .2
        self.dns_server = DnsServer(self.dns_address) if dns else None
        self.addresses = [str(a) for a in network if int(a) - int(network.network_address) >= 2]
        self.addresses = self.addresses[:-1] if network.num_addresses > 2 else self.addresses
        self.api = Api(configuration)
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self.used_ips: dict[str, str] = {}  # ip: pod uid
        self.cluster_hosts_file = root / "cluster-hosts"  # for dns_command
        self.cluster_resolv_file = root / "cluster-resolv.conf"
        self.cluster_hosts: str | None = None
        self.last_ips: dict[tuple[str, str], str] = {}  # (ns, pod): the ip it had
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._config_changed = threading.Event()
        self._stopping = threading.Event()
        self.pods = Informer(configuration, PODS, self._wake.set)
        self.claims = Informer(configuration, PVCS, self._wake.set)
        self.configmaps = Informer(configuration, CONFIGMAPS, self._config_change)
        self.secrets = Informer(configuration, SECRETS, self._config_change)
        self.informers = (self.pods, self.claims, self.configmaps, self.secrets)
        self._thread = threading.Thread(target=self._run, name="kubelet")

    def start(self) -> "Kubelet":
        self.root.mkdir(parents=True, exist_ok=True)
        if self.dns_server is not None:
            self.dns_server.start()
        write_in_place(self.cluster_resolv_file, self.resolv_conf(None))
        self.refresh_hosts()  # the cluster hosts file exists before any dns_command runs
        start_synced(self.informers)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop every container (SIGTERM, ``stop_grace``, SIGKILL) and every thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(30)
        with self._lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown.set()
            worker.wake.set()
        for worker in workers:
            if worker.thread.ident is not None:
                worker.thread.join(self.stop_grace + 30)
        sweep(f"{self.id}/")  # anything that escaped: nothing of ours outlives the kubelet
        try:
            for informer in self.informers:
                informer.stop()
            self.api.close()
        finally:
            shutil.rmtree(self.root / "pods", ignore_errors=True)
            if self.dns_server is not None:
                self.dns_server.stop()
        if self._thread.is_alive() or any(w.thread.is_alive() for w in workers):
            raise RuntimeError("the kubelet did not stop")

    def __enter__(self) -> "Kubelet":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test hooks -------------------------------------------------------------------------------

    def worker(self, namespace: str, pod: str) -> PodWorker:
        with self._lock:
            for worker in self.workers.values():
                if (worker.namespace, worker.name) == (namespace, pod) and not worker.done:
                    return worker
        raise KeyError(f"no pod {namespace}/{pod} runs on this kubelet")

    def container(self, namespace: str, pod: str, name: str | None = None) -> Container:
        containers = self.worker(namespace, pod).containers
        for container in containers:
            if name in (None, container.name):
                return container
        raise KeyError(f"pod {namespace}/{pod} has no container {name!r}")

    def kill_container(
        self, namespace: str, pod: str, container: str | None = None, sig: int = signal.SIGKILL
    ) -> None:
        """Signal a container's process group (the kubelet then restarts it per policy)."""
        self.container(namespace, pod, container).signal_group(sig)

    def oom_kill(self, namespace: str, pod: str, container: str | None = None) -> None:
        """As the kernel's OOM killer: SIGKILL, and the termination reason OOMKilled."""
        target = self.container(namespace, pod, container)
        target.oom = True
        target.signal_group(signal.SIGKILL)

    def pod_ip(self, namespace: str, pod: str) -> str | None:
        try:
            return self.worker(namespace, pod).ip
        except KeyError:
            return None

    def processes(self) -> list[int]:
        """Live processes this kubelet started (containers, exec probes and hooks, children)."""
        return marked(f"{self.id}/")

    def require_dns(self) -> None:
        if not self.dns:
            raise RuntimeError(
                "this test needs the pods' DNS (hosts file and resolv.conf bind-mounted in a "
                "mount namespace per container, a DNS server on port 53): run the tests as "
                "root, with util-linux unshare installed and an /etc/resolv.conf"
            )

    # --- the loop ---------------------------------------------------------------------------------

    def _config_change(self) -> None:
        self._config_changed.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._sync()
            except Exception:
                log.exception("kubelet sync failed; trying again")
                self._stopping.wait(0.2)

    def _sync(self) -> None:
        pods = self.pods.objects()
        present = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            node = spec.get("nodeName")
            if node is None:
                if not terminating(pod):
                    self._schedule(pod)
                continue
            if node != self.node_name:
                continue
            present.add(meta["uid"])
            with self._lock:
                worker = self.workers.get(meta["uid"])
                previous = [
                    w
                    for w in self.workers.values()
                    if (w.namespace, w.name) == (meta["namespace"], meta["name"])
                ]
            if worker is not None:
                worker.update(pod)
            elif terminating(pod):  # never started here: nothing to stop
                self.api.delete(PODS, meta["namespace"], meta["name"], meta["uid"], 0)
            elif not previous and (pod.get("status") or {}).get("phase") not in (
                "Succeeded",
                "Failed",
            ):
                worker = PodWorker(self, pod)
                with self._lock:
                    self.workers[meta["uid"]] = worker
                worker.thread.start()
        with self._lock:
            workers = list(self.workers.items())
        changed = self._config_changed.is_set()
        self._config_changed.clear()
        for uid, worker in workers:
            if uid not in present:
                worker.shutdown.set()  # removed at once (force delete): stop it quickly
                worker.wake.set()
            if worker.done:
                with self._lock:
                    del self.workers[uid]
            elif changed:
                worker.config_changed = True
                worker.wake.set()
        self.refresh_hosts()
        self._collect_claim_dirs()

    def _schedule(self, pod: Obj) -> None:
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"].get("volumes") or []
            if v.get("persistentVolumeClaim")
        ]
        missing = [c for c in claims if self._lookup(PVCS, ns, c) is None]
        if missing:
            message = f'persistentvolumeclaim "{missing[0]}" not found'
            conditions = (pod.get("status") or {}).get("conditions") or []
            if not any(c.get("message") == message for c in conditions):
                condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
                condition.update(message=message, lastTransitionTime=now_rfc3339())
                status = {**(pod.get("status") or {}), "conditions": [condition]}
                self.api.update_status(PODS, ns, name, meta["uid"], status)
            return
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}}
        binding["target"] = {"apiVersion": "v1", "kind": "Node", "name": self.node_name}
        try:
            self.api.call("POST", PODS.path(ns, name, "binding"), body=binding)
        except k8s.ApiException as exc:
            if exc.status not in (404, 409):
                raise

    # --- shared by the pods -----------------------------------------------------------------------

    def wrap(self, argv: list[str], pod: PodWorker) -> list[str]:
        """The command line that runs ``argv`` in the pod's namespaces (see 11. above)."""
        if not self.dns:
            return argv
        assert self.unshare is not None
        namespaces = [self.unshare, "--mount", "--uts", "--propagation", "private", "--"]
        return [
            *namespaces,
            "/bin/sh",
            "-c",
            IN_NAMESPACES,
            str(pod.hosts_file),
            str(pod.resolv_file),
            pod.hostname,
            *argv,
        ]

    def allocate_ip(self, pod: PodWorker) -> str:
        with self._lock:
            free = [a for a in self.addresses if a not in self.used_ips]
            if not free:
                raise RuntimeError("the pod address pool is exhausted")
            last = self.last_ips.get((pod.namespace, pod.name))
            ip = last if last in free else free[0]
            self.used_ips[ip] = pod.uid
            self.last_ips[(pod.namespace, pod.name)] = ip
            return ip

    def forget(self, pod: PodWorker) -> None:
        """A pod's thread ended: its address is free, its directory removed."""
        with self._lock:
            if pod.ip is not None and self.used_ips.get(pod.ip) == pod.uid:
                del self.used_ips[pod.ip]
            shutil.rmtree(pod.dir, ignore_errors=True)
        self._wake.set()

    def dns_records(self) -> list[DnsRecord]:
        """The pods the cluster DNS knows (see 11. above): those with a podIP and a
        ``spec.subdomain`` that are neither terminating nor finished. The one source of the
        hosts files and of the DNS server's records."""
        with self._lock:
            return [
                DnsRecord(w.hostname, w.subdomain, w.namespace, w.ip, w.uid)
                for w in self.workers.values()
                if w.ip and w.subdomain and not (w.done or w.deleting or w.finished)
            ]

    def refresh_hosts(self) -> None:
        """Every pod's hosts file, the cluster's (``dns_command``) and the DNS server's records,
        all from ``dns_records()``; the files in place, when changed."""
        with self._lock:
            records = self.dns_records()
            if self.dns_server is not None:
                answers: dict[str, list[str]] = {}
                for record in records:
                    answers.setdefault(record.fqdn, []).append(record.ip)
                self.dns_server.update(answers)
            cluster = "".join([HOSTS_HEADER, *(r.hosts_line(None) for r in records)])
            if cluster != self.cluster_hosts:
                write_in_place(self.cluster_hosts_file, cluster)
                self.cluster_hosts = cluster
            for worker in [w for w in self.workers.values() if not w.done and w.ip]:
                own = f"{worker.ip}\t{worker.hostname}\n"
                if worker.subdomain:
                    # The real kubelet's own line, then what the cluster DNS answers for the
                    # pod's own name under its headless Service (a pod resolves itself too).
                    fqdn = f"{worker.hostname}.{worker.subdomain}.{worker.namespace}"
                    own = (
                        f"{worker.ip}\t{fqdn}.svc.{CLUSTER_DOMAIN}\t{worker.hostname}\n"
                        f"{worker.ip}\t{fqdn}.svc\t{worker.hostname}.{worker.subdomain}\n"
                    )
                lines = [HOSTS_HEADER, own]
                lines += [r.hosts_line(worker.namespace) for r in records if r.uid != worker.uid]
                content = "".join(lines)
                if content != worker.hosts and worker.dir.exists():
                    write_in_place(worker.hosts_file, content)
                    worker.hosts = content

    def resolv_conf(self, namespace: str | None) -> str:
        """A pod's resolv.conf, as a real kubelet writes it for ``dnsPolicy: ClusterFirst``
        (``None``: the cluster view of ``dns_command``, without a namespace's search domain)."""
        search = [f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
        search = [f"{namespace}.svc.{CLUSTER_DOMAIN}", *search] if namespace else search
        return f"search {' '.join(search)}\nnameserver {self.dns_address}\noptions ndots:5\n"

    def dns_command(self, argv: list[str]) -> list[str]:
        """``argv`` as a command line that runs it with the cluster's DNS: in a mount namespace
        of its own where the cluster hosts file (every pod of 11. above, in every namespace,
        without the short ``<hostname>.<subdomain>`` form) is on /etc/hosts and a resolv.conf
        naming the cluster DNS (search ``svc.cluster.local cluster.local``) on /etc/resolv.conf.
        For a process of this machine that stands for a pod (a worker), started by the caller."""
        self.require_dns()
        assert self.unshare is not None
        namespace = [self.unshare, "--mount", "--propagation", "private", "--"]
        files = [str(self.cluster_hosts_file), str(self.cluster_resolv_file)]
        return [*namespace, "/bin/sh", "-c", IN_MOUNT_NAMESPACE, *files, *argv]

    def claim_dir(self, namespace: str, claim: str) -> Path:
        """The directory of a claim (see 9. above); ``ConfigError`` if the claim is not there."""
        found = self._lookup(PVCS, namespace, claim)
        if found is None:
            raise ConfigError("ContainerCreating", f'persistentvolumeclaim "{claim}" not found')
        directory, marker = self.claim_path(namespace, claim)
        with self._lock:
            uid = found["metadata"]["uid"]
            if marker.exists() and marker.read_text() != uid:
                shutil.rmtree(directory, ignore_errors=True)  # the data of a deleted claim
            directory.mkdir(parents=True, exist_ok=True)
            marker.write_text(uid)
        return directory

    def claim_path(self, namespace: str, claim: str) -> tuple[Path, Path]:
        base = self.root / "pvc" / namespace
        return base / claim, base / f".{claim}.uid"

    def _collect_claim_dirs(self) -> None:
        for marker in (self.root / "pvc").glob("*/.*.uid"):
            namespace, claim = marker.parent.name, marker.name[1:-4]
            cached = self.claims.get(namespace, claim)
            uid = marker.read_text()
            if cached is not None and cached["metadata"]["uid"] == uid:
                continue
            with self._lock:
                used = any(
                    w.namespace == namespace and claim in w.claims and not w.done
                    for w in self.workers.values()
                )
            live = None if used else self.api.get(PVCS, namespace, claim)
            if not used and (live is None or live["metadata"]["uid"] != uid):
                with self._lock:
                    shutil.rmtree(marker.parent / claim, ignore_errors=True)
                    marker.unlink(missing_ok=True)

    def data(
        self, kind: Kind, namespace: str, name: str, optional: bool | None
    ) -> dict[str, bytes]:
        """The data of a ConfigMap or Secret (decoded); ``{}`` if missing and optional."""
        obj = self._lookup(kind, namespace, name)
        if obj is None:
            if optional:
                return {}
            raise ConfigError(
                "CreateContainerConfigError", f'{kind.plural[:-1]} "{name}" not found'
            )
        if kind == SECRETS:
            return decode(obj.get("data"))
        return {k: v.encode() for k, v in (obj.get("data") or {}).items()} | decode(
            obj.get("binaryData")
        )

    def _lookup(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        """From the informer's cache, else (it may lag behind a fresh object) from the server."""
        informer = {PVCS: self.claims, CONFIGMAPS: self.configmaps, SECRETS: self.secrets}[kind]
        return informer.get(namespace, name) or self.api.get(kind, namespace, name)
