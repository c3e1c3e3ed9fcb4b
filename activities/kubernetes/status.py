"""Writing an object's status: read it, keep each condition's `lastTransitionTime` while its
status stays the same (as `meta.SetStatusCondition` does), and patch the status subresource
with the object's resourceVersion, so a concurrent write makes this one fail (409) and be
retried on fresh data instead of overwriting it. Nothing is written when nothing changed."""

from datetime import datetime
from typing import Any

from kubernetes.aio.client import CustomObjectsApi

from activities.kubernetes.client import PLURALS, ApiClient, as_object, missing
from api.crd import GROUP, VERSION
from api.resource_status import Condition


def merge_conditions(
    old: list[dict[str, Any]], new: list[Condition], now: datetime
) -> list[dict[str, Any]]:
    before = {c.get("type"): c for c in old}
    merged = []
    for condition in new:
        previous = before.get(condition.type)
        kept = previous is not None and previous.get("status") == condition.status
        since = previous.get("lastTransitionTime") if kept and previous else None
        stamped = condition.model_copy(update={"last_transition_time": since or now})
        merged.append(stamped.model_dump(mode="json", by_alias=True, exclude_none=True))
    return merged


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


async def write_status(
    api: ApiClient,
    kind: str,
    namespace: str,
    name: str,
    status: dict[str, Any],
    conditions: list[Condition],
    now: datetime,
    uid: str | None = None,
) -> bool:
    """Write `status` (camelCase, None for a field to clear) to the object, if it exists and
    is the one meant (`uid`). False when there is no such object."""
    objects = CustomObjectsApi(api)
    plural = PLURALS[kind]
    try:
        current = as_object(
            await objects.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        )
    except Exception as error:
        if missing(error):
            return False
        raise
    metadata = current.get("metadata", {})
    if uid and metadata.get("uid") != uid:
        return False  # deleted and created again: a newer object by the same name
    old = current.get("status") or {}
    new = {**status, "conditions": merge_conditions(old.get("conditions", []), conditions, now)}
    if _without_nulls(new) == _without_nulls(old):
        return True
    body = {"metadata": {"resourceVersion": metadata.get("resourceVersion")}, "status": new}
    await objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, plural, name, body
    )
    return True
