"""`mysqlops chaos` on a real 3-node cluster: a partition really cuts a node and the heal
brings it back without a repair, nothing of a run outlives it, and a short run passes its
checks."""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from api.cluster import cluster_workflow_id
from tests.integration.conftest import (
    app_credentials,
    cluster_status,
    cluster_yaml,
    mysqlops,
    node_named,
    until_status,
)
from workers.chaos.cluster import LocalCluster
from workers.chaos.netfault import CHAIN_PREFIX, NetFault, cgroup2_mount

pytestmark = pytest.mark.usefixtures("worker")

NAME = "chaos"
CLUSTER = cluster_yaml(NAME, "  deletionPolicy: Delete\n")

status = functools.partial(cluster_status, name=NAME)
until = functools.partial(until_status, name=NAME)


def ready(current: dict[str, Any]) -> bool:
    return (
        current["state"] == "Green"
        and current["currentTask"] is None
        and not current["queuedTasks"]
        and all(n["state"] == "Green" for n in current["nodes"])
    )


def iptables_rules() -> str:
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout


def chaos_chains() -> set[str]:
    return {
        line.split()[1]
        for line in iptables_rules().splitlines()
        if line.startswith(f"-N {CHAIN_PREFIX}")
    }


def partitioned(chains: set[str]) -> bool:
    """Whether one of `chains` holds the rules of a cut (tagged with the node's name)."""
    return any(
        line.startswith(f"-A {chain} ") and "chaos:" in line
        for line in iptables_rules().splitlines()
        for chain in chains
    )


def cgroup_of(pid: int) -> str:
    return next(
        line for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if line[:3] == "0::"
    )


def wsrep(node: dict[str, Any], credentials: dict[str, Any]) -> dict[str, str]:
    """The node's own view, asked over SQL as the application user."""
    conn = pymysql.connect(
        host=node["host"],
        port=node["port"],
        user=credentials["user"],
        password=credentials["password"],
        connect_timeout=3,
        read_timeout=5,
    )
    with conn, conn.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'wsrep_%'")
        return {str(k): str(v) for k, v in cursor.fetchall()}


async def until_views(
    nodes: list[dict[str, Any]], credentials: dict[str, Any], check: Any, timeout: float
) -> dict[str, dict[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        views = {n["name"]: await asyncio.to_thread(wsrep, n, credentials) for n in nodes}
        if check(views):
            return views
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {views}"
        await asyncio.sleep(0.3)


@pytest_asyncio.fixture(scope="module")
async def credentials(
    cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Any]]:
    resource = tmp_path_factory.mktemp("chaos") / "cluster.yaml"
    resource.write_text(CLUSTER)
    applied = await mysqlops(cli_env, "apply", "-f", str(resource), "--wait", "--timeout", "300")
    assert applied.returncode == 0, applied.stderr
    yield await app_credentials(cli_env, NAME)
    deleted = await mysqlops(cli_env, "delete", NAME, "--wait", "--timeout", "180")
    assert deleted.returncode == 0, deleted.stderr


@pytest.fixture
def cluster(local_home: Path, temporal_env: WorkflowEnvironment) -> LocalCluster:
    layout = LocalCluster.find(local_home, "default", NAME)
    handle = temporal_env.client.get_workflow_handle(cluster_workflow_id("default", NAME))
    return LocalCluster(local_home, layout, handle)


async def test_a_cut_node_goes_non_primary_while_answering_and_heals_without_a_repair(
    cli_env: dict[str, str], credentials: dict[str, Any], cluster: LocalCluster
) -> None:
    before = await until(cli_env, ready, timeout=120)
    victim = next(n for n in before["nodes"] if n["name"] != before["writer"])
    others = [n for n in before["nodes"] if n is not victim]
    started = time.monotonic()
    with NetFault(secrets.token_hex(4)) as net:
        net.cut([cluster.cut_node(victim["name"])])
        # It falls out of the Primary component; the two others keep it, without it (each
        # side installs its view when it suspects the other: one may lag the other a little).
        await until_views(
            before["nodes"],
            credentials,
            lambda v: (
                v[victim["name"]]["wsrep_cluster_status"] != "Primary"
                and v[victim["name"]]["wsrep_cluster_size"] == "1"
                and all(
                    v[o["name"]]["wsrep_cluster_status"] == "Primary"
                    and v[o["name"]]["wsrep_cluster_size"] == "2"
                    for o in others
                )
            ),
            timeout=30,
        )
        cut = time.monotonic() - started
        assert cluster.pid(victim["name"]) == victim["pid"]  # running and answering SQL
    healed_at = time.monotonic()
    await until_views(
        before["nodes"],
        credentials,
        lambda v: all(
            x["wsrep_cluster_status"] == "Primary"
            and x["wsrep_cluster_size"] == "3"
            and x["wsrep_local_state_comment"] == "Synced"
            for x in v.values()
        ),
        timeout=60,
    )
    synced = time.monotonic() - healed_at
    print(f"cut: non-Primary after {cut:.1f} s; healed: Synced after {synced:.1f} s")
    after = await until(cli_env, ready, timeout=60)
    assert node_named(after, victim["name"])["pid"] == victim["pid"]  # never restarted
    assert [r["id"] for r in after["remediations"]] == [r["id"] for r in before["remediations"]]


async def test_nothing_of_a_run_outlives_it_even_when_it_fails(
    cli_env: dict[str, str], credentials: dict[str, Any], cluster: LocalCluster
) -> None:
    before = await until(cli_env, ready, timeout=120)
    victim = before["nodes"][-1]
    cgroup_before = cgroup_of(victim["pid"])
    net = NetFault(secrets.token_hex(4))
    with pytest.raises(RuntimeError, match="the body failed"), net:
        net.cut([cluster.cut_node(victim["name"])])
        assert f"-A OUTPUT -j {net.chain}" in iptables_rules()
        assert cgroup_of(victim["pid"]) == f"0::/{net.group_name}/{victim['name']}"
        raise RuntimeError("the body failed")
    assert net.chain not in iptables_rules()
    assert not net.root.exists()
    assert cgroup_of(victim["pid"]) == cgroup_before

    # The whole runner, ended by SIGTERM in the middle of a partition.
    chains_before = chaos_chains()
    mount = cgroup2_mount()
    assert mount is not None
    groups_before = set(mount.glob("mysqlops-chaos-*"))
    command = "from workers.cli import main; main()"
    args = ("chaos", NAME, "--faults", "1", "--kinds", "partition", "--partition-seconds", "120")
    runner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        command,
        *args,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while not partitioned(chaos_chains() - chains_before):
            assert runner.returncode is None and time.monotonic() < deadline, "no partition"
            await asyncio.sleep(0.2)
    finally:
        if runner.returncode is None:  # also when the test failed: it heals and ends
            runner.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(runner.communicate(), timeout=60)
    assert runner.returncode == 1, stderr.decode()
    assert "SIGTERM: ending the run" in stderr.decode() and "interrupted" in stderr.decode()
    assert chaos_chains() == chains_before
    assert set(mount.glob("mysqlops-chaos-*")) == groups_before
    assert all(cgroup_of(n["pid"]) == cgroup_before for n in before["nodes"])
    after = await until(cli_env, ready, timeout=90)
    assert after["manualIntervention"] is None


async def test_a_short_chaos_run_passes_its_checks(
    cli_env: dict[str, str], credentials: dict[str, Any]
) -> None:
    await until(cli_env, ready, timeout=120)
    # Seed 6 draws a SIGKILL of chaos-1, then a partition of chaos-0.
    args = ("--faults", "2", "--kinds", "kill,partition", "--seed", "6")
    ran = await mysqlops(cli_env, "chaos", NAME, *args, "--partition-seconds", "6", "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run = json.loads(ran.stdout)
    assert run["passed"] and run["checks"]["passed"], run["checks"]
    assert [(f["kind"], f["victims"]) for f in run["faults"]] == [
        ("kill", [f"{NAME}-1"]),
        ("partition", [f"{NAME}-0"]),
    ]
    killed, cut = run["faults"]
    assert all(
        f["greenSeconds"] is not None and f["detectedSeconds"] is not None for f in run["faults"]
    )
    assert killed["repairs"] == ["NodeCrashed:Succeeded"]
    assert killed["rejoins"][0]["method"] == "IST"  # its position recovered: no full copy
    assert cut["repairs"] == [] and cut["healedSeconds"] >= 6
    assert any("-m cgroup --path" in rule for rule in cut["rules"])
    checks = run["checks"]
    assert checks["acknowledged"] > 0 and checks["lost"] == 0 and checks["checksumsIdentical"]
    assert checks["setAside"] == [] and checks["manualIntervention"] is None


async def test_a_writer_cut_off_by_the_network_hands_writes_over_within_3_s(
    cli_env: dict[str, str], credentials: dict[str, Any]
) -> None:
    await until(cli_env, ready, timeout=120)
    args = ("--faults", "1", "--kinds", "partition-writer", "--partition-seconds", "5")
    ran = await mysqlops(cli_env, "chaos", NAME, *args, "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run = json.loads(ran.stdout)
    (cut,) = run["faults"]
    assert cut["victims"] == [cut["writer"]]
    # Its agent takes it out of HAProxy as soon as it sees itself outside the Primary
    # component; the others evict it after the group's suspect timeout and commit again.
    assert cut["longestStallSeconds"] <= 3.0, cut
    assert cut["repairs"] == []  # it rejoined by itself when the network healed...
    assert [r["method"] for r in cut["rejoins"]] == ["IST"]  # ...with the writes it missed
    after = await status(cli_env)
    assert after["writer"] != cut["writer"]  # the writes moved, and stay where they went
