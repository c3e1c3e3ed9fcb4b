"""The action of a cluster's backup Schedule. A Schedule can only start workflows, so each run
starts this one, which hands the backup to the cluster workflow's queue and ends. Pausing,
triggering and past runs are the Schedule's, in the Temporal UI and `temporal schedule`."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.backup.activities import TRIGGER_WORKFLOW
    from api.backup import BackupRequest, BackupTrigger, BackupTriggerInput
    from api.messages import SIGNAL_SCHEDULED_BACKUP


@workflow.defn(name=TRIGGER_WORKFLOW)
class BackupTriggerWorkflow:
    @workflow.run
    async def run(self, request: BackupTriggerInput) -> None:
        cluster = workflow.get_external_workflow_handle(request.cluster_workflow_id)
        await cluster.signal(
            SIGNAL_SCHEDULED_BACKUP,
            BackupRequest(
                trigger=BackupTrigger.SCHEDULE,
                reason=f"scheduled run {workflow.info().workflow_id}",
            ),
        )
