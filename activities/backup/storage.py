"""Where backups are kept: one interface, a filesystem implementation.

Each backup is an object (`<name>.xbstream.zst`) and a manifest (`<name>.manifest.json`) under
`<root>/<namespace>/<cluster>/`. The object is written under a temporary name and renamed when
complete, and the manifest comes last: whatever a crash leaves behind is never taken for a
backup. An S3-compatible backend is a second implementation of `BackupStorage` (multipart
upload for `open_write`, ranged GETs for `open_read`).
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from pydantic import ValidationError

from api.backup import BackupManifest, StorageRef

OBJECT_SUFFIX = ".xbstream.zst"
MANIFEST_SUFFIX = ".manifest.json"


SYNC_EVERY = 8 << 20  # bytes written between two nudges to write back


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class StorageError(Exception):
    """The storage cannot be used (missing, unreadable, not writable)."""


class BackupNotFound(Exception):
    """No complete backup by that name."""


class BackupStorage(Protocol):
    def check_writable(self) -> None:
        """Raise `StorageError` when a backup could not be written now."""
        ...

    def open_write(self, key: str) -> contextlib.AbstractContextManager[Writer]:
        """Write an object; it exists under `key` only once the block exits without error."""
        ...

    def open_read(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    def size(self, key: str) -> int: ...

    def location(self, key: str) -> str:
        """Where an object is, in words a user can act on (a path, a URL)."""
        ...

    def put_manifest(self, manifest: BackupManifest) -> None: ...

    def manifests(self) -> list[BackupManifest]:
        """Every complete backup, oldest first."""
        ...

    def manifest(self, name: str) -> BackupManifest: ...

    def delete(self, name: str) -> None:
        """Forget a backup: the manifest first, so a half-deleted one is never offered."""
        ...


class FilesystemStorage:
    def __init__(self, root: Path, namespace: str, cluster: str) -> None:
        self.directory = root / namespace / cluster

    def check_writable(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(
                f"cannot create the backup directory {self.directory}: {error}"
            ) from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise StorageError(f"the backup directory {self.directory} is not writable")

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[Writer]:
        self.check_writable()
        final = self.directory / key
        partial = self.directory / f".{key}.partial"
        try:
            with open(partial, "wb") as out:
                paced = _PacedWriter(out)
                yield paced
                paced.finish()
            partial.replace(final)
        finally:
            partial.unlink(missing_ok=True)

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        path = self.directory / key
        if not path.exists():
            raise BackupNotFound(f"the stored object {path} is missing")
        try:
            stream = open(path, "rb")  # noqa: SIM115 (only opening is the storage's failure)
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error}") from None
        with stream:
            yield stream

    def size(self, key: str) -> int:
        return (self.directory / key).stat().st_size

    def location(self, key: str) -> str:
        return str(self.directory / key)

    def put_manifest(self, manifest: BackupManifest) -> None:
        path = self.directory / f"{manifest.name}{MANIFEST_SUFFIX}"
        tmp = path.with_name(f".{path.name}.partial")
        tmp.write_text(manifest.model_dump_json(by_alias=True, indent=2))
        tmp.replace(path)

    def manifests(self) -> list[BackupManifest]:
        if not self.directory.exists():
            return []
        if not os.access(self.directory, os.R_OK | os.X_OK):
            raise StorageError(f"the backup directory {self.directory} is not readable")
        found = []
        for path in self.directory.glob(f"*{MANIFEST_SUFFIX}"):
            try:
                found.append(BackupManifest.model_validate_json(path.read_text()))
            except (OSError, ValidationError):
                continue  # not ours, or damaged: never offered for a restore
        return sorted(found, key=lambda m: (m.finished_at, m.name))

    def manifest(self, name: str) -> BackupManifest:
        path = self.directory / f"{name}{MANIFEST_SUFFIX}"
        try:
            return BackupManifest.model_validate_json(path.read_text())
        except FileNotFoundError:
            names = ", ".join(m.name for m in self.manifests()[-5:]) or "none"
            raise BackupNotFound(
                f"no backup {name!r} in {self.directory} (latest: {names})"
            ) from None
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error}") from None
        except ValidationError as error:
            raise StorageError(f"the manifest {path} is damaged: {error}") from None

    def delete(self, name: str) -> None:
        manifest = self.directory / f"{name}{MANIFEST_SUFFIX}"
        manifest.unlink(missing_ok=True)
        (self.directory / f"{name}{OBJECT_SUFFIX}").unlink(missing_ok=True)


class _PacedWriter:
    """Writes that go to the disk as they come: every `SYNC_EVERY` bytes, the kernel is asked
    to start writing what is dirty and to drop what is already written (without waiting:
    the backup does not slow down for it). A backup then never leaves a gigabyte of dirty
    pages to be flushed at once behind the database's commits, nor pushes the database's
    files out of the page cache. `finish` makes it durable."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.pending = 0

    def write(self, data: bytes, /) -> int:
        written = self.out.write(data)
        self.pending += written
        if self.pending >= SYNC_EVERY:
            self.out.flush()
            os.posix_fadvise(self.out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            self.pending = 0
        return written

    def finish(self) -> None:
        self.out.flush()
        os.fdatasync(self.out.fileno())
        os.posix_fadvise(self.out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def storage_for(ref: StorageRef, default_root: Path) -> BackupStorage:
    """The backend a reference names; a filesystem one without a path uses `default_root`."""
    return FilesystemStorage(
        Path(ref.path) if ref.path else default_root, ref.namespace, ref.cluster
    )
