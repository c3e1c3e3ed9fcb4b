"""The Kubernetes API emulator behaves like a real API server where our watcher relies on it.

Every test goes through real HTTP with the official client, as the operator does.
"""

import asyncio
import datetime
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from tests.kube.conftest import KubeServer
from tests.kube.emulator import EVENTS, MYSQLCLUSTERS, Call

GROUP, VERSION, NS = "mysqlops.io", "v1alpha1", "ns1"
Obj = dict[str, Any]
Watch: Any = k8s_watch.Watch  # kubernetes.watch and kubernetes.config are not annotated
new_client_from_config: Any = k8s_config.new_client_from_config


def cluster(name: str, **spec: Any) -> Obj:
    meta = {"name": name, "labels": {"app": "mysql"}}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MySQLCluster", "metadata": meta}
    return {**body, "spec": spec or {"replicas": 3}, "status": {"phase": "forged"}}


@pytest.fixture
def api(kube: KubeServer) -> Iterator[Any]:
    with kube.api_client() as api_client:
        yield k8s.CustomObjectsApi(api_client)


def create(api: Any, body: Obj, plural: str = "mysqlclusters") -> Obj:
    created: Obj = api.create_namespaced_custom_object(GROUP, VERSION, NS, plural, body)
    return created


def patch(api: Any, name: str, body: Any, status: bool = False, **kwargs: Any) -> Obj:
    fn = api.patch_namespaced_custom_object_status if status else api.patch_namespaced_custom_object
    patched: Obj = fn(GROUP, VERSION, NS, "mysqlclusters", name, body, **kwargs)
    return patched


def get(api: Any, name: str) -> Obj:
    found: Obj = api.get_namespaced_custom_object(GROUP, VERSION, NS, "mysqlclusters", name)
    return found


def rv(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


def list_rv(api: Any) -> str:
    listed = api.list_namespaced_custom_object(GROUP, VERSION, NS, "mysqlclusters")
    return str(listed["metadata"]["resourceVersion"])


def stream(api: Any, **kwargs: Any) -> tuple[Any, Iterator[Obj]]:
    """A watch of mysqlclusters in NS with the official client's ``Watch``."""
    w = Watch()
    kwargs.setdefault("_request_timeout", 5)  # fail rather than hang when events do not come
    lister = api.list_namespaced_custom_object
    return w, w.stream(lister, GROUP, VERSION, NS, "mysqlclusters", **kwargs)


def take(events: Iterator[Obj], count: int) -> list[tuple[str, str]]:
    """The next ``count`` events as (type, name or resourceVersion for bookmarks)."""
    taken = []
    for event in events:
        meta = event["raw_object"]["metadata"]
        taken.append((event["type"], meta.get("name") or meta["resourceVersion"]))
        if len(taken) == count:
            break
    return taken


def api_error(fn: Callable[[], Any]) -> k8s.ApiException:
    with pytest.raises(k8s.ApiException) as caught:
        fn()
    return caught.value


def reason(exc: k8s.ApiException) -> str:
    return str(json.loads(exc.body or "{}")["reason"])


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_create_answers_201_with_uid_timestamps_generation_and_no_status(api: Any) -> None:
    _, status, _ = api.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, NS, "mysqlclusters", cluster("c1")
    )
    assert status == 201
    created = get(api, "c1")
    meta = created["metadata"]
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and meta["namespace"] == NS
    assert "status" not in created  # ignored on create with a status subresource
    assert create(api, cluster("c2"))["metadata"]["uid"] != meta["uid"]

    exc = api_error(lambda: create(api, cluster("c1")))
    assert (exc.status, reason(exc)) == (409, "AlreadyExists")
    stale = {**cluster("c3"), "metadata": {"name": "c3", "resourceVersion": "5"}}
    assert api_error(lambda: create(api, stale)).status == 400
    assert api_error(lambda: create(api, cluster("Not_DNS"))).status == 422


def test_resource_version_is_global_and_grows_on_every_write(api: Any) -> None:
    first = create(api, cluster("c1"))
    backup = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MySQLBackup", "metadata": {"name": "b"}}
    second = create(api, backup, "mysqlbackups")
    third = patch(api, "c1", {"metadata": {"labels": {"x": "y"}}})
    assert rv(first) < rv(second) < rv(third)
    assert list_rv(api) == str(rv(third))
    assert get(api, "c1")["metadata"]["resourceVersion"] == str(rv(third))


def test_generation_follows_spec_only(api: Any) -> None:
    created = create(api, cluster("c1", replicas=3))
    spec_changed = patch(api, "c1", {"spec": {"replicas": 5}})
    labelled = patch(api, "c1", {"metadata": {"labels": {"tier": "db"}}})
    status_changed = patch(api, "c1", {"status": {"phase": "Ready"}}, status=True)
    same = patch(api, "c1", {"spec": {"replicas": 5}})
    generations = [o["metadata"]["generation"] for o in (spec_changed, labelled, status_changed)]
    assert [created["metadata"]["generation"], *generations] == [1, 2, 2, 2]
    assert rv(created) < rv(spec_changed) < rv(labelled) < rv(status_changed)
    assert rv(same) == rv(status_changed)  # a no-op write stores nothing


def test_status_is_isolated_from_the_main_resource(api: Any) -> None:
    create(api, cluster("c1", replicas=3))
    patch(api, "c1", {"spec": {"replicas": 4}, "status": {"phase": "ignored"}})
    assert get(api, "c1")["spec"] == {"replicas": 4} and "status" not in get(api, "c1")
    patch(api, "c1", {"spec": {"replicas": 9}, "status": {"phase": "Ready"}}, status=True)
    assert get(api, "c1")["spec"] == {"replicas": 4}
    assert get(api, "c1")["status"] == {"phase": "Ready"}
    patch(api, "c1", {"metadata": {"uid": "forged", "generation": 42}})
    assert get(api, "c1")["metadata"]["generation"] == 2  # server-managed


def test_stale_resource_version_is_a_conflict(api: Any) -> None:
    created = create(api, cluster("c1"))
    current = patch(api, "c1", {"spec": {"replicas": 4}})
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}}
    exc = api_error(lambda: patch(api, "c1", {**stale, "status": {"phase": "x"}}, status=True))
    assert (exc.status, reason(exc)) == (409, "Conflict")
    assert "status" not in get(api, "c1")
    fresh = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}}
    assert patch(api, "c1", {**fresh, "status": {"phase": "x"}}, status=True)["status"]


def test_patch_types(api: Any) -> None:
    create(api, cluster("c1"))
    ops = [{"op": "test", "path": "/spec/replicas", "value": 3}]
    ops.append({"op": "replace", "path": "/spec/replicas", "value": 7})
    json_patch = "application/json-patch+json"
    assert patch(api, "c1", ops, _content_type=json_patch)["spec"]["replicas"] == 7
    exc = api_error(lambda: patch(api, "c1", ops, _content_type=json_patch))  # the test fails
    assert exc.status == 422 and get(api, "c1")["spec"]["replicas"] == 7
    strategic = "application/strategic-merge-patch+json"
    assert api_error(lambda: patch(api, "c1", {"spec": {}}, _content_type=strategic)).status == 415
    assert patch(api, "c1", {"spec": {"replicas": None, "x": 1}})["spec"] == {"x": 1}


def test_watch_without_resource_version_starts_with_current_objects(api: Any) -> None:
    create(api, cluster("c1"))
    create(api, cluster("c2"))
    w, events = stream(api)
    assert take(events, 2) == [("ADDED", "c1"), ("ADDED", "c2")]
    create(api, cluster("c3"))
    patch(api, "c1", {"spec": {"replicas": 1}})
    assert take(events, 2) == [("ADDED", "c3"), ("MODIFIED", "c1")]
    w.stop()


def test_watch_from_a_resource_version_sends_only_newer_changes(api: Any) -> None:
    create(api, cluster("c1"))
    since = list_rv(api)
    create(api, cluster("c2"))
    w, events = stream(api, resource_version=since)
    assert take(events, 1) == [("ADDED", "c2")]  # c1 is not replayed
    api.delete_namespaced_custom_object(GROUP, VERSION, NS, "mysqlclusters", "c1")
    assert take(events, 1) == [("DELETED", "c1")]
    w.stop()


def test_watch_label_selector_filters_and_reports_transitions(api: Any) -> None:
    create(api, cluster("c1"))
    w, events = stream(api, resource_version=list_rv(api), label_selector="app=mysql,tier!=web")
    create(api, {**cluster("other"), "metadata": {"name": "other", "labels": {"app": "pg"}}})
    patch(api, "c1", {"metadata": {"labels": {"tier": "web"}}})  # leaves the selection
    patch(api, "other", {"metadata": {"labels": {"app": "mysql"}}})  # enters the selection
    assert take(events, 2) == [("DELETED", "c1"), ("ADDED", "other")]
    w.stop()


def test_watch_ends_after_timeout_seconds(api: Any) -> None:
    started = time.monotonic()
    _, events = stream(api, timeout_seconds=1)
    assert list(events) == []
    assert 0.9 < time.monotonic() - started < 3


def test_watch_sends_bookmarks_when_allowed(kube: KubeServer, api: Any) -> None:
    kube.emulator.bookmark_interval = 0.2
    create(api, cluster("c1"))
    since = list_rv(api)
    create(api, {**cluster("x"), "kind": "MySQLBackup"}, "mysqlbackups")  # rv moves elsewhere
    w, events = stream(api, resource_version=since, allow_watch_bookmarks=True)
    assert take(events, 1) == [("BOOKMARK", kube.emulator.resource_version)]
    assert w.resource_version == kube.emulator.resource_version  # the client resumes from it
    w.stop()
    _, events = stream(api, resource_version=since, timeout_seconds=1)
    assert list(events) == []  # no bookmarks unless asked for


def test_watch_from_a_compacted_resource_version_is_gone(kube: KubeServer, api: Any) -> None:
    create(api, cluster("c1"))
    old = list_rv(api)
    create(api, cluster("c2"))
    kube.compact()
    exc = api_error(lambda: list(stream(api, resource_version=old, timeout_seconds=2)[1]))
    assert exc.status == 410
    # The client retries once by itself after a 410 (no timeout_seconds), then gives up:
    exc = api_error(lambda: list(stream(api, resource_version=old)[1]))
    assert exc.status == 410
    w, events = stream(api, resource_version=list_rv(api))  # after a relist, all is well
    create(api, cluster("c3"))
    assert take(events, 1) == [("ADDED", "c3")]
    w.stop()


def test_a_410_can_be_injected_into_the_next_watch(kube: KubeServer, api: Any) -> None:
    kube.expire_next_watch()
    exc = api_error(lambda: list(stream(api, timeout_seconds=2)[1]))
    assert exc.status == 410
    assert list(stream(api, timeout_seconds=1)[1]) == []  # only the next one


async def test_abruptly_dropped_watch_breaks_the_client(kube: KubeServer, api: Any) -> None:
    _, events = stream(api, resource_version=list_rv(api))
    consumer = asyncio.create_task(asyncio.to_thread(list, events))
    await until(lambda: kube.emulator.watch_count == 1)
    assert kube.drop_watches() == 1
    with pytest.raises(urllib3.exceptions.ProtocolError):
        await consumer
    await until(lambda: kube.emulator.watch_count == 0)


async def test_cleanly_ended_watch_is_resumed_by_the_client(kube: KubeServer, api: Any) -> None:
    w, events = stream(api, resource_version=list_rv(api))
    create(api, cluster("c1"))
    assert await asyncio.to_thread(take, events, 1) == [("ADDED", "c1")]
    await until(lambda: kube.emulator.watch_count == 1)
    kube.drop_watches(abrupt=False)
    consumer = asyncio.create_task(asyncio.to_thread(take, events, 1))
    await until(lambda: [c.verb for c in kube.calls].count("watch") == 2)
    create(api, cluster("c2"))
    assert await consumer == [("ADDED", "c2")]  # no replay of c1
    resumed = [c for c in kube.calls if c.verb == "watch"][1]
    assert resumed.query["resourceVersion"] == get(api, "c1")["metadata"]["resourceVersion"]
    w.stop()


async def test_a_watch_whose_client_left_is_closed(kube: KubeServer, api: Any) -> None:
    create(api, cluster("c1"))
    w, events = stream(api)
    assert await asyncio.to_thread(take, events, 1) == [("ADDED", "c1")]
    assert kube.emulator.watch_count == 1
    w.stop()  # shuts the socket down
    await until(lambda: kube.emulator.watch_count == 0, timeout=2)


def test_finalizers_hold_deletion_until_removed(api: Any) -> None:
    body = cluster("c1")
    body["metadata"]["finalizers"] = ["mysqlops.io/cleanup"]
    create(api, body)
    w, events = stream(api, resource_version=list_rv(api))
    deleting = api.delete_namespaced_custom_object(GROUP, VERSION, NS, "mysqlclusters", "c1")
    assert deleting["metadata"]["deletionTimestamp"]
    assert get(api, "c1")["metadata"]["deletionTimestamp"]
    more = {"metadata": {"finalizers": ["mysqlops.io/cleanup", "other"]}}
    assert api_error(lambda: patch(api, "c1", more)).status == 422
    patch(api, "c1", {"metadata": {"finalizers": None}})
    assert take(events, 2) == [("MODIFIED", "c1"), ("DELETED", "c1")]
    assert api_error(lambda: get(api, "c1")).status == 404
    w.stop()


def test_events_support_create_get_list_and_series_patch(kube: KubeServer) -> None:
    events: Any = k8s.EventsV1Api(kube.api_client())
    now = datetime.datetime.now(datetime.UTC)
    regarding = k8s.V1ObjectReference(kind="MySQLCluster", name="c1", namespace=NS)
    event: Any = k8s.EventsV1Event(
        metadata=k8s.V1ObjectMeta(name="c1.started", namespace=NS),
        event_time=now,
        reporting_controller="mysqlops.io/operator",
        reporting_instance="operator-0",
        action="Reconcile",
        reason="Started",
        type="Normal",
        note="Cluster c1 is starting",
        regarding=regarding,
    )
    created = events.create_namespaced_event(NS, event)
    assert created.metadata.uid and created.note == "Cluster c1 is starting"
    series = {"series": {"count": 2, "lastObservedTime": now.isoformat()}}
    patched = events.patch_namespaced_event("c1.started", NS, series)
    assert patched.series.count == 2
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    assert events.read_namespaced_event("c1.started", NS).series.count == 2
    assert [e.metadata.name for e in events.list_namespaced_event(NS).items] == ["c1.started"]
    # What a real server refuses: a changed note, a series of one, a missing reportingController.
    exc = api_error(lambda: events.patch_namespaced_event("c1.started", NS, {"note": "other"}))
    assert exc.status == 422
    single = {"series": {"count": 1, "lastObservedTime": now.isoformat()}}
    assert api_error(lambda: events.patch_namespaced_event("c1.started", NS, single)).status == 422
    event.metadata.name, event.reporting_controller = "c1.other", None
    assert api_error(lambda: events.create_namespaced_event(NS, event)).status == 422
    assert kube.emulator.objects(EVENTS, NS)[0]["series"]["count"] == 2


def test_request_log_has_rbac_verbs_and_resources(kube: KubeServer, api: Any) -> None:
    create(api, cluster("c1"))
    patch(api, "c1", {"status": {"phase": "Ready"}}, status=True)
    list(stream(api, timeout_seconds=1)[1])
    seen = {(c.verb, c.group, c.resource) for c in kube.calls}
    assert seen == {
        ("create", GROUP, "mysqlclusters"),
        ("patch", GROUP, "mysqlclusters/status"),
        ("watch", GROUP, "mysqlclusters"),
    }
    watch_call = kube.calls[-1]
    assert isinstance(watch_call, Call) and watch_call.namespace == NS and watch_call.user is None
    assert watch_call.path == f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/mysqlclusters"


def test_injected_failure_writes_nothing(kube: KubeServer, api: Any) -> None:
    kube.fail_next("create", "mysqlclusters", 500)
    assert api_error(lambda: create(api, cluster("c1"))).status == 500
    assert kube.emulator.objects(MYSQLCLUSTERS) == []
    create(api, cluster("c1"))  # only the next request fails
    assert [o["metadata"]["name"] for o in kube.emulator.objects(MYSQLCLUSTERS)] == ["c1"]


def test_direct_helpers_are_seen_by_http_clients(kube: KubeServer, api: Any) -> None:
    kube.emulator.create_object(MYSQLCLUSTERS, cluster("c1"), NS)
    kube.emulator.patch_object(MYSQLCLUSTERS, "c1", {"status": {"phase": "Ready"}}, NS, "status")
    assert get(api, "c1")["status"] == {"phase": "Ready"}
    kube.emulator.delete_object(MYSQLCLUSTERS, "c1", NS)
    assert api_error(lambda: get(api, "c1")).status == 404


async def test_kubeconfig_works_even_from_a_blocked_event_loop(
    kube: KubeServer, tmp_path: Path
) -> None:
    path = kube.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    api = k8s.CustomObjectsApi(new_client_from_config(config_file=str(path)))
    create(api, cluster("c1"))  # a blocking call on the test's loop: the server has its own
    assert kube.calls[-1].user == "emulator-token"  # the kubeconfig's bearer token
    assert [o["metadata"]["name"] for o in kube.emulator.objects(MYSQLCLUSTERS)] == ["c1"]
