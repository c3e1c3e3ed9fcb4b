"""The `stack` the scenarios share (tests/k8s_e2e/stack.py builds it): one simulated
Kubernetes cluster with the real watcher and worker, reporting to the session's Temporal dev
server.

`make k8s-e2e` runs these scenarios alone and prints one line per scenario with its outcome
and time (the hook below); they are also part of `make test`.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.k8s_e2e.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, temporal_env: WorkflowEnvironment
) -> Iterator[Stack]:
    temporal = temporal_env.client.service_client.config.target_host
    with running_stack(tmp_path_factory.mktemp("k8s-e2e"), temporal) as stack:
        yield stack


# -- one line per scenario ----------------------------------------------------------------------

_LINES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        name = report.nodeid.rsplit("::", 1)[-1].removeprefix("test_").replace("_", " ")
        _LINES.append(f"{report.outcome.upper():7} {report.duration:7.1f} s  {name}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _LINES:
        terminalreporter.section("Kubernetes scenarios")
        for line in _LINES:
            terminalreporter.write_line(line)
