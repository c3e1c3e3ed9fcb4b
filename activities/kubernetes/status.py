"""Writing an object's status: read it, keep each condition's `lastTransitionTime` while its
status stays the same (as `meta.SetStatusCondition` does), and patch the status subresource
with the object's resourceVersion, so a concurrent write makes this one fail (409) and be
retried on fresh data instead of overwriting it. Nothing is written when nothing changed."""

from datetime import datetime
from typing import Any, Literal

from kubernetes.aio.client import CustomObjectsApi

from activities.kubernetes.client import PLURALS, ApiClient, as_object, missing
from api.crd import GROUP, VERSION
from api.resource_status import Condition


def merge_conditions(
    old: list[dict[str, Any]], new: list[Condition], now: datetime, keep: bool = False
) -> list[dict[str, Any]]:
    """`new`, each with its time of transition; with `keep`, also the old conditions of the
    types `new` does not have."""
    before = {c.get("type"): c for c in old}
    merged = [c for c in old if keep and c.get("type") not in {n.type for n in new}]
    for condition in new:
        previous = before.get(condition.type)
        kept = previous is not None and previous.get("status") == condition.status
        since = previous.get("lastTransitionTime") if kept and previous else None
        moment = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else now
        stamped = condition.model_copy(update={"last_transition_time": moment})
        merged.append(stamped.model_dump(mode="json", by_alias=True, exclude_none=True))
    return merged


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _differs(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether writing `new` (a merge patch: None clears a field) would change `old`."""
    return any((k in old) if v is None else _without_nulls(v) != old.get(k) for k, v in new.items())


async def write_status(
    api: ApiClient,
    kind: str,
    namespace: str,
    name: str,
    status: dict[str, Any],
    conditions: list[Condition],
    now: datetime,
    uid: str | None = None,
    keep_conditions: bool = False,
) -> Literal["gone", "unchanged", "written"]:
    """Write `status` (camelCase, None for a field to clear; fields not named are left) to
    the object, if it exists and is the one meant (`uid`)."""
    objects = CustomObjectsApi(api)
    plural = PLURALS[kind]
    try:
        current = as_object(
            await objects.get_namespaced_custom_object_status(
                GROUP, VERSION, namespace, plural, name
            )
        )
    except Exception as error:
        if missing(error):
            return "gone"
        raise
    metadata = current.get("metadata", {})
    if uid and metadata.get("uid") != uid:
        return "gone"  # deleted and created again: a newer object by the same name
    old = current.get("status") or {}
    merged = merge_conditions(old.get("conditions", []), conditions, now, keep_conditions)
    new = {**status, "conditions": merged}
    if not _differs(new, old):
        return "unchanged"
    body = {"metadata": {"resourceVersion": metadata.get("resourceVersion")}, "status": new}
    await objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, plural, name, body
    )
    return "written"
