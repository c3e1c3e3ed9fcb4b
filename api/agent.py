"""The node agent's HTTP API, version 1: the requests and answers of every node-level operation.

One agent runs beside each mariadbd, in both runtimes (a local process; the MySQL container's
entrypoint on Kubernetes), and every node-level operation of a runtime is a call to it. The
contract is written down in docs/agent-api.md; these models are its source of truth.

Operations are under `/v1/` and need `Authorization: Bearer <token>` (the token is a Secret /
a 0600 file; a request without it is refused with 401). Probes (`/health`, `/ready`, `/live`)
and `/version` answer anyone: load balancers and kubelets call them and they reveal nothing.
"""

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from api.base import Record
from api.states import ExitKind, JoinMethod

API_VERSION = "v1"
TOKEN_SECRET = "agent-token"  # the cluster's Secret key (local: a 0600 file) holding the token
PREFIX = f"/{API_VERSION}"

# Unauthenticated: HAProxy's check and the kubelet's probes.
HEALTH = "/health"  # 200 while the node serves: Synced and Primary, or a donor when allowed
READY = "/ready"  # the same rule, for the Pod's readiness
LIVE = "/live"  # 200 while the agent works; never fails for a node in recovery or in an SST
VERSION = "/version"

NODE = f"{PREFIX}/node"  # GET: NodeStatus
START = f"{PREFIX}/node/start"  # POST StartRequest -> Started
STOP = f"{PREFIX}/node/stop"  # POST StopRequest -> NodeStatus
POSITION = f"{PREFIX}/node/position"  # GET (stopped) -> GaleraPosition
JOIN = f"{PREFIX}/node/join"  # GET -> LastJoin
INITIALIZE = f"{PREFIX}/node/initialize"  # POST -> Initialized
SET_ASIDE = f"{PREFIX}/node/set-aside"  # POST (stopped) -> SetAside
DISK = f"{PREFIX}/node/disk"  # GET -> Disk
SQL = f"{PREFIX}/sql"  # POST SqlRequest -> {}
USERS = f"{PREFIX}/users"  # POST -> {}: the users, with passwords the agent reads itself
BACKUPS = f"{PREFIX}/backups"  # POST /{id}: the xbstream as the body; GET /{id}: BackupOutcome
RESTORES = f"{PREFIX}/restores"  # PUT /{name}: a stored backup in -> Staged; POST /{name}/install


class StopMode(StrEnum):
    GRACEFUL = "graceful"  # SIGTERM: InnoDB shuts down cleanly, Galera leaves the group
    KILL = "kill"  # SIGKILL: what a crash or the OOM killer does


class OrderKind(StrEnum):
    """What the controller last told the agent to do with its node."""

    RUN = "run"  # start (join, or bootstrap) and keep it running
    HOLD = "hold"  # stopped on purpose: stay stopped, also after the agent restarts


class Order(Record):
    kind: OrderKind
    bootstrap: bool = False
    # A run order outlives a restart of the agent (a Pod's container restarted by the kubelet)
    # only when the controller said so; a bootstrap order never does: a second bootstrap from
    # a restarted container would start a second cluster beside the first.
    persist: bool = False


class StartRequest(Record):
    bootstrap: bool = False  # start a new Primary component from this node's position
    persist: bool = False  # carry the order out again after an agent restart
    # The sha256 of the configuration the caller delivered (AgentConfig.config_source): the
    # start waits until the agent sees it (a mounted ConfigMap is refreshed late), and fails
    # rather than start the node with an older one.
    config_sha256: str | None = None


class Started(Record):
    pid: int


class StopRequest(Record):
    mode: StopMode = StopMode.GRACEFUL
    timeout: float = Field(default=120, gt=0, le=3600)
    # Stay stopped after an agent restart (the controller stopped it). A Pod's preStop passes
    # False: the node left because its Pod goes, and the next container may rejoin by itself.
    hold: bool = True


class ProcessFacts(Record):
    """What the runtime knows about a node's mariadbd process without talking SQL to it."""

    alive: bool
    pid: int | None = None
    stopped: bool = False  # alive but suspended (SIGSTOP): it cannot answer
    exit_kind: ExitKind | None = None
    exit_detail: str | None = None
    provisioned: bool = True


class NodeStatus(Record):
    """GET /v1/node: the process, the agent's own view of it and the order it follows."""

    facts: ProcessFacts
    starting: bool = False  # a start is under way (recovering the position, launching)
    runs: int = 0  # mariadbd runs this agent started (a restart count)
    start_position: str | None = None  # the `uuid:seqno` the current run started from
    order: Order | None = None
    serving: bool = False
    state: str = ""  # "<NodeState>: <reason>", as the health check answers it


class LastJoin(Record):
    """How the current run joined (IST or SST, and why); method None: no transfer seen."""

    method: JoinMethod | None = None
    detail: str = ""


class Initialized(Record):
    initialized: bool  # False: the data directory had data and was left as it is


class SetAside(Record):
    aside: str  # where the old data is now, or "" when there was none


class Disk(Record):
    free_bytes: int


class SqlRequest(Record):
    statements: list[str] = Field(min_length=1)


class BackupState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BackupOutcome(Record):
    """The backup tool's own outcome, asked for after its stream ended: a stream that ends
    says nothing about whether the tool finished."""

    id: str
    state: BackupState
    detail: str = ""


class Staged(Record):
    staging: str


class InstallRequest(Record):
    staging: str


class Version(Record):
    api: str = API_VERSION
    agent: str


class ErrorAnswer(Record):
    """Every refusal: `error` is a stable code, `message` says why in words."""

    error: str
    message: str


# Error codes, and what a caller does about them.
UNAUTHORIZED = "unauthorized"  # 401: no or a wrong token
BAD_REQUEST = "bad_request"  # 400: the request does not match its model
NOT_FOUND = "not_found"  # 404
CONFLICT = "conflict"  # 409: the node is in the wrong state for this (running, stopped)
NODE_FAILED = "node_failed"  # 422: mariadbd failed (exited at start): retrying now won't help
TIMEOUT = "timeout"  # 504: mariadbd did not stop within the request's timeout
INTERNAL = "internal"  # 500


# -- the agent's own configuration -------------------------------------------------------------


class AgentConfig(BaseModel):
    """Written by the local runtime as `agent.json` in the node directory (snake_case, as the
    agents before the API read it), or made from the Pod's environment. No secrets: the API
    token is a file it names."""

    node: str
    workflow_id: str
    temporal_address: str
    temporal_namespace: str
    mycnf: str
    socket: str
    pid_file: str
    error_log: str
    state_file: str
    host: str  # where the API listens: 127.0.0.1 locally, the Pod's IP on Kubernetes
    health_port: int  # the API's port (HAProxy checks /health there)
    haproxy_socket: str
    donor_serves: bool = False
    os_user: str
    # The API's bearer token, a 0600 file (a mounted Secret on Kubernetes). Runtimes since the
    # agent API write it; an agent without one refuses to start.
    token_file: str = ""
    # Where the runtime delivers the node's configuration, when not `mycnf` itself (on
    # Kubernetes, the ConfigMap's file, which the agent installs as `mycnf`).
    config_source: str = ""
    # Agents' health endpoints of the other nodes ("host:port"): a restarted agent rejoins by
    # itself only when one of them serves (a Primary component exists to join).
    peers: list[str] = []
    # On SIGTERM, stop mariadbd cleanly too (a Pod going away); locally mariadbd outlives
    # its agent, which a new agent adopts.
    stop_node_on_exit: bool = False
    # Metrics (written by runtimes since issue 13; older agent.json files have none).
    cluster_namespace: str = ""
    cluster: str = ""
    metrics_port: int | None = None  # the agent's own endpoint
    exporter_port: int | None = None  # the node's mysqld_exporter
    exporter_config: str | None = None  # its client settings (monitoring user), mode 0600
    exporter_log: str | None = None

    @classmethod
    def load(cls, node_dir: Path) -> "AgentConfig":
        return cls.model_validate_json((node_dir / "agent.json").read_text())

    def token(self) -> str:
        """The API's bearer token; an agent without one cannot serve."""
        return self._secret_file(Path(self.token_file))

    def secret(self, key: str) -> str:
        """A key of the cluster's Secret. The token file is one of its keys, in both runtimes
        (the local secrets directory, the Secret mounted in the Pod), so the others are beside
        it: passwords reach the node from there, never through a request."""
        return self._secret_file(Path(self.token_file).parent / key)

    def _secret_file(self, path: Path) -> str:
        if not self.token_file:
            raise ValueError(f"the agent of {self.node} has no token_file: no Secret to read")
        value = path.read_text().strip()
        if not value:
            raise ValueError(f"{path} is empty")
        return value
