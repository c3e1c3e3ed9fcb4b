"""The runtimes' side of the node agent API (docs/agent-api.md): blocking calls, made from the
activities' threads. Refusals come back as the exceptions the workflow already understands:
`NodeFailed` when mariadbd failed, `TimeoutError` when it would not stop, `AgentError` for the
rest (with the agent's code and words)."""

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

import urllib3
from pydantic import BaseModel

from activities.runtime import NodeFailed
from api import agent as api
from api.agent import NodeStatus, StopMode
from galera.log import Join
from galera.position import GaleraPosition

M = TypeVar("M", bound=BaseModel)

CONNECT_TIMEOUT = 3.0
CALL_TIMEOUT = 30.0
# A start recovers the position first (`--wsrep-recover` replays InnoDB's redo log) and a
# restore prepares a whole backup: both can take many minutes on a large node.
LONG_TIMEOUT = 3600.0


class AgentError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} (agent answered {status} {code})")
        self.status = status
        self.code = code


class AgentUnreachable(ConnectionError):
    """No answer from the agent at all (not running, or the network)."""


class AgentClient:
    def __init__(self, address: str, token: str, pool: urllib3.PoolManager | None = None) -> None:
        self.base = f"http://{address}"
        self._auth = {"Authorization": f"Bearer {token}"}
        self._pool = pool or urllib3.PoolManager(retries=False)

    # -- plumbing --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: BaseModel | None = None,
        timeout: float = CALL_TIMEOUT,
    ) -> Any:
        payload = body.model_dump_json(by_alias=True).encode() if body is not None else None
        answer = self._request(method, path, payload, timeout, preload=True)
        return json.loads(answer.data or b"{}")

    def _request(
        self,
        method: str,
        path: str,
        payload: bytes | Iterable[bytes] | None,
        timeout: float,
        preload: bool,
        chunked: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        try:
            answer = self._pool.request(
                method,
                self.base + path,
                body=payload,
                headers={**self._auth, "Content-Type": "application/json"},
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=timeout),
                preload_content=preload,
                chunked=chunked,
            )
        except urllib3.exceptions.ProtocolError as error:
            raise AgentUnreachable(f"the agent at {self.base} broke off: {error}") from error
        except urllib3.exceptions.NewConnectionError as error:
            raise AgentUnreachable(f"no agent answers at {self.base}: {error}") from error
        except urllib3.exceptions.ReadTimeoutError as error:
            raise TimeoutError(f"the agent at {self.base} did not answer {path}") from error
        if answer.status >= 400:
            if not preload:
                answer.read()
            raise _refusal(answer.status, answer.data)
        return answer

    def _get(self, path: str, model: type[M], timeout: float = CALL_TIMEOUT) -> M:
        return model.model_validate(self._call("GET", path, timeout=timeout))

    def _post(
        self,
        path: str,
        model: type[M],
        body: BaseModel | None = None,
        timeout: float = CALL_TIMEOUT,
    ) -> M:
        return model.model_validate(self._call("POST", path, body, timeout))

    # -- probes ----------------------------------------------------------------------------

    def version(self) -> api.Version:
        return self._get(api.VERSION, api.Version, timeout=3)

    def serves(self) -> bool:
        try:
            return self._request("GET", api.HEALTH, None, 3, preload=True).status == 200
        except AgentError:
            return False

    # -- the node --------------------------------------------------------------------------

    def status(self) -> NodeStatus:
        return self._get(api.NODE, NodeStatus)

    def start(
        self, bootstrap: bool, persist: bool = False, config_sha256: str | None = None
    ) -> int:
        order = api.StartRequest(bootstrap=bootstrap, persist=persist, config_sha256=config_sha256)
        return self._post(api.START, api.Started, order, LONG_TIMEOUT).pid

    def stop(self, mode: StopMode, timeout: float, hold: bool = True) -> NodeStatus:
        order = api.StopRequest(mode=mode, timeout=timeout, hold=hold)
        return self._post(api.STOP, NodeStatus, order, timeout + CALL_TIMEOUT)

    def position(self) -> GaleraPosition:
        return self._get(api.POSITION, GaleraPosition, LONG_TIMEOUT)

    def last_join(self) -> Join | None:
        found = self._get(api.JOIN, api.LastJoin)
        return None if found.method is None else Join(found.method, found.detail)

    def initialize(self) -> bool:
        return self._post(api.INITIALIZE, api.Initialized, timeout=300).initialized

    def set_aside(self) -> str:
        return self._post(api.SET_ASIDE, api.SetAside).aside

    def free_bytes(self) -> int:
        return self._get(api.DISK, api.Disk).free_bytes

    def sql(self, statements: list[str]) -> None:
        self._call("POST", api.SQL, api.SqlRequest(statements=statements))

    def ensure_users(self) -> None:
        self._call("POST", api.USERS, None)

    # -- backups and restores --------------------------------------------------------------

    @contextlib.contextmanager
    def backup_stream(self) -> Iterator[IO[bytes]]:
        """The hot backup's xbstream; leaving the block asks the agent how the tool ended and
        raises if it failed (a stream that ends says nothing about the tool)."""
        ident = uuid.uuid4().hex
        answer = self._request("POST", f"{api.BACKUPS}/{ident}", None, LONG_TIMEOUT, False)
        try:
            yield answer  # type: ignore[misc]
        except BaseException:
            _drop(answer)
            raise
        _drop(answer)
        outcome = self._get(f"{api.BACKUPS}/{ident}", api.BackupOutcome)
        if outcome.state is not api.BackupState.SUCCEEDED:
            raise RuntimeError(f"the backup on the node failed: {outcome.detail}")

    def receive_backup(self, name: str, chunks: Iterable[bytes]) -> str:
        answer = self._request(
            "PUT", f"{api.RESTORES}/{name}", chunks, LONG_TIMEOUT, preload=True, chunked=True
        )
        return api.Staged.model_validate_json(answer.data).staging

    def install(self, name: str, staging: str) -> None:
        self._call("POST", f"{api.RESTORES}/{name}/install", api.InstallRequest(staging=staging))


def _drop(answer: urllib3.BaseHTTPResponse) -> None:
    """Close the connection (never back to the pool: it may be in the middle of a body)."""
    answer.close()
    if answer.connection is not None:
        answer.connection.close()


def _refusal(status: int, data: bytes) -> Exception:
    try:
        found = api.ErrorAnswer.model_validate_json(data)
    except ValueError:
        return AgentError(status, "", data.decode(errors="replace")[:2000])
    if found.error == api.NODE_FAILED:
        return NodeFailed(found.message)
    if found.error == api.TIMEOUT:
        return TimeoutError(found.message)
    return AgentError(status, found.error, found.message)
