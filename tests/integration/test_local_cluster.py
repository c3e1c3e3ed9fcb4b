"""A real 3-node Galera cluster through the local runtime, driven like a user drives it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from activities.local.paths import ClusterPaths, NodePaths
from activities.local.process import START_MARKER, alive
from activities.users import APP_SECRET, MONITOR_SECRET, MONITOR_USER
from api.agent import TOKEN_SECRET
from api.cluster import cluster_workflow_id
from galera.faults import storage_error
from tests.integration.conftest import (
    app_credentials,
    cluster_status,
    mysqlops,
    node_named,
    until_status,
)
from workers.credentials import OPTION_FILE
from workers.sandbox import LocalWorker

pytestmark = pytest.mark.usefixtures("worker")

CLUSTER = """\
apiVersion: mysqlops.io/v1alpha1
kind: MySQLCluster
metadata:
  name: it
spec:
  replicas: 3
  health:
    probeIntervalSeconds: 0.5
  remediation:
    enabled: false  # the first tests watch raw detection; a later one turns repair on
"""
TUNED = "  mysql:\n    config:\n      max_connections: 321\n"

REPAIR_OFF = CLUSTER + TUNED  # remediation disabled, the same server options
REPAIR_ON = CLUSTER.replace("enabled: false", "enabled: true") + TUNED


async def apply_text(env: dict[str, str], tmp_path: Path, text: str, wait: bool = True) -> None:
    resource = tmp_path / f"cluster-{abs(hash(text))}.yaml"
    resource.write_text(text)
    until_green = ("--wait", "--timeout", "180") if wait else ()
    applied = await mysqlops(env, "apply", "-f", str(resource), *until_green)
    assert applied.returncode == 0, applied.stderr


status = functools.partial(cluster_status, name="it")


def victim_paths(env: dict[str, str], node: str) -> NodePaths:
    return ClusterPaths.of(Path(env["MYSQLOPS_HOME"]), "default", "it").node(node)


until = functools.partial(until_status, name="it")
node = node_named


def connect(host: str, port: int, user: str, password: str) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=host, port=port, user=user, password=password, connect_timeout=5, autocommit=True
    )


@pytest_asyncio.fixture(scope="module")
async def credentials(
    cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    resource = tmp_path_factory.mktemp("it") / "cluster.yaml"
    resource.write_text(CLUSTER)
    started = time.monotonic()
    applied = await mysqlops(cli_env, "apply", "-f", str(resource), "--wait", "--timeout", "300")
    assert applied.returncode == 0, applied.stderr
    print(f"3-node cluster Green in {time.monotonic() - started:.1f} s")
    again = await mysqlops(cli_env, "apply", "-f", str(resource))
    assert again.returncode == 0 and "unchanged" in again.stdout
    return await app_credentials(cli_env, "it")


async def test_created_cluster_is_green_with_real_nodes(
    cli_env: dict[str, str], credentials: dict[str, Any]
) -> None:
    current = await status(cli_env)
    assert current["state"] == "Green" and current["phase"] == "Running"
    assert current["workflowId"] == cluster_workflow_id("default", "it")
    assert current["writer"] in {n["name"] for n in current["nodes"]}
    assert [n["name"] for n in current["nodes"]] == ["it-0", "it-1", "it-2"]
    for entry in current["nodes"]:
        assert entry["state"] == "Green" and entry["host"] == "127.0.0.1"
        assert alive(entry["pid"]), f"{entry['name']} pid {entry['pid']} is not running"
        assert entry["facts"]["wsrepState"] == "Synced"


async def test_write_through_the_load_balancer_reads_on_every_node(
    cli_env: dict[str, str], credentials: dict[str, Any]
) -> None:
    c = credentials
    with connect(c["host"], c["port"], c["user"], c["password"]) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS shop")
        cur.execute("CREATE TABLE IF NOT EXISTS shop.orders (id INT PRIMARY KEY, item TEXT)")
        cur.execute("REPLACE INTO shop.orders VALUES (1, 'tea')")
    for entry in (await status(cli_env))["nodes"]:
        on_node = connect(entry["host"], entry["port"], c["user"], c["password"])
        with on_node as conn, conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute("SELECT item FROM shop.orders WHERE id = 1")
            assert cur.fetchone() == ("tea",), entry["name"]
    reader = connect(c["host"], c["reader_port"], c["user"], c["password"])
    with reader as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM shop.orders")
        assert cur.fetchone() == (1,)


async def test_connect_prints_a_command_that_reads_the_password_from_a_private_file(
    cli_env: dict[str, str], credentials: dict[str, Any]
) -> None:
    printed = await mysqlops(cli_env, "connect", "it")
    assert printed.returncode == 0, printed.stderr
    assert credentials["password"] not in printed.stdout + printed.stderr
    writer, reader = printed.stdout.splitlines()
    command = shlex.split(writer)
    assert command[:2] == ["mariadb", f"--defaults-extra-file={credentials['option_file']}"]
    assert Path(credentials["option_file"]).stat().st_mode & 0o777 == 0o600
    for argv in (command, shlex.split(reader.removeprefix("# reader endpoint: "))):
        ran = subprocess.run(
            [*argv, "-N", "-e", "SELECT CURRENT_USER(), @@port"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith(f"{credentials['user']}@"), ran.stdout


async def test_application_user_has_no_administrative_rights(credentials: dict[str, Any]) -> None:
    c = credentials
    with connect(c["host"], c["port"], c["user"], c["password"]) as conn, conn.cursor() as cur:
        for statement in (
            "CREATE USER intruder IDENTIFIED BY 'x'",
            "SET GLOBAL max_connections=5",
            "SHUTDOWN",
        ):
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cur.execute(statement)
            assert denied.value.args[0] in (1227, 1044, 1045, 1142), statement


async def test_the_watch_keeps_its_connections_and_notices_a_node_refusing_new_ones(
    cli_env: dict[str, str], credentials: dict[str, Any]
) -> None:
    name = (await status(cli_env))["nodes"][1]["name"]
    paths = victim_paths(cli_env, name)
    admin = pymysql.connect(unix_socket=str(paths.socket), user=getpass.getuser(), autocommit=True)
    with admin, admin.cursor() as cur:

        def opened() -> int:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
            (_, count) = cur.fetchone() or ("", 0)
            return int(count)

        before = opened()
        await asyncio.sleep(10)  # 20 probes at 0.5 s
        per_second = (opened() - before) / 10
        print(f"{name} received {per_second:.1f} new connections a second while watched")
        assert per_second <= 0.5  # a new connection every 10 probes (one a probe before)

        # The monitor user keeps the connection it has and gets no new one (on this node only:
        # a session without wsrep does not replicate the change). The watch's next fresh
        # connection is refused: the node is seen Unknown (and once its kept connection is
        # dropped, the limit lets the next one in: the transition is what stays).
        cur.execute("SET SESSION wsrep_on = OFF")
        cur.execute(f"ALTER USER {MONITOR_USER} WITH MAX_USER_CONNECTIONS 1")

        def refused(s: dict[str, Any]) -> bool:
            return any(
                t["subject"] == name
                and t["toState"] == "Unknown"
                and "max_user_connections" in t["reason"]
                for t in s["transitions"]
            )

        try:
            await until(cli_env, refused, timeout=15)  # within 10 probes of 0.5 s
        finally:
            cur.execute(f"ALTER USER {MONITOR_USER} WITH MAX_USER_CONNECTIONS 0")
    await until(
        cli_env, lambda s: s["state"] == "Green" and node(s, name)["state"] == "Green", timeout=30
    )


async def test_killed_node_is_red_unclean_and_cluster_yellow(
    cli_env: dict[str, str], credentials: dict[str, Any]
) -> None:
    before = await status(cli_env)
    victim = next(n for n in before["nodes"] if n["name"] != before["writer"])
    c = credentials
    with connect(c["host"], c["port"], c["user"], c["password"]) as conn, conn.cursor() as cur:

        def write() -> float:
            # A commit needs every member of the group view: it waits until the survivors
            # suspect the dead node (evs.suspect_timeout 2 s) and install a view without it.
            cur.execute("REPLACE INTO shop.orders VALUES (2, 'coffee')")
            return time.monotonic() - killed_at

        killed_at = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        await asyncio.sleep(0.1)  # gone, but still in the group view
        writing = asyncio.create_task(asyncio.to_thread(write))
        seen = await until(
            cli_env, lambda s: node(s, victim["name"])["state"] == "Red-unclean", timeout=15
        )
        detected = time.monotonic() - killed_at
        stalled = await writing
    print(f"SIGKILL of {victim['name']} in the status after {detected:.2f} s")
    print(f"a write on the writer while {victim['name']} dies: committed after {stalled:.2f} s")
    assert stalled < 3.5  # Galera's default timeouts: over 6 s (target 3 s: bench/faults.py)
    assert seen["state"] == "Yellow"
    assert node(seen, victim["name"])["pid"] is None
    assert "SIGKILL" in node(seen, victim["name"])["reason"]
    assert detected < 5


async def test_gracefully_stopped_node_is_red_clean(
    cli_env: dict[str, str], credentials: dict[str, Any]
) -> None:
    # Stopping another node before the killed one is out of the view would leave the
    # survivor alone in a group of two, rightly without quorum.
    before = await until(
        cli_env, lambda s: node(s, s["writer"])["facts"]["clusterSize"] == 2, timeout=30
    )
    victim = next(
        n for n in before["nodes"] if n["name"] != before["writer"] and n["state"] == "Green"
    )
    os.kill(victim["pid"], signal.SIGTERM)  # stopped without our asking
    seen = await until(
        cli_env, lambda s: node(s, victim["name"])["state"] == "Red-clean", timeout=60
    )
    assert seen["state"] == "Yellow"  # the writer alone still serves


async def test_worker_restart_neither_stops_mysql_nor_loses_the_cluster(
    cli_env: dict[str, str], credentials: dict[str, Any], worker: LocalWorker
) -> None:
    serving = [n for n in (await status(cli_env))["nodes"] if n["pid"]]
    await worker.stop()
    await asyncio.sleep(2)
    assert all(alive(n["pid"]) for n in serving), "stopping the worker stopped MySQL"
    c = credentials
    with connect(c["host"], c["port"], c["user"], c["password"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM shop.orders")  # still serving without a worker
    await worker.start()
    started = await mysqlops(cli_env, "start", "it", "--wait", "--timeout", "240")
    assert started.returncode == 0, started.stderr
    healed = await until(cli_env, lambda s: s["state"] == "Green", timeout=60)
    assert all(n["state"] == "Green" for n in healed["nodes"])


async def test_config_change_rolls_through_every_node(
    cli_env: dict[str, str], credentials: dict[str, Any], tmp_path: Path
) -> None:
    resource = tmp_path / "cluster.yaml"
    resource.write_text(CLUSTER + TUNED)
    applied = await mysqlops(cli_env, "apply", "-f", str(resource), "--wait", "--timeout", "300")
    assert applied.returncode == 0 and "configured" in applied.stdout, applied.stderr
    c = credentials
    for entry in (await status(cli_env))["nodes"]:
        on_node = connect(entry["host"], entry["port"], c["user"], c["password"])
        with on_node as conn, conn.cursor() as cur:
            cur.execute("SELECT @@max_connections")
            assert cur.fetchone() == (321,), entry["name"]


async def test_scale_up_and_down_one_node_at_a_time(
    cli_env: dict[str, str], credentials: dict[str, Any], tmp_path: Path, local_home: Path
) -> None:
    resource = tmp_path / "cluster.yaml"
    resource.write_text(CLUSTER.replace("replicas: 3", "replicas: 5") + TUNED)
    grown = await mysqlops(cli_env, "apply", "-f", str(resource), "--wait", "--timeout", "400")
    assert grown.returncode == 0, grown.stderr
    current = await status(cli_env)
    assert [n["state"] for n in current["nodes"]] == ["Green"] * 5
    c = credentials
    on_new = connect("127.0.0.1", node(current, "it-4")["port"], c["user"], c["password"])
    with on_new as conn, conn.cursor() as cur:
        cur.execute("SELECT item FROM shop.orders WHERE id = 1")
        assert cur.fetchone() == ("tea",)  # the new node received the data by SST
    resource.write_text(CLUSTER + TUNED)
    shrunk = await mysqlops(cli_env, "apply", "-f", str(resource), "--wait", "--timeout", "300")
    assert shrunk.returncode == 0, shrunk.stderr
    current = await status(cli_env)
    assert [n["name"] for n in current["nodes"]] == ["it-0", "it-1", "it-2"]
    retired = sorted(
        p.name.rsplit("-", 1)[0] for p in (local_home / "clusters/default/it/retired").iterdir()
    )
    assert retired == ["it-3", "it-4"]  # moved aside with their data, not deleted


async def test_remediation_brings_killed_nodes_back(
    cli_env: dict[str, str], credentials: dict[str, Any], tmp_path: Path
) -> None:
    await apply_text(cli_env, tmp_path, REPAIR_ON)
    before = await status(cli_env)
    victim = next(n for n in before["nodes"] if n["name"] != before["writer"])
    killed_at = time.monotonic()
    os.kill(victim["pid"], signal.SIGKILL)
    await until(cli_env, lambda s: node(s, victim["name"])["state"] != "Green", timeout=10)
    healed = await until(
        cli_env,
        lambda s: s["state"] == "Green" and bool(s["remediations"]) and s["currentTask"] is None,
        timeout=120,
    )
    print(f"one node SIGKILLed: Green again after {time.monotonic() - killed_at:.1f} s")
    record = healed["remediations"][-1]
    assert (record["fault"], record["nodes"], record["outcome"]) == (
        "NodeCrashed",
        [victim["name"]],
        "Succeeded",
    )
    # It asked for the writes it missed (its recovered position), not for a full copy: the
    # join is read from its own error log.
    join = record["actions"][-1]["join"]
    assert join is not None and join["method"] == "IST", record
    assert node(healed, victim["name"])["lastJoin"] == join

    history = cluster_history(credentials)
    everyone = [n["pid"] for n in healed["nodes"]]
    killed_at = time.monotonic()
    for pid in everyone:
        os.kill(pid, signal.SIGKILL)
    healed = await until(
        cli_env,
        lambda s: (
            s["state"] == "Green"
            and s["remediations"][-1]["fault"] == "ClusterDown"
            and s["remediations"][-1]["outcome"] == "Succeeded"
        ),
        timeout=240,
    )
    print(f"all nodes SIGKILLed: Green again after {time.monotonic() - killed_at:.1f} s")
    assert "highest committed seqno" in json.dumps(healed["transitions"])
    # The bootstrap continued the cluster's history (same state UUID, seqno not reset), so
    # the others rejoined it by IST.
    assert cluster_history(credentials) == history
    joins = [a.get("join") for a in healed["remediations"][-1]["actions"]]
    rejoined = [
        n for n in healed["nodes"] if n["lastJoin"] and n["lastJoin"]["at"] > record["endedAt"]
    ]
    assert len(rejoined) == 2 and all(n["lastJoin"]["method"] == "IST" for n in rejoined), (
        healed["nodes"],
        joins,
    )
    c = credentials
    with connect(c["host"], c["port"], c["user"], c["password"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT item FROM shop.orders WHERE id = 1")
        assert cur.fetchone() == ("tea",)  # no acknowledged write lost

    # Two of three killed: the survivor loses quorum. A Primary is re-formed on the most
    # advanced node without split brain, and the dead nodes rejoin.
    survivor = healed["writer"]
    others = [n for n in healed["nodes"] if n["name"] != survivor]
    repairs = len(healed["remediations"])
    killed_at = time.monotonic()
    for victim in others:
        os.kill(victim["pid"], signal.SIGKILL)
    healed = await until(
        cli_env,
        lambda s: (
            s["state"] == "Green"
            and len(s["remediations"]) > repairs
            and s["remediations"][-1]["outcome"] == "Succeeded"
            and s["currentTask"] is None
            and not s["queuedTasks"]
        ),
        timeout=300,
    )
    print(f"two of three SIGKILLed: Green again after {time.monotonic() - killed_at:.1f} s")
    faults = {r["fault"] for r in healed["remediations"][repairs:]}
    assert faults <= {"NodeCrashed", "QuorumLost"}, faults
    assert healed["manualIntervention"] is None
    with connect(c["host"], c["port"], c["user"], c["password"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT item FROM shop.orders WHERE id = 1")
        assert cur.fetchone() == ("tea",)


def cluster_history(c: dict[str, Any]) -> str:
    """The cluster's state UUID: a new one would mean a bootstrap started a new history."""
    with connect(c["host"], c["port"], c["user"], c["password"]) as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_state_uuid'")
        row = cur.fetchone()
    assert row is not None
    return str(row[1])


async def test_a_hung_node_is_killed_and_restarted_after_the_grace_period(
    cli_env: dict[str, str], credentials: dict[str, Any]
) -> None:
    before = await status(cli_env)
    victim = next(n for n in before["nodes"] if n["name"] != before["writer"])
    repairs = len(before["remediations"])
    os.kill(victim["pid"], signal.SIGSTOP)  # alive, answering nothing
    try:
        hung = await until(
            cli_env, lambda s: node(s, victim["name"])["state"] == "Unknown", timeout=15
        )
        assert len(hung["remediations"]) == repairs  # within the grace period: nothing yet
        healed = await until(
            cli_env,
            lambda s: (
                s["state"] == "Green"
                and any(r["fault"] == "NodeHung" for r in s["remediations"][repairs:])
                and s["currentTask"] is None
                and not s["queuedTasks"]
            ),
            timeout=180,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim["pid"], signal.SIGCONT)
    record = next(r for r in healed["remediations"][repairs:] if r["fault"] == "NodeHung")
    assert (record["fault"], record["nodes"], record["outcome"]) == (
        "NodeHung",
        [victim["name"]],
        "Succeeded",
    )
    assert node(healed, victim["name"])["pid"] != victim["pid"]


async def test_a_repair_survives_the_worker_dying_in_the_middle(
    cli_env: dict[str, str], credentials: dict[str, Any], worker: LocalWorker
) -> None:
    before = await status(cli_env)
    victim = next(n for n in before["nodes"] if n["name"] != before["writer"])
    repairs = len(before["remediations"])
    error_log = Path(victim_paths(cli_env, victim["name"]).error_log)
    starts_before = error_log.read_text(errors="replace").count(START_MARKER)
    os.kill(victim["pid"], signal.SIGKILL)
    await until(
        cli_env,
        lambda s: (s["currentTask"] or {}).get("kind") == "remediate",
        timeout=30,
    )
    await worker.stop()  # mid-repair: the restart or its wait for Synced is in flight
    await asyncio.sleep(2)
    await worker.start()
    healed = await until(
        cli_env,
        lambda s: (
            s["state"] == "Green" and len(s["remediations"]) > repairs and s["currentTask"] is None
        ),
        timeout=180,
    )
    assert healed["remediations"][repairs]["nodes"] == [victim["name"]]
    assert healed["manualIntervention"] is None
    running = [n["pid"] for n in healed["nodes"] if n["name"] == victim["name"]]
    assert running and alive(running[0])
    starts = error_log.read_text(errors="replace").count(START_MARKER) - starts_before
    assert starts == 1  # the repair went on where it stood: the node started once, not twice


async def kill_while_repair_is_off(
    env: dict[str, str], tmp_path: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A non-writer node killed with remediation off, so the test can damage it first."""
    await apply_text(env, tmp_path, REPAIR_OFF)
    before = await status(env)
    victim = next(n for n in before["nodes"] if n["name"] != before["writer"])
    os.kill(victim["pid"], signal.SIGKILL)
    await until(env, lambda s: node(s, victim["name"])["state"] == "Red-unclean", timeout=15)
    return before, victim


async def test_a_node_with_a_damaged_data_dir_rejoins_with_its_old_data_kept(
    cli_env: dict[str, str], credentials: dict[str, Any], tmp_path: Path, local_home: Path
) -> None:
    before, victim = await kill_while_repair_is_off(cli_env, tmp_path)
    ibdata = local_home / "clusters/default/it/nodes" / victim["name"] / "data/ibdata1"
    garbage = os.urandom(4 << 20)
    with open(ibdata, "r+b") as damaged:  # header and doublewrite buffer overwritten
        damaged.write(garbage)
    repairs = {r["id"] for r in before["remediations"]}
    await apply_text(cli_env, tmp_path, REPAIR_ON)  # --wait: Green again
    healed = await until(
        cli_env,
        lambda s: s["state"] == "Green" and s["currentTask"] is None and not s["queuedTasks"],
        timeout=60,
    )
    new = [r for r in healed["remediations"] if r["id"] not in repairs]
    assert [(r["fault"], r["outcome"]) for r in new] == [("NodeCrashed", "Succeeded")], new
    detail = new[0]["actions"][-1]["detail"]
    assert "--wsrep-recover found no position" in detail  # why, in the record
    kept = Path(detail.split("kept at ", 1)[1].split("; ", 1)[0])
    join = new[0]["actions"][-1]["join"]  # a new copy, and the record says why
    assert join["method"] == "SST" and "no committed position" in join["detail"], join
    assert (kept / "ibdata1").read_bytes()[: len(garbage)] == garbage  # moved aside, not lost
    c = credentials
    fresh = node(healed, victim["name"])
    on_node = connect(fresh["host"], fresh["port"], c["user"], c["password"])
    with on_node as conn, conn.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")
        cur.execute("SELECT item FROM shop.orders WHERE id = 1")
        assert cur.fetchone() == ("tea",)  # the new copy came from the cluster by SST


async def test_a_full_disk_goes_to_a_human_and_resume_hands_it_back(
    cli_env: dict[str, str], credentials: dict[str, Any], tmp_path: Path, local_home: Path
) -> None:
    _, victim = await kill_while_repair_is_off(cli_env, tmp_path)
    data = local_home / "clusters/default/it/nodes" / victim["name"] / "data"
    kept = data.with_name("data.before-disk-full")
    data.rename(kept)  # the test's own move; the node gets a full disk with a copy of it
    data.mkdir()
    size = sum(f.stat().st_size for f in kept.rglob("*") if f.is_file())
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size + (4 << 20)}", "tmpfs", str(data)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, mounted.stderr
    try:
        subprocess.run(["cp", "-a", f"{kept}/.", str(data)], check=True)
        (data / "ibtmp1").unlink()  # InnoDB creates it (12 MiB) at every start: no room left
        with open(data / "filler", "wb") as filler, contextlib.suppress(OSError):
            while True:  # fill it to the last byte
                filler.write(b"\0" * (1 << 20))
                filler.flush()
        await apply_text(cli_env, tmp_path, REPAIR_ON, wait=False)
        paused = await until(cli_env, lambda s: s["manualIntervention"] is not None, timeout=90)
        intervention = paused["manualIntervention"]
        assert intervention["fault"] == "StorageError", intervention
        assert victim["name"] in intervention["evidence"]
        assert storage_error(intervention["evidence"]), intervention  # disk full, in words
        refused = await mysqlops(cli_env, "resume", "it", "--reason", " ")
        assert refused.returncode == 2
    finally:
        subprocess.run(["umount", "--lazy", str(data)], check=True)
    data.rmdir()
    kept.rename(data)  # the operator frees the disk
    resumed = await mysqlops(cli_env, "resume", "it", "--reason", "disk replaced")
    assert resumed.returncode == 0, resumed.stderr
    healed = await until(
        cli_env,
        lambda s: (
            s["state"] == "Green"
            and s["manualIntervention"] is None
            and s["currentTask"] is None
            and not s["queuedTasks"]
        ),
        timeout=120,
    )
    assert node(healed, victim["name"])["state"] == "Green"


async def test_a_second_cluster_runs_beside_and_delete_policy_removes_it(
    cli_env: dict[str, str], credentials: dict[str, Any], tmp_path: Path, local_home: Path
) -> None:
    resource = tmp_path / "solo.yaml"
    resource.write_text(
        CLUSTER.replace("name: it", "name: solo").replace("replicas: 3", "replicas: 1")
        + "  deletionPolicy: Delete\n"
    )
    applied = await mysqlops(cli_env, "apply", "-f", str(resource), "--wait", "--timeout", "120")
    assert applied.returncode == 0, applied.stderr
    solo = await app_credentials(cli_env, "solo")
    assert solo["port"] != credentials["port"]
    solo_conn = connect(solo["host"], solo["port"], solo["user"], solo["password"])
    with solo_conn as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS solo_db")
    deleted = await mysqlops(cli_env, "delete", "solo", "--wait", "--timeout", "120")
    assert deleted.returncode == 0, deleted.stderr
    assert not (local_home / "clusters/default/solo").exists()
    assert (await status(cli_env))["state"] == "Green"  # the other cluster never noticed


async def test_history_holds_no_secret(
    cli_env: dict[str, str],
    credentials: dict[str, Any],
    temporal_env: WorkflowEnvironment,
    local_home: Path,
) -> None:
    handle = temporal_env.client.get_workflow_handle(cluster_workflow_id("default", "it"))
    history = (await handle.fetch_history()).to_json()
    directory = local_home / "clusters/default/it/secrets"
    kept = {APP_SECRET, MONITOR_SECRET, OPTION_FILE, TOKEN_SECRET}
    assert {p.name for p in directory.iterdir()} == kept
    for secret in directory.iterdir():
        assert secret.stat().st_mode & 0o777 == 0o600, secret
    for name in (APP_SECRET, MONITOR_SECRET, TOKEN_SECRET):
        assert (directory / name).read_text().strip() not in history
    logs = "".join(p.read_text() for p in local_home.glob("clusters/default/it/nodes/*/agent.log"))
    assert credentials["password"] not in logs
    token = (directory / TOKEN_SECRET).read_text().strip()
    assert token not in logs
    for agent in local_home.glob("clusters/default/it/nodes/*/agent.json"):
        assert token not in agent.read_text()  # only the file's name


async def test_delete_stops_the_cluster_and_keeps_its_data(
    cli_env: dict[str, str], credentials: dict[str, Any], local_home: Path
) -> None:
    pids = [n["pid"] for n in (await status(cli_env))["nodes"]]
    deleted = await mysqlops(cli_env, "delete", "it", "--wait", "--timeout", "180")
    assert deleted.returncode == 0, deleted.stderr
    assert not any(alive(pid) for pid in pids)
    gone = await mysqlops(cli_env, "status", "it")
    assert gone.returncode == 2 and "not found" in gone.stderr
    for name in ("it-0", "it-1", "it-2"):
        assert (local_home / f"clusters/default/it/nodes/{name}/data/grastate.dat").exists()
