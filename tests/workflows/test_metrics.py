"""The counters a cluster's workflow keeps (api/counters.py) count each event once, however
often the workflow is replayed: here no workflow is cached, so every workflow task replays the
whole history first, as after a worker restart. The census exports them as they are."""

import uuid

from temporalio.testing import WorkflowEnvironment

from activities.scripted.runtime import ScriptedRuntime
from api.counters import counter_key
from api.remediation import FaultClass
from tests.workflows.harness import Harness, green_and_idle, until
from workers.census import families
from workers.clusters import Census
from workers.worker import Limits, Workers


async def test_counters_count_each_event_once_under_replay(
    temporal_env: WorkflowEnvironment,
) -> None:
    runtime = ScriptedRuntime()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    no_cache = Limits(cached_workflows=0)
    async with Workers(temporal_env.client, runtime, queue, no_cache, runtime.probe):
        harness = Harness(temporal_env.client, runtime, queue)
        handle = await harness.start(remediation={"backoffSeconds": 0.5})
        ready = await until(handle, green_and_idle)
        victim = ready.nodes[1].name
        runtime.crash(victim, detail="killed by SIGKILL")
        healed = await until(handle, lambda s: green_and_idle(s) and bool(s.remediations))
        runtime.gate.set()

    crashed = FaultClass.NODE_CRASHED.value
    assert [r.fault for r in healed.remediations] == [FaultClass.NODE_CRASHED]
    counted = healed.counters
    assert counted[counter_key("remediations_started", {"fault": crashed})] == 1
    ended = counter_key("remediations_ended", {"fault": crashed, "outcome": "Succeeded"})
    assert counted[ended] == 1
    tasks = {k: v for k, v in counted.items() if k.startswith("tasks|")}
    assert sum(tasks.values()) == len(healed.outcomes)  # every task ended, each counted once
    assert counted[counter_key("tasks", {"kind": "create", "outcome": "Succeeded"})] == 1
    assert counted[counter_key("joins", {"node": victim, "method": "IST"})] == 1

    exported = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families(Census(statuses=[healed]))
        for s in family.samples
    }
    cluster = (("cluster", handle.id.split("/")[-1]), ("cluster_namespace", "default"))
    started = ("mysqlops_remediations_started_total", (*cluster, ("fault", crashed)))
    assert exported[(started[0], tuple(sorted(started[1])))] == 1
