"""Facts about local processes: liveness, suspension, and how mariadbd last ended."""

import json
import os
import time
from pathlib import Path

from activities.local import logfiles
from api.states import ExitKind

_LOG_TAIL = 16384


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _proc_stat(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None


def alive(pid: int | None) -> bool:
    """Whether `pid` runs (a zombie, already exited but not reaped, does not count)."""
    if pid is None:
        return False
    stat = _proc_stat(pid)
    return stat is not None and stat.rsplit(")", 1)[1].split()[0] != "Z"


def suspended(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def argv(pid: int) -> list[str]:
    """The command line of `pid`, argument by argument ([] when it is gone). A process caught
    in the middle of its exec (as just after `Popen` returned) shows an empty one for a moment:
    it is read again until it appears."""
    for _ in range(40):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return []
        if raw or not alive(pid) or not _has_program(pid):
            break  # a kernel thread has none
        time.sleep(0.005)
    args = raw.split(b"\0")
    if args and not args[-1]:
        args.pop()  # the terminating NUL
    return [arg.decode(errors="replace") for arg in args]


def _has_program(pid: int) -> bool:
    try:
        os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return True


AGENT_MODULE = "workers.agent"


def is_agent_of(pid: int, node_dir: Path) -> bool:
    """Whether `pid` is alive and is the node agent of `node_dir` (`python -m workers.agent
    NODE_DIR`): a recycled pid, or the agent of another node, does not count."""
    args = argv(pid)
    for i in range(len(args) - 2):
        if args[i : i + 2] == ["-m", AGENT_MODULE]:
            return alive(pid) and args[i + 2] == str(node_dir)
    return False


def agent_pid(pid_file: Path, node_dir: Path) -> int | None:
    """The live agent of the node in `node_dir`, as its pid file records it."""
    pid = read_pid(pid_file)
    return pid if pid is not None and is_agent_of(pid, node_dir) else None


def running_pid(pid_file: Path, needle: str) -> int | None:
    """The pid recorded in `pid_file` if that process is alive and its command line has `needle`."""
    pid = read_pid(pid_file)
    if pid is not None and alive(pid) and needle in cmdline(pid):
        return pid
    return None


def exit_kind_from_returncode(code: int) -> tuple[ExitKind, str]:
    if code == 0:
        return ExitKind.CLEAN, "exit status 0"
    if code < 0:
        import signal

        return ExitKind.UNCLEAN, f"killed by {signal.Signals(-code).name}"
    return ExitKind.UNCLEAN, f"exit status {code}"


def _tail(error_log: Path) -> str | None:
    """The end of the log, across a rotation (a copy-truncate may have just emptied it)."""
    try:
        return logfiles.tail(error_log, _LOG_TAIL)
    except OSError:
        return None


START_MARKER = "[Note] Starting MariaDB"  # "... source revision ... as process <pid>"


def last_run_errors(error_log: Path, limit: int = 4) -> str | None:
    """The first `limit` distinct `[ERROR]` lines of the last run, joined: evidence for a
    human and for the diagnosis. The first ones tell the cause (e.g. errno 28 while creating
    a file); the ones after it are its consequences ("Plugin 'InnoDB' ... failed", "Aborting")."""
    tail = _tail(error_log) or ""
    run = tail[max(tail.rfind(START_MARKER), 0) :]
    errors: list[str] = []
    for line in run.splitlines():
        if "[ERROR]" in line:
            text = line.split("[ERROR]", 1)[1].strip()[:200]
            if text not in errors:
                errors.append(text)
    return " | ".join(errors[:limit]) or None


def exit_kind_from_log(error_log: Path) -> tuple[ExitKind, str] | None:
    """How the last run ended, judged by the error log: a clean shutdown ends with its marker."""
    tail = _tail(error_log)
    if tail is None:
        return None
    last_start = max(tail.rfind(START_MARKER), tail.rfind("ready for connections"))
    last_stop = tail.rfind("Shutdown complete")
    if last_start < 0 and last_stop < 0:
        return None
    if last_stop > last_start:
        return ExitKind.CLEAN, "clean shutdown recorded in the error log"
    return ExitKind.UNCLEAN, "no clean shutdown in the error log"


def read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    tmp.replace(path)


def mariadbd_pid(pid_file: Path, agent_state: Path) -> int | None:
    """A node's running mariadbd. Its own pid file appears only once it has joined (after an
    SST), so the agent's record of the child it started counts too."""
    if (pid := running_pid(pid_file, "mariadbd")) is not None:
        return pid
    state = read_json(agent_state) or {}
    recorded = state.get("pid")
    if state.get("running") and isinstance(recorded, int) and alive(recorded):
        return recorded if "mariadbd" in cmdline(recorded) else None
    return None
