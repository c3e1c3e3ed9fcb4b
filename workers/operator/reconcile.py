"""Each custom object becomes idempotent Temporal calls; nothing is remembered here.

- `MySQLCluster`: a finalizer first, then its workflow started (`mysqlcluster/<ns>/<name>`,
  conflict policy USE_EXISTING: two watchers, or one restarted, never make two); a newer
  `metadata.generation` than the workflow's desired one becomes the `apply_spec` update with
  that generation (update id per object and generation: Temporal answers a repeat with the
  first outcome). Deleted (deletionTimestamp): the `delete` update, then the finalizer is
  released once the workflow has ended.
- `MySQLBackup` / `MySQLRestore`: the `backup` / `restore` update once per object (update id
  from its uid; the workflow also refuses a second backup or restore by the same name), and the
  object's status set to Pending with its task; the workflow writes the rest.
- An object the models refuse gets the condition `Ready=False, reason InvalidSpec` and a
  Warning Event, and nothing starts.

Status is written by the cluster workflow (`workflows/publish.py`); the watcher writes only
what no workflow can: refusals, and Pending before a workflow knows the object.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from kubernetes.aio.client import CustomObjectsApi
from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.kubernetes.client import PLURALS, ApiClient, conflict, missing
from activities.kubernetes.events import record_event
from activities.kubernetes.status import write_status
from api.backup import BackupRequest, MySQLBackup, MySQLRestore, RestoreRequest
from api.cluster import ClusterStatus, MySQLCluster, cluster_workflow_id
from api.crd import GROUP, VERSION
from api.messages import (
    QUERY_STATUS,
    UPDATE_APPLY_SPEC,
    UPDATE_BACKUP,
    UPDATE_DELETE,
    UPDATE_RESTORE,
    ApplySpecRequest,
    CommandResult,
    LifecycleRequest,
)
from api.resource_status import Condition, ConditionType, EventNote
from api.states import BackupPhase
from workers import temporal
from workers.resources import start_cluster

log = structlog.get_logger()
M = TypeVar("M", bound=BaseModel)

FINALIZER = "mysqlops.io/cluster"
CONTROLLER = "mysqlops.io/operator"
CALL_TIMEOUT = timedelta(seconds=30)  # then the object is tried again at the next resync


class Stale(Exception):
    """The object changed since it was read: act on its newer version instead."""


class Reconciler:
    def __init__(
        self,
        temporal_client: Client,
        kube: ApiClient,
        task_queue: str = temporal.TASK_QUEUE,
        instance: str = "mysqlops-operator",
    ) -> None:
        self.temporal = temporal_client
        self.kube = kube
        self.objects = CustomObjectsApi(kube)
        self.task_queue = task_queue
        self.instance = instance
        self.locks: dict[str, asyncio.Lock] = {}
        self.handled: dict[str, tuple[object, ...]] = {}  # uid: what was last acted on
        self.teardowns: dict[str, asyncio.Task[None]] = {}  # workflow id: waiting for its end

    # -- entry points (the informers' handlers) --------------------------------------------

    async def cluster(self, obj: dict[str, Any], listed: bool) -> None:
        await self._once(obj, listed, self._cluster)

    async def backup(self, obj: dict[str, Any], listed: bool) -> None:
        await self._once(obj, listed, self._backup)

    async def restore(self, obj: dict[str, Any], listed: bool) -> None:
        await self._once(obj, listed, self._restore)

    async def forget(self, obj: dict[str, Any]) -> None:
        self.handled.pop(obj.get("metadata", {}).get("uid", ""), None)

    async def close(self) -> None:
        for task in self.teardowns.values():
            task.cancel()
        await asyncio.gather(*self.teardowns.values(), return_exceptions=True)

    async def _once(self, obj: dict[str, Any], listed: bool, act: Any) -> None:
        """Act on an object once per change of what matters (its generation, its deletion,
        its finalizers), and again at every (re)list: a status write of ours is no reason to
        call Temporal again."""
        meta = obj.get("metadata", {})
        uid = meta.get("uid", "")
        fingerprint = (
            meta.get("generation"),
            meta.get("deletionTimestamp"),
            tuple(meta.get("finalizers") or ()),
        )
        lock = self.locks.setdefault(uid, asyncio.Lock())
        async with lock:
            if not listed and self.handled.get(uid) == fingerprint:
                return
            try:
                await act(obj)
            except Stale:
                return  # written meanwhile (another watcher?): its event brings it back here
            self.handled[uid] = fingerprint

    # -- MySQLCluster ----------------------------------------------------------------------

    async def _cluster(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            await self._cluster_deleted(obj)
            return
        cluster = await self._valid(obj, MySQLCluster)
        if cluster is None:
            return
        if FINALIZER not in (meta.get("finalizers") or []):
            await self._set_finalizers(obj, [*(meta.get("finalizers") or []), FINALIZER])
        cluster.metadata.uid = meta.get("uid")
        await start_cluster(
            self.temporal, cluster, self.task_queue, WorkflowIDConflictPolicy.USE_EXISTING
        )
        generation = cluster.metadata.generation
        if generation is None or generation == 1:
            return  # started with it: a name is reused only once the old workflow has ended
        handle = self.temporal.get_workflow_handle(cluster.workflow_id)
        status: ClusterStatus = await handle.query(
            QUERY_STATUS, result_type=ClusterStatus, rpc_timeout=CALL_TIMEOUT
        )
        desired = status.spec_progress.desired_generation
        if desired is not None and desired >= generation:
            return
        request = ApplySpecRequest(spec=cluster.spec, generation=generation)
        result = await self._command(
            cluster.workflow_id, UPDATE_APPLY_SPEC, request, meta, f"generation-{generation}"
        )
        if isinstance(result, str) and not result.startswith("unchanged"):
            await self._refused(obj, "SpecRefused", result)

    async def _cluster_deleted(self, obj: dict[str, Any]) -> None:
        """Teardown first (data kept unless deletionPolicy: Delete), the finalizer last."""
        meta = obj["metadata"]
        if FINALIZER not in (meta.get("finalizers") or []):
            return
        workflow_id = cluster_workflow_id(meta["namespace"], meta["name"])
        handle = self.temporal.get_workflow_handle(workflow_id)
        try:
            running = (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            running = False
        if not running:
            remaining = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
            await self._set_finalizers(obj, remaining)
            log.info("cluster torn down: finalizer released", workflow_id=workflow_id)
            return
        request = LifecycleRequest(reason=f"MySQLCluster {meta['name']} deleted")
        await self._command(workflow_id, UPDATE_DELETE, request, meta, "delete")
        if workflow_id not in self.teardowns:
            self.teardowns[workflow_id] = asyncio.create_task(self._after_teardown(obj))

    async def _after_teardown(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        workflow_id = cluster_workflow_id(meta["namespace"], meta["name"])
        try:
            try:
                await self.temporal.get_workflow_handle(workflow_id).result()
            except Exception as error:  # ended some other way: released all the same
                log.warning(
                    "cluster workflow ended badly", workflow_id=workflow_id, error=str(error)
                )
            current = await self._read("MySQLCluster", meta["namespace"], meta["name"])
            if current is not None and current["metadata"].get("uid") == meta.get("uid"):
                async with self.locks.setdefault(meta.get("uid", ""), asyncio.Lock()):
                    await self._cluster_deleted(current)
        finally:
            self.teardowns.pop(workflow_id, None)

    # -- MySQLBackup / MySQLRestore ---------------------------------------------------------

    async def _backup(self, obj: dict[str, Any]) -> None:
        backup = await self._valid(obj, MySQLBackup)
        if backup is None or (obj.get("status") or {}).get("phase"):
            return  # refused, or requested already: a MySQLBackup is taken once
        request = BackupRequest(
            name=backup.metadata.name,
            reason=f"MySQLBackup {backup.metadata.name} applied",
            keep_for=backup.spec.keep_for,
        )
        await self._request(obj, backup.spec.cluster, UPDATE_BACKUP, request)

    async def _restore(self, obj: dict[str, Any]) -> None:
        restore = await self._valid(obj, MySQLRestore)
        if restore is None or (obj.get("status") or {}).get("phase"):
            return
        request = RestoreRequest(
            backup=restore.spec.backup,
            reason=f"MySQLRestore {restore.metadata.name} applied",
            name=restore.metadata.name,
        )
        await self._request(obj, restore.spec.cluster, UPDATE_RESTORE, request)

    async def _request(
        self, obj: dict[str, Any], cluster: str, update: str, request: BaseModel
    ) -> None:
        meta = obj["metadata"]
        workflow_id = cluster_workflow_id(meta["namespace"], cluster)
        result = await self._command(workflow_id, update, request, meta, f"{update}-{meta['uid']}")
        if isinstance(result, CommandResult):
            status = {
                "phase": BackupPhase.PENDING.value,
                "taskId": result.task_id,
                "progress": "queued",
            }
            await self._write(obj, status, [])
        elif result is None:
            status = {
                "phase": BackupPhase.PENDING.value,
                "progress": f"mysqlcluster {cluster} not found",
            }
            condition = _condition(
                "ClusterNotFound", f"mysqlcluster {cluster} does not exist (yet)"
            )
            await self._write(obj, status, [condition])
        else:
            status = {"phase": BackupPhase.FAILED.value, "error": result}
            await self._write(
                obj, status, [_condition("Refused", result)], warn=("Refused", result)
            )

    # -- shared steps -----------------------------------------------------------------------

    async def _valid(self, obj: dict[str, Any], model: type[M]) -> M | None:
        """The object as the models read it; None (and a condition and an Event) if refused."""
        document = {k: v for k, v in obj.items() if k != "status"}
        try:
            return model.model_validate(document)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in error.errors()
            )
            await self._refused(obj, "InvalidSpec", problems)
            return None

    async def _refused(self, obj: dict[str, Any], reason: str, message: str) -> None:
        log.warning("object refused", object=_title(obj), reason=reason, message=message)
        await self._write(obj, {}, [_condition(reason, message)], warn=(reason, message))

    async def _command(
        self,
        workflow_id: str,
        update: str,
        request: BaseModel,
        meta: dict[str, Any],
        update_id: str,
    ) -> CommandResult | str | None:
        """The update's result; the refusal's reason (nothing changed); None when there is
        no running workflow to send it to."""
        handle = self.temporal.get_workflow_handle(workflow_id)
        try:
            result: CommandResult = await handle.execute_update(
                update,
                request,
                id=f"{meta.get('uid', '')}/{update_id}",
                result_type=CommandResult,
                rpc_timeout=CALL_TIMEOUT,
            )
            return result
        except WorkflowUpdateFailedError as error:
            if isinstance(error.cause, ApplicationError):
                return error.cause.message
            raise
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def _set_finalizers(self, obj: dict[str, Any], finalizers: list[str]) -> None:
        """Stale when the object changed since it was read (the write carries its version)."""
        meta = obj["metadata"]
        body = {
            "metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}
        }
        try:
            await self.objects.patch_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], PLURALS[obj["kind"]], meta["name"], body
            )
        except Exception as error:
            if conflict(error):
                raise Stale(_title(obj)) from None
            raise

    async def _read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = await self.objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name
            )
        except Exception as error:
            if missing(error):
                return None
            raise
        return found if isinstance(found, dict) else None

    async def _write(
        self,
        obj: dict[str, Any],
        status: dict[str, Any],
        conditions: list[Condition],
        warn: tuple[str, str] | None = None,
    ) -> None:
        meta, now = obj["metadata"], datetime.now(UTC)
        try:
            written = await write_status(
                self.kube,
                obj["kind"],
                meta["namespace"],
                meta["name"],
                status,
                conditions,
                now,
                uid=meta.get("uid"),
                keep_conditions=True,
            )
        except Exception as error:
            if conflict(error):
                return  # written meanwhile: the next event brings it back here
            raise
        if warn is not None and written == "written":
            note = EventNote(
                kind=obj["kind"],
                name=meta["name"],
                type="Warning",
                reason=warn[0],
                action="Reconcile",
                note=warn[1][:1024],
                at=now,
            )
            await record_event(
                self.kube, meta["namespace"], note, meta.get("uid", ""), CONTROLLER, self.instance
            )


def _condition(reason: str, message: str) -> Condition:
    return Condition(
        type=ConditionType.READY.value, status="False", reason=reason, message=message[:32768]
    )


def _title(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind', '?').lower()} {meta.get('namespace')}/{meta.get('name')}"
