"""Local runtime hygiene: the private socket directory, and which process counts as a node's
agent."""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.local.paths import (
    UnsafeDirectory,
    check_private_dir,
    ensure_socket_dir,
    shared_socket_dir,
    socket_path,
)
from activities.local.process import agent_pid

# -- the socket directory in the shared temp directory ---------------------------------------


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private stand-in for /tmp, where the sockets' directory goes."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    return shared


def long_socket(tmp_path: Path) -> Path:
    """The socket of a node too deep in the file system to hold it: it moves to the stand-in."""
    preferred = tmp_path / ("x" * 100) / "mariadbd.sock"
    moved = socket_path(preferred)
    assert moved != preferred
    return moved


def test_socket_dir_is_created_private(tmp_path: Path, temp_dir: Path) -> None:
    socket = long_socket(tmp_path)
    old_umask = os.umask(0o022)
    try:
        ensure_socket_dir(socket)
    finally:
        os.umask(old_umask)
    assert socket.parent == shared_socket_dir()
    assert socket.parent.parent == temp_dir
    info = socket.parent.lstat()
    assert info.st_mode & 0o777 == 0o700
    assert info.st_uid == os.getuid()
    ensure_socket_dir(socket)  # and accepted as it is the next time


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o707, 0o777])
def test_socket_dir_open_to_others_is_refused(tmp_path: Path, temp_dir: Path, mode: int) -> None:
    socket = long_socket(tmp_path)
    socket.parent.mkdir()
    socket.parent.chmod(mode)
    with pytest.raises(UnsafeDirectory) as refused:
        ensure_socket_dir(socket)
    message = str(refused.value)
    assert str(socket.parent) in message
    assert f"mode {mode:04o}" in message
    assert f"uid {os.getuid()}" in message  # the owner
    assert socket.parent.stat().st_mode & 0o777 == mode  # refused, not silently "fixed"


def test_socket_dir_that_is_a_symlink_is_refused(tmp_path: Path, temp_dir: Path) -> None:
    socket = long_socket(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    socket.parent.symlink_to(elsewhere)
    with pytest.raises(UnsafeDirectory, match="symbolic link") as refused:
        ensure_socket_dir(socket)
    assert str(socket.parent) in str(refused.value)


def test_socket_dir_of_another_owner_is_refused(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    check_private_dir(private, os.getuid())
    someone_else = os.getuid() + 4242
    with pytest.raises(UnsafeDirectory, match="owned by someone else") as refused:
        check_private_dir(private, someone_else)
    message = str(refused.value)
    assert str(private) in message and "mode 0700" in message
    assert f"uid {os.getuid()}" in message and f"uid {someone_else}" in message


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory away")
def test_socket_dir_really_owned_by_another_user_is_refused(tmp_path: Path, temp_dir: Path) -> None:
    socket = long_socket(tmp_path)
    socket.parent.mkdir(mode=0o700)
    os.chown(socket.parent, 65534, 65534)
    with pytest.raises(UnsafeDirectory, match="owned by someone else") as refused:
        ensure_socket_dir(socket)
    assert "uid 65534" in str(refused.value)


def test_socket_dirs_of_two_users_do_not_collide() -> None:
    assert shared_socket_dir().name == f"mysqlops-sockets-{os.getuid()}"


# -- which process is a node's agent ---------------------------------------------------------


@pytest.fixture
def sleeper() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def agent_like(node_dir: Path, started: list[subprocess.Popen[bytes]]) -> int:
    """A process whose command line is that of the agent of `node_dir` (it only sleeps)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-m", "workers.agent", str(node_dir)]
    )
    started.append(process)
    return process.pid


def test_agent_is_recognised_by_its_node_directory(
    tmp_path: Path, sleeper: list[subprocess.Popen[bytes]]
) -> None:
    nodes = tmp_path / "nodes"
    pid_file = tmp_path / "agent.pid"
    pid_file.write_text(str(agent_like(nodes / "db-1", sleeper)))
    assert agent_pid(pid_file, nodes / "db-1") == int(pid_file.read_text())
    # the agent of db-10 is not db-1's (whose path is a prefix of it)
    pid_file.write_text(str(agent_like(nodes / "db-10", sleeper)))
    assert agent_pid(pid_file, nodes / "db-1") is None
    # a recycled pid: a live process that is no agent at all
    pid_file.write_text(str(os.getpid()))
    assert agent_pid(pid_file, nodes / "db-1") is None
    # a process that ended
    gone = sleeper[0]
    gone.kill()
    gone.wait()
    pid_file.write_text(str(gone.pid))
    assert agent_pid(pid_file, nodes / "db-1") is None
