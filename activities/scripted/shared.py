"""One `ScriptedRuntime` shared by several worker processes, over an authenticated local socket.

The process that owns the runtime (a benchmark) serves it from background threads and keeps
planting faults on its own object; worker processes `connect` and get a `SharedRuntime`, a
`Runtime` (and a prober) whose every call runs on the served object. Messages are pickles, as
`multiprocessing` sends them, and are read only after the `multiprocessing` challenge proved
that the peer knows the authkey. The authkey travels in a 0600 file whose path is in the
child's environment, never in argv or logs.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import AuthenticationError
from multiprocessing.connection import (
    Connection,
    answer_challenge,
    deliver_challenge,
)
from pathlib import Path
from typing import IO, Any, NamedTuple

from activities.probe import Target
from activities.runtime import (
    ClusterLayout,
    ClusterRef,
    LoadBalancerView,
    ProcessFacts,
    StopMode,
)
from activities.scripted.runtime import ScriptedRuntime
from api.cluster import MySQLClusterSpec, NodeFacts
from galera.log import Join
from galera.position import GaleraPosition

ADDRESS_ENV = "MYSQLOPS_SCRIPTED_ADDRESS"  # host:port
AUTHKEY_FILE_ENV = "MYSQLOPS_SCRIPTED_AUTHKEY_FILE"

Address = tuple[str, int]
HANDSHAKE_SECONDS = 10

# What a client may call: the Runtime's methods and the probe.
_CALLS = frozenset(
    {
        "layout",
        "provision_node",
        "config_errors",
        "start_node",
        "stop_node",
        "last_join",
        "process_facts",
        "galera_position",
        "configure_load_balancer",
        "load_balancer_view",
        "stop_load_balancer",
        "admin_sql",
        "ensure_users",
        "ensure_secret",
        "read_secret",
        "set_aside_data",
        "remove_node",
        "retire_cluster",
        "backup_root",
        "backup_tool",
        "backup_stream",
        "free_bytes",
        "receive_backup",
        "install_restored_data",
        "probe",
    }
)


class Shared(NamedTuple):
    env: dict[str, str]  # for the child: ADDRESS_ENV and AUTHKEY_FILE_ENV
    stop: Callable[[], None]


def share(runtime: ScriptedRuntime, directory: Path) -> Shared:
    """Serve `runtime` under a fresh random authkey, written to a 0600 file in `directory`
    (removed by `stop`)."""
    handle, name = tempfile.mkstemp(prefix="scripted-authkey-", dir=directory)
    authkey = os.urandom(32)
    with os.fdopen(handle, "wb") as key_file:
        key_file.write(authkey)
    address, stop_serving = serve(runtime, authkey)

    def stop() -> None:
        stop_serving()
        Path(name).unlink(missing_ok=True)

    return Shared({ADDRESS_ENV: f"{address[0]}:{address[1]}", AUTHKEY_FILE_ENV: name}, stop)


def serve(runtime: ScriptedRuntime, authkey: bytes) -> tuple[Address, Callable[[], None]]:
    """Serve `runtime` on 127.0.0.1, a free port, from background threads (one per client
    connection); the callable stops the server and drops every connection."""
    server = _Server(runtime, authkey)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name="scripted-runtime",
        daemon=True,
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        server.drop_connections()
        thread.join()

    host, port = server.server_address[:2]
    return (str(host), int(port)), stop


def connect(address: Address, authkey: bytes) -> SharedRuntime:
    """The served runtime; raises AuthenticationError at once if `authkey` is not its key."""
    shared = SharedRuntime(address, authkey)
    shared._connection()  # the calling thread's: a wrong key fails here
    return shared


def connect_from_env() -> SharedRuntime:
    """The runtime that `share` offered to this process through its environment."""
    host, _, port = os.environ[ADDRESS_ENV].rpartition(":")
    return connect((host, int(port)), Path(os.environ[AUTHKEY_FILE_ENV]).read_bytes())


class SharedRuntime:
    """A served `ScriptedRuntime` as a `Runtime`: each thread calls over a connection of its
    own, so any number of threads may call at once."""

    def __init__(self, address: Address, authkey: bytes) -> None:
        self.address = address
        self._authkey = authkey
        self._local = threading.local()  # a thread's connection closes when the thread ends

    def __repr__(self) -> str:
        return f"SharedRuntime({self.address[0]}:{self.address[1]})"

    def _connection(self) -> Connection:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = _client(self.address, self._authkey)
            self._local.connection = connection
        return connection

    def _call(self, name: str, *args: object) -> Any:
        connection = self._connection()
        try:
            connection.send((name, args))
            failed, result = connection.recv()
        except BaseException:
            connection.close()  # a reply may still be on its way: never read it as another's
            raise
        if failed:
            raise result
        return result

    # -- the Runtime, call by call ----------------------------------------------------------

    def layout(self, cluster: ClusterRef, replicas: int) -> ClusterLayout:
        result: ClusterLayout = self._call("layout", cluster, replicas)
        return result

    def provision_node(
        self, layout: ClusterLayout, node: str, spec: MySQLClusterSpec, bootstrap_candidate: bool
    ) -> None:
        self._call("provision_node", layout, node, spec, bootstrap_candidate)

    def config_errors(self, layout: ClusterLayout, spec: MySQLClusterSpec) -> str | None:
        result: str | None = self._call("config_errors", layout, spec)
        return result

    def start_node(self, layout: ClusterLayout, node: str, bootstrap: bool) -> int:
        result: int = self._call("start_node", layout, node, bootstrap)
        return result

    def stop_node(self, layout: ClusterLayout, node: str, mode: StopMode, timeout: float) -> None:
        self._call("stop_node", layout, node, mode, timeout)

    def last_join(self, layout: ClusterLayout, node: str) -> Join | None:
        result: Join | None = self._call("last_join", layout, node)
        return result

    def process_facts(self, layout: ClusterLayout, node: str) -> ProcessFacts:
        result: ProcessFacts = self._call("process_facts", layout, node)
        return result

    def galera_position(self, layout: ClusterLayout, node: str) -> GaleraPosition:
        result: GaleraPosition = self._call("galera_position", layout, node)
        return result

    def configure_load_balancer(self, layout: ClusterLayout, members: list[str]) -> None:
        self._call("configure_load_balancer", layout, members)

    def load_balancer_view(self, layout: ClusterLayout) -> LoadBalancerView:
        result: LoadBalancerView = self._call("load_balancer_view", layout)
        return result

    def stop_load_balancer(self, layout: ClusterLayout) -> None:
        self._call("stop_load_balancer", layout)

    def admin_sql(self, layout: ClusterLayout, node: str, statements: list[str]) -> None:
        self._call("admin_sql", layout, node, statements)

    def ensure_users(self, layout: ClusterLayout, node: str) -> None:
        self._call("ensure_users", layout, node)

    def ensure_secret(self, cluster: ClusterRef, key: str) -> None:
        self._call("ensure_secret", cluster, key)

    def read_secret(self, cluster: ClusterRef, key: str) -> str:
        result: str = self._call("read_secret", cluster, key)
        return result

    def set_aside_data(self, layout: ClusterLayout, node: str) -> str:
        result: str = self._call("set_aside_data", layout, node)
        return result

    def remove_node(self, layout: ClusterLayout, node: str, delete_data: bool) -> None:
        self._call("remove_node", layout, node, delete_data)

    def retire_cluster(self, layout: ClusterLayout, delete_data: bool) -> None:
        self._call("retire_cluster", layout, delete_data)

    def backup_root(self) -> Path:
        result: Path = self._call("backup_root")
        return result

    def backup_tool(self) -> tuple[str, str]:
        result: tuple[str, str] = self._call("backup_tool")
        return result

    @contextlib.contextmanager
    def backup_stream(self, layout: ClusterLayout, node: str) -> Iterator[IO[bytes]]:
        """The whole backup, fetched on entering the block (scripted backups are small)."""
        yield io.BytesIO(self._call("backup_stream", layout, node))

    def free_bytes(self, layout: ClusterLayout, node: str) -> int:
        result: int = self._call("free_bytes", layout, node)
        return result

    def receive_backup(
        self, layout: ClusterLayout, node: str, name: str, chunks: Iterable[bytes]
    ) -> str:
        result: str = self._call("receive_backup", layout, node, name, [b"".join(chunks)])
        return result

    def install_restored_data(self, layout: ClusterLayout, node: str, staging: str) -> None:
        self._call("install_restored_data", layout, node, staging)

    def probe(self, target: Target, timeout: float) -> NodeFacts:
        result: NodeFacts = self._call("probe", target, timeout)
        return result


def _client(address: Address, authkey: bytes) -> Connection:
    """`multiprocessing.connection.Client`, but a connection the server never took (it can be
    lost in a burst of connections) fails after HANDSHAKE_SECONDS instead of hanging."""
    sock = socket.create_connection(address, timeout=HANDSHAKE_SECONDS)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    connection = Connection(sock.detach())
    try:
        if not connection.poll(HANDSHAKE_SECONDS):
            raise ConnectionError(f"the scripted runtime at {address} did not answer")
        answer_challenge(connection, authkey)
        deliver_challenge(connection, authkey)
    except BaseException:
        connection.close()
        raise
    return connection


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    request_queue_size = socket.SOMAXCONN  # every thread of every worker may connect at once

    def __init__(self, runtime: ScriptedRuntime, authkey: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Client)
        self.runtime, self.authkey = runtime, authkey
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()

    def drop_connections(self) -> None:
        with self.lock:
            sockets = list(self.sockets)
        for sock in sockets:  # wakes the thread reading it, which then ends
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def answer(self, name: str, args: tuple[Any, ...]) -> tuple[bool, object]:
        """(failed, the result or the exception) of one call."""
        try:
            if name not in _CALLS:
                raise AttributeError(f"the scripted runtime offers no {name!r}")
            if name == "backup_stream":
                with self.runtime.backup_stream(*args) as stream:
                    return False, stream.read()
            return False, getattr(self.runtime, name)(*args)
        except Exception as error:
            return True, error


class _Client(socketserver.BaseRequestHandler):
    """One client connection (one thread of a client process): authenticate, then calls."""

    server: _Server
    request: socket.socket

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.sockets.add(self.request)
        try:
            with Connection(os.dup(self.request.fileno())) as connection:
                try:
                    deliver_challenge(connection, self.server.authkey)
                    answer_challenge(connection, self.server.authkey)
                except (AuthenticationError, EOFError, OSError):
                    return
                self._serve(connection)
        finally:
            with self.server.lock:
                self.server.sockets.discard(self.request)

    def _serve(self, connection: Connection) -> None:
        while True:
            try:
                message = connection.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                name, args = pickle.loads(message)
                reply = pickle.dumps(self.server.answer(name, args))
            except Exception as error:  # a call or a result that does not pickle
                reply = pickle.dumps((True, RuntimeError(f"scripted runtime: {error!r}")))
            try:
                connection.send_bytes(reply)
            except OSError:  # the client is gone
                return
