"""The standard `mysqld_exporter` (Debian's `prometheus-mysqld-exporter`), one per node, started
by the node's agent: MySQL and Galera status come from it, not from code of ours.

It logs in as the monitoring user over the node's socket; the password is in a file only the
owner reads (`exporter.cnf` beside the node's my.cnf), never in argv or the environment.
"""

import ctypes
import os
import signal
import subprocess
from pathlib import Path

BINARY = "prometheus-mysqld-exporter"
_PR_SET_PDEATHSIG = 1


def write_config(path: Path, user: str, password: str, socket: Path) -> None:
    """The exporter's client settings, readable by the owner only; rewritten only on change."""
    text = f"[client]\nuser={user}\npassword={password}\nsocket={socket}\n"
    if path.exists() and path.read_text() == text:
        return
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    partial.replace(path)


def command(config: Path, host: str, port: int) -> list[str]:
    return [BINARY, f"--config.my-cnf={config}", f"--web.listen-address={host}:{port}"]


def _die_with_parent() -> None:
    """In the child: SIGTERM when the agent ends, even by SIGKILL (no orphan holds the port)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start(config: Path, host: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command(config, host, port),
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # only a prctl between fork and exec
        )


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
