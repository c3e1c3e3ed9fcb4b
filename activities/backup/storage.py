"""Where backups are kept: one interface, a filesystem implementation.

Each backup is an object (`<name>.xbstream.zst`) and a manifest (`<name>.manifest.json`) under
`<root>/<namespace>/<cluster>/`. The object is written under a temporary name and renamed when
complete, and the manifest comes last: whatever a crash leaves behind is never taken for a
backup. An S3-compatible backend is a second implementation of `BackupStorage` (multipart
upload for `open_write`, ranged GETs for `open_read`).

The objects are copies of the whole database: every file the filesystem storage creates is
created private (0600), every directory 0700, whatever the umask; and a storage directory
owned by another user is refused, since that user could read or replace the backups.
`verify` is the one check that a stored object is what its manifest says (restores and
retention both use it).
"""

import contextlib
import hashlib
import os
import pwd
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from pydantic import ValidationError

from api.backup import BackupManifest, StorageRef

OBJECT_SUFFIX = ".xbstream.zst"
MANIFEST_SUFFIX = ".manifest.json"


SYNC_EVERY = 8 << 20  # bytes written between two nudges to write back
READ_BLOCK = 1 << 20  # bytes read at a time when verifying
FILE_MODE = 0o600  # objects and manifests: only the worker's user reads them
DIRECTORY_MODE = 0o700


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
    """`<root>/<namespace>/<cluster>/`. The root may exist (a mounted volume) but must then be
    owned by the worker's user; what the storage creates (the root included) is 0700, and
    its own directories of an older version are made 0700 when found looser."""

    def __init__(self, root: Path, namespace: str, cluster: str) -> None:
        self.root = root
        self.directory = root / namespace / cluster

    def check_writable(self) -> None:
        self._check_owners()
        try:
            _make_private_directories(self.directory)
        except OSError as error:
            raise StorageError(
                f"cannot create the backup directory {self.directory}: {error}"
            ) from None
        self._check_owners()
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise StorageError(f"the backup directory {self.directory} is not writable")

    def _check_owners(self) -> None:
        """Refuse a root, or a directory of ours, owned by another user: that user could read
        every backup, or replace one before it is restored. Our own directories left open by
        an older version are closed (nothing is copied through them meanwhile)."""
        for path in (self.root, self.directory.parent, self.directory):
            try:
                facts = path.stat()  # a link's target is what holds the backups
            except (FileNotFoundError, NotADirectoryError):
                return  # created by check_writable, private (or mkdir says what is wrong)
            except OSError as error:
                raise StorageError(f"cannot use the backup storage {path}: {error}") from None
            if not stat.S_ISDIR(facts.st_mode):
                return  # mkdir says what is wrong with it
            if facts.st_uid != os.geteuid():
                raise StorageError(
                    f"the backup storage directory {path} is owned by {_user(facts.st_uid)}, "
                    f"not by {_user(os.geteuid())} that mysqlops runs as: another user could "
                    f"read or replace the backups. Give it to {_user(os.geteuid())} "
                    "(chown) or choose another spec.backup.storage.filesystem.path"
                )
            if path != self.root and facts.st_mode & 0o077:
                with contextlib.suppress(OSError):  # e.g. read-only: listing still works
                    os.chmod(path, DIRECTORY_MODE)

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[Writer]:
        self.check_writable()
        final = self.directory / key
        partial = self.directory / f".{key}.partial"
        try:
            with _create_private(partial) as out:
                paced = _PacedWriter(out)
                yield paced
                paced.finish()
            partial.replace(final)
            _sync_directory(self.directory)
        finally:
            partial.unlink(missing_ok=True)

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        self._check_owners()
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
        self.check_writable()
        path = self.directory / f"{manifest.name}{MANIFEST_SUFFIX}"
        tmp = path.with_name(f".{path.name}.partial")
        try:
            with _create_private(tmp) as out:
                out.write(manifest.model_dump_json(by_alias=True, indent=2).encode())
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(path)
            _sync_directory(self.directory)
        finally:
            tmp.unlink(missing_ok=True)

    def manifests(self) -> list[BackupManifest]:
        self._check_owners()
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
        self._check_owners()
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
        self._check_owners()
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


def _make_private_directories(directory: Path) -> None:
    """`mkdir -p`, each directory created 0700 (Path.mkdir gives the parents the umask's)."""
    missing = []
    path = directory
    while not path.exists():
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIRECTORY_MODE)
        except FileExistsError:
            if not path.is_dir():
                raise
            continue  # another process made it: the owner check that follows judges it


@contextlib.contextmanager
def _create_private(path: Path) -> Iterator[BinaryIO]:
    """A new file, 0600 from its creation (never a leftover's mode, never through a link)."""
    path.unlink(missing_ok=True)  # a crash's leftover, whatever its mode
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(path, flags, FILE_MODE)
    with os.fdopen(descriptor, "wb") as out:
        yield out


def _sync_directory(directory: Path) -> None:
    """The rename itself made durable: a manifest that vanishes in a power cut is a backup
    lost."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _drop_cached(stream: BinaryIO) -> None:
    """Read once: what was read leaves the page cache, the database's pages stay in it."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def verify(
    storage: BackupStorage, manifest: BackupManifest, progress: Callable[[int], None] | None = None
) -> None:
    """The stored object is all there and hashes to the manifest's sha256, or `StorageError`
    (truncated, corrupted, unreadable) / `BackupNotFound` (missing) says what is wrong.
    `progress` gets the bytes hashed so far (for heartbeats): a large object takes minutes."""
    try:
        stored = storage.size(manifest.object)
    except FileNotFoundError:
        raise BackupNotFound(
            f"backup {manifest.name} has no stored object ({storage.location(manifest.object)} "
            "is missing)"
        ) from None
    except OSError as error:
        raise StorageError(f"cannot read backup {manifest.name}: {error}") from None
    if stored != manifest.stored_bytes:
        raise StorageError(
            f"backup {manifest.name} is truncated or damaged: {stored} bytes stored, "
            f"its manifest says {manifest.stored_bytes}"
        )
    digest = hashlib.sha256()
    hashed = 0
    try:
        with storage.open_read(manifest.object) as stream:
            while block := stream.read(READ_BLOCK):
                digest.update(block)
                hashed += len(block)
                if progress is not None:
                    progress(hashed)
                if hashed % SYNC_EVERY < len(block):
                    _drop_cached(stream)
    except OSError as error:
        raise StorageError(f"cannot read backup {manifest.name}: {error}") from None
    if digest.hexdigest() != manifest.sha256:
        raise StorageError(
            f"backup {manifest.name} is corrupted: sha256 {digest.hexdigest()} does "
            f"not match its manifest's {manifest.sha256}"
        )


def storage_for(ref: StorageRef, default_root: Path) -> BackupStorage:
    """The backend a reference names; a filesystem one without a path uses `default_root`."""
    return FilesystemStorage(
        Path(ref.path) if ref.path else default_root, ref.namespace, ref.cluster
    )
