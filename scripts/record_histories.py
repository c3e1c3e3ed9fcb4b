"""Record workflow histories for the replay tests (tests/test_replay.py).

Run after a change that is meant to be compatible, never to paper over an incompatible one:
    .venv/bin/python scripts/record_histories.py
Each scenario drives the cluster workflow on a scripted runtime against a dev server and
writes its full history to tests/histories/<scenario>.json.
"""

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.client import WorkflowHandle

from api.cluster import NodeFacts
from api.messages import (
    SIGNAL_NODE_REPORT,
    UPDATE_APPLY_SPEC,
    UPDATE_DELETE,
    UPDATE_START,
    UPDATE_STOP,
    ApplySpecRequest,
    LifecycleRequest,
    NodeReport,
)
from api.states import ExitKind, NodeState
from tests.conftest import start_temporal
from tests.workflows.harness import (
    Harness,
    green_and_idle,
    running_harness,
    spec_with,
    until,
)

OUT = Path(__file__).resolve().parents[1] / "tests" / "histories"
Handle = WorkflowHandle[object, object]


async def lifecycle(h: Harness) -> Handle:
    """Create, a kill seen by probe and agent, scale up and down, stop, start, delete."""
    handle = await h.start()
    ready = await until(handle, green_and_idle)
    victim = ready.nodes[1].name
    h.runtime.crash(victim)
    await handle.signal(
        SIGNAL_NODE_REPORT,
        NodeReport(
            node=victim,
            state=NodeState.RED_UNCLEAN,
            reason="killed by SIGKILL",
            facts=NodeFacts(process_alive=False, exit_kind=ExitKind.UNCLEAN),
            observed_at=datetime.now(UTC),
            sequence=1,
            agent_started_at=datetime.now(UTC),
        ),
    )
    await until(handle, lambda s: s.state.value == "Yellow")
    await handle.execute_update(UPDATE_START, LifecycleRequest(reason="record"))
    await until(handle, green_and_idle)
    await handle.execute_update(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec_with(5)))
    await until(handle, lambda s: green_and_idle(s) and len(s.nodes) == 5)
    await handle.execute_update(UPDATE_APPLY_SPEC, ApplySpecRequest(spec=spec_with(3)))
    await until(handle, lambda s: green_and_idle(s) and len(s.nodes) == 3)
    await handle.execute_update(UPDATE_STOP, LifecycleRequest(reason="record"))
    await until(handle, lambda s: s.phase.value == "Stopped" and s.current_task is None)
    await handle.execute_update(UPDATE_START, LifecycleRequest(reason="record"))
    await until(handle, green_and_idle)
    await handle.execute_update(UPDATE_DELETE, LifecycleRequest(reason="record"))
    await handle.result()
    return handle


SCENARIOS: dict[str, Callable[[Harness], Awaitable[Handle]]] = {"lifecycle": lifecycle}


async def main() -> None:
    env = await start_temporal()
    try:
        for name, scenario in SCENARIOS.items():
            async for harness in running_harness(env):
                handle = await scenario(harness)
                history = await handle.fetch_history()
                OUT.mkdir(exist_ok=True)
                (OUT / f"{name}.json").write_text(history.to_json())
                print(f"{name}: {len(history.events)} events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # skip interpreter teardown, which can crash in the Temporal core's threads
