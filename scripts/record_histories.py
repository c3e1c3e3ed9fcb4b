"""Record workflow histories for the replay tests (tests/test_replay.py).

Run for a new scenario, never to paper over an incompatible change:
    .venv/bin/python -m scripts.record_histories [SCENARIO ...]
records the named scenarios (by default those without a recorded history yet). Each drives the
cluster workflow on a scripted runtime against a dev server and writes its full history to
tests/histories/<scenario>.json. Histories recorded by older versions stay: they are the point.
"""

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from kubernetes.aio.client import ApiClient, Configuration
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.service import RPCError

from api.backup import BackupRequest, BackupTrigger, RestoreRequest
from api.cluster import MySQLClusterSpec, NodeFacts, cluster_workflow_id
from api.messages import (
    QUERY_SPEC,
    SIGNAL_NODE_REPORT,
    SIGNAL_SCHEDULED_BACKUP,
    UPDATE_APPLY_SPEC,
    UPDATE_BACKUP,
    UPDATE_DELETE,
    UPDATE_RESTORE,
    UPDATE_RESUME,
    UPDATE_START,
    UPDATE_STOP,
    ApplySpecRequest,
    LifecycleRequest,
    NodeReport,
)
from api.remediation import ResumeRequest
from api.states import ExitKind, NodeState
from tests.conftest import start_temporal
from tests.kube.conftest import KubeServer
from tests.kube.emulator import MYSQLBACKUPS, MYSQLCLUSTERS
from tests.workflows.harness import (
    Harness,
    green_and_idle,
    running_harness,
    spec_with,
    until,
)
from workers.operator.main import Operator, Settings
from workers.worker import Limits, Workers
from workflows.publish import PUBLISH_EVERY

OUT = Path(__file__).resolve().parents[1] / "tests" / "histories"
Handle = WorkflowHandle[object, object]


async def lifecycle(h: Harness) -> Handle:
    """Create, a kill seen by probe and agent, scale up and down, stop, start, delete."""
    handle = await h.start()
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[1].name
    h.runtime.crash(victim)
    await handle.signal(
        SIGNAL_NODE_REPORT,
        NodeReport(
            node=victim,
            state=NodeState.RED_UNCLEAN,
            reason="killed by SIGKILL",
            facts=NodeFacts(process_alive=False, exit_kind=ExitKind.UNCLEAN),
            observed_at=datetime.now(UTC),
            sequence=1,
            agent_started_at=datetime.now(UTC),
        ),
    )
    await until(handle, lambda s: s.state.value == "Yellow")
    await handle.execute_update(UPDATE_START, LifecycleRequest(reason="record"))
    await until(handle, green_and_idle)
    await handle.execute_update(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec_with(5)))
    await until(handle, lambda s: green_and_idle(s) and len(s.nodes) == 5)
    await handle.execute_update(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec_with(3)))
    await until(handle, lambda s: green_and_idle(s) and len(s.nodes) == 3)
    await handle.execute_update(UPDATE_STOP, LifecycleRequest(reason="record"))
    await until(handle, lambda s: s.phase.value == "Stopped" and s.current_task is None)
    await handle.execute_update(UPDATE_START, LifecycleRequest(reason="record"))
    await until(handle, green_and_idle)
    await handle.execute_update(UPDATE_DELETE, LifecycleRequest(reason="record"))
    await handle.result()
    return handle


async def backups(h: Harness) -> Handle:
    """A schedule set, a manual backup, a scheduled run, a failed backup, a restore, delete."""
    handle = await h.start()
    await until(handle, green_and_idle)
    scheduled = MySQLClusterSpec.model_validate(
        {
            **spec_with(3).model_dump(by_alias=True),
            "backup": {"schedule": "0 3 * * *", "retention": {"keepLast": 1}},
        }
    )
    await handle.execute_update(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=scheduled))
    await until(handle, green_and_idle)
    await handle.execute_update(UPDATE_BACKUP, BackupRequest(name="manual"))
    await until(handle, lambda s: green_and_idle(s) and len(s.backups) == 1)
    await handle.signal(SIGNAL_SCHEDULED_BACKUP, BackupRequest(trigger=BackupTrigger.SCHEDULE))
    await until(handle, lambda s: green_and_idle(s) and len(s.backups) == 2)
    h.runtime.backup_fails = True
    await handle.execute_update(UPDATE_BACKUP, BackupRequest(name="fails"))
    await until(handle, lambda s: green_and_idle(s) and len(s.backups) == 3)
    h.runtime.backup_fails = False
    await handle.execute_update(UPDATE_RESTORE, RestoreRequest())
    await until(handle, lambda s: green_and_idle(s) and len(s.restores) == 1)
    await handle.execute_update(UPDATE_DELETE, LifecycleRequest(reason="record"))
    await handle.result()
    return handle


async def rejoins(h: Harness) -> Handle:
    """Repairs that rejoin by IST: a crash, the whole cluster down (IST joins together), a node
    cut off past its grace; options the server refuses, a rolling start that goes back, a
    broken my.cnf handed to a human and resumed."""
    fast = {"backoffSeconds": 0.5, "hungGraceSeconds": 2, "partitionGraceSeconds": 10}
    handle = await h.start(remediation=fast)
    ready = await until(handle, green_and_idle)
    names = [n.name for n in ready.nodes]
    h.runtime.crash(names[2], detail="killed by SIGKILL")
    await until(handle, lambda s: green_and_idle(s) and len(s.remediations) == 1)
    for name in names:
        h.runtime.crash(name)
    await until(handle, lambda s: green_and_idle(s) and len(s.remediations) == 2, 60)
    h.runtime.non_primary.add(names[1])
    await until(handle, lambda s: green_and_idle(s) and len(s.remediations) == 3, 60)
    spec = (await handle.query(QUERY_SPEC, result_type=MySQLClusterSpec)).model_copy(deep=True)
    spec.mysql.config["max_connections"] = 500
    h.runtime.refused_options.add("max_connections")
    await handle.execute_update(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec))
    await until(handle, lambda s: "refused by the server" in s.message and green_and_idle(s))
    h.runtime.refused_options.clear()
    h.runtime.crashing_options.add("max_connections")
    await handle.execute_update(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec))
    await until(handle, lambda s: "did not come back" in s.message and green_and_idle(s))
    refusal = "configuration refused by the server: mariadbd: unknown variable 'foo=1'"
    h.runtime.crash(names[0], detail=refusal)
    await until(handle, lambda s: s.manual_intervention is not None)
    await handle.execute_update(UPDATE_RESUME, ResumeRequest(reason="my.cnf fixed"))
    await until(handle, lambda s: green_and_idle(s) and s.manual_intervention is None, 60)
    await handle.execute_update(UPDATE_DELETE, LifecycleRequest(reason="record"))
    await handle.result()
    return handle


async def unwatched(h: Harness) -> Handle:
    """A worker with one watch slot and two clusters: the second waits, is marked unwatched
    after 30 s, is taken by a worker with room, and repairs a crash there; then deleted."""
    first = await h.start()
    await until(first, green_and_idle)
    handle = await h.start(remediation={"backoffSeconds": 0.5})
    await until(handle, lambda s: s.unwatched is not None, 90)
    client = await Client.connect(
        h.client.service_client.config.target_host, data_converter=h.client.data_converter
    )
    async with Workers(client, h.runtime, h.task_queue, probe=h.runtime.probe):
        ready = await until(handle, lambda s: s.unwatched is None and green_and_idle(s))
        h.runtime.crash(ready.nodes[0].name, detail="killed by SIGKILL")
        await until(handle, lambda s: green_and_idle(s) and len(s.remediations) == 1)
        for cluster in (first, handle):
            await cluster.execute_update(UPDATE_DELETE, LifecycleRequest(reason="record"))
            await cluster.result()
    return handle


async def kubernetes(h: Harness, kube: KubeServer) -> Handle:
    """A cluster created from a MySQLCluster object by the operator: status and Events
    published, a crash repaired, a spec change (generation 2), a MySQLBackup taken, then the
    object deleted: teardown, and the finalizer released."""
    settings = Settings(resync_seconds=300, task_queue=h.task_queue)
    operator = Operator(h.client, kube_api(kube), settings)
    running = asyncio.create_task(operator.run())
    body = {
        "apiVersion": "mysqlops.io/v1alpha1",
        "kind": "MySQLCluster",
        "metadata": {"name": "recorded", "namespace": "kube"},
        "spec": {"replicas": 3, "health": {"probeIntervalSeconds": 0.2}},
    }
    kube.emulator.create_object(MYSQLCLUSTERS, body)
    handle: Handle = h.client.get_workflow_handle(cluster_workflow_id("kube", "recorded"))
    await until_started(handle)
    ready = await until(handle, green_and_idle)
    h.runtime.crash(ready.nodes[1].name, detail="killed by SIGKILL")
    await until(handle, lambda s: green_and_idle(s) and len(s.remediations) == 1)
    kube.emulator.patch_object(MYSQLCLUSTERS, "recorded", {"spec": {"replicas": 5}}, "kube")
    await until(handle, lambda s: s.observed_generation == 2 and green_and_idle(s), 60)
    backup = {**body, "kind": "MySQLBackup", "spec": {"cluster": "recorded"}}
    backup["metadata"] = {"name": "recorded-backup", "namespace": "kube"}
    kube.emulator.create_object(MYSQLBACKUPS, backup)
    await until(handle, lambda s: any(b.finished_at for b in s.backups) and green_and_idle(s), 60)
    await asyncio.sleep(PUBLISH_EVERY.total_seconds() + 1)  # the last changes published
    kube.emulator.delete_object(MYSQLCLUSTERS, "recorded", "kube")
    await handle.result()
    while kube.emulator.objects(MYSQLCLUSTERS, "kube"):
        await asyncio.sleep(0.1)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    return handle


async def until_started(handle: Handle) -> None:
    while True:
        try:
            await handle.describe()
            return
        except RPCError:
            await asyncio.sleep(0.1)


def kube_api(kube: KubeServer) -> ApiClient:
    return ApiClient(Configuration(host=kube.url))


SCENARIOS: dict[str, Callable[[Harness], Awaitable[Handle]]] = {
    "lifecycle": lifecycle,
    "backups": backups,
    "rejoins": rejoins,
    "unwatched": unwatched,
}
LIMITS = {"unwatched": Limits(watches=1)}  # the scenarios' worker, where not the default


async def main(names: list[str]) -> None:
    known = [*SCENARIOS, "kubernetes"]
    unknown = set(names) - set(known)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; known: {sorted(known)}")
    wanted = names or [n for n in known if not (OUT / f"{n}.json").exists()]
    env = await start_temporal()
    try:
        for name in wanted:
            if name == "kubernetes":
                with KubeServer() as kube:
                    async for harness in running_harness(env, kubernetes=kube_api(kube)):
                        handle = await kubernetes(harness, kube)
                        save(name, await handle.fetch_history())
                continue
            scenario = SCENARIOS[name]
            async for harness in running_harness(env, limits=LIMITS.get(name)):
                handle = await scenario(harness)
                save(name, await handle.fetch_history())
    finally:
        await env.shutdown()


def save(name: str, history: WorkflowHistory) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(history.to_json())
    print(f"{name}: {len(history.events)} events")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
    os._exit(0)  # skip interpreter teardown, which can crash in the Temporal core's threads
