"""The test kubelet runs pods as a runtime will rely on: processes, restarts, probes, graceful
deletion, environment and volumes, DNS, and nothing left behind (tests/kube/kubelet.py)."""

import functools
import itertools
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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
    assert ip is not None and ip.startswith("127.11.0.")
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
    hosts_before = Path("/etc/hosts").read_bytes()
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
    assert Path("/etc/hosts").read_bytes() == hosts_before


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
    hosts_before = Path("/etc/hosts").read_bytes()
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
        processes = cluster.wait_for(
            lambda: found if len(found := cluster.node.processes()) >= 3 else None
        )
        assert len({os.getpgid(pid) for pid in processes}) == 2  # a child left the group
        cluster.stop()
        assert not any(alive(pid) for pid in processes)
        assert cluster.node.processes() == []
        assert alive(bystander.pid)  # a process the kubelet did not start is left alone
    finally:
        cluster.stop()
        bystander.kill()
        bystander.wait()
    assert not (tmp_path / "cluster" / "pods").exists()  # hosts files, emptyDirs
    assert Path("/etc/hosts").read_bytes() == hosts_before
