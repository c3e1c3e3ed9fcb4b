"""Kubernetes Events (events.k8s.io/v1) about our objects, aggregated into series.

An Event's name is derived from what it says (object, type, reason, note), so the same
occurrence written twice (an activity retried) is found, and a repeat of the same thing adds
to the Event's `series` (count, lastObservedTime) instead of a new Event. An occurrence no
newer than the series' last one was counted already: writing is idempotent.
"""

import hashlib
from datetime import UTC, datetime
from typing import Any

from kubernetes.aio.client import CustomObjectsApi

from activities.kubernetes.client import API_VERSION, ApiClient, as_object, conflict, missing
from api.resource_status import EventNote

EVENTS = ("events.k8s.io", "v1", "events")


def micro_time(moment: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def event_name(note: EventNote, uid: str) -> str:
    said = "\n".join((note.kind, note.name, uid, note.type, note.reason, note.note))
    return f"{note.name}.{hashlib.sha256(said.encode()).hexdigest()[:16]}"


def event_body(
    note: EventNote, namespace: str, uid: str, controller: str, instance: str
) -> dict[str, Any]:
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": event_name(note, uid), "namespace": namespace},
        "eventTime": micro_time(note.at),
        "reportingController": controller,
        "reportingInstance": instance,
        "action": note.action,
        "reason": note.reason,
        "type": note.type,
        "note": note.note,
        "regarding": {
            "apiVersion": API_VERSION,
            "kind": note.kind,
            "name": note.name,
            "namespace": namespace,
            "uid": uid,
        },
    }


async def record_event(
    api: ApiClient, namespace: str, note: EventNote, uid: str, controller: str, instance: str
) -> None:
    objects = CustomObjectsApi(api)
    group, version, plural = EVENTS
    name = event_name(note, uid)
    try:
        existing = as_object(
            await objects.get_namespaced_custom_object(group, version, namespace, plural, name)
        )
    except Exception as error:
        if not missing(error):
            raise
        body = event_body(note, namespace, uid, controller, instance)
        try:
            await objects.create_namespaced_custom_object(group, version, namespace, plural, body)
            return
        except Exception as race:  # another writer created it meanwhile: count on it
            if not conflict(race):
                raise
        existing = as_object(
            await objects.get_namespaced_custom_object(group, version, namespace, plural, name)
        )
    series = existing.get("series") or {}
    last = series.get("lastObservedTime") or existing.get("eventTime")
    if last is not None and note.at <= _parse(last):
        return  # this occurrence was counted already
    patch = {
        "metadata": {"resourceVersion": existing["metadata"].get("resourceVersion")},
        "series": {
            "count": int(series.get("count", 1)) + 1,
            "lastObservedTime": micro_time(note.at),
        },
    }
    await objects.patch_namespaced_custom_object(group, version, namespace, plural, name, patch)
