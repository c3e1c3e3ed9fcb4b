"""The scenarios of a MySQL cluster on Kubernetes, in order, on one cluster made from
examples/k8s/mysqlcluster.yaml: created from the custom resource, written and read, its Pods'
containers killed and its Pods deleted (one, then all), and every acknowledged write kept."""

from functools import partial
from typing import Any

from activities.agent_client import AgentClient
from api.states import JoinMethod
from tests.k8s_e2e.conftest import Stack, wait
from tests.kube.informer import CONFIGMAPS, STATEFULSETS

NAME = "db"
PODS = [f"{NAME}-{i}" for i in range(3)]
written: list[int] = []  # every row whose commit was acknowledged, across scenarios


def agent(stack: Stack, pod: str) -> AgentClient:
    return AgentClient(f"{stack.pod_ip(pod)}:8080", stack.secret(NAME, "agent-token"))


def write(stack: Stack, rows: int) -> None:
    """Rows through the writer endpoint (an HAProxy Pod), each acknowledged commit recorded."""
    conn = stack.connect(stack.haproxy_ip(NAME), NAME)
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS e2e")
            cursor.execute("CREATE TABLE IF NOT EXISTS e2e.t (id INT PRIMARY KEY, v TEXT)")
            start = max(written, default=0) + 1
            for row in range(start, start + rows):
                cursor.execute("INSERT INTO e2e.t VALUES (%s, %s)", (row, f"row {row}"))
                written.append(row)
    finally:
        conn.close()


def rows_on(stack: Stack, pod: str) -> list[int]:
    conn = stack.connect(stack.pod_ip(pod), NAME)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT id FROM e2e.t ORDER BY id")
            return [row[0] for row in cursor.fetchall()]
    finally:
        conn.close()


def has_every_write(stack: Stack, pod: str) -> bool:
    return set(written) <= set(rows_on(stack, pod))


def every_write_everywhere(stack: Stack) -> None:
    for pod in PODS:
        wait(partial(has_every_write, stack, pod), 60, pod)


def container(stack: Stack, pod: str) -> dict[str, Any]:
    obj = stack.cluster.pod(stack.namespace, pod) or {}
    statuses = (obj.get("status") or {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def test_a_cluster_applied_as_a_resource_becomes_green(stack: Stack) -> None:
    created = stack.apply_cluster(NAME)
    status = stack.wait_green(NAME, timeout=420)
    # What `kubectl get mysqlclusters` prints (the printer columns' fields).
    assert status["ready"] == "3/3" and status["automation"] == "Active"
    assert status["writer"] in PODS and status["phase"] == "Running"
    uid = created["metadata"]["uid"]
    statefulset = stack.get(STATEFULSETS, NAME) or {}
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["updateStrategy"]["type"] == "OnDelete"
    assert statefulset["metadata"]["ownerReferences"][0]["uid"] == uid
    for pod in PODS:
        stack.cluster.wait_pod_ready(stack.namespace, pod, timeout=60)
    # The ConfigMap holds each node's my.cnf; each node runs with what its file says.
    data = (stack.get(CONFIGMAPS, f"{NAME}-config") or {})["data"]
    assert sorted(data) == [f"{pod}.cnf" for pod in PODS]
    assert f"wsrep_node_name = {NAME}-1" in data[f"{NAME}-1.cnf"]


def test_writes_through_the_writer_service_are_on_every_node(stack: Stack) -> None:
    write(stack, 50)
    every_write_everywhere(stack)


def test_a_killed_container_is_restarted_by_the_kubelet_and_rejoins_by_ist(stack: Stack) -> None:
    pod = PODS[1]
    before = container(stack, pod).get("restartCount", 0)
    stack.cluster.kill_container(stack.namespace, pod)
    write(stack, 20)  # missed by the killed node: its rejoin is an IST of these
    wait(lambda: container(stack, pod).get("restartCount", 0) == before + 1, 60, "restarted")
    stack.cluster.wait_pod_ready(stack.namespace, pod, timeout=120)
    stack.wait_green(NAME)
    node = agent(stack, pod)
    status = node.status()
    # One start of mariadbd in the new container: the kubelet's restart and the controller's
    # repair never both started it.
    assert status.runs == 1 and status.facts.alive
    join = node.last_join()
    assert join is not None and join.method is JoinMethod.IST, join
    every_write_everywhere(stack)


def test_a_deleted_pod_is_recreated_and_rejoins_by_ist(stack: Stack) -> None:
    pod = PODS[2]
    uid = (stack.cluster.pod(stack.namespace, pod) or {})["metadata"]["uid"]
    stack.delete_pod(pod)
    write(stack, 20)
    wait(
        lambda: (p := stack.cluster.pod(stack.namespace, pod)) and p["metadata"]["uid"] != uid,
        120,
        "recreated",
    )
    stack.cluster.wait_pod_ready(stack.namespace, pod, timeout=180)
    stack.wait_green(NAME)
    join = agent(stack, pod).last_join()
    assert join is not None and join.method is JoinMethod.IST, join
    every_write_everywhere(stack)


def test_every_pod_deleted_at_once_comes_back_with_every_write(stack: Stack) -> None:
    write(stack, 20)
    for pod in PODS:
        stack.delete_pod(pod)
    for pod in PODS:
        stack.cluster.wait_pod_ready(stack.namespace, pod, timeout=300)
    stack.wait_green(NAME, timeout=300)
    every_write_everywhere(stack)
    assert rows_on(stack, PODS[0]) == sorted(written)  # nothing lost, nothing invented
