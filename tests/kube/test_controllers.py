"""The test controllers keep StatefulSets, Deployments and owner references as a runtime will
rely on (tests/kube/controllers.py), with pods run by the test kubelet."""

import copy
import textwrap
import time
from typing import Any

from tests.kube.cluster import KubeCluster
from tests.kube.controllers import POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL
from tests.kube.emulator import LEASES, MYSQLCLUSTERS
from tests.kube.informer import CONFIGMAPS, DEPLOYMENTS, PODS, PVCS, STATEFULSETS, Api, Obj

NS = "db"
# Appends a line to $(DATA)/runs (on the claim) and serves until stopped.
RUNS = textwrap.dedent(
    """
    import os, time
    with open(os.path.join(os.environ["DATA"], "runs"), "a") as out:
        out.write(os.environ["POD_UID"] + "\\n")
    while True:
        time.sleep(1)
    """
)


def api(cluster: KubeCluster) -> Api:
    assert cluster.api is not None
    return cluster.api


def statefulset(name: str, replicas: int = 3, **spec: Any) -> Obj:
    main = {
        "name": "main",
        "image": "mariadb:11",
        "command": ["python", "-c", RUNS],
        "env": [
            {"name": "DATA", "value": "/var/lib/data"},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        ],
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/data"}],
    }
    template = {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [main], "terminationGracePeriodSeconds": 2},
    }
    claim_spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    body = {
        "replicas": replicas,
        "serviceName": name,
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "OnDelete"},
        "selector": {"matchLabels": {"app": name}},
        "template": template,
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim_spec}],
        **spec,
    }
    meta = {"name": name, "namespace": NS}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": body}


def pods(cluster: KubeCluster, app: str) -> dict[str, Obj]:
    """The pods of an app by name (terminating ones too)."""
    return {
        p["metadata"]["name"]: p
        for p in api(cluster).list(PODS, NS)[0]
        if p["metadata"].get("labels", {}).get("app") == app
    }


def names(cluster: KubeCluster, kind: Any, prefix: str) -> set[str]:
    return {
        o["metadata"]["name"]
        for o in api(cluster).list(kind, NS)[0]
        if o["metadata"]["name"].startswith(prefix)
    }


def ready_names(cluster: KubeCluster, app: str) -> set[str]:
    def is_ready(pod: Obj) -> bool:
        conditions = pod.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    return {
        name
        for name, pod in pods(cluster, app).items()
        if is_ready(pod) and not pod["metadata"].get("deletionTimestamp")
    }


def wait_ready(cluster: KubeCluster, app: str, want: set[str], timeout: float = 20) -> None:
    """Wait until exactly these pods of the app are Ready."""
    cluster.wait_for(lambda: ready_names(cluster, app) == want, timeout, f"{app}: {want} Ready")


def wait_pods(cluster: KubeCluster, app: str, want: set[str], timeout: float = 20) -> None:
    """Wait until exactly these pods of the app exist."""
    cluster.wait_for(lambda: set(pods(cluster, app)) == want, timeout, f"{app}: only {want}")


def sts_status(cluster: KubeCluster, name: str) -> Obj:
    found = api(cluster).get(STATEFULSETS, NS, name)
    assert found is not None
    status: Obj = found.get("status") or {}
    return status


def test_a_statefulset_runs_its_pods_with_claims_that_outlive_them(
    kube_cluster: KubeCluster,
) -> None:
    created = api(kube_cluster).create(STATEFULSETS, statefulset("web"))
    assert created is not None
    want = {"web-0", "web-1", "web-2"}
    wait_ready(kube_cluster, "web", want)
    found = pods(kube_cluster, "web")
    ips = {found[n]["status"]["podIP"] for n in want}
    assert len(ips) == 3 and all(ip.startswith("127.11.0.") for ip in ips)
    revision = sts_status(kube_cluster, "web")["updateRevision"]
    for i in range(3):
        pod, name = found[f"web-{i}"], f"web-{i}"
        labels = pod["metadata"]["labels"]
        assert labels == {
            "app": "web",
            REVISION_LABEL: revision,
            POD_NAME_LABEL: name,
            POD_INDEX_LABEL: str(i),
        }
        assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == (name, "web")
        owner = pod["metadata"]["ownerReferences"]
        assert owner == [
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": "web",
                "uid": created["metadata"]["uid"],
                "blockOwnerDeletion": True,
                "controller": True,
            }
        ]
        claim = {"name": "data", "persistentVolumeClaim": {"claimName": f"data-web-{i}"}}
        assert claim in pod["spec"]["volumes"]
    claims = {c["metadata"]["name"]: c for c in api(kube_cluster).list(PVCS, NS)[0]}
    assert set(claims) == {"data-web-0", "data-web-1", "data-web-2"}
    assert all(c["status"]["phase"] == "Bound" for c in claims.values())
    assert all("ownerReferences" not in c["metadata"] for c in claims.values())  # Retain
    assert claims["data-web-0"]["metadata"]["labels"] == {"app": "web"}
    runs = kube_cluster.pvc_dir(NS, "data-web-1") / "runs"
    kube_cluster.wait_for(runs.exists, 5)
    uid = found["web-1"]["metadata"]["uid"]
    assert runs.read_text().split() == [uid]
    assert sts_status(kube_cluster, "web") == {
        "replicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "currentReplicas": 3,
        "updatedReplicas": 3,
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
        "observedGeneration": 1,
    }

    kube_cluster.kill_container(NS, "web-1")  # the same pod, restarted: the same files
    kube_cluster.wait_for(lambda: len(runs.read_text().split()) == 2, 10, "a second run")
    assert runs.read_text().split() == [uid, uid]

    assert api(kube_cluster).delete(PODS, NS, "web-1")  # a new pod, the same claim
    kube_cluster.wait_for(lambda: len(runs.read_text().split()) == 3, 15, "a third run")
    recreated = pods(kube_cluster, "web")["web-1"]
    assert recreated["metadata"]["uid"] == runs.read_text().split()[2] != uid
    assert names(kube_cluster, PVCS, "data-web-") == {"data-web-0", "data-web-1", "data-web-2"}


def test_scaling_removes_the_highest_ordinals_and_their_claims_only_if_asked(
    kube_cluster: KubeCluster,
) -> None:
    policy: Obj = {"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"}}
    api(kube_cluster).create(STATEFULSETS, statefulset("keep"))
    api(kube_cluster).create(STATEFULSETS, statefulset("drop", **policy))
    for app in ("keep", "drop"):
        wait_ready(kube_cluster, app, {f"{app}-{i}" for i in range(3)})
        api(kube_cluster).patch(STATEFULSETS, NS, app, {"spec": {"replicas": 5}})
    for app in ("keep", "drop"):
        wait_ready(kube_cluster, app, {f"{app}-{i}" for i in range(5)})
        assert len(names(kube_cluster, PVCS, f"data-{app}-")) == 5
        api(kube_cluster).patch(STATEFULSETS, NS, app, {"spec": {"replicas": 3}})
    for app in ("keep", "drop"):
        wait_pods(kube_cluster, app, {f"{app}-{i}" for i in range(3)})
        assert ready_names(kube_cluster, app) == {f"{app}-{i}" for i in range(3)}
    kube_cluster.wait_for(lambda: len(names(kube_cluster, PVCS, "data-drop-")) == 3, 10)
    assert names(kube_cluster, PVCS, "data-drop-") == {f"data-drop-{i}" for i in range(3)}
    assert names(kube_cluster, PVCS, "data-keep-") == {f"data-keep-{i}" for i in range(5)}
    assert (kube_cluster.pvc_dir(NS, "data-keep-4") / "runs").exists()  # retained, with data
    kube_cluster.wait_for(lambda: not kube_cluster.pvc_dir(NS, "data-drop-4").exists(), 5)
    assert (kube_cluster.pvc_dir(NS, "data-drop-2") / "runs").exists()
    status = sts_status(kube_cluster, "drop")
    assert (status["replicas"], status["readyReplicas"]) == (3, 3)


def test_on_delete_a_template_change_reaches_only_recreated_pods(
    kube_cluster: KubeCluster,
) -> None:
    api(kube_cluster).create(STATEFULSETS, statefulset("odd"))
    want = {"odd-0", "odd-1", "odd-2"}
    wait_ready(kube_cluster, "odd", want)
    before = {n: p["metadata"]["uid"] for n, p in pods(kube_cluster, "odd").items()}
    old = sts_status(kube_cluster, "odd")["updateRevision"]

    template = copy.deepcopy(statefulset("odd")["spec"]["template"])
    template["metadata"]["labels"]["tier"] = "new"
    api(kube_cluster).patch(STATEFULSETS, NS, "odd", {"spec": {"template": template}})
    status = kube_cluster.wait_for(
        lambda: (s := sts_status(kube_cluster, "odd"))["updateRevision"] != old and s
    )
    new = status["updateRevision"]
    assert (status["currentRevision"], status["updatedReplicas"]) == (old, 0)
    assert status["observedGeneration"] == 2
    time.sleep(0.5)
    now = pods(kube_cluster, "odd")
    assert {n: p["metadata"]["uid"] for n, p in now.items()} == before  # nothing touched
    assert {p["metadata"]["labels"][REVISION_LABEL] for p in now.values()} == {old}

    assert api(kube_cluster).delete(PODS, NS, "odd-1")
    kube_cluster.wait_for(
        lambda: (
            (p := pods(kube_cluster, "odd").get("odd-1"))
            and p["metadata"]["uid"] != before["odd-1"]
        )
    )
    recreated = pods(kube_cluster, "odd")["odd-1"]
    assert recreated["metadata"]["labels"][REVISION_LABEL] == new
    assert recreated["metadata"]["labels"]["tier"] == "new"
    kube_cluster.wait_for(lambda: ready_names(kube_cluster, "odd") == want)
    status = kube_cluster.wait_for(
        lambda: (s := sts_status(kube_cluster, "odd"))["updatedReplicas"] == 1 and s
    )
    assert (status["currentReplicas"], status["currentRevision"]) == (2, old)


def test_ordered_ready_creates_a_pod_once_its_predecessor_is_ready(
    kube_cluster: KubeCluster,
) -> None:
    body = statefulset("seq", 2, podManagementPolicy="OrderedReady")
    flag = kube_cluster.root / "ready-flag"
    probe = {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1}
    body["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = probe
    api(kube_cluster).create(STATEFULSETS, body)
    kube_cluster.wait_for(lambda: "seq-0" in pods(kube_cluster, "seq"))
    time.sleep(1)  # seq-0 runs, but is not Ready
    assert set(pods(kube_cluster, "seq")) == {"seq-0"}
    flag.touch()
    kube_cluster.wait_for(lambda: ready_names(kube_cluster, "seq") == {"seq-0", "seq-1"}, 15)


def test_deleting_a_statefulset_collects_its_pods_and_claims_only_if_asked(
    kube_cluster: KubeCluster,
) -> None:
    policy: Obj = {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}
    created = api(kube_cluster).create(STATEFULSETS, statefulset("gone", 2, **policy))
    api(kube_cluster).create(STATEFULSETS, statefulset("kept", 2))
    assert created is not None
    for app in ("gone", "kept"):
        wait_ready(kube_cluster, app, {f"{app}-0", f"{app}-1"})
    claim = api(kube_cluster).get(PVCS, NS, "data-gone-0")
    assert claim is not None
    assert [r["uid"] for r in claim["metadata"]["ownerReferences"]] == [created["metadata"]["uid"]]
    for app in ("gone", "kept"):
        assert api(kube_cluster).delete(STATEFULSETS, NS, app)
    for app in ("gone", "kept"):
        wait_pods(kube_cluster, app, set(), 15)
    kube_cluster.wait_for(lambda: not names(kube_cluster, PVCS, "data-gone-"), 10)
    assert names(kube_cluster, PVCS, "data-kept-") == {"data-kept-0", "data-kept-1"}
    kube_cluster.wait_for(lambda: not kube_cluster.pvc_dir(NS, "data-gone-0").exists(), 5)
    assert (kube_cluster.pvc_dir(NS, "data-kept-0") / "runs").exists()


def test_the_garbage_collector_follows_owners_of_any_kind(kube_cluster: KubeCluster) -> None:
    emulator = kube_cluster.server.emulator
    owner = emulator.create_object(
        MYSQLCLUSTERS,
        {
            "apiVersion": "mysqlops.io/v1alpha1",
            "kind": "MySQLCluster",
            "metadata": {"name": "owner", "namespace": NS},
            "spec": {},
        },
    )
    ref = {"apiVersion": "mysqlops.io/v1alpha1", "kind": "MySQLCluster", "name": "owner"}
    stale = {**ref, "uid": "00000000-0000-0000-0000-000000000000"}
    for name, refs in (
        ("owned", [{**ref, "uid": owner["metadata"]["uid"]}]),
        ("orphan", [stale]),
        ("half", [stale, {**ref, "uid": owner["metadata"]["uid"]}]),
        ("free", []),
    ):
        meta = {"name": name, "namespace": NS, "ownerReferences": refs}
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
        api(kube_cluster).create(CONFIGMAPS, body)
    kube_cluster.wait_for(lambda: api(kube_cluster).get(CONFIGMAPS, NS, "orphan") is None, 5)
    time.sleep(1.5)  # a resync or more
    assert names(kube_cluster, CONFIGMAPS, "") == {"owned", "half", "free"}
    emulator.delete_object(MYSQLCLUSTERS, "owner", NS)
    kube_cluster.wait_for(lambda: names(kube_cluster, CONFIGMAPS, "") == {"free"}, 10)


def test_a_deployment_keeps_its_ready_pods_and_replaces_them_on_a_change(
    kube_cluster: KubeCluster,
) -> None:
    server = {
        "name": "main",
        "image": "nginx",
        "command": ["python", "-m", "http.server", "--bind", "$(POD_IP)", "8080"],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "readinessProbe": {"httpGet": {"port": 8080, "path": "/"}, "periodSeconds": 1},
    }
    template: Obj = {"metadata": {"labels": {"app": "front"}}, "spec": {"containers": [server]}}
    spec = {"replicas": 2, "selector": {"matchLabels": {"app": "front"}}, "template": template}
    meta = {"name": "front", "namespace": NS}
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}
    created = api(kube_cluster).create(DEPLOYMENTS, body)
    assert created is not None
    kube_cluster.wait_for(lambda: len(ready_names(kube_cluster, "front")) == 2, 20)
    first = ready_names(kube_cluster, "front")
    (template_hash,) = {name.split("-")[1] for name in first}
    assert all(len(name.split("-")[2]) == 5 for name in first)
    for pod in pods(kube_cluster, "front").values():
        assert pod["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
        assert pod["metadata"]["labels"] == {"app": "front", "pod-template-hash": template_hash}

    def deployment_status() -> Obj:
        found = api(kube_cluster).get(DEPLOYMENTS, NS, "front")
        assert found is not None
        status: Obj = found.get("status") or {}
        return status

    kube_cluster.wait_for(lambda: deployment_status().get("readyReplicas") == 2, 5)
    assert deployment_status()["replicas"] == 2

    template["metadata"]["labels"]["version"] = "2"
    api(kube_cluster).patch(DEPLOYMENTS, NS, "front", {"spec": {"template": template}})
    fewest_ready, most_pods = 2, 2
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = {
            n: p for n, p in pods(kube_cluster, "front").items()
            if not p["metadata"].get("deletionTimestamp")
        }  # fmt: skip
        fresh = ready_names(kube_cluster, "front")
        fewest_ready, most_pods = min(fewest_ready, len(fresh)), max(most_pods, len(live))
        if len(live) == 2 and len(fresh) == 2 and not fresh & first:
            break
        time.sleep(0.02)
    assert len(fresh) == 2 and not fresh & first, "two new Ready pods"
    assert all(live[n]["metadata"]["labels"]["version"] == "2" for n in fresh)
    assert fewest_ready >= 2 and most_pods <= 3  # one at a time, never fewer Ready
    kube_cluster.wait_for(lambda: deployment_status().get("updatedReplicas") == 2, 5)


def test_the_cluster_survives_dropped_and_expired_watches(kube_cluster: KubeCluster) -> None:
    api(kube_cluster).create(STATEFULSETS, statefulset("tough", 1))
    wait_ready(kube_cluster, "tough", {"tough-0"})
    server = kube_cluster.server
    watches = server.emulator.watch_count
    assert watches >= 12  # the controllers' 8 kinds, the kubelet's 4
    lease = {"metadata": {"name": "unwatched", "namespace": NS}, "spec": {}}
    server.emulator.create_object(LEASES, lease)  # a write no informer sees, then
    server.compact()  # every informer's resourceVersion is too old: a watch gets 410
    assert server.drop_watches(abrupt=False) == watches  # streams end cleanly: watch again
    api(kube_cluster).patch(STATEFULSETS, NS, "tough", {"spec": {"replicas": 2}})
    wait_ready(kube_cluster, "tough", {"tough-0", "tough-1"})

    kube_cluster.wait_for(lambda: server.emulator.watch_count >= watches, 5, "watching again")
    server.drop_watches(abrupt=True)  # the connections break
    assert api(kube_cluster).delete(PODS, NS, "tough-1")  # the kubelet stops it, the pod goes
    kube_cluster.wait_for(
        lambda: (
            (p := pods(kube_cluster, "tough").get("tough-1")) is not None
            and not p["metadata"].get("deletionTimestamp")
            and p["status"].get("phase") == "Running"
        ),
        15,
        "tough-1 recreated",
    )
