"""Log files that never fill the disk: size-based rotation with a cap on what is kept, and
readers that see across a rotation.

Every log file of the local stack is kept to about `max_bytes` (`MYSQLOPS_LOG_MAX_BYTES`,
default 10 MiB) plus at most `keep` rotated copies (`MYSQLOPS_LOG_KEEP`, default 5) named
`<file>.1` (the newest) to `<file>.<keep>`; the oldest goes. Two ways to rotate:

- a file only its writer holds open (our own Python processes: the worker's and the agents'
  logs) rotates by renaming, in the writer itself: `RotatingLog`, a logging handler;
- a file another process holds open and never reopens (mariadbd's error log, the Temporal dev
  server's output) is copied to `<file>.1` and truncated in place (`rotate_open`, run
  periodically by a `Janitor` thread). Its writer must have opened it for appending
  (O_APPEND, as `fopen(..., "a")` and our `open(..., "ab")` do): its next write then lands at
  the new end, not at its old offset. What it writes between the copy and the truncation (a
  few microseconds) is lost, as with logrotate's copytruncate.

Readers that remember a place in a log (where a node's run began, to read how it joined) use
absolute offsets: `end_offset` counts the bytes rotation moved out of the file (kept in the
sidecar `<file>.rotation`, `{"rotated_bytes": N}`, locked while a rotation runs), and
`read_since` reads from such an offset through the rotated copies into the current file. An
offset past the end (the file was replaced or truncated by someone else) reads the current file
from its start. `tail` reads the last bytes across the boundary too.
"""

import contextlib
import fcntl
import json
import logging
import logging.handlers
import os
import re
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES_VARIABLE = "MYSQLOPS_LOG_MAX_BYTES"
KEEP_VARIABLE = "MYSQLOPS_LOG_KEEP"
CHECK_VARIABLE = "MYSQLOPS_LOG_CHECK_SECONDS"

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 5
DEFAULT_CHECK_SECONDS = 30.0

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SIZE = re.compile(r"(\d+)\s*([kmg]?)i?b?", re.IGNORECASE)

log = logging.getLogger(__name__)


def parse_size(text: str) -> int:
    """Bytes in `text`: a whole number, optionally with a binary unit (`4096`, `64k`, `10Mi`,
    `1GiB`)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class Limits:
    """How big a log file grows before it rotates, and how many rotated copies are kept."""

    max_bytes: int = DEFAULT_MAX_BYTES
    keep: int = DEFAULT_KEEP

    @property
    def on_disk(self) -> int:
        """About the most one log takes: the current file and its copies (each may pass
        `max_bytes` by what is written before the next check)."""
        return self.max_bytes * (self.keep + 1)


def limits_from_env(environ: Mapping[str, str] | None = None) -> tuple[Limits, list[str]]:
    """The limits `MYSQLOPS_LOG_MAX_BYTES` and `MYSQLOPS_LOG_KEEP` set, and a complaint for
    each value that is not one (the default stands in for it)."""
    env = os.environ if environ is None else environ
    complaints = []
    max_bytes, keep = DEFAULT_MAX_BYTES, DEFAULT_KEEP
    if text := env.get(MAX_BYTES_VARIABLE, "").strip():
        try:
            max_bytes = parse_size(text)
            if max_bytes < 1:
                raise ValueError(text)
        except ValueError:
            max_bytes = DEFAULT_MAX_BYTES
            complaints.append(f"{MAX_BYTES_VARIABLE}={text!r} is not a size; using {max_bytes}")
    if text := env.get(KEEP_VARIABLE, "").strip():
        try:
            keep = int(text)
            if keep < 0:
                raise ValueError(text)
        except ValueError:
            keep = DEFAULT_KEEP
            complaints.append(f"{KEEP_VARIABLE}={text!r} is not a count; using {keep}")
    return Limits(max_bytes, keep), complaints


def limits() -> Limits:
    return limits_from_env()[0]


def check_seconds(environ: Mapping[str, str] | None = None) -> float:
    """How often a `Janitor` looks at its files (`MYSQLOPS_LOG_CHECK_SECONDS`, default 30)."""
    env = os.environ if environ is None else environ
    try:
        seconds = float(env.get(CHECK_VARIABLE, "") or DEFAULT_CHECK_SECONDS)
    except ValueError:
        return DEFAULT_CHECK_SECONDS
    return seconds if seconds > 0 else DEFAULT_CHECK_SECONDS


def rotated(path: Path, number: int) -> Path:
    """The `number`th rotated copy of `path` (1 is the newest)."""
    return path.with_name(f"{path.name}.{number}")


def sidecar(path: Path) -> Path:
    return path.with_name(f"{path.name}.rotation")


# -- rotation ----------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[int]:
    """The bytes rotated out of `path` so far, with its sidecar locked: exclusively for a
    rotation, which creates it, shared for a reader. Without one (never rotated, and no janitor
    looked at it yet): 0, unlocked; readers create nothing."""
    flags = os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY
    try:
        fd = os.open(sidecar(path), flags, 0o600)
    except OSError:
        yield 0
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield _rotated_bytes(fd)
    finally:
        os.close(fd)  # releases the lock


def _rotated_bytes(fd: int) -> int:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        value = json.loads(os.read(fd, 4096) or b"{}").get("rotated_bytes", 0)
    except (ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) and value >= 0 else 0


def _record_rotated(path: Path, total: int) -> None:
    """Called with the sidecar locked exclusively: rewritten in place (it is the lock)."""
    with contextlib.suppress(OSError):
        fd = os.open(sidecar(path), os.O_RDWR)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"rotated_bytes": total}).encode(), 0)
        finally:
            os.close(fd)


def _shift(path: Path, keep: int) -> None:
    """Make room for a new `<path>.1`: the oldest copy goes (and any beyond `keep`, from a
    larger setting before), the others move up by one."""
    number = keep
    while rotated(path, number).exists():
        rotated(path, number).unlink(missing_ok=True)
        number += 1
    for number in range(keep - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            rotated(path, number).rename(rotated(path, number + 1))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def rotate_open(path: Path, limits: Limits) -> bool:
    """Copy-truncate `path` when it passed `limits.max_bytes`: for a file another process
    holds open for appending. Returns whether it rotated.

    Its sidecar is made on the first look, long before a first rotation: from then on readers
    lock it, so none reads half of a rotation."""
    if not path.exists():
        return False
    with contextlib.suppress(OSError):
        os.close(os.open(sidecar(path), os.O_RDONLY | os.O_CREAT, 0o600))
    if _size(path) <= limits.max_bytes:
        return False
    with _locked(path, exclusive=True) as before:
        if _size(path) <= limits.max_bytes:
            return False  # rotated meanwhile by another janitor
        moved = 0
        if limits.keep > 0:
            _shift(path, limits.keep)
            target = rotated(path, 1)
            partial = target.with_name(target.name + ".tmp")
            with open(path, "rb") as source, open(partial, "wb") as copy:
                shutil.copyfileobj(source, copy, 1024 * 1024)
                moved = copy.tell()
            os.truncate(path, 0)
            partial.replace(target)
        else:
            moved = _size(path)
            os.truncate(path, 0)
        _record_rotated(path, before + moved)
    log.debug("log rotated", extra={"file": str(path), "bytes": moved})
    return True


def rotate_closed(path: Path, limits: Limits) -> bool:
    """Rotate `path` by renaming when it passed `limits.max_bytes`: for a file nobody holds
    open now (mariadbd's `--wsrep-recover` log before the next recovery). Returns whether it
    rotated."""
    size = _size(path)
    if size <= limits.max_bytes:
        return False
    with _locked(path, exclusive=True) as before:
        size = _size(path)
        if size <= limits.max_bytes:
            return False
        if limits.keep > 0:
            _shift(path, limits.keep)
            path.rename(rotated(path, 1))
        else:
            path.unlink()
        _record_rotated(path, before + size)
    return True


class Janitor:
    """A daemon thread that copy-truncates files other processes write (`rotate_open`) every
    `interval` seconds, and once at the start."""

    def __init__(self, files: Sequence[Path], limits: Limits, interval: float) -> None:
        self.files, self.limits, self.interval = list(files), limits, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-janitor", daemon=True)

    def start(self) -> "Janitor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def check(self) -> None:
        for path in self.files:
            try:
                rotate_open(path, self.limits)
            except OSError as error:
                log.warning("log not rotated", extra={"file": str(path), "error": str(error)})

    def _run(self) -> None:
        while True:
            self.check()
            if self._stop.wait(self.interval):
                return


class RotatingLog(logging.handlers.RotatingFileHandler):
    """Our own process's log file, rotated by renaming once it passed `limits.max_bytes`.

    The process's stdout and stderr, when they were sent to this same file (as the local stack
    starts the worker and the runtime starts the node agents), follow it: after each rollover
    they point at the new file. What the process writes there directly (a traceback at exit,
    the Temporal core's own warnings) then stays within the kept files, and no renamed file
    stays open."""

    def __init__(self, path: Path, limits: Limits) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path, maxBytes=limits.max_bytes, backupCount=limits.keep, encoding="utf-8")
        self.following = [fd for fd in (1, 2) if _same_file(fd, path)]

    def shouldRollover(self, record: logging.LogRecord) -> int:
        """Whether the file, as long as it is now (whoever wrote it), reached the limit."""
        if self.stream is None:
            self.stream = self._open()
        return int(self.stream.seek(0, os.SEEK_END) >= self.maxBytes)

    def doRollover(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        path = Path(self.baseFilename)
        if self.backupCount > 0:
            _shift(path, self.backupCount)
            with contextlib.suppress(FileNotFoundError):
                path.rename(rotated(path, 1))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.truncate(path, 0)
        self.stream = self._open()
        for fd in self.following:
            os.dup2(self.stream.fileno(), fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        opened, named = os.fstat(fd), path.stat()
    except OSError:
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


# -- reading across a rotation -------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    path: Path
    start: int  # absolute offset of its first byte
    size: int


def _segments(path: Path, rotated_bytes: int) -> list[_Segment]:
    """The rotated copies still on disk, oldest first, and the current file last, each with
    the absolute offset it starts at."""
    older: list[_Segment] = []
    end = rotated_bytes
    number = 1
    while (copy := rotated(path, number)).exists():
        size = _size(copy)
        end -= size
        older.append(_Segment(copy, end, size))
        number += 1
    return [*reversed(older), _Segment(path, rotated_bytes, _size(path))]


def _read(segments: list[_Segment], offset: int) -> bytes:
    chunks = []
    for segment in segments:
        if segment.start + segment.size <= offset and segment is not segments[-1]:
            continue
        try:
            with open(segment.path, "rb") as file:
                file.seek(max(0, offset - segment.start))
                chunks.append(file.read())
        except OSError:
            continue
    return b"".join(chunks)


def end_offset(path: Path) -> int:
    """Where `path` ends now, as an absolute offset: its size plus what rotation moved out."""
    with _locked(path, exclusive=False) as rotated_bytes:
        return rotated_bytes + _size(path)


def read_since(path: Path, offset: int) -> str:
    """What was written to `path` from the absolute `offset` (`end_offset` then) on, as far
    as the kept copies reach; past the end (the file was replaced or cut by someone else), the
    whole current file."""
    with _locked(path, exclusive=False) as rotated_bytes:
        segments = _segments(path, rotated_bytes)
        current = segments[-1]
        if offset > current.start + current.size:
            segments, offset = [current], current.start
        return _read(segments, offset).decode(errors="replace")


def tail(path: Path, size: int) -> str | None:
    """The last `size` bytes written to `path`, across a rotation; None when it does not
    exist."""
    if not path.exists():
        return None
    with _locked(path, exclusive=False) as rotated_bytes:
        segments = _segments(path, rotated_bytes)
        current = segments[-1]
        return _read(segments, current.start + current.size - size).decode(errors="replace")
