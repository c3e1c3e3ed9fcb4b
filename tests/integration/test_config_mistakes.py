"""Configuration mistakes on a real cluster: refused before any node restarts, and a node whose
own my.cnf is broken goes to a human at once: no restart loop, no SST, nothing set aside."""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from api.messages import UPDATE_APPLY_SPEC, ApplySpecRequest
from api.remediation import Outcome
from tests.integration.conftest import (
    cluster_client,
    cluster_status,
    cluster_yaml,
    mysqlops,
    node_named,
    until_status,
)

pytestmark = pytest.mark.usefixtures("worker")

NAME = "cfg"
CLUSTER = cluster_yaml(NAME, "  remediation:\n    backoffSeconds: 1\n  deletionPolicy: Delete\n")

status = functools.partial(cluster_status, name=NAME)
until = functools.partial(until_status, name=NAME)


@pytest_asyncio.fixture(scope="module")
async def created(
    cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[None]:
    resource = tmp_path_factory.mktemp(NAME) / "cluster.yaml"
    resource.write_text(CLUSTER)
    applied = await mysqlops(cli_env, "apply", "-f", str(resource), "--wait", "--timeout", "300")
    assert applied.returncode == 0, applied.stderr
    yield
    deleted = await mysqlops(cli_env, "delete", NAME, "--wait", "--timeout", "180")
    assert deleted.returncode == 0, deleted.stderr


def pids(current: dict[str, Any]) -> dict[str, int]:
    return {n["name"]: n["pid"] for n in current["nodes"]}


@pytest.mark.usefixtures("created")
async def test_options_the_server_refuses_restart_nothing(cli_env: dict[str, str]) -> None:
    before = await status(cli_env)
    cluster = await cluster_client(cli_env, NAME)
    spec = await cluster.spec()
    # Well-formed for the spec, refused by the server (the default character set is latin1).
    # Sent straight to the workflow, as a watcher would: the workflow asks the server itself.
    bad = spec.model_copy(deep=True)
    bad.mysql.config["collation_server"] = "utf8mb4_general_ci"
    applied = await cluster.command(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=bad))
    assert applied.task_id is not None
    ended = await cluster.wait_for_task(applied.task_id, 60, check=False)
    assert ended.outcome is Outcome.REFUSED, ended
    assert "COLLATION 'utf8mb4_general_ci' is not valid" in ended.error  # the server's words
    after = await status(cli_env)
    assert pids(after) == pids(before)  # no node restarted
    assert after["state"] == "Green"
    # The user puts the spec back: it converges at once, nothing to do.
    restored = await cluster.command(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec))
    assert restored.task_id is not None
    await cluster.wait_for_task(restored.task_id, 60)
    assert pids(await status(cli_env)) == pids(before)


@pytest.mark.usefixtures("created")
async def test_a_node_with_a_broken_my_cnf_goes_to_a_human_without_sst(
    cli_env: dict[str, str], local_home: Path
) -> None:
    before = await status(cli_env)
    victim = next(n for n in before["nodes"] if n["name"] != before["writer"])
    nodes = local_home / "clusters/default" / NAME / "nodes"
    mycnf = nodes / victim["name"] / "my.cnf"
    good = mycnf.read_text()
    logs = {path: path.stat().st_size for path in nodes.glob("*/error.log")}
    mycnf.write_text(good + "no_such_option = 1\n")  # an operator's typo
    try:
        os.kill(victim["pid"], signal.SIGKILL)
        paused = await until(cli_env, lambda s: s["manualIntervention"] is not None, 60)
    finally:
        mycnf.write_text(good)
    intervention = paused["manualIntervention"]
    assert intervention["fault"] == "ConfigError", intervention
    assert "unknown variable 'no_such_option=1'" in intervention["evidence"]
    assert len(paused["remediations"]) <= 1 + len(before["remediations"])  # one try at most
    for log, offset in logs.items():
        with open(log, "rb") as text:
            text.seek(offset)
            since = text.read().decode(errors="replace")
        assert "SST started" not in since, log  # no donor copied anything, no joiner asked
        if log.parent.name == victim["name"]:
            assert "Starting MariaDB" not in since  # the agent never started it
    assert not list(nodes.glob("*/data.aside-*"))  # its data was never moved aside

    # The operator fixed the file: resuming brings the node back by IST.
    resumed = await mysqlops(cli_env, "resume", NAME, "--reason", "my.cnf fixed")
    assert resumed.returncode == 0, resumed.stderr
    started = time.monotonic()
    healed = await until(
        cli_env,
        lambda s: (
            s["state"] == "Green" and s["manualIntervention"] is None and not s["currentTask"]
        ),
        120,
    )
    join = node_named(healed, victim["name"])["lastJoin"]
    assert join is not None and join["method"] == "IST", join
    print(f"resumed: Green again in {time.monotonic() - started:.1f} s by {join['detail']}")
