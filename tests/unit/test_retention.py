"""Retention: the cluster's policy prunes scheduled backups only, a manual backup lives until
its own keepFor, and the newest backup whose stored object verifies is never deleted; what
retention did is reported, bad objects included."""

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.backup.activities import BackupActivities
from activities.backup.messages import RetentionInput, TakeBackupInput
from activities.backup.retention import due, retain
from activities.backup.storage import OBJECT_SUFFIX, FilesystemStorage, verify
from activities.runtime import ClusterRef
from activities.scripted.runtime import ScriptedRuntime
from api.backup import (
    BackupManifest,
    BackupRequest,
    BackupTrigger,
    MySQLBackupSpec,
    RetentionResult,
    RetentionSpec,
    StorageRef,
)

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
SCHEDULE = BackupTrigger.SCHEDULE
MANUAL = BackupTrigger.MANUAL


def store(
    storage: FilesystemStorage,
    name: str,
    age: timedelta,
    trigger: BackupTrigger = SCHEDULE,
    expires_at: datetime | None = None,
    payload: bytes | None = None,
) -> BackupManifest:
    """A stored backup with a true manifest (size and sha256 of what is stored)."""
    payload = payload if payload is not None else f"backup {name}".encode()
    with storage.open_write(name + OBJECT_SUFFIX) as out:
        out.write(payload)
    manifest = BackupManifest(
        name=name,
        namespace="default",
        cluster="c",
        node="c-2",
        trigger=trigger,
        started_at=NOW - age,
        finished_at=NOW - age,
        stored_bytes=len(payload),
        streamed_bytes=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        object=name + OBJECT_SUFFIX,
        expires_at=expires_at,
    )
    storage.put_manifest(manifest)
    return manifest


def damage(storage: FilesystemStorage, name: str, data: bytes) -> None:
    (storage.directory / (name + OBJECT_SUFFIX)).write_bytes(data)


@pytest.fixture
def storage(tmp_path: Path) -> FilesystemStorage:
    return FilesystemStorage(tmp_path, "default", "c")


def run(storage: FilesystemStorage, policy: RetentionSpec) -> RetentionResult:
    """Retention as the activity runs it: decide with real verification, then delete."""
    result = retain(storage.manifests(), policy, NOW, lambda m: verify(storage, m))
    for name in result.deleted:
        storage.delete(name)
    return result


def names(storage: FilesystemStorage) -> list[str]:
    return [m.name for m in storage.manifests()]


def test_keep_last_counts_and_prunes_scheduled_backups_only(storage: FilesystemStorage) -> None:
    for i in range(4):
        store(storage, f"s{i}", timedelta(days=i))
    store(storage, "m-new", timedelta(hours=1), MANUAL)
    store(storage, "m-old", timedelta(days=90), MANUAL)
    result = run(storage, RetentionSpec(keep_last=2))
    assert sorted(result.deleted) == ["s2", "s3"]
    assert result.newest_good == "s0" and not result.unverified
    assert sorted(names(storage)) == ["m-new", "m-old", "s0", "s1"]


def test_max_age_applies_to_scheduled_backups_only(storage: FilesystemStorage) -> None:
    for i in range(4):
        store(storage, f"s{i}", timedelta(days=i * 3))  # 0, 3, 6, 9 days
    store(storage, "manual", timedelta(days=30), MANUAL)
    result = run(storage, RetentionSpec(keep_last=None, max_age="5d"))
    assert sorted(result.deleted) == ["s2", "s3"]
    assert "manual" in names(storage)


def test_a_manual_backup_lives_until_its_own_keep_for(storage: FilesystemStorage) -> None:
    store(storage, "s0", timedelta(0))
    store(storage, "past", timedelta(days=10), MANUAL, expires_at=NOW - timedelta(days=1))
    store(storage, "future", timedelta(days=10), MANUAL, expires_at=NOW + timedelta(days=1))
    store(storage, "forever", timedelta(days=400), MANUAL)
    result = run(storage, RetentionSpec(keep_last=1, max_age="1d"))
    assert result.deleted == ["past"]
    assert sorted(names(storage)) == ["forever", "future", "s0"]


def test_the_newest_backup_that_verifies_is_never_deleted(storage: FilesystemStorage) -> None:
    """The defect: the newest manifest was spared by its time alone, so a corrupted newest
    backup cost the cluster its last good one."""
    store(storage, "good", timedelta(days=3))
    store(storage, "older", timedelta(days=4))
    store(storage, "truncated", timedelta(days=2))
    store(storage, "corrupted", timedelta(days=1))
    store(storage, "missing", timedelta(hours=1))
    damage(storage, "truncated", b"back")
    damage(storage, "corrupted", b"backup CORRUPTED")
    (storage.directory / ("missing" + OBJECT_SUFFIX)).unlink()
    result = run(storage, RetentionSpec(keep_last=1))
    assert result.newest_good == "good"
    assert "good" in names(storage), "the last good backup was deleted"
    assert "the newest backup that verifies" in result.spared["good"]
    assert sorted(result.deleted) == ["corrupted", "older", "truncated"]
    assert list(result.unverified) == ["missing", "corrupted", "truncated"]
    assert "missing" in result.unverified["missing"]
    assert "sha256" in result.unverified["corrupted"]
    assert "truncated" in result.unverified["truncated"]


def test_a_manual_backup_past_its_keep_for_stays_when_it_is_the_newest_good(
    storage: FilesystemStorage,
) -> None:
    store(storage, "s-bad", timedelta(days=1), payload=b"scheduled")
    store(storage, "m", timedelta(days=2), MANUAL, expires_at=NOW - timedelta(hours=1))
    damage(storage, "s-bad", b"scheduleD")
    result = run(storage, RetentionSpec(keep_last=1))
    assert result.newest_good == "m" and result.deleted == []
    assert "keepFor" in result.spared["m"] and "s-bad" in result.unverified


def test_nothing_is_deleted_when_no_backup_verifies(storage: FilesystemStorage) -> None:
    for i in range(3):
        store(storage, f"s{i}", timedelta(days=i))
        damage(storage, f"s{i}", b"?")
    result = run(storage, RetentionSpec(keep_last=1))
    assert result.newest_good is None and result.deleted == []
    assert sorted(result.unverified) == ["s0", "s1", "s2"]
    assert sorted(result.spared) == ["s1", "s2"]
    assert "no backup verifies" in result.summary()
    assert len(names(storage)) == 3


def test_only_candidates_down_to_the_first_good_one_are_hashed(
    storage: FilesystemStorage,
) -> None:
    for i in range(5):
        store(storage, f"s{i}", timedelta(days=i))
    damage(storage, "s0", b"backup sX")
    checked: list[str] = []

    def counting(manifest: BackupManifest) -> None:
        checked.append(manifest.name)
        verify(storage, manifest)

    result = retain(storage.manifests(), RetentionSpec(keep_last=1), NOW, counting)
    assert checked == ["s0", "s1"]
    assert result.newest_good == "s1" and sorted(result.deleted) == ["s2", "s3", "s4"]


def test_backups_finished_at_the_same_time_are_ordered_by_name(
    storage: FilesystemStorage,
) -> None:
    for name in ("b", "a", "c"):
        store(storage, name, timedelta(0))
    assert list(due(storage.manifests(), RetentionSpec(keep_last=1), NOW)) == ["b", "a"]


def test_a_recorded_result_of_an_older_version_still_reads() -> None:
    """Histories recorded before the result was a model hold the bare list of names."""
    old = RetentionResult.model_validate(["b1", "b2"])
    assert old.deleted == ["b1", "b2"] and old.newest_good is None
    new = RetentionResult(deleted=["x"], newest_good="y", unverified={"z": "corrupted"})
    assert RetentionResult.model_validate_json(new.model_dump_json(by_alias=True)) == new


def test_keep_for_is_camel_case_and_a_duration() -> None:
    spec = MySQLBackupSpec.model_validate({"cluster": "c", "keepFor": "30d"})
    assert spec.keep_for == "30d"
    assert BackupRequest.model_validate({"keepFor": "12h"}).keep_for == "12h"
    assert BackupRequest().keep_for is None and MySQLBackupSpec(cluster="c").keep_for is None
    with pytest.raises(ValueError, match="not a duration"):
        MySQLBackupSpec.model_validate({"cluster": "c", "keepFor": "1 month"})


def activities_over(runtime: ScriptedRuntime) -> BackupActivities:
    return BackupActivities(runtime, cast(Client, None), "test")  # no Schedule used here


def test_a_backup_taken_with_keep_for_records_when_it_expires(tmp_path: Path) -> None:
    runtime = ScriptedRuntime(backups_home=tmp_path)
    layout = runtime.layout(ClusterRef(namespace="default", name="c"), 3)
    ref = StorageRef(namespace="default", cluster="c")
    take = activities_over(runtime).take_backup

    def taken(name: str, keep_for: str | None) -> BackupManifest:
        request = TakeBackupInput(
            layout=layout,
            node="c-2",
            name=name,
            backup_id=name,
            trigger=MANUAL,
            storage=ref,
            keep_for=keep_for,
        )
        return ActivityEnvironment().run(take, request)

    kept = taken("kept", "7d")
    assert kept.expires_at == kept.finished_at + timedelta(days=7)
    forever = taken("forever", None)
    assert forever.expires_at is None
    stored = FilesystemStorage(tmp_path, "default", "c").manifest("kept")
    assert stored.expires_at == kept.expires_at


def test_the_activity_deletes_and_reports(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path, "default", "c")
    store(storage, "s-corrupted", timedelta(0), payload=b"abc")
    store(storage, "s-good", timedelta(minutes=1))
    store(storage, "s-old", timedelta(days=1))
    damage(storage, "s-corrupted", b"abd")
    request = RetentionInput(
        storage=StorageRef(namespace="default", cluster="c"),
        retention=RetentionSpec(keep_last=1),
    )
    apply = activities_over(ScriptedRuntime(backups_home=tmp_path)).apply_retention
    result = ActivityEnvironment().run(apply, request)
    assert result.newest_good == "s-good" and result.deleted == ["s-old"]
    assert "sha256" in result.unverified["s-corrupted"]
    assert sorted(names(storage)) == ["s-corrupted", "s-good"]
