"""The activity that writes what a cluster workflow publishes to its Kubernetes objects."""

import os
import socket
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.kubernetes.client import ApiClient, ApiException
from activities.kubernetes.events import record_event
from activities.kubernetes.status import write_status
from activities.metrics import EVENTS_WRITTEN, STATUS_WRITES
from api.resource_status import PublishRequest

CONTROLLER = "mysqlops.io/worker"
PERMANENT = {400, 401, 403, 422}  # retrying the same write cannot help


class KubernetesActivities:
    """`api` is None in a worker with no access to an API server: the activity then fails
    (retried), so that a worker with access can take it."""

    def __init__(self, api: ApiClient | None, instance: str | None = None) -> None:
        self.api = api
        self.instance = instance or os.environ.get("POD_NAME") or socket.gethostname()

    @activity.defn(name="publish_to_kubernetes")
    async def publish_to_kubernetes(self, request: PublishRequest) -> None:
        """Status of the cluster, of its MySQLBackup / MySQLRestore objects named in the
        request (skipped when absent: a scheduled backup has none), then the Events."""
        if self.api is None:
            raise ApplicationError(
                "this worker has no access to a Kubernetes API server (no kubeconfig and not "
                "in a pod): run workers with access for clusters created from Kubernetes",
                type="NoKubernetesAccess",
            )
        ref, now = request.cluster, datetime.now(UTC)
        try:
            status = request.status.model_dump(mode="json", by_alias=True, exclude={"conditions"})
            written = await write_status(
                self.api,
                "MySQLCluster",
                ref.namespace,
                ref.name,
                status,
                request.status.conditions,
                now,
                uid=ref.uid,
            )
            STATUS_WRITES.labels("cluster", written).inc()
            if written == "gone":
                activity.logger.info(
                    "mysqlcluster %s/%s is gone: nothing written", ref.namespace, ref.name
                )
                return
            for kind, records in (
                ("MySQLBackup", request.backups),
                ("MySQLRestore", request.restores),
            ):
                for name, record in records.items():
                    body = record.model_dump(mode="json", by_alias=True, exclude={"conditions"})
                    result = await write_status(self.api, kind, ref.namespace, name, body, [], now)
                    STATUS_WRITES.labels(kind.removeprefix("MySQL").lower(), result).inc()
            for note in request.events:
                await record_event(
                    self.api, ref.namespace, note, ref.uid, CONTROLLER, self.instance
                )
                EVENTS_WRITTEN.inc()
        except ApiException as error:
            if error.status in PERMANENT:
                raise ApplicationError(
                    f"the API server refused the write: {error.status} {error.reason}",
                    type="KubernetesRefused",
                    non_retryable=True,
                ) from None
            raise
