"""A joiner that dies during its state transfer, or aborts right after it, must cost the two
other nodes nothing: they keep their Primary component and the writer endpoint keeps committing.

It once cost them everything: with the group's install timeout (by default half the inactive
timeout) no longer than its suspect timeout, the two survivors could still disagree about the
dead joiner when the install timer expired; each then declared the other inactive, both ended
alone in a non-Primary component, and Galera does not re-form a Primary without every member of
the last one, the dead joiner included (docs/design.md, the group timeouts)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pytest
import pytest_asyncio

from activities.local.paths import ClusterPaths, NodePaths
from activities.local.process import alive, cmdline, mariadbd_pid
from tests.integration.conftest import (
    app_credentials,
    cluster_status,
    cluster_yaml,
    mysqlops,
    node_named,
    until_status,
)

pytestmark = pytest.mark.usefixtures("worker")

NAME = "jab"
CLUSTER = cluster_yaml(
    NAME,
    "  remediation:\n    enabled: false  # the test alone starts and kills the joiner\n"
    "  deletionPolicy: Delete\n",
)
WATCH_SECONDS = 15.0  # after the joiner's death, both others must stay Primary and serve
# A commit waits until the survivors drop the dead member from the group view: about 3 s with
# our timeouts. A lost Primary component is no gap but the end of every commit.
LONGEST_WRITE_GAP = 8.0
UNKNOWN_OPTION = "mysqlops_test_no_such_option = 1\n"

status = functools.partial(cluster_status, name=NAME)
until = functools.partial(until_status, name=NAME)


def idle_and_green(current: dict[str, Any]) -> bool:
    return (
        current["state"] == "Green"
        and current["currentTask"] is None
        and not current["queuedTasks"]
        and all(n["state"] == "Green" for n in current["nodes"])
    )


def connect(host: str, port: int, credentials: dict[str, Any]) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=host,
        port=port,
        user=credentials["user"],
        password=credentials["password"],
        connect_timeout=2,
        read_timeout=5,
        write_timeout=5,
        autocommit=True,
    )


def wsrep_status(node: dict[str, Any], credentials: dict[str, Any], name: str) -> str:
    """One wsrep status variable of a node, asked over SQL; why not, when it does not answer."""
    try:
        with connect(node["host"], node["port"], credentials) as conn, conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
            row = cur.fetchone()
    except pymysql.err.MySQLError as error:
        return f"unanswered: {error}"
    return str(row[1]) if row else "absent"


def provider_options(node: dict[str, Any], credentials: dict[str, Any]) -> dict[str, str]:
    """The Galera options a node runs with, its effective values (defaults included)."""
    with connect(node["host"], node["port"], credentials) as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES LIKE 'wsrep_provider_options'")
        row = cur.fetchone()
    assert row is not None
    pairs = (item.partition("=") for item in str(row[1]).split(";"))
    return {key.strip(): value.strip() for key, _, value in pairs if key.strip()}


def seconds(period: str) -> float:
    """An ISO 8601 duration as Galera prints its timeouts (PT4S, PT0.5S, PT1M30S)."""
    match = re.fullmatch(r"PT(?:([\d.]+)H)?(?:([\d.]+)M)?(?:([\d.]+)S)?", period)
    assert match is not None, period
    hours, minutes, secs = (float(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


class Writer(threading.Thread):
    """Small inserts through the writer endpoint, one after the other, as fast as they commit;
    the time of every acknowledged commit and of every error."""

    def __init__(self, credentials: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.credentials = credentials
        self.acks: list[float] = []
        self.errors: list[tuple[float, str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        c = self.credentials
        conn: pymysql.Connection[Any] | None = None
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = connect(c["host"], c["port"], c)
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO jab.acks (at) VALUES (NOW(6))")
                self.acks.append(time.monotonic())
            except pymysql.err.MySQLError as error:
                self.errors.append((time.monotonic(), str(error)))
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                time.sleep(0.2)
        if conn is not None:
            conn.close()

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time without an acknowledged commit within [start, end]."""
        times = [start, *(t for t in self.acks if start < t < end), end]
        return max(b - a for a, b in itertools.pairwise(times))

    def errors_between(self, start: float, end: float) -> list[str]:
        return [text for at, text in self.errors if start <= at <= end]


@dataclass
class Watch:
    """wsrep_cluster_status of the other nodes, polled in the background."""

    nodes: list[dict[str, Any]]
    credentials: dict[str, Any]
    samples: list[tuple[float, str, str]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for node in self.nodes:
                seen = await asyncio.to_thread(
                    wsrep_status, node, self.credentials, "wsrep_cluster_status"
                )
                self.samples.append((time.monotonic(), node["name"], seen))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.25)

    def not_primary(self, since: float) -> list[tuple[float, str, str]]:
        """Answers other than Primary (a node out of the Primary component still answers; a
        poll that timed out on a busy machine is no evidence either way)."""
        return [
            (round(t - since, 2), n, s)
            for t, n, s in self.samples
            if t >= since and s != "Primary" and not s.startswith("unanswered")
        ]

    def answers(self, name: str, start: float, end: float) -> int:
        return sum(
            1
            for t, n, s in self.samples
            if n == name and start <= t <= end and not s.startswith("unanswered")
        )


@contextlib.asynccontextmanager
async def watching(
    nodes: list[dict[str, Any]], credentials: dict[str, Any]
) -> AsyncIterator[Watch]:
    watch = Watch(nodes, credentials)
    stop = asyncio.Event()
    task = asyncio.create_task(watch.run(stop))
    try:
        yield watch
    finally:
        stop.set()
        await task


def sst_joiner_scripts(data: Path) -> list[int]:
    """Pids of the mariabackup SST script receiving into `data` (the joiner's side)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            line = cmdline(int(entry.name))
            if "wsrep_sst_mariabackup" in line and "joiner" in line and str(data) in line:
                found.append(int(entry.name))
    return found


async def poll(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.1)


def error_log_since(paths: NodePaths, offset: int) -> str:
    with open(paths.error_log, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def group_lines(paths: NodePaths, offset: int) -> str:
    """The group-communication lines of a node's error log since `offset`, for a failure."""
    words = ("install timer", "no install message", "NON_PRIM", "suspect", "inactive", "view(")
    text = error_log_since(paths, offset)
    return "\n".join(line for line in text.splitlines() if any(w in line for w in words))


@pytest_asyncio.fixture(scope="module")
async def credentials(
    cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Any]]:
    resource = tmp_path_factory.mktemp(NAME) / "cluster.yaml"
    resource.write_text(CLUSTER)
    applied = await mysqlops(cli_env, "apply", "-f", str(resource), "--wait", "--timeout", "300")
    assert applied.returncode == 0, applied.stderr
    data = await app_credentials(cli_env, NAME)
    with connect(data["host"], data["port"], data) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS jab")
        cur.execute("CREATE TABLE IF NOT EXISTS jab.acks (id SERIAL PRIMARY KEY, at DATETIME(6))")
    yield data
    deleted = await mysqlops(cli_env, "delete", NAME, "--wait", "--timeout", "180")
    assert deleted.returncode == 0, deleted.stderr


async def one_node_down(
    env: dict[str, str], nodes_dir: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A stopped node and the two others, Green: the one the test before killed, else a
    non-writer killed now."""
    current = await until(env, lambda s: s["currentTask"] is None, timeout=60)
    down = [n for n in current["nodes"] if n["state"] != "Green"]
    if not down:
        victim = next(n for n in reversed(current["nodes"]) if n["name"] != current["writer"])
        os.kill(victim["pid"], signal.SIGKILL)
    else:
        victim = down[0]
    current = await until(
        env,
        lambda s: (
            node_named(s, victim["name"])["state"] in ("Red-clean", "Red-unclean")
            and sum(n["state"] == "Green" for n in s["nodes"]) == 2
        ),
        timeout=60,
    )
    paths = NodePaths(nodes_dir / victim["name"])
    assert mariadbd_pid(paths.pid, paths.agent_state) is None
    return victim, [n for n in current["nodes"] if n["name"] != victim["name"]]


@pytest.fixture
def nodes_dir(local_home: Path) -> Path:
    return ClusterPaths.of(local_home, "default", NAME).root / "nodes"


async def test_the_survivors_agree_on_a_dead_member_before_their_install_timer(
    cli_env: dict[str, str], credentials: dict[str, Any]
) -> None:
    """The rule behind the tests below, on the running nodes: a survivor suspects a dead member
    at most a suspect timeout and one inactivity check after its last message, which may reach
    it only as the membership round starts; the round's install timer must leave room to agree
    on the new view after that. And four keepalives may be missed before a suspicion."""
    for node in (await status(cli_env))["nodes"]:
        options = await asyncio.to_thread(provider_options, node, credentials)
        evs = {k: v for k, v in options.items() if k.startswith("evs.")}
        suspect = seconds(options["evs.suspect_timeout"])
        check = seconds(options["evs.inactive_check_period"])
        install = seconds(options["evs.install_timeout"])
        assert install - (suspect + check) >= 1.0, (node["name"], evs)
        assert suspect >= 4 * seconds(options["evs.keepalive_period"]), (node["name"], evs)


async def test_a_joiner_killed_in_the_middle_of_its_sst_costs_the_others_nothing(
    cli_env: dict[str, str], credentials: dict[str, Any], nodes_dir: Path
) -> None:
    before = await until(cli_env, idle_and_green, timeout=60)
    victim = next(n for n in reversed(before["nodes"]) if n["name"] != before["writer"])
    others = [n for n in before["nodes"] if n["name"] != victim["name"]]
    paths = NodePaths(nodes_dir / victim["name"])
    offsets = {n["name"]: (nodes_dir / n["name"] / "error.log").stat().st_size for n in others}
    writer = Writer(credentials)
    writer.start()
    try:
        async with watching(others, credentials) as watch:
            began = time.monotonic()
            ordered = await mysqlops(
                cli_env,
                "force-action",
                NAME,
                "reprovision",
                "--node",
                victim["name"],
                "--force",
                "--reason",
                "test: a full SST, to be killed in the middle",
            )
            assert ordered.returncode == 0, ordered.stderr
            # In the middle: the joiner's SST script receives and a donor streams to it.
            await poll(lambda: bool(sst_joiner_scripts(paths.data)), 120, "joiner's SST script")
            donor_states: list[str] = []

            def donor_streams() -> bool:
                donor_states[:] = [
                    wsrep_status(n, credentials, "wsrep_local_state_comment") for n in others
                ]
                return "Donor/Desynced" in donor_states

            await poll(donor_streams, 60, "a donor streaming the SST")
            joiner = mariadbd_pid(paths.pid, paths.agent_state)
            assert joiner is not None and sst_joiner_scripts(paths.data), "SST ended too soon"
            os.kill(joiner, signal.SIGKILL)
            killed_at = time.monotonic()
            await asyncio.sleep(WATCH_SECONDS)
            watched_until = time.monotonic()
    finally:
        writer.stopping.set()
        await asyncio.to_thread(writer.join, 30)

    logs = {n: group_lines(NodePaths(nodes_dir / n), o) for n, o in offsets.items()}
    assert not alive(joiner)
    assert not watch.not_primary(began), (watch.not_primary(began), donor_states, logs)
    for other in others:  # answered all along, not just once or twice
        assert watch.answers(other["name"], killed_at, watched_until) >= WATCH_SECONDS, (
            watch.samples
        )
    assert not writer.errors_between(began, watched_until), writer.errors
    gap = writer.longest_gap(began, watched_until)
    print(f"joiner killed mid-SST (donors: {donor_states}); longest write gap {gap:.2f} s")
    assert gap < LONGEST_WRITE_GAP, (gap, logs)
    for other in others:
        assert wsrep_status(other, credentials, "wsrep_cluster_size") == "2"
    await poll(lambda: not sst_joiner_scripts(paths.data), 60, "the orphaned SST script ended")
    await until(cli_env, lambda s: s["currentTask"] is None and not s["queuedTasks"], timeout=60)


async def test_a_joiner_that_aborts_after_its_sst_costs_the_others_nothing(
    cli_env: dict[str, str], credentials: dict[str, Any], nodes_dir: Path
) -> None:
    """The incident: a my.cnf broken by hand (an unknown option), and the node started by hand
    with an empty data directory. The server reads unknown options only once plugins load,
    after the SST: the joiner takes a whole state transfer, then aborts. (The agent would refuse
    to start it: workers/agent.py checks the configuration first.)"""
    victim, others = await one_node_down(cli_env, nodes_dir)
    paths = NodePaths(nodes_dir / victim["name"])
    config = paths.config.read_text()
    paths.data.rename(paths.root / "data.moved-by-test")  # its own state dir: kept, not deleted
    paths.data.mkdir()
    paths.config.write_text(config + UNKNOWN_OPTION)
    offsets = {n["name"]: (nodes_dir / n["name"] / "error.log").stat().st_size for n in others}
    own_offset = paths.error_log.stat().st_size
    writer = Writer(credentials)
    writer.start()
    joiner: subprocess.Popen[bytes] | None = None
    try:
        async with watching(others, credentials) as watch:
            started_at = time.monotonic()
            with open(paths.root / "by-hand.out", "ab") as out:
                joiner = subprocess.Popen(
                    ["mariadbd", f"--defaults-file={paths.config}"],
                    stdout=out,
                    stderr=out,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            code = await asyncio.to_thread(joiner.wait, 180)
            ended_at = time.monotonic()
            await asyncio.sleep(WATCH_SECONDS)
            watched_until = time.monotonic()
    finally:
        writer.stopping.set()
        await asyncio.to_thread(writer.join, 30)
        if joiner is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(joiner.pid, signal.SIGKILL)  # its SST script too, if it lingers
            joiner.wait()
        paths.config.write_text(config)

    own = error_log_since(paths, own_offset)
    assert code != 0
    assert "unknown variable 'mysqlops_test_no_such_option=1'" in own, own[-3000:]
    assert "SST received" in own or "SST completed on joiner" in own, own[-3000:]  # after it
    logs = {n: group_lines(NodePaths(nodes_dir / n), o) for n, o in offsets.items()}
    assert not watch.not_primary(started_at), (watch.not_primary(started_at), logs)
    for other in others:
        assert watch.answers(other["name"], ended_at, watched_until) >= WATCH_SECONDS, watch.samples
    assert not writer.errors_between(started_at, watched_until), writer.errors
    gap = writer.longest_gap(started_at, watched_until)
    print(
        f"joiner aborted {ended_at - started_at:.1f} s after its start (exit {code}); "
        f"longest write gap {gap:.2f} s"
    )
    assert gap < LONGEST_WRITE_GAP, (gap, logs)
    for other in others:
        assert wsrep_status(other, credentials, "wsrep_cluster_size") == "2"
    assert node_named(await status(cli_env), victim["name"])["state"] != "Green"
