"""Hot backups and restores on a real 3-node Galera cluster, driven through the CLI."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql
import pytest
import pytest_asyncio
from temporalio.client import ScheduleOverlapPolicy
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.backup.activities import schedule_id
from tests.integration.conftest import app_credentials, cluster_status, mysqlops, until_status

pytestmark = pytest.mark.usefixtures("worker")

CLUSTER = """\
apiVersion: mysqlops.io/v1alpha1
kind: MySQLCluster
metadata:
  name: bk
spec:
  replicas: 3
  health:
    probeIntervalSeconds: 0.5
"""

status = functools.partial(cluster_status, name="bk")
until = functools.partial(until_status, name="bk")


def run_sql(info: dict[str, Any], port: int, *statements: str) -> list[tuple[Any, ...]]:
    conn = pymysql.connect(
        host=info["host"],
        port=port,
        user=info["user"],
        password=info["password"],
        connect_timeout=5,
        autocommit=True,
    )
    with conn, conn.cursor() as cursor:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cursor.execute(statement)
            rows = list(cursor.fetchall())
        return rows


def checksums(info: dict[str, Any], port: int) -> dict[str, int]:
    tables = run_sql(info, port, "SHOW TABLES FROM shop")
    rows = run_sql(info, port, f"CHECKSUM TABLE {', '.join(f'shop.{t[0]}' for t in tables)}")
    return {str(name): int(value) for name, value in rows}


async def apply(env: dict[str, str], tmp_path: Path, text: str) -> None:
    resource = tmp_path / f"bk-{abs(hash(text))}.yaml"
    resource.write_text(text)
    applied = await mysqlops(env, "apply", "-f", str(resource), "--wait", "--timeout", "240")
    assert applied.returncode == 0, applied.stderr


@pytest_asyncio.fixture(scope="module")
async def cluster(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Green cluster with a `shop` database; deleted at the end of the module."""
    await apply(cli_env, tmp_path_factory.mktemp("bk"), CLUSTER)
    info = await app_credentials(cli_env, "bk")
    run_sql(
        info,
        info["port"],
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40), qty INT)",
        "CREATE TABLE shop.notes (id INT PRIMARY KEY AUTO_INCREMENT, body TEXT)",
        "INSERT INTO shop.orders VALUES "
        + ", ".join(f"({i}, 'item-{i}', {i % 7})" for i in range(1, 2001)),
        "INSERT INTO shop.notes (body) VALUES ('kept'), ('also kept')",
    )
    yield info
    deleted = await mysqlops(cli_env, "delete", "bk", "--wait", "--timeout", "180")
    assert deleted.returncode == 0, deleted.stderr


@pytest_asyncio.fixture(scope="module")
async def first_backup(cli_env: dict[str, str], cluster: dict[str, Any]) -> dict[str, Any]:
    """Backup `first`, and the checksums of the data it holds."""
    before = checksums(cluster, cluster["port"])
    taken = await mysqlops(cli_env, "backup", "bk", "--backup", "first", "--wait", "--json")
    assert taken.returncode == 0, taken.stderr
    record: dict[str, Any] = json.loads(taken.stdout)
    return {"record": record, "checksums": before}


async def test_a_hot_backup_is_stored_with_a_manifest_and_the_node_resynced(
    cli_env: dict[str, str], cluster: dict[str, Any], first_backup: dict[str, Any]
) -> None:
    record = first_backup["record"]
    current = await status(cli_env)
    assert record["name"] == "first" and record["phase"] == "Succeeded"
    assert record["node"] != current["writer"], "taken from the node that takes the writes"
    stored = Path(record["location"])
    assert stored.stat().st_size == record["sizeBytes"]
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == record["sha256"]
    assert stored.read_bytes()[:4] == b"\x28\xb5\x2f\xfd", "not zstd"
    uuid, seqno = record["position"].split(":")
    assert len(uuid) == 36 and int(seqno) > 0
    assert re.fullmatch(r"1-1-\d+", record["gtid"]), record["gtid"]  # the cluster's stream
    assert record["durationSeconds"] > 0
    for node in current["nodes"]:  # nobody left out of flow control
        assert run_sql(cluster, node["port"], "SELECT @@wsrep_desync") == [(0,)]
        assert node["state"] == "Green"
    listed = await mysqlops(cli_env, "backups", "bk", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = [b for b in json.loads(listed.stdout) if b["name"] == "first"]
    assert entry["location"] == record["location"] and entry["position"] == record["position"]
    assert entry["storedBytes"] == record["sizeBytes"] and entry["finishedAt"]
    assert entry["toolVersion"] and entry["node"] == record["node"]


async def test_a_restore_brings_back_the_data_of_the_backup_point(
    cli_env: dict[str, str], cluster: dict[str, Any], first_backup: dict[str, Any]
) -> None:
    run_sql(
        cluster,
        cluster["port"],
        "DELETE FROM shop.orders WHERE id <= 500",
        "UPDATE shop.orders SET qty = qty + 100",
        "DROP TABLE shop.notes",
        "CREATE TABLE shop.mistake (id INT PRIMARY KEY)",
    )
    assert checksums(cluster, cluster["port"]) != first_backup["checksums"]
    started = time.monotonic()
    restored = await mysqlops(
        cli_env, "restore", "bk", "--backup", "first", "--wait", "--json", timeout=600
    )
    assert restored.returncode == 0, restored.stderr + restored.stdout
    print(f"restore to Green in {time.monotonic() - started:.1f} s")
    record = json.loads(restored.stdout)
    assert record["phase"] == "Succeeded" and record["backup"] == "first"
    assert record["position"] == first_backup["record"]["position"]
    assert sorted(record["setAside"]) == ["bk-0", "bk-1", "bk-2"]
    for path in record["setAside"].values():  # the data from before is kept, never deleted
        assert (Path(path) / "shop" / "mistake.frm").exists(), path
    current = await status(cli_env)
    assert current["state"] == "Green"
    for node in current["nodes"]:  # every node, the SST joiners too, has the backup's data
        assert checksums(cluster, node["port"]) == first_backup["checksums"], node["name"]


async def test_bad_backups_are_refused_before_anything_stops(
    cli_env: dict[str, str], cluster: dict[str, Any], first_backup: dict[str, Any]
) -> None:
    stored = Path(first_backup["record"]["location"])
    manifest = json.loads(stored.with_name("first.manifest.json").read_text())
    damages: dict[str, Callable[[bytes], bytes]] = {
        "flipped": lambda data: data[:100] + bytes([data[100] ^ 0xFF]) + data[101:],
        "short": lambda data: data[: len(data) // 2],
    }
    for name, damage in damages.items():
        (stored.parent / f"{name}.xbstream.zst").write_bytes(damage(stored.read_bytes()))
        copy = {**manifest, "name": name, "object": f"{name}.xbstream.zst"}
        (stored.parent / f"{name}.manifest.json").write_text(json.dumps(copy))
    before = {n["name"]: n["pid"] for n in (await status(cli_env))["nodes"]}
    data = checksums(cluster, cluster["port"])

    missing = await mysqlops(cli_env, "restore", "bk", "--backup", "nope", "--wait")
    assert missing.returncode == 2 and "no backup 'nope'" in missing.stderr
    for name, words in (("flipped", "sha256"), ("short", "truncated")):
        result = await mysqlops(cli_env, "restore", "bk", "--backup", name, "--wait", "--json")
        assert result.returncode == 1, result.stderr
        record = json.loads(result.stdout)
        assert record["phase"] == "Failed" and words in record["error"], record
        assert not record.get("setAside")

    after = await status(cli_env)
    assert {n["name"]: n["pid"] for n in after["nodes"]} == before, "a node was restarted"
    assert after["state"] == "Green"
    assert checksums(cluster, cluster["port"]) == data
    for name in damages:  # made by this test, not taken by mysqlops
        (stored.parent / f"{name}.xbstream.zst").unlink()
        (stored.parent / f"{name}.manifest.json").unlink()


async def test_unusable_storage_fails_the_backup_and_leaves_no_node_desynced(
    cli_env: dict[str, str], cluster: dict[str, Any], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the backup directory should be")
    await apply(
        cli_env,
        tmp_path,
        CLUSTER + f"  backup:\n    storage:\n      filesystem:\n        path: {blocker}\n",
    )
    result = await mysqlops(cli_env, "backup", "bk", "--wait", "--json")
    assert result.returncode == 1, result.stderr
    record = json.loads(result.stdout)
    assert record["phase"] == "Failed" and "cannot create the backup directory" in record["error"]
    current = await status(cli_env)
    for node in current["nodes"]:
        assert run_sql(cluster, node["port"], "SELECT @@wsrep_desync") == [(0,)]
    await apply(cli_env, tmp_path, CLUSTER)


async def test_a_new_cluster_can_start_from_a_backup(
    cli_env: dict[str, str],
    cluster: dict[str, Any],
    first_backup: dict[str, Any],
    tmp_path: Path,
) -> None:
    copy = (
        CLUSTER.replace("name: bk", "name: bkcopy").replace("replicas: 3", "replicas: 1")
        + "  deletionPolicy: Delete\n  restoreFrom:\n    cluster: bk\n    backup: first\n"
    )
    await apply(cli_env, tmp_path, copy)
    info = await app_credentials(cli_env, "bkcopy")
    assert checksums(info, info["port"]) == first_backup["checksums"]
    current = await cluster_status(cli_env, name="bkcopy")
    assert current["restores"][0]["phase"] == "Succeeded"
    deleted = await mysqlops(cli_env, "delete", "bkcopy", "--wait", "--timeout", "120")
    assert deleted.returncode == 0, deleted.stderr


async def test_a_backup_resource_applied_is_taken_and_reported(
    cli_env: dict[str, str], cluster: dict[str, Any], tmp_path: Path
) -> None:
    resource = tmp_path / "backup.yaml"
    resource.write_text(
        "apiVersion: mysqlops.io/v1alpha1\nkind: MySQLBackup\nmetadata:\n  name: from-resource\n"
        "spec:\n  cluster: bk\n  keepFor: 30d\n"
    )
    applied = await mysqlops(cli_env, "apply", "-f", str(resource), "--wait")
    assert applied.returncode == 0, applied.stderr
    assert "from-resource: Succeeded" in applied.stdout
    again = await mysqlops(cli_env, "apply", "-f", str(resource))  # as kubectl apply: no-op
    assert again.returncode == 0 and "mysqlbackup from-resource unchanged" in again.stdout
    current = await status(cli_env)
    assert [b["name"] for b in current["backups"]].count("from-resource") == 1
    listed = json.loads((await mysqlops(cli_env, "backups", "bk", "--json")).stdout)
    (entry,) = [b for b in listed if b["name"] == "from-resource"]
    kept = datetime.fromisoformat(entry["expiresAt"]) - datetime.fromisoformat(entry["finishedAt"])
    assert entry["trigger"] == "manual" and kept == timedelta(days=30)  # the resource's keepFor


async def test_scheduled_backups_go_through_the_queue_and_retention_prunes_only_them(
    cli_env: dict[str, str],
    cluster: dict[str, Any],
    first_backup: dict[str, Any],
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    with_schedule = (
        CLUSTER + "  backup:\n    schedule: '0 3 1 1 *'\n    retention:\n      keepLast: 1\n"
    )
    await apply(cli_env, tmp_path, with_schedule)
    handle = temporal_env.client.get_schedule_handle(schedule_id("default", "bk"))
    described = await handle.describe()
    assert described.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    upcoming = described.info.next_action_times[0]  # the next run, as operators see it
    assert (upcoming.month, upcoming.day, upcoming.hour, upcoming.minute) == (1, 1, 3, 0)
    listed_text = await mysqlops(cli_env, "backups", "bk")
    assert "active, next run" in listed_text.stdout and "-01-01 03:00" in listed_text.stdout

    def scheduled(current: dict[str, Any]) -> list[dict[str, Any]]:
        return [b for b in current["backups"] if b["trigger"] == "schedule"]

    def taken(runs: int) -> Callable[[dict[str, Any]], bool]:
        """`runs` scheduled backups Succeeded and their tasks ended: retention, which runs
        after the backup itself, is in the record."""

        def check(s: dict[str, Any]) -> bool:
            ended = {o["id"] for o in s["outcomes"]}
            done = [b for b in scheduled(s) if b["phase"] == "Succeeded" and b["taskId"] in ended]
            return len(done) == len(scheduled(s)) == runs

        return check

    for runs in (1, 2):  # what an operator's "trigger now" does in the UI or CLI
        await handle.trigger()
        done = await until(cli_env, taken(runs), 120)
    older, newest = scheduled(done)
    assert newest["deletedByRetention"] == [older["name"]]  # keepLast 1, of scheduled ones
    listed = json.loads((await mysqlops(cli_env, "backups", "bk", "--json")).stdout)
    assert [b["name"] for b in listed if b["trigger"] == "schedule"] == [newest["name"]]
    # Manual backups are not the cluster retention's: `first` (no keepFor) stays until
    # deleted by hand.
    assert "first" in {b["name"] for b in listed if b["trigger"] == "manual"}

    await apply(cli_env, tmp_path, CLUSTER)  # no schedule in the spec: the Schedule goes
    with pytest.raises(RPCError):
        await handle.describe()
    shutil.rmtree(Path(newest["location"]).parent)
