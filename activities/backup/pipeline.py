"""The backup pipeline: mariabackup's xbstream, scanned on the way, through zstd, into storage,
hashed as it is written; and heartbeats from a thread of their own while tools run."""

import contextlib
import contextvars
import hashlib
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import IO

from temporalio import activity

from activities.backup.storage import StorageError, Writer
from activities.backup.xbstream import XbstreamScanner

BLOCK = 1 << 20
GALERA_INFO = "xtrabackup_galera_info"
BINLOG_INFO = "xtrabackup_binlog_info"
ZSTD = ["zstd", "-q", "-3", "-T1"]  # bench/backup.py runs the same pipeline by hand
# mariabackup and the staging of restores run while the cluster serves: they yield the CPU and
# the disk to mariadbd, and take what is idle (at full speed on an idle machine). zstd, the
# pipeline's slowest stage, runs at normal priority: niced, the platform's own small tasks
# (probes, agents, the worker) would slow every backup down for nothing.
BACKGROUND = ["nice", "-n", "10", "ionice", "-c2", "-n7"]


class Copied:
    def __init__(self) -> None:
        self.scanner = XbstreamScanner({GALERA_INFO, BINLOG_INFO})
        self.streamed = 0
        self.stored = 0
        self.sha256 = ""

    def galera_position(self) -> tuple[str | None, int | None]:
        """uuid and seqno from `xtrabackup_galera_info` ("uuid:seqno domain")."""
        words = (self.scanner.text(GALERA_INFO) or "").split()
        uuid, _, seqno = words[0].partition(":") if words else ("", "", "")
        return uuid or None, int(seqno) if seqno else None

    def gtid(self) -> str | None:
        """From `xtrabackup_binlog_info` ("file position gtid"), when the binlog is on."""
        words = (self.scanner.text(BINLOG_INFO) or "").split()
        return words[2] if len(words) >= 3 else None


def compress(stream: IO[bytes], out: Writer) -> Copied:
    """xbstream -> zstd -> storage. A thread feeds zstd (scanning the stream as it goes); this
    one hashes and stores zstd's output; heartbeats carry the bytes done."""
    copied = Copied()
    digest = hashlib.sha256()
    zstd = subprocess.Popen(ZSTD, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert zstd.stdin is not None and zstd.stdout is not None
    failure: list[BaseException] = []

    def feed() -> None:
        assert zstd.stdin is not None
        try:
            while block := stream.read(BLOCK):
                copied.scanner.feed(block)
                copied.streamed += len(block)
                zstd.stdin.write(block)
        except BaseException as error:  # handed to the main thread
            failure.append(error)
            zstd.kill()
        finally:
            if zstd.stdin and not zstd.stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    zstd.stdin.close()

    feeder = threading.Thread(target=feed, name="backup-feed", daemon=True)
    feeder.start()
    progress = heartbeating(lambda: {"streamed": copied.streamed, "stored": copied.stored})
    try:
        with progress:
            while block := zstd.stdout.read(BLOCK):
                digest.update(block)
                try:
                    out.write(block)
                except OSError as error:
                    raise StorageError(f"writing the backup failed: {error}") from None
                copied.stored += len(block)
    except BaseException:
        zstd.kill()
        raise
    finally:
        feeder.join()
        zstd.wait()
    if failure:
        raise failure[0]
    if zstd.returncode != 0:
        raise RuntimeError(f"zstd failed with exit status {zstd.returncode}")
    copied.sha256 = digest.hexdigest()
    return copied


@contextlib.contextmanager
def heartbeating(details: Callable[[], object], every: float = 5.0) -> Iterator[None]:
    """Heartbeat from a thread of its own while the block runs: a tool may go quiet for a
    while (mariabackup waiting for its locks, a long prepare) without the worker being dead."""
    stop = threading.Event()
    context = contextvars.copy_context()  # the activity's context, for activity.heartbeat

    def beat() -> None:
        while not stop.wait(every):
            activity.heartbeat(details())

    thread = threading.Thread(target=context.run, args=(beat,), name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
