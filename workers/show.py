"""What the CLI prints: a cluster's status, a backup or restore record, stored backups."""

import json
import sys

from api.backup import BackupManifest, BackupRecord, BackupTrigger, RestoreRecord
from api.cluster import ClusterStatus
from api.remediation import RemediationRecord
from api.states import BackupPhase


def status(current: ClusterStatus) -> None:
    print(
        f"cluster  {current.workflow_id}  state={current.state.value}  phase={current.phase.value}"
    )
    print(f"writer   {current.writer or '-'}    ready {current.ready_replicas}/{current.replicas}")
    if current.endpoints:
        e = current.endpoints
        reader = e.reader_host or e.host
        print(f"endpoint writer {e.host}:{e.writer_port}  reader {reader}:{e.reader_port}")
    for node in current.nodes:
        facts = node.facts
        print(
            f"  {node.name:<14} {node.state.value:<12} {node.host}:{node.port:<6} "
            f"pid={node.pid or '-':<8} wsrep={facts.wsrep_state or '-'}/"
            f"{facts.wsrep_cluster_status or '-'}  {node.reason}"
        )
        if node.last_join is not None and node.last_join.at is not None:
            join = node.last_join
            print(f"    last joined {join.at:%Y-%m-%d %H:%M:%S} by {join.detail}")
    if current.current_task:
        print(f"task     {current.current_task.id} running")
    for task in current.queued_tasks:
        print(f"queued   {task.id}")
    for ended in current.outcomes[-3:]:
        error = f": {ended.error}" if ended.error else ""
        print(f"ended    {ended.id} {ended.outcome.value}{error}")
    if current.manual_intervention:
        m = current.manual_intervention
        print(f"MANUAL INTERVENTION since {m.since:%Y-%m-%d %H:%M:%S}: {m.reason}")
        print(f"  evidence: {m.evidence}")
        print(
            f"  when it is safe: mysqlops resume {current.workflow_id.split('/')[-1]} --reason ..."
        )
    for record in current.remediations[-3:]:
        print(
            f"repair   {record.id} {record.fault.value} {','.join(record.nodes)} "
            f"attempt {record.attempt}: {record.outcome.value}"
        )
        for joined in [action.join for action in record.actions if action.join]:
            print(f"           {joined.detail}")
    for taken in current.backups[-3:]:
        size = f"{taken.size_bytes / 2**20:.1f} MiB" if taken.size_bytes else ""
        done = f"{taken.progress_bytes / 2**20:.0f} MiB streamed" if taken.progress_bytes else ""
        print(
            f"backup   {taken.name} {taken.phase.value} {taken.node or ''} {size or done} "
            f"{taken.error or ''}".rstrip()
        )
    for restored in current.restores[-1:]:
        print(
            f"restore  {restored.task_id} of {restored.backup or 'latest'}: "
            f"{restored.phase.value} {restored.error or ''}".rstrip()
        )
        if restored.phase is BackupPhase.FAILED and restored.rollback:
            print(f"  {restored.rollback}")
    if current.message:
        print(f"message  {current.message}")


def remediation(record: RemediationRecord) -> None:
    for entry in record.actions:
        print(f"  {entry.action.value} {entry.node or ''}: {entry.outcome.value} {entry.detail}")
    print(f"{record.id}: {record.outcome.value}")


def backup_progress(record: BackupRecord) -> None:
    done = f"{record.progress_bytes / 2**20:.0f} MiB streamed" if record.progress_bytes else ""
    print(f"backup {record.name}: {record.phase.value} {done}".rstrip(), file=sys.stderr)


def record(taken: BackupRecord | RestoreRecord, as_json: bool) -> None:
    data = taken.model_dump(mode="json", by_alias=True)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if value not in (None, [], {}):
            print(f"{key:<20} {value}")


def manifest_json(manifest: BackupManifest) -> dict[str, object]:
    data = manifest.model_dump(mode="json", by_alias=True)
    data["position"] = manifest.position
    return data


def backups(stored: list[BackupManifest]) -> None:
    if not stored:
        print("no backups")
        return
    print(f"{'NAME':<28} {'FINISHED (UTC)':<20} {'SIZE':>10}  {'KEPT':<16} {'POSITION':<44} PATH")
    for m in stored:
        print(
            f"{m.name:<28} {m.finished_at:%Y-%m-%d %H:%M:%S} {m.stored_bytes / 2**20:>8.1f}Mi  "
            f"{_kept(m):<16} {m.position:<44} {m.location}"
        )


def _kept(manifest: BackupManifest) -> str:
    """How long a backup is kept: scheduled ones by the cluster's retention, manual ones until
    their keepFor ends or until deleted by hand."""
    if manifest.trigger is BackupTrigger.SCHEDULE:
        return "retention"
    if manifest.expires_at is not None:
        return f"to {manifest.expires_at:%Y-%m-%d %H:%M}"
    return "until deleted"
