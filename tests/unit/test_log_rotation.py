"""Log files stay bounded however much is written: size-based rotation with a cap on the
copies kept, for our own processes' logs (renamed) and for files another process holds open
(copy-truncated); and the readers of mariadbd's error log still find a run's exit and join
across a rotation (activities/local/logfiles.py)."""

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from activities.local import logfiles
from activities.local.logfiles import Limits
from activities.local.process import exit_kind_from_log, last_run_errors
from api.states import ExitKind, JoinMethod
from workers import logs
from workers.agent.node import run_join

ROOT = Path(__file__).parents[2]
SMALL = Limits(max_bytes=4096, keep=2)

START = (
    "2026-11-25  0:19:26 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision "
    "5843d84 server_uid uPe1K2tJ5eRrES9= as process 8918\n"
)
READY = "2026-11-25  0:19:27 0 [Note] mariadbd: ready for connections.\n"
STOPPED = "2026-11-25  0:20:01 0 [Note] mariadbd: Shutdown complete\n"
NOISE = "2026-11-25  0:19:30 0 [Note] WSREP: a line of routine chatter, again and again\n"
JOIN = (
    "2026-11-25  0:19:28 2 [Note] WSREP: State transfer required:\n"
    "\tGroup state: 6d9a5c3e-ca7f-11f0-8a7b-2b0c8f6f2d1e:1200\n"
    "\tLocal state: 6d9a5c3e-ca7f-11f0-8a7b-2b0c8f6f2d1e:1100\n"
    "2026-11-25  0:19:28 0 [Note] WSREP: Member 1.0 (ex-1) requested state transfer from "
    "'*any*'. Selected 0.0 (ex-0)(SYNCED) as donor.\n"
    "2026-11-25  0:19:29 0 [Note] WSREP: Receiving IST: 100 writesets, seqnos 1101-1200\n"
)


def on_disk(path: Path) -> dict[str, int]:
    """The sizes of `path` and its rotated copies."""
    return {p.name: p.stat().st_size for p in path.parent.glob(f"{path.name}*")}


def kept(path: Path) -> list[str]:
    return sorted(
        p.name for p in path.parent.glob(f"{path.name}*") if not p.name.endswith(".rotation")
    )


# -- limits -------------------------------------------------------------------------------


def test_limits_come_from_the_environment() -> None:
    assert logfiles.limits_from_env({}) == (Limits(10 * 1024 * 1024, 5), [])
    env = {logfiles.MAX_BYTES_VARIABLE: "64k", logfiles.KEEP_VARIABLE: "2"}
    assert logfiles.limits_from_env(env) == (Limits(65536, 2), [])
    assert logfiles.parse_size("10Mi") == logfiles.parse_size("10MiB") == 10 * 1024 * 1024
    assert logfiles.parse_size("4096") == 4096


def test_bad_limits_fall_back_to_the_defaults_and_say_so() -> None:
    env = {logfiles.MAX_BYTES_VARIABLE: "lots", logfiles.KEEP_VARIABLE: "-1"}
    found, complaints = logfiles.limits_from_env(env)
    assert found == Limits()
    assert len(complaints) == 2 and "lots" in complaints[0] and "-1" in complaints[1]


# -- a file another process holds open: copy-truncate -----------------------------------------


def test_copy_truncate_bounds_a_file_its_writer_keeps_open(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    # The writer appends (O_APPEND, as mariadbd's fopen "a" and our "ab"), and never reopens.
    with open(path, "ab", buffering=0) as writer:
        for i in range(2000):  # 2000 lines of ~40 bytes: 20 times the cap
            writer.write(f"line {i:05d} {'x' * 28}\n".encode())
            if i % 25 == 0:
                logfiles.rotate_open(path, SMALL)
    sizes = on_disk(path)
    assert kept(path) == ["error.log", "error.log.1", "error.log.2"]
    # Each file passes the cap by at most what was written between two checks (25 lines).
    assert sum(sizes.values()) <= SMALL.on_disk + 3 * 25 * 40 + 100
    current = path.read_bytes()
    assert b"\0" not in current  # the writer's next write went to the new end, not a hole
    assert current.endswith(b"line 01999 " + b"x" * 28 + b"\n")
    # Nothing between the kept files is missing: they are consecutive.
    text = logfiles.rotated(path, 2).read_text() + logfiles.rotated(path, 1).read_text()
    numbers = [int(line.split()[1]) for line in (text + current.decode()).splitlines()]
    assert numbers == list(range(numbers[0], 2000))


def test_keep_zero_only_truncates(tmp_path: Path) -> None:
    path = tmp_path / "temporal.log"
    path.write_text("x" * 5000)
    assert logfiles.rotate_open(path, Limits(max_bytes=4096, keep=0))
    assert kept(path) == ["temporal.log"] and path.stat().st_size == 0
    assert logfiles.end_offset(path) == 5000


def test_a_small_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    path.write_text("short\n")
    assert not logfiles.rotate_open(path, SMALL)
    assert not logfiles.rotate_open(tmp_path / "missing.log", SMALL)
    assert kept(path) == ["error.log"] and path.read_text() == "short\n"


def test_copies_beyond_a_lowered_keep_go(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    for number in range(1, 6):  # kept under MYSQLOPS_LOG_KEEP=5
        logfiles.rotated(path, number).write_text(f"copy {number}\n")
    path.write_text("x" * 5000)
    assert logfiles.rotate_open(path, SMALL)  # now keep=2
    assert kept(path) == ["error.log", "error.log.1", "error.log.2"]
    assert logfiles.rotated(path, 2).read_text() == "copy 1\n"


def test_the_janitor_rotates_periodically(tmp_path: Path) -> None:
    path = tmp_path / "temporal.log"
    janitor = logfiles.Janitor([path, tmp_path / "not-yet.log"], SMALL, interval=0.01).start()
    try:
        with open(path, "ab", buffering=0) as writer:
            for i in range(400):
                writer.write(f"{i:04d} {'y' * 95}\n".encode())
                time.sleep(0.0005)
        deadline = time.monotonic() + 5
        while path.stat().st_size > SMALL.max_bytes and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        janitor.stop()
    assert kept(path) == ["temporal.log", "temporal.log.1", "temporal.log.2"]
    assert sum(on_disk(path).values()) < SMALL.on_disk * 2
    assert not (tmp_path / "not-yet.log").exists()


def test_a_closed_file_rotates_by_renaming(tmp_path: Path) -> None:
    path = tmp_path / "wsrep-recover.log"
    for run in range(6):
        logfiles.rotate_closed(path, Limits(max_bytes=100, keep=2))
        with open(path, "a") as log:
            log.write(f"run {run} " + "z" * 120 + "\n")
    assert kept(path) == ["wsrep-recover.log", "wsrep-recover.log.1", "wsrep-recover.log.2"]
    assert path.read_text().startswith("run 5 ")
    assert logfiles.rotated(path, 2).read_text().startswith("run 3 ")


# -- readers across a rotation ------------------------------------------------------------------


def test_offsets_are_absolute_across_rotations(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    limits = Limits(max_bytes=1000, keep=3)
    with open(path, "ab", buffering=0) as mariadbd:
        mariadbd.write(NOISE.encode() * 30)
        logfiles.rotate_open(path, limits)
        began = logfiles.end_offset(path)  # where the agent says this run began
        assert began == 30 * len(NOISE) and path.stat().st_size == 0
        mariadbd.write((START + JOIN).encode())
        mariadbd.write(NOISE.encode() * 20)
        logfiles.rotate_open(path, limits)  # the join lines are in error.log.1 now
        mariadbd.write(READY.encode())
    since = logfiles.read_since(path, began)
    assert since == START + JOIN + NOISE * 20 + READY
    assert logfiles.end_offset(path) == began + len(since)
    # The agent's reader finds the join from the offset the run recorded.
    state = tmp_path / "agent-state.json"
    state.write_text(json.dumps({"log_offset": logfiles.end_offset(path)}))
    assert run_join(path, state) is None  # a run that began after the join
    state.write_text(json.dumps({"log_offset": began}))
    join = run_join(path, state)
    assert join is not None and join.method is JoinMethod.IST and "ex-0" in join.detail


def test_an_offset_past_the_end_reads_the_whole_current_file(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    path.write_text(START + READY)  # replaced by someone else: shorter than the offset
    assert logfiles.read_since(path, 10_000) == START + READY
    assert logfiles.read_since(tmp_path / "missing.log", 0) == ""


def test_the_exit_is_still_judged_after_a_truncation(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    limits = Limits(max_bytes=len(START + READY) - 1, keep=1)
    with open(path, "ab", buffering=0) as mariadbd:
        mariadbd.write((START + READY).encode())
        assert logfiles.rotate_open(path, limits)
        # Killed right after: the current file is empty, the run's start is in error.log.1.
        assert path.stat().st_size == 0
        assert exit_kind_from_log(path) == (
            ExitKind.UNCLEAN,
            "no clean shutdown in the error log",
        )
        mariadbd.write(STOPPED.encode())  # or it shut down cleanly after all
    found = exit_kind_from_log(path)
    assert found is not None and found[0] is ExitKind.CLEAN


def test_the_last_runs_errors_span_a_truncation(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    full = "2026-11-25  0:22:00 0 [ERROR] WSREP: gcache: 28 (No space left on device)\n"
    generic = "2026-11-25  0:22:00 0 [ERROR] Aborting\n"
    with open(path, "ab", buffering=0) as mariadbd:
        mariadbd.write((START + READY + STOPPED + START + full).encode())
        logfiles.rotate_open(path, Limits(max_bytes=10, keep=1))
        mariadbd.write(generic.encode())
    assert last_run_errors(path) == "WSREP: gcache: 28 (No space left on device) | Aborting"


# -- our own processes: a rotating handler, stdout and stderr following it ----------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers, config = root.level, root.handlers[:], structlog.get_config()
    yield
    logs.configure(stream=io.StringIO())  # closes our file and stops a janitor
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(**config)


@pytest.mark.usefixtures("restore_logging")
def test_configure_with_a_file_rotates_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logfiles.MAX_BYTES_VARIABLE, "4096")
    monkeypatch.setenv(logfiles.KEEP_VARIABLE, "2")
    path = tmp_path / "worker.log"
    monkeypatch.setenv(logs.FILE_VARIABLE, str(path))
    logs.configure()
    assert logs.FILE_VARIABLE not in os.environ  # not inherited by what this process starts
    log = structlog.get_logger("test")
    for i in range(500):
        log.info("event", number=i, padding="p" * 40)
    assert kept(path) == ["worker.log", "worker.log.1", "worker.log.2"]
    assert sum(on_disk(path).values()) <= SMALL.on_disk + 3 * 200
    last = [json.loads(line) for line in path.read_text().splitlines()][-1]
    assert last["event"] == "event" and last["number"] == 499


CHATTY = """
import logging, sys, structlog
from workers import logs
from workers.agent.node import run_join
logs.configure()
log = structlog.get_logger("chatty")
for i in range(300):
    log.info("event", number=i, padding="p" * 40)
    print(f"stdout {i}", flush=True)
    sys.stderr.write(f"stderr {i}\\n")
"""


def test_a_spawned_process_output_follows_its_rotated_log(tmp_path: Path) -> None:
    """As the stack starts the worker: stdout and stderr appended to the file that
    MYSQLOPS_LOG_FILE names; after each rotation they go to the new file."""
    path = tmp_path / "worker.log"
    env = {
        **os.environ,
        logs.FILE_VARIABLE: str(path),
        logfiles.MAX_BYTES_VARIABLE: "4096",
        logfiles.KEEP_VARIABLE: "2",
    }
    with open(path, "ab") as out:
        subprocess.run(
            [sys.executable, "-c", CHATTY],
            stdout=out,
            stderr=out,
            cwd=ROOT,
            env=env,
            timeout=60,
            check=True,
        )
    assert kept(path) == ["worker.log", "worker.log.1", "worker.log.2"]
    # About 3 x 4 KiB: nothing went on growing in a renamed file.
    assert sum(on_disk(path).values()) <= SMALL.on_disk + 3 * 200
    current = path.read_text()
    assert current.endswith("stdout 299\nstderr 299\n")
    assert '"number": 299' in current
