from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import Harness, running_harness


@pytest_asyncio.fixture
async def harness(temporal_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    async for h in running_harness(temporal_env):
        yield h


@pytest_asyncio.fixture
async def unsandboxed(temporal_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    """A harness whose workflows run the test's own module objects (monkeypatch reaches them)."""
    async for h in running_harness(temporal_env, sandboxed=False):
        yield h
