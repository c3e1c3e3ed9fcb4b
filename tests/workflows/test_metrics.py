"""Counters recorded by workflow code count each event once, however often the workflow is
replayed: here every workflow task replays the whole history (no workflow is cached), as after a
worker restart, and the counts still equal what the cluster's status records."""

import random
import shutil
import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.scripted.runtime import ScriptedRuntime
from api.remediation import FaultClass
from tests.workflows.harness import Harness, green_and_idle, until
from workers import metrics
from workers.worker import Limits, Workers
from workflows import meters


def _samples(address: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **want: str
) -> float:
    return sum(
        value
        for (found, labels), value in samples.items()
        if found == name and set(want.items()) <= set(labels)
    )


async def test_counters_from_workflow_code_count_once_under_replay(
    temporal_env: WorkflowEnvironment,
) -> None:
    address = f"127.0.0.1:{random.randrange(30000, 32700)}"  # below the ephemeral ports
    sdk = metrics.sdk_runtime(address)
    assert sdk is not None
    meters.declare(sdk.metric_meter)
    declared = {name for name, _ in _samples(address)}
    assert {f"mysqlops_{name}_total" for name in meters.COUNTERS} <= declared  # at zero
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=sdk,
    )
    runtime = ScriptedRuntime()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    no_cache = Limits(cached_workflows=0)
    async with Workers(client, runtime, queue, no_cache, runtime.probe):
        harness = Harness(client, runtime, queue)
        handle = await harness.start(remediation={"backoffSeconds": 0.5})
        ready = await until(handle, green_and_idle)
        cluster = {"cluster_namespace": "default", "cluster": handle.id.split("/")[-1]}
        victim = ready.nodes[1].name
        runtime.crash(victim, detail="killed by SIGKILL")
        healed = await until(handle, lambda s: green_and_idle(s) and bool(s.remediations))
        runtime.gate.set()
    if runtime.backups_home is not None:
        shutil.rmtree(runtime.backups_home, ignore_errors=True)

    samples = _samples(address)
    crashed = FaultClass.NODE_CRASHED.value
    assert [r.fault for r in healed.remediations] == [FaultClass.NODE_CRASHED]
    assert _value(samples, "mysqlops_remediations_started_total", **cluster, fault=crashed) == 1
    assert (
        _value(
            samples,
            "mysqlops_remediations_ended_total",
            **cluster,
            fault=crashed,
            outcome="Succeeded",
        )
        == 1
    )
    created = _value(samples, "mysqlops_tasks_total", **cluster, kind="create")
    assert created == 1, "the create task counted once, though replayed on every workflow task"
    tasks = _value(samples, "mysqlops_tasks_total", **cluster)
    assert tasks == len(healed.outcomes)
    joins = _value(samples, "mysqlops_joins_total", **cluster, method="IST", node=victim)
    assert joins == 1
