"""The scenarios of a MySQL cluster on Kubernetes, in order, on one cluster made from
examples/k8s/mysqlcluster.yaml: created from the custom resource, scraped as Prometheus would,
written and read, its Pods' containers killed and its Pods deleted (one, then all), and every
acknowledged write kept."""

import urllib.request
from functools import partial
from typing import Any

import pymysql
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from activities.agent_client import AgentClient
from activities.kubernetes.objects.common import HAPROXY_STATS_PORT
from activities.users import MONITOR_SECRET, MONITOR_USER
from api.states import JoinMethod
from tests.k8s_e2e.stack import MYSQLBACKUP, MYSQLRESTORE, Stack, wait
from tests.kube.informer import CONFIGMAPS, PODS, PVCS, SECRETS, STATEFULSETS

NAME = "db"
NODES = [f"{NAME}-{i}" for i in range(3)]
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
    for pod in NODES:
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
    assert status["writer"] in NODES and status["phase"] == "Running"
    uid = created["metadata"]["uid"]
    statefulset = stack.get(STATEFULSETS, NAME) or {}
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["updateStrategy"]["type"] == "OnDelete"
    assert statefulset["metadata"]["ownerReferences"][0]["uid"] == uid
    for pod in NODES:
        stack.cluster.wait_pod_ready(stack.namespace, pod, timeout=60)
    # The ConfigMap holds each node's my.cnf; each node runs with what its file says.
    data = (stack.get(CONFIGMAPS, f"{NAME}-config") or {})["data"]
    assert sorted(data) == [f"{pod}.cnf" for pod in NODES]
    assert f"wsrep_node_name = {NAME}-1" in data[f"{NAME}-1.cnf"]


def scrape(host: str, port: int) -> list[Sample]:
    """Every sample of `http://host:port/metrics`, as Prometheus reads it."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The value of the series `name` whose labels include `labels`."""
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) <= 1, f"{name} {labels}: {len(found)} series"
    return found[0] if found else None


def named_ports(stack: Stack, pod: str) -> dict[str, int]:
    """The node container's ports by name, as a PodMonitor selects them."""
    spec = (stack.cluster.pod(stack.namespace, pod) or {})["spec"]
    return {p["name"]: p["containerPort"] for p in spec["containers"][0]["ports"]}


def test_every_pod_serves_its_metrics(stack: Stack) -> None:
    """What Prometheus scrapes on the cluster's Pods, on their IPs and declared ports: each
    agent's view of its node, each mysqld_exporter logged in as the monitoring user (mysql_up
    is 0 otherwise) with Galera's view, HAProxy's backends."""
    for pod in NODES:
        ports, ip = named_ports(stack, pod), stack.pod_ip(pod)
        ids = {"cluster_namespace": stack.namespace, "cluster": NAME, "node": pod}
        agent = scrape(ip, ports["agent-metrics"])
        assert value(agent, "mysqlops_agent_node_state", **ids, state="Green") == 1, pod
        assert value(agent, "mysqlops_agent_serving", **ids) == 1, pod
        assert (value(agent, "mysqlops_agent_reports_sent_total", **ids) or 0) >= 1, pod
        assert (value(agent, "mysqlops_agent_probe_duration_seconds_count", **ids) or 0) >= 1, pod
        # The exporter's login is the monitoring user's, its password the Secret's.
        volume = stack.cluster.pvc_dir(stack.namespace, f"data-{pod}")
        login = (volume / "exporter.cnf").read_text()
        assert f"user={MONITOR_USER}\n" in login, pod
        assert f"password={stack.secret(NAME, MONITOR_SECRET)}\n" in login, pod
        mysqld = scrape(ip, ports["exporter"])
        assert value(mysqld, "mysql_up") == 1, (pod, (volume / "exporter.log").read_text())
        assert value(mysqld, "mysql_global_status_wsrep_cluster_size") == 3, pod
        assert value(mysqld, "mysql_global_status_wsrep_local_state") == 4, pod  # Synced
        assert value(mysqld, "mysql_global_status_wsrep_ready") == 1, pod
    haproxy = scrape(stack.haproxy_ip(NAME), HAPROXY_STATS_PORT)
    for pod in NODES:
        up = value(haproxy, "haproxy_server_status", proxy="reader", server=pod, state="UP")
        assert up == 1, pod


def test_writes_through_the_writer_service_are_on_every_node(stack: Stack) -> None:
    write(stack, 50)
    every_write_everywhere(stack)


def test_a_killed_container_is_restarted_by_the_kubelet_and_rejoins_by_ist(stack: Stack) -> None:
    pod = NODES[1]
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


def delete_pods(stack: Stack, pods: list[str]) -> dict[str, str]:
    """Delete the Pods; their uids, which their successors do not have."""
    uids = {pod: (stack.cluster.pod(stack.namespace, pod) or {})["metadata"]["uid"] for pod in pods}
    for pod in pods:
        stack.delete_pod(pod)
    return uids


def is_new(stack: Stack, pod: str, uid: str) -> bool:
    found = stack.cluster.pod(stack.namespace, pod)
    return found is not None and found["metadata"]["uid"] != uid


def wait_replaced(stack: Stack, uids: dict[str, str], timeout: float) -> None:
    """Until each deleted Pod's successor is Ready (a Pod being deleted still shows Ready)."""
    for pod, uid in uids.items():
        wait(partial(is_new, stack, pod, uid), timeout, f"{pod} recreated")
        stack.cluster.wait_pod_ready(stack.namespace, pod, timeout=timeout)


def test_a_deleted_pod_is_recreated_and_rejoins_by_ist(stack: Stack) -> None:
    pod = NODES[2]
    uids = delete_pods(stack, [pod])
    write(stack, 20)
    wait_replaced(stack, uids, 180)
    stack.wait_green(NAME)
    join = agent(stack, pod).last_join()
    assert join is not None and join.method is JoinMethod.IST, join
    every_write_everywhere(stack)


def test_every_pod_deleted_at_once_comes_back_with_every_write(stack: Stack) -> None:
    write(stack, 20)
    wait_replaced(stack, delete_pods(stack, NODES), 300)
    stack.wait_green(NAME, timeout=300)
    every_write_everywhere(stack)
    assert rows_on(stack, NODES[0]) == sorted(written)  # nothing lost, nothing invented


def nodes_ready(stack: Stack, count: int) -> bool:
    status = stack.status(NAME)
    return status.get("ready") == f"{count}/{count}" and status.get("state") == "Green"


def test_scale_to_five_and_back_to_three(stack: Stack) -> None:
    stack.patch_cluster(NAME, {"replicas": 5})
    wait(lambda: nodes_ready(stack, 5), 420, "5/5 Green", stack.diagnose)
    stack.wait_green(NAME)
    statefulset = stack.get(STATEFULSETS, NAME) or {}
    assert statefulset["spec"]["replicas"] == 5
    write(stack, 10)
    for pod in (f"{NAME}-3", f"{NAME}-4"):
        wait(partial(has_every_write, stack, pod), 60, pod)  # new nodes joined by SST
    stack.patch_cluster(NAME, {"replicas": 3})
    wait(lambda: nodes_ready(stack, 3), 420, "3/3 Green", stack.diagnose)
    stack.wait_green(NAME)
    wait(lambda: stack.get(PODS, f"{NAME}-4") is None, 120, "db-4 gone")
    assert stack.get(PODS, f"{NAME}-3") is None
    # Their volumes stay (deletionPolicy: Retain): scaling up again would find the data.
    assert stack.get(PVCS, f"data-{NAME}-3") is not None
    every_write_everywhere(stack)


def test_a_config_change_restarts_every_node_the_writer_last(stack: Stack) -> None:
    writer = stack.status(NAME)["writer"]
    config = {**(stack.mysqlcluster(NAME) or {})["spec"]["mysql"]["config"]}
    stack.patch_cluster(NAME, {"mysql": {"config": {**config, "max_connections": 321}}})
    wait(
        lambda: all(answers(stack, pod, "max_connections", "321") for pod in NODES),
        600,
        "max_connections 321 everywhere",
        stack.diagnose,
    )
    stack.wait_green(NAME)
    uptimes = {pod: int(status_value(stack, pod, "Uptime")) for pod in NODES}
    assert min(uptimes, key=lambda pod: uptimes[pod]) == writer, uptimes  # restarted last
    write(stack, 10)
    every_write_everywhere(stack)


def test_a_backup_and_an_in_place_restore_through_the_agents(stack: Stack) -> None:
    write(stack, 10)
    at_backup = sorted(written)
    stack.create(MYSQLBACKUP, "db-backup", {"cluster": NAME})
    done = wait(
        lambda: (
            (s := stack.resource_status(MYSQLBACKUP, "db-backup")).get("phase")
            in ("Succeeded", "Failed")
            and s
        ),
        600,
        "backup ended",
        stack.diagnose,
    )
    assert done["phase"] == "Succeeded", done
    checksum = table_checksum(stack, NODES[0])
    write(stack, 10)  # after the backup point: the restore takes these away
    stack.create(MYSQLRESTORE, "db-restore", {"cluster": NAME, "backup": "db-backup"})
    restored = wait(
        lambda: (
            (s := stack.resource_status(MYSQLRESTORE, "db-restore")).get("phase")
            in ("Succeeded", "Failed")
            and s
        ),
        900,
        "restore ended",
        stack.diagnose,
    )
    assert restored["phase"] == "Succeeded", restored
    stack.wait_green(NAME)
    for pod in NODES:
        assert rows_on(stack, pod) == at_backup, pod
        assert table_checksum(stack, pod) == checksum, pod
    # The data before the restore is kept, not deleted.
    assert restored.get("setAside"), restored
    written[:] = at_backup


def test_deleting_the_cluster_releases_it_and_keeps_the_volumes(stack: Stack) -> None:
    stack.delete_cluster(NAME)
    wait(lambda: stack.mysqlcluster(NAME) is None, 300, "finalizer released", stack.diagnose)
    wait(lambda: stack.get(STATEFULSETS, NAME) is None, 60, "StatefulSet gone")
    wait(lambda: not any(stack.get(PODS, pod) for pod in NODES), 120, "pods gone")
    for pod in NODES:
        assert stack.get(PVCS, f"data-{pod}") is not None  # deletionPolicy: Retain


def test_deletion_policy_delete_removes_the_volumes(stack: Stack) -> None:
    name = "gone"
    stack.apply_cluster(name, replicas=1, deletionPolicy="Delete")
    stack.wait_green(name, timeout=300)
    assert stack.get(PVCS, f"data-{name}-0") is not None
    stack.delete_cluster(name)
    wait(lambda: stack.mysqlcluster(name) is None, 300, "finalizer released", stack.diagnose)
    wait(lambda: stack.get(PVCS, f"data-{name}-0") is None, 120, "volume deleted")
    assert stack.get(SECRETS, f"{name}-secrets") is None


def answers(stack: Stack, pod: str, name: str, value: str) -> bool:
    """Whether the node runs with that value (False while it restarts)."""
    try:
        return variable(stack, pod, name) == value
    except pymysql.MySQLError:
        return False


def variable(stack: Stack, pod: str, name: str) -> str:
    return str(query(stack, pod, f"SELECT @@{name}")[0][0])


def status_value(stack: Stack, pod: str, name: str) -> str:
    return str(query(stack, pod, f"SHOW GLOBAL STATUS LIKE '{name}'")[0][1])


def table_checksum(stack: Stack, pod: str) -> int:
    return int(query(stack, pod, "CHECKSUM TABLE e2e.t")[0][1])


def query(stack: Stack, pod: str, sql: str) -> list[tuple[Any, ...]]:
    conn = stack.connect(stack.pod_ip(pod), NAME)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        conn.close()
