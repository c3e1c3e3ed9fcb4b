"""The named states of nodes and clusters, spelled exactly as the platform defines them."""

from enum import StrEnum


class NodeState(StrEnum):
    GREEN = "Green"  # running, in the cluster, Synced
    YELLOW = "Yellow"  # in the cluster but not serving: joining, donor, desynced, starting
    RED_CLEAN = "Red-clean"  # exited gracefully (or never started)
    RED_UNCLEAN = "Red-unclean"  # exited non-gracefully: crash, kill, OOM
    UNKNOWN = "Unknown"  # cannot be determined


class ClusterState(StrEnum):
    GREEN = "Green"  # serving, all expected nodes Green
    YELLOW = "Yellow"  # serving, fewer Green nodes than expected
    RED = "Red"  # not serving: no Primary component reachable through the load balancer


class ExitKind(StrEnum):
    """How a node's mariadbd process last ended, as its agent saw it."""

    CLEAN = "clean"  # exit status 0 (shutdown requested by SIGTERM or SQL SHUTDOWN)
    UNCLEAN = "unclean"  # non-zero exit status or killed by a signal


class Phase(StrEnum):
    """Where the cluster is in its lifecycle (orthogonal to its health state)."""

    CREATING = "Creating"
    RUNNING = "Running"
    STOPPED = "Stopped"
    DELETING = "Deleting"
    DELETED = "Deleted"


class TaskKind(StrEnum):
    """What a task in the cluster's queue does."""

    CREATE = "create"
    APPLY = "apply"  # converge the running cluster to the desired spec
    STOP = "stop"
    START = "start"
    DELETE = "delete"
    REMEDIATE = "remediate"  # a repair the controller chose
    FORCE = "force"  # an action an operator forced
    BACKUP = "backup"
    RESTORE = "restore"


class JoinMethod(StrEnum):
    """How a node received the cluster's state when it joined."""

    IST = "IST"  # the writes it missed, from a donor's gcache: costs what was missed
    SST = "SST"  # a full copy of a donor's data directory: costs the size of the data


class BackupPhase(StrEnum):
    """Where a backup or a restore is."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
