"""Several clusters on one worker and one scripted runtime stay apart."""

import asyncio

from api.remediation import FaultClass, Outcome
from api.states import NodeState
from tests.workflows.harness import Harness, green_and_idle, status, until

FAST = {"backoffSeconds": 0.5, "hungGraceSeconds": 2}


async def test_a_crash_in_one_of_three_clusters_is_repaired_there_only(harness: Harness) -> None:
    handles = [await harness.start(remediation=FAST) for _ in range(3)]
    await asyncio.gather(*(until(h, green_and_idle, 60) for h in handles))
    before = [await status(h) for h in handles]
    victim = before[1].nodes[2]
    calls = len(harness.runtime.calls)
    harness.runtime.crash(victim.name, detail="killed by SIGKILL")

    healed = await until(handles[1], lambda s: green_and_idle(s) and bool(s.remediations), 60)
    record = healed.remediations[-1]
    assert (record.fault, record.nodes, record.outcome) == (
        FaultClass.NODE_CRASHED,
        [victim.name],
        Outcome.SUCCEEDED,
    )
    assert healed.nodes[2].state is NodeState.GREEN and healed.nodes[2].pid != victim.pid

    await asyncio.sleep(1)  # many probe rounds of the other clusters' watches
    for i in (0, 2):
        after = await status(handles[i])
        assert green_and_idle(after) and not after.remediations
        assert after.transitions == before[i].transitions
        assert [n.pid for n in after.nodes] == [n.pid for n in before[i].nodes]
    touched = {c[1] for c in harness.runtime.calls[calls:] if c[0] in ("start", "stop")}
    assert touched == {victim.name}
