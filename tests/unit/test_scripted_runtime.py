"""The scripted runtime holds many clusters apart, and several processes can share one."""

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import AuthenticationError
from pathlib import Path

import pytest

from activities.probe import Target
from activities.runtime import ClusterLayout, ClusterRef, NodeFailed, Runtime, StopMode
from activities.scripted.runtime import ScriptedRuntime
from activities.scripted.shared import (
    ADDRESS_ENV,
    AUTHKEY_FILE_ENV,
    SharedRuntime,
    connect,
    serve,
    share,
)
from api.cluster import MySQLClusterSpec
from api.states import ExitKind

ROOT = Path(__file__).resolve().parents[2]
KEY = os.urandom(32)


def ref(name: str, namespace: str = "default") -> ClusterRef:
    return ClusterRef(namespace=namespace, name=name)


def running(runtime: Runtime, cluster: ClusterRef, replicas: int = 3) -> ClusterLayout:
    layout = runtime.layout(cluster, replicas)
    for node in layout.nodes:
        first = node.ordinal == 0
        runtime.provision_node(layout, node.name, MySQLClusterSpec(), bootstrap_candidate=first)
        runtime.start_node(layout, node.name, bootstrap=first)
    runtime.configure_load_balancer(layout, [n.name for n in layout.nodes])
    return layout


def sizes(runtime: ScriptedRuntime | SharedRuntime, layout: ClusterLayout) -> list[int | None]:
    """Each node's view of its cluster's size, None where it does not answer."""
    facts = [runtime.probe(Target(user="m", host=n.host, port=n.port), 1) for n in layout.nodes]
    return [f.cluster_size if f.reachable else None for f in facts]


def ports(layout: ClusterLayout) -> set[int]:
    return {layout.writer_port, layout.reader_port, *(n.port for n in layout.nodes)}


def test_each_cluster_has_ports_of_its_own_kept_across_layouts() -> None:
    runtime = ScriptedRuntime()
    a, b = runtime.layout(ref("a"), 3), runtime.layout(ref("b"), 3)
    assert len(ports(a) | ports(b)) == 10
    grown = runtime.layout(ref("a"), 5)
    assert grown.nodes[:3] == a.nodes and grown.writer_port == a.writer_port
    assert not ports(grown) & ports(b)


def test_a_crash_changes_only_its_own_clusters_view() -> None:
    runtime = ScriptedRuntime()
    a, b = running(runtime, ref("a")), running(runtime, ref("b"), replicas=5)
    assert (sizes(runtime, a), sizes(runtime, b)) == ([3, 3, 3], [5] * 5)
    runtime.crash("a-1")
    assert (sizes(runtime, a), sizes(runtime, b)) == ([2, None, 2], [5] * 5)
    assert runtime.load_balancer_view(a).up == ["a-0", "a-2"]
    assert runtime.load_balancer_view(b).up == [f"b-{i}" for i in range(5)]


def test_secrets_are_per_cluster() -> None:
    runtime = ScriptedRuntime()
    for cluster in (ref("a"), ref("b")):
        runtime.ensure_secret(cluster, "app")
    assert runtime.read_secret(ref("a"), "app") != runtime.read_secret(ref("b"), "app")
    runtime.ensure_secret(ref("a"), "app")  # kept
    assert sorted(runtime.secrets) == ["default/a/app", "default/b/app"]


def test_the_same_name_in_two_namespaces_is_two_clusters() -> None:
    runtime = ScriptedRuntime()
    one, two = ref("c", "one"), ref("c", "two")
    first = running(runtime, one)
    second = runtime.layout(two, 3)
    assert not ports(first) & ports(second)
    assert runtime.node(one, "c-0").running and not runtime.node(two, "c-0").running
    assert sizes(runtime, second) == [None, None, None]
    with pytest.raises(LookupError, match="2 clusters"):
        runtime.crash("c-0")  # by name: ambiguous
    runtime.ensure_secret(one, "app")
    with pytest.raises(KeyError):
        runtime.read_secret(two, "app")


def test_faults_are_planted_by_node_name() -> None:
    runtime = ScriptedRuntime()
    layout = running(runtime, ref("a"))
    runtime.hung.add("a-2")
    runtime.non_primary.add("a-1")
    facts = [runtime.probe(Target(user="m", host=n.host, port=n.port), 1) for n in layout.nodes]
    assert [f.wsrep_cluster_status if f.reachable else f.error for f in facts] == [
        "Primary",
        "non-Primary",
        "timed out",
    ]
    assert set(runtime.hung) == {"a-2"} and "a-1" in runtime.non_primary
    runtime.crash("a-2")  # a crash ends the hang
    assert not runtime.hung
    runtime.failing.add("a-2")
    with pytest.raises(NodeFailed):
        runtime.start_node(layout, "a-2", bootstrap=False)
    assert runtime.nodes["a-2"].exit_kind is ExitKind.UNCLEAN


def test_retiring_a_cluster_forgets_it_and_frees_its_ports() -> None:
    runtime = ScriptedRuntime()
    gone = running(runtime, ref("gone"))
    kept = running(runtime, ref("kept"))
    runtime.ensure_secret(ref("gone"), "app")
    for node in gone.nodes:
        runtime.stop_node(gone, node.name, StopMode.GRACEFUL, 10)
    runtime.retire_cluster(gone, delete_data=True)
    assert sorted(runtime.nodes) == ["kept-0", "kept-1", "kept-2"] and not runtime.secrets
    assert not runtime.process_facts(gone, "gone-0").provisioned
    assert sizes(runtime, gone) == [None, None, None]
    assert ports(runtime.layout(ref("next"), 3)) == ports(gone)  # the block is reused
    assert sizes(runtime, kept) == [3, 3, 3]


def test_clusters_laid_out_from_many_threads_at_once_get_distinct_ports() -> None:
    runtime = ScriptedRuntime()
    with ThreadPoolExecutor(16) as pool:
        layouts = list(pool.map(lambda i: runtime.layout(ref(f"c{i}"), 3), range(200)))
    assert len(set().union(*(ports(layout) for layout in layouts))) == 200 * 5


# -- shared between processes --------------------------------------------------------------

CHILD = """
import sys
from activities.probe import Target
from activities.runtime import ClusterRef
from activities.scripted.shared import connect_from_env
from api.cluster import MySQLClusterSpec

runtime = connect_from_env()
layout = runtime.layout(ClusterRef(namespace="default", name="remote"), 3)
for node in layout.nodes:
    runtime.provision_node(layout, node.name, MySQLClusterSpec(), node.ordinal == 0)
    runtime.start_node(layout, node.name, node.ordinal == 0)
for _ in range(2):
    facts = [runtime.probe(Target("m", host=n.host, port=n.port), 1) for n in layout.nodes]
    print(*(f.cluster_size if f.reachable else f.error for f in facts), sep=",", flush=True)
    sys.stdin.readline()
"""


def test_a_child_process_drives_the_shared_runtime_and_sees_injected_faults(
    tmp_path: Path,
) -> None:
    runtime = ScriptedRuntime()
    env, stop = share(runtime, tmp_path)
    assert set(env) == {ADDRESS_ENV, AUTHKEY_FILE_ENV}
    key_file = Path(env[AUTHKEY_FILE_ENV])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().hex() not in str(env)
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            env={**os.environ, **env},
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        with child:
            assert child.stdout.readline().strip() == "3,3,3"
            assert (
                runtime.nodes["remote-0"].running and ("start", "remote-0", True) in runtime.calls
            )
            runtime.crash("remote-1")  # on the served object, in this process
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "2,connection refused,2"
            child.stdin.write("\n")
        assert child.returncode == 0
    finally:
        stop()
    assert not key_file.exists()


def test_the_shared_runtime_answers_many_threads_at_once() -> None:
    runtime = ScriptedRuntime()
    address, stop = serve(runtime, KEY)
    try:
        shared = connect(address, KEY)
        layouts = [running(shared, ref(f"c{i}"), replicas=1 + i % 5) for i in range(64)]

        def views(layout: ClusterLayout) -> set[tuple[int | None, ...]]:
            return {tuple(sizes(shared, layout)) for _ in range(20)}

        # 64 threads connect at once, then a reply read by the wrong thread would show here.
        with ThreadPoolExecutor(64) as pool:
            seen = list(pool.map(views, layouts))
        assert seen == [{(len(layout.nodes),) * len(layout.nodes)} for layout in layouts]
    finally:
        stop()


def test_the_shared_runtime_carries_errors_and_backups() -> None:
    runtime = ScriptedRuntime()
    address, stop = serve(runtime, KEY)
    try:
        shared = connect(address, KEY)
        layout = running(shared, ref("a"))
        runtime.failing.add("a-1")
        runtime.crash("a-1")
        with pytest.raises(NodeFailed, match="exited at start"):
            shared.start_node(layout, "a-1", bootstrap=False)
        with (
            shared.backup_stream(layout, "a-2") as stream,
            runtime.backup_stream(layout, "a-2") as local,
        ):
            assert stream.read() == local.read()
        assert shared.receive_backup(layout, "a-2", "b1", iter([b"ab", b"cde"])) == "/staging/b1"
        assert runtime.calls[-1] == ("receive", "a-2", "b1", 5)
        runtime.retire_fails = True
        with pytest.raises(Exception, match="device or resource busy") as failed:
            shared.retire_cluster(layout, delete_data=False)
        assert getattr(failed.value, "non_retryable", False)
    finally:
        stop()


def test_a_wrong_authkey_is_refused() -> None:
    runtime = ScriptedRuntime()
    address, stop = serve(runtime, KEY)
    try:
        with pytest.raises(AuthenticationError):
            connect(address, b"not the key")
        assert connect(address, KEY).backup_tool()[0] == "mariabackup"  # still serving
    finally:
        stop()
