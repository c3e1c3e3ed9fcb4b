"""The whole local stack as `make up` runs it (dev server with its SQLite file, worker process,
agents, HAProxy), and the Temporal server killed in the middle of a repair."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pymysql
import pytest_asyncio

from activities.local.paths import ClusterPaths
from activities.local.process import START_MARKER, alive, read_pid
from tests.integration.conftest import (
    app_credentials,
    cluster_status,
    mysqlops,
    node_named,
    until_status,
)
from workers.sandbox import random_port_base, stop_everything

CLUSTER = """\
apiVersion: mysqlops.io/v1alpha1
kind: MySQLCluster
metadata:
  name: st
spec:
  replicas: 3
  mysql:
    innodbBufferPoolSize: 64Mi
  health:
    probeIntervalSeconds: 0.5
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest_asyncio.fixture
async def stack(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """Environment of a private stack; afterwards `mysqlops down`, then whatever is left of
    it (found through its own pid files only) is killed."""
    home = tmp_path / "home"
    env = {
        **os.environ,
        "MYSQLOPS_HOME": str(home),
        "MYSQLOPS_PORT_BASE": str(random_port_base()),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "MYSQLOPS_UI_PORT": str(free_port()),
    }
    yield env
    await mysqlops(env, "down", timeout=180)
    stop_everything(home)  # the nodes, agents, worker and dev server it recorded


status = functools.partial(cluster_status, name="st")
until = functools.partial(until_status, name="st")


async def test_temporal_killed_in_the_middle_of_a_repair_resumes_it_once(
    stack: dict[str, str], tmp_path: Path
) -> None:
    resource = tmp_path / "st.yaml"
    resource.write_text(CLUSTER)
    started = await mysqlops(stack, "up", "-f", str(resource), "--timeout", "300")
    assert started.returncode == 0, started.stderr
    before = await status(stack)
    victim = next(n for n in before["nodes"] if n["name"] != before["writer"])
    home = Path(stack["MYSQLOPS_HOME"])
    error_log = ClusterPaths.of(home, "default", "st").node(victim["name"]).error_log
    starts_before = error_log.read_text().count(START_MARKER)

    os.kill(victim["pid"], signal.SIGKILL)
    await until(
        stack,
        lambda s: (s["currentTask"] or {}).get("kind") == "remediate",
        timeout=30,
    )
    server = read_pid(home / "temporal" / "temporal.pid")
    assert server is not None and alive(server)
    os.kill(server, signal.SIGKILL)  # mid-repair: no clean shutdown of the server
    await asyncio.sleep(3)
    # `up` again: the dev server restarts on its SQLite file; the rest is left as it is.
    again = await mysqlops(stack, "up", "-f", str(resource), "--timeout", "300")
    assert again.returncode == 0, again.stderr

    healed = await status(stack)
    repairs = [r for r in healed["remediations"] if r["nodes"] == [victim["name"]]]
    assert [(r["fault"], r["outcome"]) for r in repairs] == [("NodeCrashed", "Succeeded")]
    assert node_named(healed, victim["name"])["pid"] not in (None, victim["pid"])
    restarts = error_log.read_text().count(START_MARKER) - starts_before
    assert restarts == 1  # the interrupted repair went on; its start was not repeated

    stopped = await mysqlops(stack, "down", timeout=180)
    assert stopped.returncode == 0, stopped.stderr
    for entry in healed["nodes"]:
        assert not alive(entry["pid"]), f"{entry['name']} still runs after down"

    # `up` after `down`: the cluster comes back from its nodes' positions, in the same
    # history (the state UUID its nodes stored at shutdown), and nobody needs a full copy.
    paths = ClusterPaths.of(home, "default", "st")
    stored = {
        line.split(":", 1)[1].strip()
        for n in healed["nodes"]
        for line in paths.node(n["name"]).grastate.read_text().splitlines()
        if line.startswith("uuid:")
    }
    assert len(stored) == 1
    offsets = {n["name"]: paths.node(n["name"]).error_log.stat().st_size for n in healed["nodes"]}
    back = await mysqlops(stack, "up", "-f", str(resource), "--timeout", "300")
    assert back.returncode == 0, back.stderr
    after = await until(stack, lambda s: s["state"] == "Green" and not s["currentTask"], 120)
    for entry in after["nodes"]:
        with open(paths.node(entry["name"]).error_log, "rb") as text:
            text.seek(offsets[entry["name"]])
            since = text.read().decode(errors="replace")
        assert "Proceeding with SST" not in since, entry["name"]
    c = await app_credentials(stack, "st")
    with (
        pymysql.connect(
            host=c["host"], port=c["port"], user=c["user"], password=c["password"]
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_state_uuid'")
        assert cur.fetchone() == ("wsrep_cluster_state_uuid", stored.pop())
