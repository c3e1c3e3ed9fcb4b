"""One SQL probe of a node's Galera status, with short timeouts. Blocking: run it in a thread."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

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
    password: str = ""
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
    """Probes over one connection kept between probes (a new one after any failure): what a
    frequent local probe costs is then one query, not a connection and its authentication."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.target, self.timeout = target, timeout
        self.conn: pymysql.Connection[pymysql.cursors.Cursor] | None = None

    def __call__(self) -> NodeFacts:
        try:
            if self.conn is None:
                self.conn = _connect(self.target, self.timeout)
            return _facts(self.conn)
        except Exception as error:
            self.close()
            return NodeFacts(reachable=False, error=_describe(error))

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
