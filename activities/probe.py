"""SQL probes of a node's Galera status, with short timeouts. Blocking: run them in threads."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import pymysql

from api.cluster import NodeFacts

STATUS_SQL = (
    "SHOW GLOBAL STATUS WHERE Variable_name IN ("
    "'wsrep_local_state_comment', 'wsrep_cluster_status', 'wsrep_ready', "
    "'wsrep_last_committed', 'wsrep_cluster_size')"
)


@dataclass(frozen=True)
class Target:
    """Where and as whom to probe: TCP (host, port) or a unix socket."""

    user: str
    password: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    port: int = 3306
    unix_socket: str | None = None


def _describe(error: Exception) -> str:
    text = str(error)
    if "refused" in text or "No such file" in text:
        return "connection refused"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return "timed out"
    return text[:200]


def _connect(target: Target, timeout: float) -> pymysql.Connection[pymysql.cursors.Cursor]:
    return pymysql.connect(
        host=target.host,
        port=target.port,
        unix_socket=target.unix_socket,
        user=target.user,
        password=target.password,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
    )


def _facts(conn: pymysql.Connection[pymysql.cursors.Cursor]) -> NodeFacts:
    with conn.cursor() as cursor:
        cursor.execute(STATUS_SQL)
        status = {str(name): str(value) for name, value in cursor.fetchall()}
    return NodeFacts(
        reachable=True,
        wsrep_state=status.get("wsrep_local_state_comment"),
        wsrep_cluster_status=status.get("wsrep_cluster_status"),
        wsrep_ready=status.get("wsrep_ready") == "ON",
        seqno=int(status["wsrep_last_committed"]) if "wsrep_last_committed" in status else None,
        cluster_size=int(status["wsrep_cluster_size"]) if "wsrep_cluster_size" in status else None,
    )


def probe(target: Target, timeout: float) -> NodeFacts:
    """The wsrep facts of one node over a new connection (so a node that stops accepting
    connections is noticed); `reachable=False` with the reason when it does not answer."""
    try:
        conn = _connect(target, timeout)
    except Exception as error:  # any failure to connect is evidence, not a crash of the probe
        return NodeFacts(reachable=False, error=_describe(error))
    try:
        return _facts(conn)
    except Exception as error:
        return NodeFacts(reachable=False, error=_describe(error))
    finally:
        conn.close()


class Prober:
    """Probes over one connection kept between probes: what a frequent probe costs is then one
    query, not a connection and its authentication. With `fresh_every`, every that many probes
    a new connection is opened first (and kept), so a node that still answers on old
    connections but accepts no new ones (a connection limit reached, a stuck listener) is noticed
    within that many probes. Any failure drops the connection; the next probe connects again."""

    def __init__(self, target: Target, timeout: float, fresh_every: int | None = None) -> None:
        self.target, self.timeout, self.fresh_every = target, timeout, fresh_every
        self.conn: pymysql.Connection[pymysql.cursors.Cursor] | None = None
        self.kept_for = 0  # probes over the current connection

    def __call__(self) -> NodeFacts:
        try:
            if self.conn is None or (self.fresh_every and self.kept_for >= self.fresh_every):
                fresh = _connect(self.target, self.timeout)
                self.close()
                self.conn = fresh
            self.kept_for += 1
            return _facts(self.conn)
        except Exception as error:
            self.close()
            return NodeFacts(reachable=False, error=_describe(error))

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn, self.kept_for = None, 0


class ProbePool:
    """One kept-connection `Prober` per node, shared by every watch of a worker process.

    A prober serves one probe at a time; a second probe of the same node meanwhile (an old
    watch still ending beside its replacement) uses a connection of its own. Probers unused
    for `idle_seconds` (a cluster deleted, or now watched by another worker) are closed.
    """

    def __init__(self, fresh_every: int = 10, idle_seconds: float = 60) -> None:
        self.fresh_every, self.idle_seconds = fresh_every, idle_seconds
        self.lock = threading.Lock()
        self.probers: dict[Target, tuple[Prober, threading.Lock]] = {}
        self.last_used: dict[Target, float] = {}
        self.swept = time.monotonic()

    def probe(self, target: Target, timeout: float) -> NodeFacts:
        with self.lock:
            if target not in self.probers:
                self.probers[target] = (Prober(target, timeout, self.fresh_every), threading.Lock())
            prober, busy = self.probers[target]
            self.last_used[target] = time.monotonic()
        if not busy.acquire(blocking=False):
            return probe(target, timeout)
        try:
            prober.timeout = timeout
            return prober()
        finally:
            busy.release()
            self._sweep()

    def close(self) -> None:
        with self.lock:
            idle = list(self.probers)
        self._close(idle)

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self.swept < self.idle_seconds / 4:
            return
        self.swept = now
        with self.lock:
            idle = [t for t, used in self.last_used.items() if now - used > self.idle_seconds]
        self._close(idle)

    def _close(self, targets: list[Target]) -> None:
        for target in targets:
            with self.lock:
                entry = self.probers.get(target)
                if entry is None or not entry[1].acquire(blocking=False):
                    continue  # in use: it is not idle after all
                del self.probers[target], self.last_used[target]
            entry[0].close()
            entry[1].release()
