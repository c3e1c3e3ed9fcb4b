"""HAProxy in front of a cluster: configuration and the runtime API (stats socket).

The reader endpoint balances across all healthy nodes; the writer endpoint sends every
connection to one healthy node, so Galera certification conflicts do not reach clients as
deadlocks. Health is the node agent's HTTP endpoint. The writer has two modes:

- sticky (the default; the local runtime, one HAProxy): a stick table (one entry, keyed on the
  destination) keeps the current writer until it fails, so a recovered node does not take
  writes back.
- not sticky (`sticky=False`; several HAProxy replicas, as on Kubernetes): a stick table is
  each process's own, so two replicas could stick to different writers. Instead every replica
  sends writes to the first healthy server in the fixed order of `servers` (the others are
  `backup`, and HAProxy uses only the first healthy backup), and each writer server has
  `on-marked-up shutdown-backup-sessions`: when the first server is healthy again every replica
  moves writes back to it at once (as Percona's HAProxy setup does). The choice depends only
  on health, which every replica checks itself: replicas agree once their checks agree (within
  a few check intervals). A backup that comes back while a later backup serves takes new
  connections without closing the later one's (that option acts only for a non-backup server).

`resolve=True` (servers addressed by DNS names whose addresses change, as pods' do when they
are recreated) adds a `resolvers kube` section reading /etc/resolv.conf, and every server
resolves its name at run time with `init-addr last,libc,none`: a name that does not resolve
yet leaves that server down instead of stopping HAProxy from starting.

Every bind address is quoted (`bind "HOST:PORT"`), so `host` may be an environment variable
such as `${MYSQLOPS_POD_IP}` (the Kubernetes runtime's): HAProxy's documentation expands one
only inside double quotes.
"""

import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Server:
    name: str
    host: str
    port: int
    check_port: int


def render(
    *,
    cluster: str,
    host: str,
    writer_port: int,
    reader_port: int,
    stats_port: int,
    stats_socket: Path,
    state_file: Path,
    servers: list[Server],
    sticky: bool = True,
    resolve: bool = False,
) -> str:
    """haproxy.cfg for `servers` (the writer's order of preference first); `host` may be an
    environment variable, `${NAME}`. See the module's docstring for `sticky` and `resolve`."""
    resolution = " resolvers kube init-addr last,libc,none" if resolve else ""

    def lines(writer: bool) -> list[str]:
        out = []
        for index, server in enumerate(servers):
            failback = " on-marked-up shutdown-backup-sessions" if writer and not sticky else ""
            backup = " backup" if writer and index > 0 else ""
            out.append(
                f"    server {server.name} {server.host}:{server.port} check port "
                f"{server.check_port} inter 1s fastinter 500ms downinter 1s rise 2 fall 2"
                f" on-marked-down shutdown-sessions{failback}{resolution}{backup}"
            )
        return out

    resolvers = ["resolvers kube", "    parse-resolv-conf"] if resolve else []
    stick = ["    stick-table type integer size 1", "    stick on int(1)"] if sticky else []
    return "\n".join(
        [
            "# Written by mysqlops; edits are overwritten.",
            "global",
            f"    stats socket {stats_socket} mode 600 level admin",
            "    maxconn 2000",
            f"    server-state-file {state_file}",
            *resolvers,
            "defaults",
            "    mode tcp",
            "    timeout connect 2s",
            "    timeout client 8h",
            "    timeout server 8h",
            "    timeout check 1s",
            "    option httpchk GET /health",
            "    http-check expect status 200",
            "    load-server-state-from-file global",
            f"frontend {cluster}-writer",
            f'    bind "{host}:{writer_port}"',
            "    default_backend writer",
            f"frontend {cluster}-reader",
            f'    bind "{host}:{reader_port}"',
            "    default_backend reader",
            "backend writer",
            *stick,
            *lines(writer=True),
            "backend reader",
            "    balance leastconn",
            *lines(writer=False),
            "frontend stats",
            "    mode http",
            f'    bind "{host}:{stats_port}"',
            "    http-request use-service prometheus-exporter if { path /metrics }",
            "    stats enable",
            "    stats uri /",
            "    stats refresh 2s",
            "",
        ]
    )


def command(stats_socket: Path, line: str, timeout: float = 1.0) -> str:
    """Send one command to HAProxy's runtime API and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(stats_socket))
        conn.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


@dataclass(frozen=True)
class ServerStat:
    sid: int
    name: str
    up: bool


def servers(stats_socket: Path, backend: str) -> list[ServerStat]:
    """The servers of `backend` in configuration order, with their health (one `show stat`)."""
    return parse_stat(command(stats_socket, "show stat"), backend)


def parse_stat(csv: str, backend: str) -> list[ServerStat]:
    """The servers of `backend` in a stats CSV (`show stat` on the socket, or the stats page's
    `;csv`), in configuration order."""
    rows = csv.splitlines()
    if not rows:
        return []
    header = rows[0].lstrip("# ").split(",")
    found = []
    for row in rows[1:]:
        fields = dict(zip(header, row.split(","), strict=False))
        if fields.get("pxname") == backend and fields.get("svname") not in ("FRONTEND", "BACKEND"):
            found.append(
                ServerStat(
                    sid=int(fields["sid"]),
                    name=fields["svname"],
                    up=fields.get("status", "").startswith("UP"),
                )
            )
    return found


def stuck_writer(stats_socket: Path) -> int | None:
    """The server id the writer stick table points at, if a connection has been made."""
    for line in command(stats_socket, "show table writer").splitlines():
        if "server_id=" in line:
            return int(line.split("server_id=")[1].split()[0])
    return None


def save_state(stats_socket: Path, state_file: Path) -> None:
    """Keep health states across a reload, so no server briefly counts as up on the new one."""
    state_file.write_text(command(stats_socket, "show servers state"))


def mark_down(stats_socket: Path, server: str) -> None:
    """Take `server` out of both backends now, without waiting for failed checks."""
    for backend in ("writer", "reader"):
        command(stats_socket, f"set server {backend}/{server} health down")
