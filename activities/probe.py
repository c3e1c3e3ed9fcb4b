"""One SQL probe of a node's Galera status, with short timeouts. Blocking: run it in a thread."""

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


def probe(target: Target, timeout: float) -> NodeFacts:
    """The wsrep facts of one node; `reachable=False` with the reason when it does not answer."""
    try:
        conn = pymysql.connect(
            host=target.host,
            port=target.port,
            unix_socket=target.unix_socket,
            user=target.user,
            password=target.password,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
        )
    except Exception as error:  # any failure to connect is evidence, not a crash of the probe
        return NodeFacts(reachable=False, error=_describe(error))
    try:
        with conn.cursor() as cursor:
            cursor.execute(STATUS_SQL)
            status = {str(name): str(value) for name, value in cursor.fetchall()}
    except Exception as error:
        return NodeFacts(reachable=False, error=_describe(error))
    finally:
        conn.close()
    return NodeFacts(
        reachable=True,
        wsrep_state=status.get("wsrep_local_state_comment"),
        wsrep_cluster_status=status.get("wsrep_cluster_status"),
        wsrep_ready=status.get("wsrep_ready") == "ON",
        seqno=int(status["wsrep_last_committed"]) if "wsrep_last_committed" in status else None,
        cluster_size=int(status["wsrep_cluster_size"]) if "wsrep_cluster_size" in status else None,
    )
