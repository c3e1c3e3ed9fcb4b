"""The mysqlops API: pydantic models of the resources and of every workflow message.

These models are the single source of truth: the CLI validates resources against them, the
workflows exchange them with the Temporal server, and the CRD schemas are generated from them.
"""

from api.base import ObjectMeta
from api.cluster import (
    API_VERSION,
    ClusterStatus,
    Endpoints,
    MySQLCluster,
    MySQLClusterSpec,
    NodeFacts,
    NodeStatus,
    TaskInfo,
    Transition,
)
from api.states import ClusterState, ExitKind, NodeState

__all__ = [
    "API_VERSION",
    "ClusterState",
    "ClusterStatus",
    "Endpoints",
    "ExitKind",
    "MySQLCluster",
    "MySQLClusterSpec",
    "NodeFacts",
    "NodeState",
    "NodeStatus",
    "ObjectMeta",
    "TaskInfo",
    "Transition",
]
