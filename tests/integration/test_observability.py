"""Proved with a real Prometheus: Debian's `prometheus` scrapes a local stack (a worker process
with its two endpoints, three node agents, three mysqld_exporters, HAProxy), evaluates the
chart's alert rules, and sees a killed node, a quorum loss and their repairs.

Everything runs in a private home on ports of its own; all of it is stopped at the end."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import workers.operator.metrics  # noqa: F401 - the watcher's metrics, registered here
from activities.local.scrape import WORKER_JOB, WORKER_SDK_JOB, write_process_targets
from api.backup import RestoreRequest
from api.messages import UPDATE_RESTORE
from api.remediation import Outcome
from tests.integration.conftest import cluster_client, cluster_yaml, mysqlops, until_status
from tests.metric_names import metric_names
from workers import prometheus
from workers.dashboard import dashboard_exprs
from workers.sandbox import dev_server, private_home

pytestmark = pytest.mark.asyncio(loop_scope="session")

NAME = "obs"
# Repairs wait this long after the last change: a quorum loss lasts long enough for the Red
# alert's evaluation to be seen pending.
SETTLE = 25


@dataclass
class Stack:
    env: dict[str, str]
    home: Path
    prometheus: str  # host:port
    worker_metrics: str
    sdk_metrics: str


def _query(address: str, promql: str) -> list[dict[str, Any]]:
    data = prometheus.api(address, "query?query=" + urllib.parse.quote(promql))
    result: list[dict[str, Any]] = data["result"]
    return result


def _value(address: str, promql: str) -> float | None:
    found = _query(address, promql)
    return float(found[0]["value"][1]) if found else None


async def _until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(1)


def _scraped_names(address: str) -> set[str]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        return _names(answer.read().decode())


def _names(text: str) -> set[str]:
    """Every family an exposition declares (also those with no sample yet) and every series."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


@pytest_asyncio.fixture(loop_scope="session")
async def stack() -> AsyncIterator[Stack]:
    with private_home(prefix="mysqlops-obs-") as home:
        base = int(os.environ["MYSQLOPS_PORT_BASE"])
        # Ports of this home's own range: offsets no cluster slot uses.
        worker_metrics, sdk_metrics, web = (f"127.0.0.1:{base + 90 + i}" for i in range(3))
        temporal = await dev_server()
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
            "MYSQLOPS_METRICS_ADDRESS": worker_metrics,
            "MYSQLOPS_SDK_METRICS_ADDRESS": sdk_metrics,
            "MYSQLOPS_CENSUS_SECONDS": "2",
        }
        processes: list[subprocess.Popen[bytes]] = []
        try:
            with open(home / "worker.log", "ab") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "workers.worker"],
                        env=env,
                        stdout=log,
                        stderr=log,
                        start_new_session=True,
                    )
                )
            write_process_targets(home, WORKER_JOB, "worker", [worker_metrics])
            write_process_targets(home, WORKER_SDK_JOB, "worker", [sdk_metrics])
            processes.append(prometheus.start(home, web, home / "prometheus.log"))
            await asyncio.to_thread(prometheus.wait_ready, web)
            yield Stack(env, home, web, worker_metrics, sdk_metrics)
        finally:
            await mysqlops(env, "delete", NAME, "--reason", "test over", "--wait", timeout=180)
            for process in reversed(processes):
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            await temporal.shutdown()


def _green(status: dict[str, Any]) -> bool:
    return status["state"] == "Green" and status["currentTask"] is None


def _kill(status: dict[str, Any], *nodes: str) -> None:
    for node in status["nodes"]:
        if node["name"] in nodes:
            os.kill(node["pid"], signal.SIGKILL)


async def test_prometheus_sees_a_kill_a_quorum_loss_and_their_repairs(
    stack: Stack, tmp_path: Path
) -> None:
    env, web = stack.env, stack.prometheus
    spec = f"  remediation:\n    settleSeconds: {SETTLE}\n"
    resource = tmp_path / "cluster.yaml"
    resource.write_text(cluster_yaml(NAME, spec))
    applied = await mysqlops(env, "apply", "-f", str(resource))
    assert applied.returncode == 0, applied.stderr
    status = await until_status(env, _green, 240, name=NAME)
    ids = f'cluster_namespace="default", cluster="{NAME}"'

    def state(name: str) -> Callable[[], bool]:
        return lambda: _value(web, f'max(mysqlops_cluster_state{{{ids}, state="{name}"}})') == 1

    await _until("Prometheus sees the cluster Green", state("Green"), 60)

    def all_up() -> bool:
        targets = prometheus.api(web, "targets")["activeTargets"]
        jobs = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        down = [t["scrapeUrl"] for t in targets if t["health"] != "up"]
        return not down and {"mysqlops-worker", "mysqlops-agent", "mysqld", "haproxy"} <= jobs

    await _until("every target scraped", all_up, 60)
    exporters = f"count(mysql_up{{{ids}}} == 1)"
    await _until("every exporter logged in", lambda: _value(web, exporters) == 3, 30)
    backends = f'count(haproxy_server_status{{{ids}, state="UP"}} == 1)'
    assert (_value(web, backends) or 0) >= 3  # the reader's three, the writer's one or more

    # One node killed: Yellow, repaired, Green; the repair counted once per attempt.
    _kill(status, f"{NAME}-2")
    await _until("Yellow in Prometheus", state("Yellow"), 60)
    await until_status(env, _green, 240, name=NAME)
    await _until("Green again in Prometheus", state("Green"), 60)
    repairs = f"sum(mysqlops_remediations_started_total{{{ids}}})"
    await _until("the repair counted", lambda: (_value(web, repairs) or 0) >= 1, 60)
    ended = f'sum(mysqlops_remediations_ended_total{{{ids}, outcome="Succeeded"}})'
    await _until("its success counted", lambda: (_value(web, ended) or 0) >= 1, 60)

    # Two of three killed: no Primary component, Red while the repair waits to settle; the
    # Red alert is pending (for: 30s), and gone once the cluster is Green again.
    status = await until_status(env, _green, 60, name=NAME)
    _kill(status, f"{NAME}-1", f"{NAME}-2")

    def red_alert(wanted: str) -> Callable[[], bool]:
        def check() -> bool:
            groups = prometheus.api(web, "rules?type=alert")["groups"]
            for rule in (r for g in groups for r in g["rules"]):
                if rule["name"] != "MySQLClusterRed":
                    continue
                states = {a["state"] for a in rule["alerts"] if a["labels"].get("cluster") == NAME}
                return wanted in states if wanted != "inactive" else not states
            raise AssertionError("no MySQLClusterRed rule loaded")

        return check

    await _until("Red in Prometheus", state("Red"), 60)
    await _until("the Red alert pending", red_alert("pending"), 30)
    await until_status(env, _green, 300, name=NAME)
    await _until("the Red alert over", red_alert("inactive"), 60)

    # A backup, so that its series exist too.
    backup = await mysqlops(env, "backup", NAME, "--wait", timeout=300)
    assert backup.returncode == 0, backup.stderr
    last = f"max(mysqlops_backup_last_success_timestamp_seconds{{{ids}}})"
    await _until("the backup's time", lambda: (_value(web, last) or 0) > time.time() - 600, 60)

    # A restore of a backup that is not stored (as a MySQLRestore naming one could ask): it
    # fails where it starts, finding the backup, before anything is stopped.
    cluster = await cluster_client(env, NAME)
    asked = await cluster.command(
        UPDATE_RESTORE, RestoreRequest(backup="no-such-backup", reason="a restore that fails")
    )
    assert asked.task_id is not None
    restored = await cluster.wait_for_task(asked.task_id, 180, check=False)
    assert restored.outcome is Outcome.FAILED
    failed = f'sum(mysqlops_restores_total{{{ids}, outcome="Failed"}})'
    await _until("the failed restore counted", lambda: _value(web, failed) == 1, 60)

    # Every metric a panel or an alert names is exposed by something we run.
    exposed = set(_scraped_names(stack.worker_metrics)) | _scraped_names(stack.sdk_metrics)
    for target in prometheus.api(web, "targets")["activeTargets"]:
        exposed |= _scraped_names(target["scrapeUrl"].removeprefix("http://").split("/")[0])
    exposed |= _names(generate_latest(REGISTRY).decode())  # the watcher's metrics module
    exposed |= {"up"}
    rules = yaml.safe_load(prometheus.RULES.read_text())
    alert_exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    missing = {
        expr: sorted(metric_names(expr) - exposed)
        for expr in [*alert_exprs, *dashboard_exprs()]
        if metric_names(expr) - exposed
    }
    assert not missing, json.dumps(missing, indent=1)
