"""Logging for every mysqlops process (worker, node agent, CLI and the local stack it runs).

`configure()` is called once, first thing in each process's `main()`, never at import time:
workflow modules are re-imported by the Temporal sandbox, and a library must not take over a
process's logging. It makes structlog and the standard library write the same lines to stderr:
one JSON object per event when stderr is not a terminal (log files, CI), coloured console lines
otherwise; each with `timestamp` (UTC, ISO 8601), `level`, `logger` and `event`. Standard-library
records (temporalio's `workflow.logger` and `activity.logger`, other libraries) pass through
structlog's `ProcessorFormatter`; the `extra` they carry, such as Temporal's `temporal_workflow`
and `temporal_activity` dicts, become fields instead of being appended to the message.

The level is INFO unless `MYSQLOPS_LOG_LEVEL` (a name such as `debug` or a number) says otherwise.

Files (activities/local/logfiles.py): with `file` (or `MYSQLOPS_LOG_FILE`) the lines go to that
file instead, as JSON, rotated by size (`MYSQLOPS_LOG_MAX_BYTES`, `MYSQLOPS_LOG_KEEP`); the
process's stdout and stderr follow the file when they were sent to it. `rotate` (or
`MYSQLOPS_LOG_ROTATE`, paths separated by `:`) names files other processes write, which this
one copy-truncates to the same limits every `MYSQLOPS_LOG_CHECK_SECONDS` (30). Both variables
are for this process only: `configure()` removes them from its environment, so that a process
it starts (a node agent) does not take over its files.
"""

import logging
import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import structlog
import temporalio.activity
import temporalio.workflow
from structlog.typing import Processor

from activities.local import logfiles

LEVEL_VARIABLE = "MYSQLOPS_LOG_LEVEL"
FILE_VARIABLE = "MYSQLOPS_LOG_FILE"
ROTATE_VARIABLE = "MYSQLOPS_LOG_ROTATE"

_janitor: logfiles.Janitor | None = None

# The attributes every LogRecord has (plus what formatters add): anything else came in `extra`.
_RECORD_KEYS = frozenset(
    [*logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__, "message", "asctime"]
)


def _level(value: str | int | None) -> tuple[int, str | None]:
    """The level for `value` (default: the environment's, else INFO), and a complaint when
    `value` is not a level."""
    if value is None:
        value = os.environ.get(LEVEL_VARIABLE, "").strip() or logging.INFO
    if isinstance(value, int):
        return value, None
    if value.isdigit():
        return int(value), None
    level = logging.getLevelNamesMapping().get(value.upper())
    if level is None:
        return logging.INFO, f"unknown log level {value!r} in {LEVEL_VARIABLE}; using INFO"
    return level, None


def _record_extras(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Copy what a standard-library record carries in `extra` into the event."""
    record: logging.LogRecord | None = event_dict.get("_record")
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _RECORD_KEYS and not key.startswith("_"):
                event_dict.setdefault(key, value)
    return event_dict


def configure(
    level: str | int | None = None,
    *,
    stream: TextIO | None = None,
    json: bool | None = None,
    file: Path | None = None,
    rotate: Sequence[Path] | None = None,
) -> None:
    """Route structlog and standard-library logging to `stream` (default stderr) at `level`
    (default `MYSQLOPS_LOG_LEVEL`, else INFO), as JSON lines unless the stream is a terminal
    (`json` forces either); or, with `file` (default `MYSQLOPS_LOG_FILE`), to that rotated
    file as JSON lines. Keep the files in `rotate` (default `MYSQLOPS_LOG_ROTATE`) bounded.
    Calling it again replaces the previous configuration."""
    global _janitor
    named = os.environ.pop(FILE_VARIABLE, "").strip()
    listed = os.environ.pop(ROTATE_VARIABLE, "").strip()
    file = file if file is not None else Path(named) if named else None
    if rotate is None:
        rotate = [Path(p) for p in listed.split(os.pathsep) if p]
    limits, complaints = logfiles.limits_from_env()
    number, complaint = _level(level)
    complaints += [complaint] if complaint else []

    handler: logging.Handler
    if file is not None:
        handler = logfiles.RotatingLog(file, limits)
        json = True if json is None else json
    else:
        stream = stream if stream is not None else sys.stderr
        if json is None:
            json = not (hasattr(stream, "isatty") and stream.isatty())
        handler = logging.StreamHandler(stream)

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[Processor] = (
        [
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            structlog.processors.JSONRenderer(),
        ]
        if json
        else [structlog.dev.ConsoleRenderer()]
    )
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, _record_extras],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        if isinstance(old, logfiles.RotatingLog):
            old.close()
    root.addHandler(handler)
    root.setLevel(number)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )

    # Temporal's adapters append a dict of workflow/activity details to every message by default;
    # the same details are in the record's extra (`temporal_workflow`, `temporal_activity`), which
    # become fields above.
    temporalio.workflow.logger.workflow_info_on_message = False
    temporalio.activity.logger.activity_info_on_message = False

    if _janitor is not None:
        _janitor.stop()
        _janitor = None
    if rotate:
        _janitor = logfiles.Janitor(rotate, limits, logfiles.check_seconds()).start()

    for text in complaints:
        logging.getLogger(__name__).warning(text)
