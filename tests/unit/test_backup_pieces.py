"""The pure pieces of backups: schedules and retention as the user writes them, the xbstream
scanner, the filesystem storage's promises, and the choice of the node to back up.
(What retention deletes: tests/unit/test_retention.py.)"""

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from activities.backup.pipeline import compress
from activities.backup.storage import BackupNotFound, FilesystemStorage, StorageError, verify
from activities.backup.xbstream import XbstreamError, XbstreamScanner, xbstream_of
from api.backup import BackupManifest, BackupSpec
from api.cluster import MySQLClusterSpec
from api.messages import NodeMemory
from api.states import NodeState
from workflows.backups import choose_backup_node, generated_name
from workflows.errors import TaskFailed

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize("cron", ["0 3 * * *", "*/15 * * * *", "0 0 1,15 * 1-5", "@daily"])
def test_schedules_users_write_are_accepted(cron: str) -> None:
    assert BackupSpec(schedule=cron).schedule == cron


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 3 * *", "five fields"),
        ("61 * * * *", "from 0 to 59"),
        ("0 24 * * *", "from 0 to 23"),
        ("*/0 * * * *", "step cannot be 0"),
        ("0 3 * * mon", "cannot read"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(cron: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        MySQLClusterSpec.model_validate({"backup": {"schedule": cron}})


@pytest.mark.parametrize(
    "retention", [{"keepLast": 0}, {"maxAge": "7 days"}, {"maxAge": "0d"}, {"keepLast": -1}]
)
def test_bad_retention_is_refused(retention: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MySQLClusterSpec.model_validate({"backup": {"retention": retention}})


def test_storage_path_must_be_absolute() -> None:
    with pytest.raises(ValidationError, match="absolute"):
        MySQLClusterSpec.model_validate({"backup": {"storage": {"filesystem": {"path": "bk"}}}})


def manifest(name: str, age: timedelta) -> BackupManifest:
    return BackupManifest(
        name=name,
        namespace="default",
        cluster="c",
        node="c-2",
        started_at=NOW - age,
        finished_at=NOW - age,
        stored_bytes=1,
        streamed_bytes=1,
        sha256="0" * 64,
        object=f"{name}.xbstream.zst",
    )


def test_the_scanner_finds_small_files_however_the_stream_is_cut() -> None:
    stream = xbstream_of(
        {
            "ibdata1": bytes(range(256)) * 1000,
            "xtrabackup_galera_info": b"6f1c2a52-0000-0000-0000-000000000001:42 0\n",
            "xtrabackup_binlog_info": b"mariadb-bin.000001\t385\t0-1-7\n",
        },
        chunk=1000,
    )
    for step in (1, 7, 4096, len(stream)):
        scanner = XbstreamScanner({"xtrabackup_galera_info", "xtrabackup_binlog_info"})
        for offset in range(0, len(stream), step):
            scanner.feed(stream[offset : offset + step])
        assert scanner.text("xtrabackup_galera_info") == (
            "6f1c2a52-0000-0000-0000-000000000001:42 0\n"
        )
        assert scanner.text("xtrabackup_binlog_info") == "mariadb-bin.000001\t385\t0-1-7\n"
        assert "ibdata1" in scanner.ended and "ibdata1" not in scanner.files


def test_the_scanner_refuses_what_is_not_an_xbstream() -> None:
    with pytest.raises(XbstreamError):
        XbstreamScanner(set()).feed(b"PK\x03\x04 a zip file, not a backup stream")


def test_an_object_exists_only_once_completely_written(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path, "default", "c")
    with pytest.raises(RuntimeError), storage.open_write("b.xbstream.zst") as out:
        out.write(b"half")
        raise RuntimeError("the backup tool died")
    assert list((tmp_path / "default" / "c").iterdir()) == []
    with storage.open_write("b.xbstream.zst") as out:
        out.write(b"whole")
    assert storage.size("b.xbstream.zst") == 5


def test_only_backups_with_a_manifest_are_offered(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path, "default", "c")
    with storage.open_write("orphan.xbstream.zst") as out:
        out.write(b"no manifest: never completed")
    (tmp_path / "default" / "c" / "junk.manifest.json").write_text("{not json")
    good = manifest("good", timedelta(0))
    storage.put_manifest(good)
    assert [m.name for m in storage.manifests()] == ["good"]
    with pytest.raises(BackupNotFound, match="latest: good"):
        storage.manifest("orphan")
    storage.delete("good")
    assert storage.manifests() == []


def test_a_storage_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot create the backup directory"):
        FilesystemStorage(blocker, "default", "c").check_writable()


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a default-mode file is world-readable (0644)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_backups_are_private_to_the_worker_user(tmp_path: Path, umask_022: None) -> None:
    """A backup is a copy of the whole database: nobody else may read it, or list them."""
    root = tmp_path / "new" / "backups"  # the storage creates its root too
    storage = FilesystemStorage(root, "default", "c")
    stream = io.BytesIO(xbstream_of({"xtrabackup_galera_info": b"u:1 0\n", "ibdata1": b"x" * 9}))
    with storage.open_write("b.xbstream.zst") as out:
        copied = compress(stream, out)
        partial = storage.directory / ".b.xbstream.zst.partial"
        assert mode(partial) == 0o600, "readable while it is being written"
    done = manifest("b", timedelta(0)).model_copy(
        update={"stored_bytes": copied.stored, "sha256": copied.sha256}
    )
    storage.put_manifest(done)
    verify(storage, done)
    assert mode(storage.directory / "b.xbstream.zst") == 0o600
    assert mode(storage.directory / "b.manifest.json") == 0o600
    for directory in (tmp_path / "new", root, root / "default", storage.directory):
        assert mode(directory) == 0o700, directory


def test_a_leftover_partial_file_does_not_lend_its_mode(tmp_path: Path, umask_022: None) -> None:
    storage = FilesystemStorage(tmp_path, "default", "c")
    storage.check_writable()
    leftover = storage.directory / ".b.xbstream.zst.partial"
    leftover.write_bytes(b"a crashed attempt")
    leftover.chmod(0o644)
    with storage.open_write("b.xbstream.zst") as out:
        out.write(b"whole")
    assert mode(storage.directory / "b.xbstream.zst") == 0o600


def test_directories_of_an_older_version_are_closed(tmp_path: Path, umask_022: None) -> None:
    (tmp_path / "default" / "c").mkdir(parents=True, mode=0o755)
    storage = FilesystemStorage(tmp_path, "default", "c")
    assert storage.manifests() == []
    assert mode(tmp_path / "default") == mode(storage.directory) == 0o700


def test_a_storage_owned_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    storage = FilesystemStorage(root, "default", "c")
    monkeypatch.setattr(os, "geteuid", lambda: root.stat().st_uid + 1)  # we are someone else
    for use in (storage.check_writable, storage.manifests):
        with pytest.raises(StorageError, match=f"{root} is owned by .*not by"):
            use()
    with pytest.raises(StorageError, match="owned by"), storage.open_write("b.xbstream.zst"):
        pass
    assert list(root.iterdir()) == [], "wrote into a directory of another user"


def test_digests_match_what_was_written(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path, "default", "c")
    with storage.open_write("b.xbstream.zst") as out:
        out.write(b"payload")
    with storage.open_read("b.xbstream.zst") as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == hashlib.sha256(b"payload").hexdigest()


def node(name: str, ordinal: int, state: NodeState = NodeState.GREEN) -> NodeMemory:
    return NodeMemory(name=name, ordinal=ordinal, state=state)


def test_backups_come_from_a_green_node_that_is_not_the_writer() -> None:
    nodes = [node("c-0", 0), node("c-1", 1), node("c-2", 2, NodeState.YELLOW)]
    assert choose_backup_node(nodes, writer="c-0") == "c-1"
    assert choose_backup_node(nodes, writer="c-1") == "c-0"


def test_the_writer_is_backed_up_only_when_it_is_the_one_green_node() -> None:
    nodes = [node("c-0", 0), node("c-1", 1, NodeState.RED_UNCLEAN)]
    assert choose_backup_node(nodes, writer="c-0") == "c-0"
    with pytest.raises(TaskFailed, match="no Green node"):
        choose_backup_node([node("c-0", 0, NodeState.UNKNOWN)], writer=None)


def test_backups_requested_in_the_same_second_get_names_of_their_own() -> None:
    stem = "bk-20261129-183706"
    assert generated_name(stem, {"bk-20261129-183705"}) == stem
    assert generated_name(stem, {stem}) == f"{stem}-2"
    assert generated_name(stem, {stem, f"{stem}-2"}) == f"{stem}-3"
