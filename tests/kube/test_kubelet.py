"""The test kubelet runs pods as a runtime will rely on: processes, restarts, probes, graceful
deletion, environment and volumes, DNS, and nothing left behind (tests/kube/kubelet.py)."""

import contextlib
import functools
import ipaddress
import itertools
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube import dns
from tests.kube.cluster import KubeCluster
from tests.kube.informer import CONFIGMAPS, PODS, PVCS, SECRETS, Api, Obj

NS = "apps"


def api(cluster: KubeCluster) -> Api:
    assert cluster.api is not None
    return cluster.api


def pod(name: str, *containers: Obj, **spec: Any) -> Obj:
    meta = {"name": name, "namespace": NS, "labels": {"app": name}}
    body = {"containers": list(containers), "terminationGracePeriodSeconds": 5, **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def container(name: str, *command: str, **spec: Any) -> Obj:
    return {"name": name, "image": "python:3", "command": list(command), **spec}


def python(name: str, script: str, **spec: Any) -> Obj:
    return container(name, "python", "-c", textwrap.dedent(script), **spec)


def env(name: str, field: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}}


def claim(name: str) -> Obj:
    meta = {"name": name, "namespace": NS}
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


def status(cluster: KubeCluster, name: str, index: int = 0) -> Obj:
    found = cluster.pod(NS, name)
    assert found is not None, f"pod {name} is gone"
    statuses = found.get("status", {}).get("containerStatuses") or [{}]
    result: Obj = statuses[index]
    return result


def ready(cluster: KubeCluster, name: str) -> bool:
    found = cluster.pod(NS, name) or {}
    conditions = found.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def process_groups(pids: list[int]) -> set[int]:
    groups = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    return groups


def log_json(cluster: KubeCluster, name: str, timeout: float = 15) -> Obj:
    """The last JSON line a pod's container printed."""

    def last() -> Obj | None:
        lines = [line for line in cluster.logs(NS, name).splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None

    return cluster.wait_for(last, timeout, f"JSON from pod {name}")


SERVE_WHEN_FLAG = """
    import http.server, os
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if os.path.exists(os.environ["FLAG"]) else 503)
            self.end_headers()
            self.wfile.write(os.environ["POD_NAME"].encode())
        def log_message(self, *args):
            pass
    http.server.HTTPServer((os.environ["POD_IP"], 8080), Health).serve_forever()
"""


def test_readiness_follows_an_http_get_probe(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    probe = {"httpGet": {"port": "http", "path": "/healthz"}, "periodSeconds": 1}
    web = python(
        "web",
        SERVE_WHEN_FLAG,
        env=[env("POD_IP", "status.podIP"), env("POD_NAME", "metadata.name"),
             {"name": "FLAG", "value": str(flag)}],
        ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={**probe, "failureThreshold": 1},
    )  # fmt: skip
    api(kube_cluster).create(PODS, pod("web", web))
    kube_cluster.wait_for(lambda: status(kube_cluster, "web").get("state", {}).get("running"))
    ip = kube_cluster.pod_ip(NS, "web")
    assert ip is not None
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(kube_cluster.pod_cidr)
    answer = kube_cluster.wait_for(lambda: _get(f"http://{ip}:8080/"), 10, "the web server")
    assert answer == "web"  # the container serves on its own pod IP
    time.sleep(0.6)  # six probe periods, every one answered 503
    found = kube_cluster.pod(NS, "web")
    assert found is not None and found["status"]["phase"] == "Running"
    assert not ready(kube_cluster, "web") and status(kube_cluster, "web")["ready"] is False
    assert found["status"]["podIP"] == ip and found["status"]["podIPs"] == [{"ip": ip}]

    flag.touch()
    kube_cluster.wait_for(lambda: ready(kube_cluster, "web"), 5, "Ready once it answers 200")
    assert status(kube_cluster, "web")["ready"] is True
    flag.unlink()
    kube_cluster.wait_for(lambda: not ready(kube_cluster, "web"), 5, "not Ready on a 503")
    assert status(kube_cluster, "web")["restartCount"] == 0  # readiness never restarts


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as error:
        return str(error.read().decode())
    except OSError:
        return None


def test_a_killed_container_restarts_with_its_last_state(kube_cluster: KubeCluster) -> None:
    api(kube_cluster).create(PODS, pod("sleeper", container("main", "sleep", "1000")))
    kube_cluster.wait_pod_ready(NS, "sleeper")
    first = kube_cluster.container(NS, "sleeper").pid
    assert alive(first)

    kube_cluster.kill_container(NS, "sleeper")
    kube_cluster.wait_for(
        lambda: (
            status(kube_cluster, "sleeper")["restartCount"] == 1
            and "running" in status(kube_cluster, "sleeper")["state"]
        ),
        10,
    )
    state = status(kube_cluster, "sleeper")
    terminated = state["lastState"]["terminated"]
    assert (terminated["exitCode"], terminated["signal"], terminated["reason"]) == (137, 9, "Error")
    assert terminated["containerID"] == f"pid://{first}" != state["containerID"]
    assert not alive(first) and alive(kube_cluster.container(NS, "sleeper").pid)
    assert ready(kube_cluster, "sleeper")


def test_an_oom_kill_is_reported_as_oomkilled(kube_cluster: KubeCluster) -> None:
    api(kube_cluster).create(PODS, pod("hog", container("main", "sleep", "1000")))
    kube_cluster.wait_pod_ready(NS, "hog")
    kube_cluster.oom_kill(NS, "hog")
    kube_cluster.wait_for(lambda: status(kube_cluster, "hog")["restartCount"] == 1, 10)
    terminated = status(kube_cluster, "hog")["lastState"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"], terminated["signal"]) == (
        "OOMKilled",
        137,
        9,
    )


def test_a_crashing_container_backs_off_longer_each_time(kube_cluster: KubeCluster) -> None:
    api(kube_cluster).create(PODS, pod("crasher", container("main", "sh", "-c", "exit 3")))
    restarts: list[float] = []
    waiting: set[str] = set()
    deadline = time.monotonic() + 20
    while len(restarts) < 4 and time.monotonic() < deadline:
        state = status(kube_cluster, "crasher")
        if state.get("restartCount", 0) > len(restarts):
            restarts.append(time.monotonic())
        waiting.add(state.get("state", {}).get("waiting", {}).get("reason", ""))
        time.sleep(0.02)
    assert len(restarts) == 4, restarts
    gaps = [b - a for a, b in itertools.pairwise(restarts)]
    # back-off 0.5 s, then 1 s, then 2 s (the first restart is at once)
    assert gaps[0] > 0.3 and gaps[1] > gaps[0] + 0.3 and gaps[2] > gaps[1] + 0.6, gaps
    assert "CrashLoopBackOff" in waiting
    found = kube_cluster.pod(NS, "crasher")
    assert found is not None and found["status"]["phase"] == "Running"
    last = status(kube_cluster, "crasher")["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error") and "signal" not in last
    assert not ready(kube_cluster, "crasher")


def test_a_failing_liveness_probe_restarts_the_container(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    alive_flag = tmp_path / "alive"
    alive_flag.touch()
    liveness = {"exec": {"command": ["test", "-f", str(alive_flag)]}, "periodSeconds": 1}
    main = container("main", "sleep", "1000", livenessProbe={**liveness, "timeoutSeconds": 5})
    api(kube_cluster).create(PODS, pod("lively", main, terminationGracePeriodSeconds=1))
    kube_cluster.wait_pod_ready(NS, "lively")
    time.sleep(0.5)  # five periods of a passing probe
    assert status(kube_cluster, "lively")["restartCount"] == 0

    alive_flag.unlink()  # three failures in a row, then SIGTERM
    kube_cluster.wait_for(lambda: status(kube_cluster, "lively")["restartCount"] == 1, 10)
    terminated = status(kube_cluster, "lively")["lastState"]["terminated"]
    assert (terminated["exitCode"], terminated["signal"]) == (143, 15)


def test_deleting_a_pod_runs_prestop_then_sigterm_within_the_grace_period(
    kube_cluster: KubeCluster,
) -> None:
    api(kube_cluster).create(PVCS, claim("stop-data"))
    graceful = python(
        "graceful",
        """
        import os, signal, sys, time
        def term(*_):
            with open(os.environ["TERM_FILE"], "w") as out:
                out.write("after preStop" if os.path.exists(os.environ["PRESTOP_FILE"]) else "no")
            sys.exit(0)
        signal.signal(signal.SIGTERM, term)
        open(os.environ["STARTED_FILE"], "w").close()
        while True:
            time.sleep(0.05)
        """,
        env=[
            {"name": "TERM_FILE", "value": "/data/term"},
            {"name": "PRESTOP_FILE", "value": "/data/prestop"},
            {"name": "STARTED_FILE", "value": "/data/started"},
        ],
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", 'sleep 0.3; touch "$1"', "-",
                                                    "/data/prestop"]}}},
    )  # fmt: skip
    stubborn = python(
        "stubborn",
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(1000)",
    )
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "stop-data"}}
    body = pod("stopper", graceful, stubborn, volumes=[volume], terminationGracePeriodSeconds=2)
    api(kube_cluster).create(PODS, body)
    data = kube_cluster.pvc_dir(NS, "stop-data")
    kube_cluster.wait_for(lambda: (data / "started").exists(), 15, "the container started")
    kube_cluster.wait_pod_ready(NS, "stopper")
    stubborn_pid = kube_cluster.container(NS, "stopper", "stubborn").pid

    deleted_at = time.monotonic()
    assert api(kube_cluster).delete(PODS, NS, "stopper")
    time.sleep(1)
    holding = kube_cluster.pod(NS, "stopper")  # the stubborn container holds it for 2 s
    assert holding is not None and holding["metadata"]["deletionGracePeriodSeconds"] == 2
    assert alive(stubborn_pid)
    kube_cluster.wait_for(lambda: kube_cluster.pod(NS, "stopper") is None, 10, "pod gone")
    assert 1.8 < time.monotonic() - deleted_at < 6
    assert not alive(stubborn_pid)
    assert (data / "prestop").exists()  # the hook ran, its argument rewritten to the claim
    assert (data / "term").read_text() == "after preStop"  # SIGTERM came after the hook


def test_pods_resolve_each_other_by_the_subdomain(kube_cluster: KubeCluster) -> None:
    kube_cluster.require_dns()
    host_files = host_dns_files()
    serve = python(
        "main",
        SERVE_WHEN_FLAG,
        env=[env("POD_IP", "status.podIP"), env("POD_NAME", "metadata.name"),
             {"name": "FLAG", "value": "/"}],
    )  # fmt: skip
    client = python(
        "main",
        """
        import json, socket, sys, time, urllib.request
        while True:
            try:
                ip = socket.gethostbyname("server.peers.apps.svc")
                fqdn = socket.gethostbyname("server.peers.apps.svc.cluster.local")
                short = socket.gethostbyname("server.peers")
                url = "http://server.peers.apps.svc:8080/"
                body = urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        print(json.dumps({"ip": ip, "fqdn": fqdn, "short": short, "body": body.decode(),
                          "hostname": socket.gethostname(), "own": socket.gethostbyname("client")}),
              flush=True)
        time.sleep(1000)
        """,
    )  # fmt: skip
    for name, main in (("server", serve), ("client", client)):
        api(kube_cluster).create(PODS, pod(name, main, hostname=name, subdomain="peers"))
    answer = log_json(kube_cluster, "client", 20)
    server_ip, client_ip = kube_cluster.pod_ip(NS, "server"), kube_cluster.pod_ip(NS, "client")
    assert answer["ip"] == answer["fqdn"] == answer["short"] == server_ip != client_ip
    assert answer["body"] == "server"  # connected to the server pod through the name
    assert answer["hostname"] == "client" and answer["own"] == client_ip

    # A process of this machine standing for a pod (a worker) gets the same names.
    lookup = "import socket; print(socket.gethostbyname('server.peers.apps.svc.cluster.local'))"
    command = kube_cluster.dns_command([sys.executable, "-c", lookup])
    outside = subprocess.run(command, capture_output=True, text=True, timeout=20, check=True)
    assert outside.stdout.strip() == server_ip
    assert host_dns_files() == host_files


def test_environment_secret_volumes_and_mount_path_rewriting(kube_cluster: KubeCluster) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": NS}}
    api(kube_cluster).create(
        SECRETS, {**secret, "stringData": {"password": "s3cret", "user": "app"}}
    )
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "conf", "namespace": NS},
    }
    api(kube_cluster).create(CONFIGMAPS, {**config, "data": {"mode": "fast"}})
    report = python(
        "main",
        """
        import json, os, sys, time
        def mode(path):
            return oct(os.stat(path).st_mode & 0o777)
        names = ["POD_NAME", "POD_NS", "POD_IP", "NODE", "PASSWORD", "MODE", "PASSWORD_FILE",
                 "GREETING", "CACHE"]
        seen = None
        while True:
            password = open(os.environ["PASSWORD_FILE"]).read()
            if password != seen:
                seen = password
                print(json.dumps({
                    "argv": sys.argv[1:], "env": {n: os.environ.get(n) for n in names},
                    "password": password, "user": open(sys.argv[3] + "/user").read(),
                    "modes": [mode(os.environ["PASSWORD_FILE"]), mode(os.environ["NESTED"]),
                              mode(os.environ["CONF_FILE"])],
                    "cache": os.path.isdir(os.environ["CACHE"]),
                }), flush=True)
            time.sleep(0.05)
        """,
        args=["$(POD_NAME)", "/etc/creds/password", "/etc/creds", "--file=/etc/creds/password",
              "$$(POD_NAME)", "/etc/credsX"],
        env=[
            env("POD_NAME", "metadata.name"), env("POD_NS", "metadata.namespace"),
            env("POD_IP", "status.podIP"), env("NODE", "spec.nodeName"),
            {"name": "PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "mode"}}},
            {"name": "PASSWORD_FILE", "value": "/etc/creds/password"},
            {"name": "NESTED", "value": "/etc/picked/nested/pw"},
            {"name": "CONF_FILE", "value": "/etc/conf/mode"},
            {"name": "GREETING", "value": "hello-$(POD_NAME)"},
            {"name": "CACHE", "value": "/cache/sub"},
        ],
        volumeMounts=[
            {"name": "creds", "mountPath": "/etc/creds"},
            {"name": "picked", "mountPath": "/etc/picked"},
            {"name": "conf", "mountPath": "/etc/conf/"},
            {"name": "cache", "mountPath": "/cache", "subPath": "x"},
        ],
    )  # fmt: skip
    volumes = [
        {"name": "creds", "secret": {"secretName": "creds"}},
        {"name": "picked", "secret": {"secretName": "creds", "defaultMode": 0o640,
                                      "items": [{"key": "password", "path": "nested/pw"}]}},
        {"name": "conf", "configMap": {"name": "conf"}},
        {"name": "cache", "emptyDir": {}},
    ]  # fmt: skip
    api(kube_cluster).create(PODS, pod("reporter", report, volumes=volumes))
    first = log_json(kube_cluster, "reporter")
    found = kube_cluster.pod(NS, "reporter")
    assert found is not None
    uid, ip = found["metadata"]["uid"], kube_cluster.pod_ip(NS, "reporter")
    assert first["env"] == {
        "POD_NAME": "reporter",
        "POD_NS": NS,
        "POD_IP": ip,
        "NODE": found["spec"]["nodeName"],
        "PASSWORD": "s3cret",
        "MODE": "fast",
        "PASSWORD_FILE": f"{kube_cluster.root}/pods/{uid}/volumes/creds/password",
        "GREETING": "hello-reporter",
        "CACHE": f"{kube_cluster.root}/pods/{uid}/volumes/cache/x/sub",
    }
    creds = f"{kube_cluster.root}/pods/{uid}/volumes/creds"
    assert first["argv"] == [
        "reporter",
        f"{creds}/password",
        creds,
        "--file=/etc/creds/password",  # only whole values are rewritten
        "$(POD_NAME)",
        "/etc/credsX",
    ]
    assert (first["password"], first["user"]) == ("s3cret", "app")
    assert first["modes"] == ["0o600", "0o640", "0o644"]
    assert first["cache"] is False  # /cache/sub: the subPath x exists, sub does not

    api(kube_cluster).patch(SECRETS, NS, "creds", {"stringData": {"password": "n3w"}})
    second = kube_cluster.wait_for(
        lambda: (answer := log_json(kube_cluster, "reporter"))["password"] == "n3w" and answer,
        5,
        "the secret volume rewritten",
    )
    assert second["env"]["PASSWORD"] == "s3cret"  # env is resolved when the container starts
    assert stat.S_IMODE(os.stat(f"{creds}/password").st_mode) == 0o600


def test_a_pod_waits_for_its_claim(kube_cluster: KubeCluster) -> None:
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "late"}}
    main = container("main", "sleep", "1000", volumeMounts=[{"name": "data", "mountPath": "/d"}])
    api(kube_cluster).create(PODS, pod("waiter", main, volumes=[volume]))

    def unschedulable() -> Obj | None:
        conditions = (kube_cluster.pod(NS, "waiter") or {}).get("status", {}).get("conditions")
        return next((c for c in conditions or [] if c["type"] == "PodScheduled"), None)

    condition = kube_cluster.wait_for(unschedulable, 5)
    assert condition["status"] == "False" and condition["reason"] == "Unschedulable"
    assert "late" in condition["message"]
    found = kube_cluster.pod(NS, "waiter")
    assert found is not None and found["status"]["phase"] == "Pending"
    assert "nodeName" not in found["spec"]
    api(kube_cluster).create(PVCS, claim("late"))
    kube_cluster.wait_pod_ready(NS, "waiter")
    assert kube_cluster.pvc_dir(NS, "late").is_dir()


def test_pods_that_never_restart_end_succeeded_or_failed(kube_cluster: KubeCluster) -> None:
    for name, code in (("ok", 0), ("bad", 2)):
        main = container("main", "sh", "-c", f"exit {code}")
        api(kube_cluster).create(PODS, pod(name, main, restartPolicy="Never"))

    def ended(name: str) -> bool:
        phase = (kube_cluster.pod(NS, name) or {}).get("status", {}).get("phase")
        return phase in ("Succeeded", "Failed")

    for name, phase, reason in (("ok", "Succeeded", "Completed"), ("bad", "Failed", "Error")):
        kube_cluster.wait_for(functools.partial(ended, name), 10)
        found = kube_cluster.pod(NS, name)
        assert found is not None and found["status"]["phase"] == phase
        state = status(kube_cluster, name)
        assert state["state"]["terminated"]["reason"] == reason
        assert state["restartCount"] == 0 and state["lastState"] == {}
    assert api(kube_cluster).delete(PODS, NS, "ok")  # finished: no grace period
    assert kube_cluster.pod(NS, "ok") is None


def test_the_rest_of_a_container_ends_with_its_main_process(kube_cluster: KubeCluster) -> None:
    # The main process starts a child in its group and one in a session of its own, then
    # exits: as with a container's PID 1, both children must go before the restart.
    script = """
        import os, subprocess, time
        with open(os.environ["PIDS"], "a") as out:
            for session in (False, True):
                child = subprocess.Popen(["sleep", "1000"], start_new_session=session)
                out.write(f"{child.pid}\\n")
        time.sleep(0.3)
    """
    pids = kube_cluster.root / "children"
    main = python("main", script, env=[{"name": "PIDS", "value": str(pids)}])
    api(kube_cluster).create(PODS, pod("parent", main))
    kube_cluster.wait_for(lambda: status(kube_cluster, "parent").get("restartCount") == 1, 10)
    first_run = [int(pid) for pid in pids.read_text().split()[:2]]
    assert len(first_run) == 2 and not any(alive(pid) for pid in first_run)


def test_stop_leaves_no_process_and_the_host_unchanged(tmp_path: Path) -> None:
    host_files = host_dns_files()
    bystander = subprocess.Popen(["sleep", "1000"])
    cluster = KubeCluster(tmp_path / "cluster", stop_grace=0.5)
    processes: list[int] = []
    try:
        cluster.start()
        escaping = python(
            "main",
            """
            import os, signal, subprocess, sys, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            subprocess.Popen(["sleep", "1000"])  # in the container's process group
            subprocess.Popen(["sleep", "1000"], start_new_session=True)  # escapes the group
            time.sleep(1000)
            """,
        )
        api(cluster).create(PODS, pod("escaper", escaping, subdomain="x", hostname="escaper"))
        cluster.wait_pod_ready(NS, "escaper")

        def started() -> list[int] | None:  # main, its child, and a child that left the group
            found = cluster.node.processes()  # (a child between fork and setsid is not yet)
            return found if len(found) >= 3 and len(process_groups(found)) == 2 else None

        processes = cluster.wait_for(started, 10, "three processes in two groups")
        cluster.stop()
        assert not any(alive(pid) for pid in processes)
        assert cluster.node.processes() == []
        assert alive(bystander.pid)  # a process the kubelet did not start is left alone
    finally:
        bystander.kill()
        bystander.wait()
        cluster.stop()
    assert not (tmp_path / "cluster" / "pods").exists()  # hosts files, emptyDirs
    assert host_dns_files() == host_files
    if cluster.node.dns:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as port:
            port.bind((cluster.node.dns_address, 53))  # the DNS server is gone: port 53 is free


# --- the cluster DNS (tests/kube/dns.py) ----------------------------------------------------------

DNS_CIDR = "127.12.0.0/24"  # its own addresses: the DNS server is 127.12.0.1


def host_dns_files() -> tuple[bytes, bytes]:
    """The host's /etc/hosts and /etc/resolv.conf (through a symlink): never changed."""
    return Path("/etc/hosts").read_bytes(), Path("/etc/resolv.conf").read_bytes()


@pytest.fixture
def dns_cluster(tmp_path: Path) -> Iterator[KubeCluster]:
    """A test cluster on ``DNS_CIDR``, whose DNS server is at its first address."""
    with KubeCluster(tmp_path / "cluster", pod_cidr=DNS_CIDR) as cluster:
        cluster.require_dns()
        assert cluster.node.dns_address == "127.12.0.1"
        yield cluster


def ask(
    server: str, name: str, qtype: int = dns.TYPE_A, tcp: bool = False
) -> tuple[int, list[str]]:
    """Ask the DNS server at ``server``:53 one question: ``(rcode, addresses)``; checks the
    answer is authoritative (in the zone) with the 5 s TTL."""
    message = dns.query(name, qtype, edns=not tcp)
    if tcp:
        with socket.create_connection((server, 53), timeout=2) as conn:
            conn.sendall(len(message).to_bytes(2, "big") + message)
            size = int.from_bytes(conn.recv(2), "big")
            reply = b""
            while len(reply) < size:
                reply += conn.recv(size - len(reply))
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(2)
            udp.sendto(message, (server, 53))
            reply = udp.recv(4096)
    assert reply[:2] == message[:2]  # the query's id
    flags, rcode, records = dns.parse_response(reply)
    assert bool(flags & dns.AA) == (rcode != dns.REFUSED)
    answers = [r for r in records if r[1] == dns.TYPE_A]
    assert all(r[0] == name.lower().rstrip(".") and r[2] == dns.TTL for r in answers), records
    return rcode, [socket.inet_ntoa(r[3]) for r in answers]


def test_the_dns_server_answers_each_kind_of_message() -> None:
    server = dns.DnsServer("127.0.0.1")  # answer() alone: no socket
    server.update({"a.b.ns.svc.cluster.local.": ["127.11.0.9"], "Two.B.ns.svc.cluster.local": []})

    def reply(message: bytes) -> tuple[int, int, list[tuple[str, int, int, bytes]]]:
        answer = server.answer(message)
        assert answer is not None and answer[:2] == message[:2]
        return dns.parse_response(answer)

    a = ("a.b.ns.svc.cluster.local", dns.TYPE_A, dns.TTL, bytes([127, 11, 0, 9]))
    assert reply(dns.query("a.b.ns.svc.cluster.local"))[1:] == (dns.NOERROR, [a])
    assert reply(dns.query("A.b.ns.svc.cluster.local", 255))[1:] == (dns.NOERROR, [a])  # ANY
    flags, rcode, records = reply(dns.query("a.b.ns.svc.cluster.local", edns=True))
    assert flags & dns.QR and flags & dns.AA and flags & dns.RD and rcode == dns.NOERROR
    assert [r[1] for r in records] == [dns.TYPE_A, dns.TYPE_OPT]  # EDNS answered with EDNS
    assert reply(dns.query("two.b.ns.svc.cluster.local"))[1:] == (dns.NOERROR, [])
    assert reply(dns.query("cluster.local"))[1:] == (dns.NOERROR, [])
    assert reply(dns.query("x.cluster.local"))[1:] == (dns.NXDOMAIN, [])
    assert reply(dns.query("cluster.localx"))[1:] == (dns.REFUSED, [])
    chaos = dns.query("a.b.ns.svc.cluster.local")[:-2] + (3).to_bytes(2, "big")
    assert reply(chaos)[1:] == (dns.REFUSED, [])  # class CH
    two = dns.query("x.cluster.local")
    assert reply(two[:5] + b"\2" + two[6:])[1] == dns.FORMERR  # two questions, one given
    loop = dns.query("x")[:12] + b"\xc0\x0c" + (1).to_bytes(2, "big") * 2  # points at itself
    assert reply(loop)[1] == dns.FORMERR
    status = dns.query("x.cluster.local")
    assert reply(status[:2] + b"\x11" + status[3:])[1] == dns.NOTIMP  # opcode STATUS
    assert server.answer(b"\0" * 11) is None  # no header: nothing to answer
    response = dns.query("x.cluster.local")
    assert server.answer(response[:2] + b"\x80" + response[3:]) is None  # a response: ignored


def sleeper(name: str, subdomain: str = "peers", **spec: Any) -> Obj:
    main = container("main", "sleep", "1000")
    return pod(name, main, hostname=name, subdomain=subdomain, **spec)


def test_the_cluster_dns_answers_for_the_pods_with_a_subdomain(dns_cluster: KubeCluster) -> None:
    cluster, server = dns_cluster, "127.12.0.1"
    api(cluster).create(PODS, sleeper("alpha"))
    api(cluster).create(PODS, sleeper("beta", subdomain="other"))
    api(cluster).create(PODS, pod("lone", container("main", "sleep", "1000")))  # no subdomain
    for name in ("alpha", "beta", "lone"):
        cluster.wait_pod_ready(NS, name)
    alpha = cluster.pod_ip(NS, "alpha")
    fqdn = "alpha.peers.apps.svc.cluster.local"
    assert ask(server, fqdn) == (dns.NOERROR, [alpha])
    assert ask(server, fqdn, tcp=True) == (dns.NOERROR, [alpha])
    assert ask(server, "Alpha.Peers.apps.svc.cluster.local.") == (dns.NOERROR, [alpha])
    assert ask(server, "beta.other.apps.svc.cluster.local") == (
        dns.NOERROR,
        [cluster.pod_ip(NS, "beta")],
    )
    assert ask(server, fqdn, dns.TYPE_AAAA) == (dns.NOERROR, [])  # known name, no IPv6
    assert ask(server, "peers.apps.svc.cluster.local") == (dns.NOERROR, [])  # names below
    for unknown in ("nobody.peers.apps.svc.cluster.local", "lone.peers.apps.svc.cluster.local"):
        assert ask(server, unknown) == (dns.NXDOMAIN, [])
    # No search list on the server's side, no recursion: outside cluster.local, REFUSED.
    for outside in ("alpha.peers.apps.svc", "example.com", "2.0.12.127.in-addr.arpa"):
        assert ask(server, outside) == (dns.REFUSED, [])

    api(cluster).delete(PODS, NS, "alpha")
    cluster.wait_for(lambda: ask(server, fqdn)[0] == dns.NXDOMAIN, 10, "the record removed")
    assert ask(server, "beta.other.apps.svc.cluster.local")[0] == dns.NOERROR


def test_a_pod_asks_the_cluster_dns_through_its_resolv_conf(dns_cluster: KubeCluster) -> None:
    cluster, host_files = dns_cluster, host_dns_files()
    # getent -s dns: libc's DNS alone (not the hosts file), with the pod's resolv.conf.
    lookup = """
        import json, subprocess, time
        def dns(name):
            found = subprocess.run(["getent", "-s", "dns", "hosts", name], capture_output=True)
            return found.stdout.decode().split() if found.returncode == 0 else found.returncode
        while dns("server.peers.apps.svc.cluster.local") == 2:
            time.sleep(0.1)
        names = ["server.peers", "server.peers.apps.svc", "server.peers.apps.svc.cluster.local",
                 "nobody.peers", "server.peers.elsewhere.svc"]
        print(json.dumps({"resolv": open("/etc/resolv.conf").read(),
                          "found": {name: dns(name) for name in names}}), flush=True)
        time.sleep(1000)
    """  # fmt: skip
    api(cluster).create(PODS, pod("client", python("main", lookup)))
    api(cluster).create(PODS, sleeper("server"))
    answer = log_json(cluster, "client", 20)
    server_ip, fqdn = cluster.pod_ip(NS, "server"), "server.peers.apps.svc.cluster.local"
    assert answer["resolv"] == (
        "search apps.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 127.12.0.1\noptions ndots:5\n"
    )
    assert answer["found"] == {  # the short names through the search list, as in a cluster
        "server.peers": [server_ip, fqdn],
        "server.peers.apps.svc": [server_ip, fqdn],
        fqdn: [server_ip, fqdn],
        "nobody.peers": 2,
        "server.peers.elsewhere.svc": 2,
    }

    # A process of this machine standing for a pod: the cluster's view (no namespace).
    script = 'cat /etc/resolv.conf && getent -s dns hosts "$0" && ! getent -s dns hosts "$1"'
    argv = ["sh", "-c", script, "server.peers.apps.svc", "server.peers"]
    outside = subprocess.run(
        cluster.dns_command(argv), capture_output=True, text=True, timeout=20, check=True
    )
    assert [line.split() for line in outside.stdout.splitlines()] == [
        ["search", "svc.cluster.local", "cluster.local"],
        ["nameserver", "127.12.0.1"],
        ["options", "ndots:5"],
        [server_ip, fqdn],  # through the search list; the short form needs a namespace
    ]
    assert host_dns_files() == host_files


HAPROXY = """
global
    stats socket {socket} mode 600 level admin
resolvers kube
    parse-resolv-conf
    # Failed resolutions count at once (30 s by default), so a server that cannot be resolved
    # shows within the test.
    hold nx 1s
    hold refused 1s
defaults
    mode tcp
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend web
    bind "${{POD_IP}}:8081"
    default_backend web
backend web
    server full web.peers.apps.svc.cluster.local:8080 check inter 200ms {resolution}
    server short web.peers.apps.svc:8080 check inter 200ms {resolution} backup
"""


def haproxy_servers(socket_path: Path) -> dict[str, tuple[str, str]]:
    """HAProxy's servers of backend ``web``: ``{name: (status, address)}`` (``show stat``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(2)
        conn.connect(str(socket_path))
        conn.sendall(b"show stat\n")
        data = b"".join(iter(lambda: conn.recv(65536), b""))
    rows = data.decode().splitlines()
    header = rows[0].lstrip("# ").split(",")
    servers = {}
    for row in rows[1:]:
        fields = dict(zip(header, row.split(","), strict=False))
        if fields.get("pxname") == "web" and fields["svname"] not in ("FRONTEND", "BACKEND"):
            servers[fields["svname"]] = (fields["status"], fields["addr"].rsplit(":", 1)[0])
    return servers


def test_haproxy_resolves_a_pod_through_the_cluster_dns_and_follows_its_new_ip(
    dns_cluster: KubeCluster, tmp_path: Path
) -> None:
    cluster = dns_cluster
    stats = tmp_path / "haproxy.sock"
    config = tmp_path / "haproxy.cfg"
    resolution = "resolvers kube init-addr last,libc,none"  # as the Kubernetes runtime's
    config.write_text(HAPROXY.format(socket=stats, resolution=resolution))
    web = python(
        "main",
        SERVE_WHEN_FLAG,
        env=[env("POD_IP", "status.podIP"), env("POD_NAME", "metadata.name"),
             {"name": "FLAG", "value": "/"}],
    )  # fmt: skip
    api(cluster).create(PODS, pod("web", web, hostname="web", subdomain="peers"))
    cluster.wait_pod_ready(NS, "web")
    first_ip = cluster.pod_ip(NS, "web")
    proxy = container(
        "haproxy", "haproxy", "-db", "-f", str(config), env=[env("POD_IP", "status.podIP")]
    )
    api(cluster).create(PODS, pod("proxy", proxy))
    cluster.wait_pod_ready(NS, "proxy")

    def servers() -> dict[str, tuple[str, str]] | None:
        try:
            return haproxy_servers(stats)
        except (OSError, IndexError):  # not started yet
            return None

    cluster.wait_for(lambda: (s := servers()) and s["full"] == ("UP", first_ip), 10, "full UP")
    # HAProxy's resolvers apply no search list: the short name is asked as it is, and fails
    # as it does in a real cluster (REFUSED here, NXDOMAIN there).
    cluster.wait_for(
        lambda: (s := servers()) and s["short"][0] == "MAINT (resolution)", 10, "short MAINT"
    )
    assert cluster.node.dns_server is not None
    asked = set(cluster.node.dns_server.queries)
    assert ("web.peers.apps.svc.cluster.local", dns.TYPE_A, dns.NOERROR) in asked
    assert ("web.peers.apps.svc", dns.TYPE_A, dns.REFUSED) in asked
    time.sleep(1.5)  # a few resolutions later: still UP, on the same address
    assert (servers() or {})["full"] == ("UP", first_ip)
    proxy_ip = cluster.pod_ip(NS, "proxy")
    assert _get(f"http://{proxy_ip}:8081/") == "web"  # through HAProxy to the pod

    # The pod is recreated with another address (its old one taken meanwhile): HAProxy
    # follows the name to it.
    api(cluster).delete(PODS, NS, "web")
    cluster.wait_for(lambda: first_ip not in cluster.node.used_ips, 15, "the old IP free")
    api(cluster).create(PODS, sleeper("filler", subdomain="fill"))
    cluster.wait_for(lambda: cluster.pod_ip(NS, "filler"), 10, "the filler's IP")
    assert cluster.pod_ip(NS, "filler") == first_ip
    api(cluster).create(PODS, pod("web", web, hostname="web", subdomain="peers"))
    cluster.wait_pod_ready(NS, "web")
    second_ip = cluster.pod_ip(NS, "web")
    assert second_ip not in (None, first_ip)
    cluster.wait_for(lambda: (s := servers()) and s["full"] == ("UP", second_ip), 10, "new IP")
    assert _get(f"http://{proxy_ip}:8081/") == "web"
