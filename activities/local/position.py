"""A stopped node's committed Galera position, read the way `galera_recovery` reads it, and the
start arguments that carry it, so that a restarted node asks for the writes it missed (IST)
instead of a full copy, and a bootstrap keeps the cluster's history (its state UUID)."""

import json
import os
import re
import subprocess
from pathlib import Path

from activities.local import logfiles
from activities.local.paths import NodePaths, ensure_socket_dir
from activities.local.process import last_run_errors
from galera.position import GaleraPosition, parse_grastate, recovered_position

RECOVER_TIMEOUT = 600  # InnoDB crash recovery of a large node can take minutes


def has_data(datadir: Path) -> bool:
    return datadir.is_dir() and any(datadir.iterdir())


def read_grastate(path: Path) -> GaleraPosition:
    try:
        return parse_grastate(path.read_text())
    except OSError:
        return GaleraPosition()


def stored_position(paths: NodePaths) -> GaleraPosition:
    """grastate.dat; after an unclean stop (seqno -1 there) `mariadbd --wsrep-recover`, which
    reads the position InnoDB committed. The node must not be running.

    A recovered position is remembered beside the data (`recovered-position.json`) for as long
    as the same data directory has not run since: the workflow reads positions to choose what
    to do, then the node's agent needs the same one to start it, and a recovery replays
    InnoDB's redo log, which after heavy writes takes a second or more."""
    if not has_data(paths.data):
        return GaleraPosition(empty=True)
    position = read_grastate(paths.grastate)
    if position.seqno != -1:
        return position
    if (remembered := _remembered(paths)) is not None:
        return remembered
    ensure_socket_dir(paths.socket)  # a recovery binds it
    logfiles.rotate_closed(paths.recover_log, logfiles.limits())  # every recovery appends
    result = subprocess.run(
        [
            "mariadbd",
            f"--defaults-file={paths.config}",
            "--wsrep-recover",
            f"--log-error={paths.recover_log}",
        ],
        capture_output=True,
        text=True,
        timeout=RECOVER_TIMEOUT,
    )
    try:
        found = recovered_position(paths.recover_log.read_text(errors="replace"))
    except OSError:
        found = None
    if result.returncode != 0 or found is None:
        errors = last_run_errors(paths.recover_log) or f"exit status {result.returncode}"
        return position.model_copy(
            update={"unreadable": f"--wsrep-recover found no position: {errors}"}
        )
    uuid, seqno = found
    recovered = GaleraPosition(
        uuid=uuid, seqno=seqno, safe_to_bootstrap=position.safe_to_bootstrap, recovered=True
    )
    _remember(paths, recovered)
    return recovered


def _data_identity(paths: NodePaths) -> list[object]:
    """What changes when the data directory runs or is replaced: its inode, the position in
    grastate.dat (marking it safe to bootstrap does not count), and the time of the error log,
    which every run writes."""
    try:
        logged = paths.error_log.stat().st_mtime_ns
    except OSError:
        logged = 0
    stated = read_grastate(paths.grastate)
    return [os.stat(paths.data).st_ino, stated.uuid, stated.seqno, logged]


def _remember(paths: NodePaths, position: GaleraPosition) -> None:
    record = {"identity": _data_identity(paths), "position": position.model_dump(mode="json")}
    tmp = paths.recovered_position.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(paths.recovered_position)


def _remembered(paths: NodePaths) -> GaleraPosition | None:
    try:
        record = json.loads(paths.recovered_position.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("identity") != _data_identity(paths):
        return None
    return GaleraPosition.model_validate(record.get("position"))


def set_safe_to_bootstrap(grastate: Path) -> None:
    """Mark the chosen node bootstrappable; the caller has proven it is the most advanced."""
    if not grastate.exists():
        return
    text = grastate.read_text()
    if "safe_to_bootstrap: 1" in text:
        return
    grastate.write_text(re.sub(r"safe_to_bootstrap:\s*0", "safe_to_bootstrap: 1", text))
