"""Backups and restores in the cluster workflow: queued like every task, the node always
resynced, bad backups refused before anything stops, restores in a safe order."""

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from activities.scripted.runtime import BACKUP_UUID
from api.backup import BackupRequest, BackupTrigger, RestoreRequest, RestoreSource
from api.messages import (
    SIGNAL_SCHEDULED_BACKUP,
    UPDATE_APPLY_SPEC,
    UPDATE_BACKUP,
    UPDATE_RESTORE,
    UPDATE_STOP,
    ApplySpecRequest,
    CommandResult,
    LifecycleRequest,
)
from api.remediation import Outcome
from api.states import BackupPhase
from tests.workflows.harness import Harness, green_and_idle, spec_with, status, until
from workflows import backups


async def backup(handle: WorkflowHandle[object, object], name: str | None = None) -> str:
    result: CommandResult = await handle.execute_update(
        UPDATE_BACKUP, BackupRequest(name=name), result_type=CommandResult
    )
    assert result.name is not None
    return result.name


async def restore(handle: WorkflowHandle[object, object], name: str | None) -> str:
    result: CommandResult = await handle.execute_update(
        UPDATE_RESTORE, RestoreRequest(backup=name), result_type=CommandResult
    )
    assert result.task_id is not None
    return result.task_id


async def until_ended(handle: WorkflowHandle[object, object], task: str) -> None:
    await until(handle, lambda s: green_and_idle(s) and task in {o.id for o in s.outcomes}, 60)


def ended(phase: BackupPhase) -> bool:
    return phase in (BackupPhase.SUCCEEDED, BackupPhase.FAILED)


async def test_a_backup_comes_from_a_reader_which_is_desynced_then_resynced(
    harness: Harness,
) -> None:
    handle = await harness.start()
    ready = await until(handle, green_and_idle)
    harness.runtime.nodes[ready.nodes[2].name].seqno = 42
    name = await backup(handle, "nightly")
    done = await until(handle, lambda s: bool(s.backups) and ended(s.backups[0].phase))
    record = done.backups[0]
    assert record.name == name == "nightly" and record.phase is BackupPhase.SUCCEEDED
    assert record.node == ready.nodes[2].name != ready.writer
    assert record.position == f"{BACKUP_UUID}:42"
    assert record.size_bytes and record.location and record.location.endswith(".xbstream.zst")
    calls = [c for c in harness.runtime.calls if c[0] in ("desync", "backup", "resync")]
    assert calls[:3] == [("desync", record.node), ("backup", record.node), ("resync", record.node)]
    assert not harness.runtime.desynced


async def test_a_failed_backup_still_resyncs_its_node_and_says_why(harness: Harness) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    harness.runtime.backup_fails = True
    await backup(handle)
    done = await until(handle, lambda s: bool(s.backups) and ended(s.backups[0].phase), 60)
    record = done.backups[0]
    assert record.phase is BackupPhase.FAILED and "scripted failure" in (record.error or "")
    assert not harness.runtime.desynced, "a node was left out of flow control"
    assert (await until(handle, green_and_idle)).state.value == "Green"


async def test_scheduled_runs_are_skipped_while_a_backup_is_pending(harness: Harness) -> None:
    handle = await harness.start()
    first = await until(handle, lambda s: len(s.nodes) == 3)
    harness.runtime.gated_node = first.nodes[2].name  # the create waits: the queue is busy
    request = BackupRequest(trigger=BackupTrigger.SCHEDULE)
    await handle.signal(SIGNAL_SCHEDULED_BACKUP, request)  # not created yet: skipped
    harness.runtime.gate.set()
    await until(handle, green_and_idle)
    await handle.signal(SIGNAL_SCHEDULED_BACKUP, request)
    await handle.signal(SIGNAL_SCHEDULED_BACKUP, request)  # one is already queued or running
    done = await until(handle, lambda s: bool(s.backups) and all(ended(b.phase) for b in s.backups))
    assert [b.trigger for b in done.backups] == [BackupTrigger.SCHEDULE]
    skipped = [t for t in done.transitions if t.to_state == "skipped"]
    assert len(skipped) == 2, done.transitions


async def test_backup_requests_that_cannot_be_honoured_are_refused(harness: Harness) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    await backup(handle, "once")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await backup(handle, "once")
    assert "'once' was already taken or queued" in str(refused.value.cause)
    await handle.execute_update(UPDATE_STOP, LifecycleRequest(), result_type=CommandResult)
    await until(handle, lambda s: s.phase.value == "Stopped")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await backup(handle)
    assert "stopped: a hot backup needs it running" in str(refused.value.cause)
    assert [b.name for b in (await status(handle)).backups] == ["once"]


async def test_a_restore_verifies_and_stages_before_it_stops_anything(harness: Harness) -> None:
    handle = await harness.start()
    ready = await until(handle, green_and_idle)
    await backup(handle, "b1")
    await until(handle, lambda s: bool(s.backups) and ended(s.backups[0].phase))
    harness.runtime.calls.clear()
    task = await restore(handle, None)  # the latest
    done = await until(
        handle,
        lambda s: bool(s.restores) and ended(s.restores[0].phase) and green_and_idle(s),
        60,
    )
    record = done.restores[0]
    assert record.task_id == task and record.phase is BackupPhase.SUCCEEDED
    assert record.backup == "b1" and record.node == ready.nodes[0].name
    assert sorted(record.set_aside) == sorted(n.name for n in ready.nodes)
    kinds = [c[0] for c in harness.runtime.calls]
    first_stop = kinds.index("stop")
    assert kinds.index("receive") < first_stop, "staged only after the cluster was stopped"
    assert first_stop < kinds.index("set-aside") < kinds.index("install")
    starts = [c for c in harness.runtime.calls if c[0] == "start"]
    assert starts[0] == ("start", record.node, True), "the restored node bootstraps"


async def test_a_named_restore_runs_once(harness: Harness) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    await backup(handle, "b1")
    await until(handle, lambda s: bool(s.backups) and ended(s.backups[0].phase))
    request = RestoreRequest(backup="b1", name="undo-mistake")
    await handle.execute_update(UPDATE_RESTORE, request, result_type=CommandResult)
    await until(handle, lambda s: green_and_idle(s) and ended(s.restores[0].phase), 60)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(UPDATE_RESTORE, request, result_type=CommandResult)
    assert "'undo-mistake' was already requested" in str(refused.value.cause)
    assert [r.name for r in (await status(handle)).restores] == ["undo-mistake"]


async def test_a_named_restore_is_refused_long_after_its_record_is_gone(
    unsandboxed: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records are bounded (here to one); the names of restores carried out are not."""
    monkeypatch.setattr(backups, "RECORDS_KEPT", 1)
    handle = await unsandboxed.start()
    await until(handle, green_and_idle)
    await backup(handle, "b1")
    await until(handle, lambda s: bool(s.backups) and ended(s.backups[0].phase))
    request = RestoreRequest(backup="b1", name="undo-mistake")
    named = await handle.execute_update(UPDATE_RESTORE, request, result_type=CommandResult)
    assert named.task_id is not None
    await until_ended(handle, named.task_id)  # a second restore is refused while one is queued
    for _ in range(2):  # later restores push the named one's record out
        await until_ended(handle, await restore(handle, "b1"))
    assert "undo-mistake" not in [r.name for r in (await status(handle)).restores]
    before = len(unsandboxed.runtime.calls)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(UPDATE_RESTORE, request, result_type=CommandResult)
    assert "'undo-mistake' was already requested" in str(refused.value.cause)
    assert unsandboxed.runtime.calls[before:] == []  # nothing stopped, nothing restored


async def test_queued_backups_keep_their_records_however_many_are_kept(
    unsandboxed: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backups, "RECORDS_KEPT", 1)
    handle = await unsandboxed.start()
    ready = await until(handle, green_and_idle)
    unsandboxed.runtime.gated_node = ready.nodes[1].name  # a restart waits: tasks queue up
    unsandboxed.runtime.crash(ready.nodes[1].name)
    await until(handle, lambda s: s.current_task is not None and s.current_task.kind == "remediate")
    names = [await backup(handle, f"queued-{i}") for i in range(3)]
    unsandboxed.runtime.gate.set()
    done = await until(
        handle, lambda s: green_and_idle(s) and sum(o.kind == "backup" for o in s.outcomes) == 3
    )
    backup_outcomes = [o for o in done.outcomes if o.kind == "backup"]
    assert [o.outcome for o in backup_outcomes] == [Outcome.SUCCEEDED] * 3, backup_outcomes
    assert [r.name for r in done.backups] == names


async def test_a_restore_without_room_for_the_backup_changes_nothing(harness: Harness) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    await backup(handle, "big")
    await until(handle, lambda s: bool(s.backups) and ended(s.backups[0].phase))
    harness.runtime.free = 1 << 20
    harness.runtime.calls.clear()
    await restore(handle, "big")
    done = await until(handle, lambda s: bool(s.restores) and ended(s.restores[0].phase))
    assert "not enough disk" in (done.restores[0].error or "")
    assert not [c for c in harness.runtime.calls if c[0] in ("stop", "set-aside", "receive")]
    assert (await until(handle, green_and_idle)).state.value == "Green"


async def test_restore_from_cannot_be_added_to_a_running_cluster(harness: Harness) -> None:
    handle = await harness.start()
    await until(handle, green_and_idle)
    changed = spec_with(3).model_copy(update={"restore_from": RestoreSource(cluster="other")})
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            UPDATE_APPLY_SPEC, ApplySpecRequest(spec=changed), result_type=CommandResult
        )
    assert "restoreFrom only applies when a cluster is created" in str(refused.value.cause)
    assert (await status(handle)).queued_tasks == []
