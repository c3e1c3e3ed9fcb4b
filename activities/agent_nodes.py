"""What both runtimes do the same way: node operations that are one call to the node's agent
(docs/agent-api.md). A runtime says how it reaches the agent of a node (`_agent`); the rest
is here once."""

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from activities.agent_client import AgentClient
from activities.local.backup import STAGING_PREFIX
from api.layout import ClusterLayout
from galera.log import Join
from galera.position import GaleraPosition


class AgentNodes(ABC):
    @abstractmethod
    def _agent(self, layout: ClusterLayout, node: str) -> AgentClient:
        """The node's agent, answering."""

    def last_join(self, layout: ClusterLayout, node: str) -> Join | None:
        return self._agent(layout, node).last_join()

    def galera_position(self, layout: ClusterLayout, node: str) -> GaleraPosition:
        return self._agent(layout, node).position()

    def admin_sql(self, layout: ClusterLayout, node: str, statements: list[str]) -> None:
        self._agent(layout, node).sql(statements)

    def ensure_users(self, layout: ClusterLayout, node: str) -> None:
        self._agent(layout, node).ensure_users()

    def set_aside_data(self, layout: ClusterLayout, node: str) -> str:
        return self._agent(layout, node).set_aside()

    def free_bytes(self, layout: ClusterLayout, node: str) -> int:
        return self._agent(layout, node).free_bytes()

    @contextlib.contextmanager
    def backup_stream(self, layout: ClusterLayout, node: str) -> Iterator[IO[bytes]]:
        with self._agent(layout, node).backup_stream() as stream:
            yield stream

    def receive_backup(
        self, layout: ClusterLayout, node: str, name: str, chunks: Iterable[bytes]
    ) -> str:
        return self._agent(layout, node).receive_backup(name, chunks)

    def install_restored_data(self, layout: ClusterLayout, node: str, staging: str) -> None:
        name = Path(staging).name.removeprefix(STAGING_PREFIX)
        self._agent(layout, node).install(name, staging)
