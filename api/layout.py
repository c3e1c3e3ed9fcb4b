"""Where a cluster's nodes and endpoints are: chosen by the runtime once, then carried by the
workflow. Contains addresses only, never credentials."""

from api.base import Record


class ClusterRef(Record):
    namespace: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class NodeLayout(Record):
    name: str
    ordinal: int
    host: str
    port: int


class ClusterLayout(Record):
    cluster: ClusterRef
    host: str
    writer_port: int
    reader_host: str | None = None  # None: the writer's host (on Kubernetes, its own Service)
    reader_port: int
    stats_port: int | None = None
    nodes: list[NodeLayout]

    def node(self, name: str) -> NodeLayout:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)
