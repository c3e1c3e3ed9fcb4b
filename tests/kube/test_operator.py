"""`mysqlops operator` end to end against the emulated API server: custom objects become
workflows (once), spec changes become one update each, status and Events come back, watch
faults change nothing, deletion waits for teardown, bad objects start nothing. The workers run
the scripted runtime on a real Temporal dev server."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import pytest_asyncio
from kubernetes.aio import client as aio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.cluster import ClusterStatus, cluster_workflow_id
from tests.chart.rbac import rendered_rbac_rules
from tests.kube.conftest import KubeServer
from tests.kube.emulator import EVENTS, MYSQLBACKUPS, MYSQLCLUSTERS, MYSQLRESTORES, Call, Resource
from tests.workflows.harness import Harness, cluster, green_and_idle, running_harness
from workers.operator.main import Operator, Settings
from workers.operator.reconcile import FINALIZER

Obj = dict[str, Any]
OPERATOR, WORKER = "operator", "worker"  # the bearer tokens telling the two apart in the log


def api(server: KubeServer, who: str) -> aio.ApiClient:
    configuration = aio.Configuration(host=server.url)
    configuration.api_key = {"BearerToken": who}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return aio.ApiClient(configuration)


@dataclass
class Stack:
    kube: KubeServer
    harness: Harness
    namespace: str
    operators: list[tuple[Operator, asyncio.Task[None]]] = field(default_factory=list)

    @property
    def client(self) -> Client:
        return self.harness.client

    async def start_operator(self, resync_seconds: float = 300) -> Operator:
        settings = Settings(resync_seconds=resync_seconds, task_queue=self.harness.task_queue)
        operator = Operator(self.client, api(self.kube, OPERATOR), settings)
        self.operators.append((operator, asyncio.create_task(operator.run())))
        return operator

    async def stop_operator(self, operator: Operator) -> None:
        for entry in list(self.operators):
            if entry[0] is operator:
                entry[1].cancel()
                await asyncio.gather(entry[1], return_exceptions=True)
                await operator.reconciler.kube.close()  # type: ignore[no-untyped-call]
                self.operators.remove(entry)

    def create(self, res: Resource, name: str, spec: Obj) -> Obj:
        body = {
            "apiVersion": "mysqlops.io/v1alpha1",
            "kind": res.kind,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        return self.kube.emulator.create_object(res, body)

    def get(self, res: Resource, name: str) -> Obj | None:
        try:
            return self.kube.emulator.get_object(res, name, self.namespace)
        except Exception:
            return None

    def events(self) -> list[Obj]:
        return self.kube.emulator.objects(EVENTS, self.namespace)


async def until(
    check: Callable[[], Awaitable[Any] | Any], timeout: float = 30, what: str = ""
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or check}")
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def stack(kube: KubeServer, temporal_env: WorkflowEnvironment) -> AsyncIterator[Stack]:
    worker_api = api(kube, WORKER)
    async for harness in running_harness(temporal_env, kubernetes=worker_api):
        stack = Stack(kube, harness, f"t{uuid.uuid4().hex[:8]}")
        try:
            yield stack
        finally:
            for operator, _ in list(stack.operators):
                await stack.stop_operator(operator)
    await worker_api.close()  # type: ignore[no-untyped-call]
    assert_calls_allowed(kube.calls)


CLUSTER_SPEC = {"replicas": 3, "health": {"probeIntervalSeconds": 0.2}}


def condition(obj: Obj | None, kind: str) -> Obj:
    for found in ((obj or {}).get("status") or {}).get("conditions", []):
        if found["type"] == kind:
            return dict(found)
    return {}


def repairs_done(count: int, status: ClusterStatus) -> bool:
    return len(status.remediations) == count and green_and_idle(status)


def green(obj: Obj | None) -> bool:
    status = (obj or {}).get("status") or {}
    return status.get("state") == "Green" and status.get("ready") == "3/3"


async def executions(client: Client, workflow_id: str) -> int:
    """Runs of the workflow ever started, continue-as-new runs excepted: one cluster, one."""
    starts = 0
    async for found in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        starts += 0 if found.parent_id else 1
    return starts


async def updates(client: Client, workflow_id: str, name: str) -> int:
    """Updates of that name the workflow accepted, in all its runs so far."""
    handle = client.get_workflow_handle(workflow_id)
    count = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            count += (
                event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
                == name
            )
    return count


async def test_a_cluster_object_becomes_one_workflow_and_shows_its_status(stack: Stack) -> None:
    first = await stack.start_operator()
    second = await stack.start_operator()  # two watchers, and one restarted half way
    stack.create(MYSQLCLUSTERS, "demo", CLUSTER_SPEC)
    workflow_id = cluster_workflow_id(stack.namespace, "demo")
    await until(lambda: stack.get(MYSQLCLUSTERS, "demo").get("status"), what="a status")  # type: ignore[union-attr]
    await stack.stop_operator(first)
    await stack.start_operator()
    obj = await until(
        lambda: (o := stack.get(MYSQLCLUSTERS, "demo")) and green(o) and o, what="Green"
    )
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    status = obj["status"]
    assert status["workflowId"] == workflow_id and status["writer"]
    assert status["automation"] == "Active" and status["observedGeneration"] == 1
    assert condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Degraded")["status"] == "False"
    assert condition(obj, "Ready")["lastTransitionTime"]
    wanted = {"CreateSucceeded", "ClusterGreen"}
    await until(lambda: wanted <= {e["reason"] for e in stack.events()}, what=str(wanted))
    assert all(e["regarding"]["uid"] == obj["metadata"]["uid"] for e in stack.events())
    assert await until(lambda: executions(stack.client, workflow_id)) == 1
    assert second.informers["MySQLCluster"].synced.is_set()


async def test_a_spec_change_is_one_update_with_its_generation(stack: Stack) -> None:
    await stack.start_operator()
    await stack.start_operator()
    stack.create(MYSQLCLUSTERS, "grow", CLUSTER_SPEC)
    await until(lambda: green(stack.get(MYSQLCLUSTERS, "grow")), what="Green")
    changed = stack.kube.emulator.patch_object(
        MYSQLCLUSTERS, "grow", {"spec": {"replicas": 5}}, namespace=stack.namespace
    )
    assert changed["metadata"]["generation"] == 2

    def grown() -> bool:
        status = (stack.get(MYSQLCLUSTERS, "grow") or {}).get("status") or {}
        return status.get("observedGeneration") == 2 and status.get("ready") == "5/5"

    await until(grown, 60, "5/5 at generation 2")
    workflow_id = cluster_workflow_id(stack.namespace, "grow")
    assert await updates(stack.client, workflow_id, "apply_spec") == 1
    assert condition(stack.get(MYSQLCLUSTERS, "grow"), "Progressing")["status"] == "False"


async def test_watch_faults_are_survived_without_duplicate_actions(stack: Stack) -> None:
    operator = await stack.start_operator()
    stack.create(MYSQLCLUSTERS, "steady", CLUSTER_SPEC)
    await until(lambda: green(stack.get(MYSQLCLUSTERS, "steady")), what="Green")
    lists = sum(informer.lists for informer in operator.informers.values())
    stack.kube.compact()
    stack.kube.expire_next_watch()  # the next watch is told 410 Gone
    stack.kube.drop_watches()
    stack.create(MYSQLBACKUPS, "nightly", {"cluster": "steady"})
    stack.kube.drop_watches()

    def taken(res: Resource, name: str) -> Obj | None:
        obj = stack.get(res, name)
        return obj if ((obj or {}).get("status") or {}).get("phase") == "Succeeded" else None

    obj = await until(lambda: taken(MYSQLBACKUPS, "nightly"), 60, "the backup taken")
    assert obj["status"]["sizeBytes"] > 0 and obj["status"]["taskId"]
    assert sum(informer.lists for informer in operator.informers.values()) > lists  # 410: relist
    stack.create(MYSQLRESTORES, "undo", {"cluster": "steady", "backup": "nightly"})
    stack.kube.drop_watches()
    obj = await until(lambda: taken(MYSQLRESTORES, "undo"), 60, "the restore done")
    assert obj["status"]["backup"] == "nightly" and obj["status"]["node"]
    stack.kube.compact()
    stack.kube.drop_watches()  # everything listed again, then watched: still nothing repeated
    await until(lambda: sum(i.lists for i in operator.informers.values()) > lists + 3, what="")
    await until(lambda: green(stack.get(MYSQLCLUSTERS, "steady")), 60, "Green again")
    workflow_id = cluster_workflow_id(stack.namespace, "steady")
    assert await updates(stack.client, workflow_id, "backup") == 1
    assert await updates(stack.client, workflow_id, "restore") == 1
    assert await executions(stack.client, workflow_id) == 1
    wanted = {"BackupSucceeded", "RestoreSucceeded"}
    await until(lambda: wanted <= {e["reason"] for e in stack.events()}, what=str(wanted))


async def test_deletion_waits_for_the_teardown_before_releasing_the_finalizer(
    stack: Stack,
) -> None:
    await stack.start_operator()
    stack.create(MYSQLCLUSTERS, "gone", CLUSTER_SPEC)
    await until(lambda: green(stack.get(MYSQLCLUSTERS, "gone")), what="Green")
    workflow = cluster(
        stack.client.get_workflow_handle(cluster_workflow_id(stack.namespace, "gone"))
    )
    for repaired in (1, 2):  # the same crash twice: one Event, counted twice
        stack.harness.runtime.crash("gone-1", detail="killed by signal 9")
        await workflow.wait_until(partial(repairs_done, repaired), 30, "repaired")

    def crashes() -> list[Obj]:
        return [e for e in stack.events() if e["reason"] == "NodeRedUnclean"]

    await until(lambda: (crashes() or [{}])[0].get("series", {}).get("count") == 2, what="x2")
    assert len(crashes()) == 1 and crashes()[0]["type"] == "Warning"
    workflow_id = cluster_workflow_id(stack.namespace, "gone")
    handle = stack.client.get_workflow_handle(workflow_id)
    stack.kube.emulator.delete_object(MYSQLCLUSTERS, "gone", stack.namespace)
    held = stack.get(MYSQLCLUSTERS, "gone")
    assert held is not None and held["metadata"].get("deletionTimestamp")
    while (obj := stack.get(MYSQLCLUSTERS, "gone")) is not None:
        assert FINALIZER in obj["metadata"]["finalizers"]
        await asyncio.sleep(0.05)
    # gone: only after the workflow finished its teardown
    assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED
    assert await updates(stack.client, workflow_id, "delete") == 1


async def test_a_bad_object_gets_a_condition_and_an_event_and_starts_nothing(
    stack: Stack,
) -> None:
    await stack.start_operator()
    stack.create(MYSQLCLUSTERS, "even", {"replicas": 2})

    def refused() -> Obj:
        return condition(stack.get(MYSQLCLUSTERS, "even"), "Ready")

    def refused_with(words: str) -> bool:
        return words in refused().get("message", "")

    found = await until(refused, what="a condition")
    assert found["status"] == "False" and found["reason"] == "InvalidSpec"
    assert "replicas" in found["message"] and "odd" in found["message"]
    warnings = [e for e in stack.events() if e["reason"] == "InvalidSpec"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    for replicas in (4, 2):  # refused again, then the first way again: counted on its Event
        stack.kube.emulator.patch_object(
            MYSQLCLUSTERS, "even", {"spec": {"replicas": replicas}}, namespace=stack.namespace
        )
        await until(partial(refused_with, f"got {replicas}"), what=f"refused: got {replicas}")
    first = await until(
        lambda: next((e for e in stack.events() if e.get("series", {}).get("count") == 2), None),
        what="the first refusal counted twice",
    )
    assert "got 2" in first["note"]
    with pytest.raises(RPCError):
        await stack.client.get_workflow_handle(
            cluster_workflow_id(stack.namespace, "even")
        ).describe()
    obj = stack.get(MYSQLCLUSTERS, "even")
    assert obj is not None and FINALIZER not in (obj["metadata"].get("finalizers") or [])


# -- RBAC: the chart grants exactly what the code calls -------------------------------------


SEEN: set[tuple[str, str, str, str]] = set()  # (who, group, resource, verb) over the module


def assert_calls_allowed(calls: list[Call]) -> None:
    rules = rendered_rbac_rules()
    for call in calls:
        if call.resource is None:
            continue  # discovery
        who = call.user or "anonymous"
        allowed = {
            (group, resource, verb)
            for rule in rules[who]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        key = (call.group or "", call.resource, call.verb)
        assert key in allowed, f"{who} called {call.method} {call.path}: not granted by the chart"
        SEEN.add((who, *key))


def test_every_permission_the_chart_grants_was_used() -> None:
    """After the scenarios above (run in file order): nothing granted is unused."""
    assert SEEN, "run the whole module: the scenarios above record the calls"
    rules = rendered_rbac_rules()
    for who, granted in rules.items():
        for rule in granted:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert (who, group, resource, verb) in SEEN, (
                            f"the chart grants {who} {verb} {group}/{resource}: never called"
                        )
