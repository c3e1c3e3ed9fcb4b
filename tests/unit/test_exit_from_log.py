"""How a node's last run ended, judged from its error log when no agent recorded it."""

from pathlib import Path

from activities.local.process import exit_kind_from_log, last_run_errors
from api.states import ExitKind

START = (
    "2026-11-25  0:19:26 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision "
    "5843d84 server_uid uPe1K2tJ5eRrES9= as process 8918\n"
)
READY = "2026-11-25  0:19:27 0 [Note] mariadbd: ready for connections.\n"
STOPPED = "2026-11-25  0:20:01 0 [Note] mariadbd: Shutdown complete\n"
FAILED = "2026-11-25  0:21:00 0 [ERROR] InnoDB: Unable to lock ./ibdata1 error: 11\n"


def judge(tmp_path: Path, text: str) -> ExitKind | None:
    log = tmp_path / "error.log"
    log.write_text(text)
    found = exit_kind_from_log(log)
    return found[0] if found else None


def test_a_clean_shutdown_is_the_last_word(tmp_path: Path) -> None:
    assert judge(tmp_path, START + READY + STOPPED) is ExitKind.CLEAN


def test_a_run_that_never_shut_down_ended_uncleanly(tmp_path: Path) -> None:
    assert judge(tmp_path, START + READY + STOPPED + START + READY) is ExitKind.UNCLEAN


def test_a_start_that_failed_before_ready_is_unclean_even_after_a_clean_run(
    tmp_path: Path,
) -> None:
    assert judge(tmp_path, START + READY + STOPPED + START + FAILED) is ExitKind.UNCLEAN


def test_an_empty_log_says_nothing(tmp_path: Path) -> None:
    assert judge(tmp_path, "") is None


def test_the_errors_of_the_last_run_are_the_evidence(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    full = "2026-11-25  0:22:00 0 [ERROR] WSREP: gcache: 28 (No space left on device)\n"
    generic = "2026-11-25  0:22:00 0 [ERROR] Aborting\n"
    log.write_text(START + FAILED + START + full + generic + generic)
    assert last_run_errors(log) == "WSREP: gcache: 28 (No space left on device) | Aborting"
    log.write_text(START + READY)
    assert last_run_errors(log) is None
