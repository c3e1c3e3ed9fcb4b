"""Logging: every event, from structlog or the standard library (temporalio's workflow and
activity loggers included), is one line in one format with level, timestamp and event; JSON
when stderr is not a terminal; INFO unless MYSQLOPS_LOG_LEVEL says otherwise."""

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import temporalio.activity
import temporalio.workflow
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workers import logs

ROOT = Path(__file__).parents[2]


@workflow.defn(sandboxed=True)
class Greeter:
    @workflow.run
    async def run(self, name: str) -> str:
        workflow.logger.info("greeting %s", name)
        return f"hello {name}"


def records(text: str) -> list[dict[str, Any]]:
    """Every line is a JSON object (json.loads fails on anything else)."""
    return [json.loads(line) for line in text.splitlines()]


def assert_stamped(record: dict[str, Any]) -> None:
    stamp = datetime.fromisoformat(record["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(stamp.tzinfo) - stamp) < timedelta(minutes=5)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure() changes process-wide state: put it back for the other tests."""
    root = logging.getLogger()
    level = root.level
    config = structlog.get_config()
    on_message = (
        temporalio.workflow.logger.workflow_info_on_message,
        temporalio.activity.logger.activity_info_on_message,
    )
    yield
    for handler in root.handlers[:]:
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            root.removeHandler(handler)
    root.setLevel(level)
    structlog.configure(**config)
    (
        temporalio.workflow.logger.workflow_info_on_message,
        temporalio.activity.logger.activity_info_on_message,
    ) = on_message


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_and_structlog_events_are_json_lines() -> None:
    out = io.StringIO()
    logs.configure(stream=out, json=True)
    logging.getLogger("temporalio.activity").info(
        "took %d s", 3, extra={"temporal_activity": {"activity_id": "7"}}
    )
    structlog.get_logger("workers.agent").info("reported", state="Green", sequence=4)
    logging.getLogger("somewhere").debug("below the level")
    structlog.get_logger("workers.agent").debug("below the level")

    first, second = records(out.getvalue())
    assert first["event"] == "took 3 s"
    assert first["level"] == "info"
    assert first["logger"] == "temporalio.activity"
    assert first["temporal_activity"] == {"activity_id": "7"}
    assert second["event"] == "reported"
    assert second["level"] == "info"
    assert second["logger"] == "workers.agent"
    assert (second["state"], second["sequence"]) == ("Green", 4)
    for record in (first, second):
        assert_stamped(record)


@pytest.mark.usefixtures("restore_logging")
def test_console_rendering_for_a_terminal() -> None:
    out = io.StringIO()
    logs.configure(stream=out, json=False)
    logging.getLogger("temporalio.workflow").warning("task %s failed", "t-1")
    line = out.getvalue()
    assert line.count("\n") == 1 and not line.startswith("{")
    assert "task t-1 failed" in line and "warning" in line and "temporalio.workflow" in line


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("value", "level"), [("debug", 10), ("WARNING", 30), ("25", 25)])
def test_level_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, level: int
) -> None:
    monkeypatch.setenv(logs.LEVEL_VARIABLE, value)
    logs.configure(stream=io.StringIO())
    assert logging.getLogger().level == level


@pytest.mark.usefixtures("restore_logging")
def test_an_unknown_level_falls_back_to_info_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logs.LEVEL_VARIABLE, "chatty")
    out = io.StringIO()
    logs.configure(stream=out, json=True)
    assert logging.getLogger().level == logging.INFO
    (record,) = records(out.getvalue())
    assert record["level"] == "warning" and "chatty" in record["event"]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a new interpreter whose stderr is a pipe, not a terminal."""
    environ = {k: v for k, v in os.environ.items() if k != logs.LEVEL_VARIABLE} | env
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


PROGRAM = """
import logging, structlog
from workers import logs
logs.configure()
logging.getLogger("temporalio.workflow").info("task %s started", "t-1")
structlog.get_logger().warning("worker stopped", address="127.0.0.1:7233")
logging.getLogger("x").debug("debug line")
"""


def test_a_process_writes_json_lines_to_stderr_at_info() -> None:
    result = run_python(PROGRAM)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    first, second = records(result.stderr)
    assert (first["event"], first["level"], first["logger"]) == (
        "task t-1 started",
        "info",
        "temporalio.workflow",
    )
    assert (second["event"], second["level"], second["address"]) == (
        "worker stopped",
        "warning",
        "127.0.0.1:7233",
    )
    assert_stamped(first)
    assert_stamped(second)


def test_mysqlops_log_level_changes_the_level() -> None:
    quiet = run_python(PROGRAM, MYSQLOPS_LOG_LEVEL="warning")
    assert [r["event"] for r in records(quiet.stderr)] == ["worker stopped"]
    chatty = run_python(PROGRAM, MYSQLOPS_LOG_LEVEL="DEBUG")
    assert [r["event"] for r in records(chatty.stderr)] == [
        "task t-1 started",
        "worker stopped",
        "debug line",
    ]


@pytest.mark.usefixtures("restore_logging")
async def test_workflow_logger_lines_from_a_sandboxed_workflow(
    temporal_env: WorkflowEnvironment,
) -> None:
    out = io.StringIO()
    logs.configure(stream=out, json=True)
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    workflow_id = f"greeter-{uuid.uuid4().hex[:8]}"
    # The sandbox imports this module again: structlog (which imports rich, which draws a
    # random number at import) comes from outside, as the workflow modules' imports do.
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("structlog", "rich")
    )
    async with Worker(
        temporal_env.client, task_queue=queue, workflows=[Greeter], workflow_runner=runner
    ):
        result = await temporal_env.client.execute_workflow(
            Greeter.run, "world", id=workflow_id, task_queue=queue
        )
    assert result == "hello world"
    (line,) = [r for r in records(out.getvalue()) if r["logger"] == "temporalio.workflow"]
    # The message is what the workflow wrote; Temporal's details are fields, not a suffix.
    assert line["event"] == "greeting world"
    assert line["level"] == "info"
    assert line["temporal_workflow"]["workflow_id"] == workflow_id
    assert line["temporal_workflow"]["workflow_type"] == "Greeter"
    assert_stamped(line)
