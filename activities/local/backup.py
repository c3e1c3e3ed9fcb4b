"""mariabackup on a local node: the hot backup stream, and the restore of a stored one into a
staging directory beside the data directory (so the final move is a rename on one filesystem).
"""

import contextlib
import getpass
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from activities.backup.pipeline import BACKGROUND
from activities.local.paths import NodePaths

STAGING_PREFIX = "data.restore-"
RESTORED_MARKER = ".mysqlops-restored-from"
GALERA_INFO = "xtrabackup_galera_info"
_GALERA_INFO = re.compile(r"^([0-9a-f-]{36}):(-?\d+)")


def tool_version() -> str:
    result = subprocess.run(["mariabackup", "--version"], capture_output=True, text=True)
    match = re.search(r"server (\S+)", result.stdout + result.stderr)
    return match.group(1) if match else "unknown"


@contextlib.contextmanager
def backup_stream(paths: NodePaths) -> Iterator[IO[bytes]]:
    """A hot backup of a running node as an xbstream on a pipe. Leaving the block waits for
    mariabackup and raises with its own words if it failed; an error inside the block (the
    reader gave up) stops mariabackup first."""
    log = paths.root / "backup.log"
    scratch = paths.root / "backup.tmp"
    shutil.rmtree(scratch, ignore_errors=True)  # mariabackup's own scratch space, never data
    scratch.mkdir()
    with open(log, "wb") as errors:
        process = subprocess.Popen(
            [
                *BACKGROUND,
                "mariabackup",
                f"--defaults-file={paths.config}",
                "--backup",
                "--stream=xbstream",
                "--galera-info",
                f"--target-dir={scratch}",
                f"--socket={paths.socket}",
                f"--user={getpass.getuser()}",
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
        )
    assert process.stdout is not None
    try:
        yield process.stdout
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        process.stdout.close()
    if process.wait() != 0:
        raise RuntimeError(f"mariabackup failed (exit {process.returncode}): {_errors(log)}")
    shutil.rmtree(scratch, ignore_errors=True)


def receive(paths: NodePaths, name: str, chunks: Iterable[bytes]) -> Path:
    """Unpack a stored backup (zstd-compressed xbstream) into a staging directory, prepare it
    (apply the redo log) and write its Galera position as a bootstrappable grastate.dat."""
    staging = paths.root / f"{STAGING_PREFIX}{name}"
    shutil.rmtree(staging, ignore_errors=True)  # an unfinished staging of ours, never data
    staging.mkdir()
    log = paths.root / "restore.log"
    with open(log, "wb") as errors:
        unzip = subprocess.Popen(
            [*BACKGROUND, "zstd", "-dc", "-q"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        unpack = subprocess.Popen(
            [*BACKGROUND, "mbstream", "-x", "-C", str(staging)], stdin=unzip.stdout, stderr=errors
        )
    assert unzip.stdin is not None and unzip.stdout is not None
    unzip.stdout.close()  # mbstream holds it now
    try:
        for chunk in chunks:
            unzip.stdin.write(chunk)
    except BaseException:
        unzip.kill()
        unpack.kill()
        raise
    finally:
        with contextlib.suppress(BrokenPipeError):
            unzip.stdin.close()
        unzip.wait()
        unpack.wait()
    if unzip.returncode != 0 or unpack.returncode != 0:
        raise RuntimeError(f"unpacking the backup failed: {_errors(log)}")
    with open(log, "ab") as errors:
        prepared = subprocess.run(
            [
                *BACKGROUND,
                "mariabackup",
                "--prepare",
                f"--target-dir={staging}",
                "--use-memory=128M",
            ],
            stdout=errors,
            stderr=errors,
            stdin=subprocess.DEVNULL,
        )
    if prepared.returncode != 0:
        raise RuntimeError(f"preparing the backup failed: {_errors(log)}")
    uuid, seqno = galera_info(staging)
    (staging / "grastate.dat").write_text(
        "# GALERA saved state\nversion: 2.1\n"
        f"uuid:    {uuid}\nseqno:   {seqno}\nsafe_to_bootstrap: 1\n"
    )
    (staging / RESTORED_MARKER).write_text(name)
    return staging


def galera_info(directory: Path) -> tuple[str, int]:
    match = _GALERA_INFO.match((directory / GALERA_INFO).read_text())
    if not match:
        raise RuntimeError(f"the backup has no Galera position in {GALERA_INFO}")
    return match.group(1), int(match.group(2))


def install(paths: NodePaths, staging: Path) -> None:
    """Make a prepared staging directory the node's data directory, which must be empty (its
    old content was moved aside). Done already when the data carries the staging's marker."""
    name = staging.name.removeprefix(STAGING_PREFIX)
    marker = paths.data / RESTORED_MARKER
    if not staging.exists() and marker.exists() and marker.read_text() == name:
        return
    if paths.data.exists():
        if any(paths.data.iterdir()):
            raise RuntimeError(f"{paths.data} is not empty: its data must be moved aside first")
        paths.data.rmdir()
    staging.rename(paths.data)


def _errors(log: Path) -> str:
    """The lines of a tool's log that say what went wrong (else its last lines)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    wanted = [line for line in lines if re.search(r"error|failed|cannot|denied", line, re.I)]
    return " | ".join((wanted or lines)[-4:])[-1500:]
