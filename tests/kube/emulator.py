"""An in-memory Kubernetes API server for tests, faithful where our CR watcher relies on it.

No Kubernetes API server can run on a test machine, so the operator's watcher (the official
``kubernetes`` client, blocking or ``kubernetes.aio``) is tested against this emulator over real
HTTP (``tests/kube/conftest.py`` serves it on 127.0.0.1 from a thread with its own event loop).

Design: ``KubeEmulator`` subclasses ``kmock.KubernetesScaffold`` (kmock==0.8, pinned in
pyproject.toml), kmock's *stateless* Kubernetes API shell. From kmock we use only: the parsing of
Kubernetes URLs into resource/namespace/name/subresource, the discovery endpoints, ``Status``
error bodies (``kmock.KubernetesError``), the log of served requests, the rendering of an async
generator as a JSON-lines watch stream, and its DSL (``emulator[...] << ...``) for ad-hoc faults.
The store, resourceVersions, generation, status isolation, patches, finalizers and watches are
ours: kmock's own ``KubernetesEmulator`` keeps spec and status together, has no real
resourceVersion, replays everything on every watch and writes even when it answers an injected
error. This relies on kmock internals: fallback reactions (``self.fallback[...] << handler``),
``_handle`` (overridden for injected faults), ``kmock._internal.rendering.Response`` (for 201) and
``Request._raw_request`` (its transport, to drop watch streams abruptly).

What a real API server does and this emulator imitates (assumptions our code may rely on):

1. Every write of every object gets a new ``metadata.resourceVersion`` from one global,
   monotonically increasing counter (etcd's revision), sent as a string; clients must treat it as
   opaque. A list's ``metadata.resourceVersion`` is the counter at the time of the list.
2. Create sets ``metadata.uid``, ``creationTimestamp`` and (custom resources) ``generation: 1``;
   answers 201 with the stored object; 409 ``AlreadyExists`` for an existing name; 400 if the
   body carries a ``resourceVersion``; 422 ``Invalid`` for a name that is not a DNS subdomain.
   Custom resources must carry their ``apiVersion`` and ``kind`` (400); built-in ones get them.
3. ``metadata.generation`` of a custom resource grows by one whenever anything outside
   ``metadata`` (and ``status``, with the status subresource) changes; never on status-only or
   metadata-only writes. So does that of StatefulSets, Deployments and PodDisruptionBudgets;
   the other built-in resources here (events, leases, pods, ...) carry no generation.
4. With the status subresource, writes to the main resource ignore ``status`` (also on create)
   and writes to ``/status`` change only ``status``.
5. A write (merge patch, JSON patch, PUT) whose body carries a ``metadata.resourceVersion``
   other than the stored one fails with 409 ``Conflict`` (optimistic concurrency); without one,
   it wins. Server-managed metadata (name, namespace, uid, creationTimestamp, generation,
   deletionTimestamp) cannot be written. A write that changes nothing is not stored: no new
   resourceVersion, no watch event.
6. Patch types: ``application/merge-patch+json`` (RFC 7386) and ``application/json-patch+json``
   (RFC 6902 add/remove/replace/test; a failed ``test`` is 422). Strategic merge patch works on
   built-in resources (here as a merge patch: lists are replaced, not merged) and is refused with
   415 for custom resources, as a real server does. Server-side apply is not emulated (415).
7. Deleting an object with finalizers only sets ``deletionTimestamp`` (MODIFIED event); the
   object goes away (DELETED event, new resourceVersion) when its finalizers become empty, by
   whatever write. No finalizer can be added once deletion started (422). Delete answers a
   ``Status`` of success when the object is gone, the object while finalizers hold it.
   ``DeleteOptions.preconditions`` (uid, resourceVersion) are checked (409).
8. Watch: without ``resourceVersion`` (or with "0") the stream starts with the current objects as
   ADDED, then changes; with a resourceVersion it sends only changes newer than it, no replay.
   A resourceVersion older than the compaction point gets a 200 stream with one ERROR event
   whose object is a ``Status`` with code 410 (reason ``Expired``), then the end of the stream;
   the client must relist. Open watches survive a compaction (a real server serves them from its
   watch cache). ``timeoutSeconds`` ends the stream cleanly. ``allowWatchBookmarks=true`` brings
   BOOKMARK events (only ``kind``, ``apiVersion``, ``metadata.resourceVersion``) every
   ``bookmark_interval`` seconds (about a minute on a real server). ``labelSelector`` (``k=v``,
   ``k==v``, ``k!=v``, ``k``, ``!k``) and ``fieldSelector`` (``metadata.name``,
   ``metadata.namespace``) filter lists and watches; an object that starts or stops matching a
   watch's selector is sent to it as ADDED or DELETED. A watch whose client went away is closed.
9. ``events.k8s.io/v1`` Events are validated as a real server does: on create eventTime, type
   Normal|Warning, reportingController, reportingInstance, action and reason are required, note
   is at most 1 kB, the deprecated* fields must be unset; a ``series`` needs count >= 2 and
   lastObservedTime; on update everything but ``series`` and metadata is immutable (``note`` too).
10. A bearer token is taken as the caller's user name (``Call.user``, for RBAC comparisons);
    nothing is refused for lack of permissions.

The built-in resources the test cluster needs (``tests/kube/controllers.py``, ``kubelet.py``):
core/v1 pods, persistentvolumeclaims, services (with /status), configmaps, secrets; apps/v1
statefulsets, deployments; policy/v1 poddisruptionbudgets (all with /status).

11. A Pod is created with ``status: {phase: Pending}`` whatever the body says (status is
    written through /status only, by the kubelet). ``POST pods/<name>/binding`` (the
    scheduler's write) sets ``spec.nodeName`` once (409 when already bound or being deleted)
    and the condition PodScheduled=True.
12. Graceful deletion of Pods: deleting a Pod bound to a node (``spec.nodeName``) and not
    Succeeded/Failed only sets ``deletionTimestamp`` (now + the grace period) and
    ``deletionGracePeriodSeconds``: the grace period of the ``DeleteOptions`` (body or query
    ``gracePeriodSeconds``), else ``spec.terminationGracePeriodSeconds``, else 30. The kubelet
    stops the containers, then deletes again with ``gracePeriodSeconds=0``, which removes the
    object (once its finalizers, if any, are gone). A later delete may only shorten the grace
    period; a grace period of 0 (a force delete) removes a Pod at once, as does deleting an
    unbound Pod. Other resources are deleted at once (or when their finalizers are gone).
13. A Secret's ``stringData`` is merged into ``data`` (base64) on every write, never stored.
14. Nothing else of a built-in object is defaulted or validated: the controllers and the
    kubelet apply Kubernetes' defaults themselves when a field is absent (``replicas: 1``,
    ``restartPolicy: Always``, ``terminationGracePeriodSeconds: 30``, ...). No ClusterIP is
    allocated to a Service; a pod spec is not immutable here.

Not emulated: pagination (``limit``/``continue``: one page), lists at an old resourceVersion,
set-based label selectors (400), admission, RBAC, schema validation of custom resources,
server-side apply, deletecollection, namespaces as objects, DeleteOptions'
``propagationPolicy`` (garbage collection is ``tests/kube/controllers.py``'s, in the background,
as a real kube-controller-manager's), field selectors other than ``metadata.name`` and
``metadata.namespace``, ControllerRevisions, ReplicaSets, Endpoints, Nodes.
"""

import asyncio
import base64
import bisect
import contextlib
import copy
import datetime
import http
import math
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp.web
import attrs
import kmock
from kmock._internal.rendering import Response

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_TERM = re.compile(r"\s*(!?)\s*([\w./-]+)\s*(?:(==|=|!=)\s*([\w.-]*))?\s*")
SERVER_META = ("name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp")
# events.k8s.io/v1 Events: required and to be unset on create; immutable on update.
EVENT_REQUIRED = ("eventTime", "reportingController", "reportingInstance", "action", "reason")
EVENT_UNSET = tuple(
    f"deprecated{f}" for f in ("Count", "Source", "FirstTimestamp", "LastTimestamp")
)
EVENT_FIXED = (*EVENT_REQUIRED, *EVENT_UNSET, "type", "note", "regarding", "related")
REASONS = {410: "Expired", 422: "Invalid", 500: "InternalError", 504: "Timeout"}


@dataclass(frozen=True)
class Resource:
    """A served resource; ``custom``: defined by a CRD (generation, strict apiVersion/kind)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False  # has the /status subresource
    custom: bool = True
    generation: bool = False  # a built-in resource whose spec changes count in generation

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def generational(self) -> bool:
        return self.custom or self.generation

    @property
    def qualified(self) -> str:
        """``pods``, ``statefulsets.apps``: as a real server names it in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


MYSQLCLUSTERS = Resource("mysqlops.io", "v1alpha1", "mysqlclusters", "MySQLCluster", status=True)
MYSQLBACKUPS = Resource("mysqlops.io", "v1alpha1", "mysqlbackups", "MySQLBackup", status=True)
MYSQLRESTORES = Resource("mysqlops.io", "v1alpha1", "mysqlrestores", "MySQLRestore", status=True)
EVENTS = Resource("events.k8s.io", "v1", "events", "Event", custom=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", custom=False)
# What tests/kube/controllers.py and tests/kube/kubelet.py need (assumptions 11 to 14).
PODS = Resource("", "v1", "pods", "Pod", status=True, custom=False)
PVCS = Resource(
    "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", status=True, custom=False
)
SERVICES = Resource("", "v1", "services", "Service", status=True, custom=False)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", custom=False)
SECRETS = Resource("", "v1", "secrets", "Secret", custom=False)
STATEFULSETS = Resource(
    "apps", "v1", "statefulsets", "StatefulSet", status=True, custom=False, generation=True
)
DEPLOYMENTS = Resource(
    "apps", "v1", "deployments", "Deployment", status=True, custom=False, generation=True
)
PDBS = Resource(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "PodDisruptionBudget",
    status=True,
    custom=False,
    generation=True,
)
BUILTIN_RESOURCES = (PODS, PVCS, SERVICES, CONFIGMAPS, SECRETS, STATEFULSETS, DEPLOYMENTS, PDBS)
DEFAULT_RESOURCES = (
    MYSQLCLUSTERS,
    MYSQLBACKUPS,
    MYSQLRESTORES,
    EVENTS,
    LEASES,
    *BUILTIN_RESOURCES,
)
DEFAULT_GRACE_SECONDS = 30  # a Pod's spec.terminationGracePeriodSeconds when absent


class Call(NamedTuple):
    """A served request as RBAC sees it: who (the bearer token), verb, group, resource.

    ``resource`` is ``plural`` or ``plural/subresource``, as in a Role's rules.
    """

    method: str
    path: str
    query: dict[str, str]
    verb: str
    group: str | None
    resource: str | None
    namespace: str | None
    name: str | None
    user: str | None  # the bearer token, as if the API server authenticated it to a user


def error(code: int, message: str, reason: str = "", **details: Any) -> kmock.KubernetesError:
    """A ``Status`` failure as a real server sends it (the client raises ``ApiException``)."""
    reason = reason or REASONS.get(code) or http.HTTPStatus(code).phrase.replace(" ", "")
    return kmock.KubernetesError(code, reason, message, details)


def _who(res: Resource, name: str) -> Obj:
    return {"name": name, "group": res.group, "kind": res.plural}


@dataclass
class _Change:
    rv: int
    res: Resource
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None  # the state before (for selector transitions); the object itself for DELETED


@dataclass
class _Query:
    """What a list or watch sees: resource, namespace, name, label terms (key, op, value)."""

    res: Resource
    namespace: str | None
    name: str | None = None
    labels: list[tuple[str, str, str]] = field(default_factory=list)

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj["metadata"]
        if self.namespace not in (None, meta.get("namespace")):
            return False
        if self.name not in (None, meta["name"]):
            return False
        labels = meta.get("labels") or {}
        return all(
            (labels.get(k) == v) == (op == "=")
            if op in ("=", "!=")
            else (k in labels) == (op == "")
            for k, op, v in self.labels
        )


@dataclass(eq=False)
class _Watch:
    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: str = ""  # "abrupt" or "clean" once dropped

    def notify(self) -> None:
        self.loop.call_soon_threadsafe(self.wake.set)


def _now(later: float = 0) -> str:
    now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=later)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _string_data(secret: Obj) -> None:
    """A Secret's ``stringData`` is write-only: a real server merges it into ``data`` (base64)."""
    extra = secret.pop("stringData", None) or {}
    encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in extra.items()}
    if encoded:
        secret["data"] = {**(secret.get("data") or {}), **encoded}


def _grace(res: Resource, obj: Obj, requested: int | None) -> int:
    """The grace period of a delete: only a Pod bound to a node and not finished gets one."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if res != PODS or not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is None:
        requested = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    return max(0, int(requested))


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _json_patch(doc: Obj, ops: Any) -> Obj:
    """RFC 6902 JSON patch: add, remove, replace, test; a failure is a 422, as on a server."""
    if not isinstance(ops, list):
        raise error(400, "a JSON patch must be a list of operations")
    for op in ops:
        try:
            *parents, last = [
                p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]
            ]
            node: Any = doc
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            key: Any = (len(node) if last == "-" else int(last)) if isinstance(node, list) else last
            if op["op"] not in ("add", "remove", "replace", "test"):
                raise ValueError(f"operation {op['op']!r} is not emulated")
            if op["op"] == "test" and node[key] != op["value"]:
                raise ValueError("the test failed")
            if op["op"] in ("remove", "replace"):
                del node[key]  # KeyError/IndexError when absent, as RFC 6902 requires
            if op["op"] in ("add", "replace") and isinstance(node, list):
                node.insert(key, copy.deepcopy(op["value"]))
            elif op["op"] in ("add", "replace"):
                node[key] = copy.deepcopy(op["value"])
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise error(422, f"JSON patch operation {op} cannot be applied: {exc!r}") from None
    return doc


def _labels(selector: str) -> list[tuple[str, str, str]]:
    """Equality-based label selector terms as (key, op, value); op "" means exists, "!" absent."""
    terms = []
    for term in filter(str.strip, selector.split(",")):
        found = LABEL_TERM.fullmatch(term)
        if found is None or (found[1] and found[3]):
            raise error(400, f"label selector {term!r} is not supported by the emulator")
        not_, key, op, value = found.groups()
        terms.append((key, (op or not_).replace("==", "="), value or ""))
    return terms


def _check_event(new: Obj, old: Obj | None) -> None:
    """events.k8s.io/v1 validation of a real server (ValidateEventCreate, ValidateEventUpdate)."""
    if old is None:
        problems = [f"{name}: Required value" for name in EVENT_REQUIRED if not new.get(name)]
        problems += [f"{name}: must be unset" for name in EVENT_UNSET if new.get(name)]
        if new.get("type") not in ("Normal", "Warning"):
            problems.append(f"type: Invalid value: {new.get('type')!r}")
        if len(new.get("note") or "") > 1024:
            problems.append("note: can have at most 1024 characters")
    else:
        problems = [f"{k}: field is immutable" for k in EVENT_FIXED if new.get(k) != old.get(k)]
    series = new.get("series")
    if series is not None and (old is None or series != old.get("series")):
        if (series.get("count") or 0) < 2:
            problems.append("series.count: should be at least 2")
        if not series.get("lastObservedTime"):
            problems.append("series.lastObservedTime: Required value")
    if problems:
        raise error(422, f"Event {new['metadata'].get('name')!r} is invalid: {'; '.join(problems)}")


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesScaffold):
    """The emulated API server (an aiohttp low-level handler) with thread-safe test helpers."""

    served: tuple[Resource, ...] = DEFAULT_RESOURCES
    bookmark_interval: float = 1.0
    _state: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _rv: int = attrs.field(default=1, init=False)
    _objects: dict[tuple[Resource, str | None, str], Obj] = attrs.field(factory=dict, init=False)
    _history: list[_Change] = attrs.field(factory=list, init=False)
    _compacted: int = attrs.field(default=0, init=False)
    _expire_next: int = attrs.field(default=0, init=False)
    _faults: list[tuple[str, str | None, int]] = attrs.field(factory=list, init=False)
    _watches: set[_Watch] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for res in self.served:  # for the discovery endpoints
            self.resources[kmock.resource(res.group, res.version, res.plural)] = kmock.ResourceInfo(
                kind=res.kind,
                namespaced=res.namespaced,
                subresources={"status"} if res.status else set(),
                verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
            )
        self.fallback[kmock.action.LIST] << self._serve_list
        self.fallback[kmock.action.WATCH] << self._serve_watch
        self.fallback[kmock.action.FETCH] << self._serve_get
        self.fallback[kmock.action.CREATE] << self._serve_create
        self.fallback[kmock.method.POST] << self._serve_post  # pods/binding
        self.fallback[kmock.action.UPDATE] << self._serve_patch
        self.fallback[kmock.method.PUT] << self._serve_put
        self.fallback[kmock.action.DELETE] << self._serve_delete

    # --- test-facing helpers (thread-safe: call them from any thread) --------------------------

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    @property
    def watch_count(self) -> int:
        """How many watch streams are open now."""
        return len(self._watches)

    @property
    def calls(self) -> list[Call]:
        """Every request served so far, oldest first (e.g. to compare with an RBAC Role)."""
        return [_call(request) for request in list(self)]

    def compact(self) -> None:
        """Forget history before now: a new watch from an older resourceVersion gets 410."""
        with self._state:
            self._compacted = self._rv

    def expire_next_watch(self, times: int = 1) -> None:
        """Answer the next ``times`` watch requests with a 410 ERROR event, whatever they ask."""
        with self._state:
            self._expire_next += times

    def drop_watches(self, abrupt: bool = True) -> int:
        """Close every open watch stream now; return how many there were.

        ``abrupt``: the connection is closed mid-stream (the client raises a ProtocolError), as
        when an API server restarts or the network breaks. Else the stream ends cleanly, as when
        an API server ends a long watch (``Watch.stream`` then reconnects by itself).
        """
        with self._state:
            watches = list(self._watches)
        for watch in watches:
            watch.dropped = "abrupt" if abrupt else "clean"
            watch.notify()
        return len(watches)

    def fail_next(
        self, verb: str, resource: str | None = None, code: int = 500, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests with this RBAC verb (and resource) with an error.

        Nothing is written. For fancier faults use kmock's DSL: ``emulator[...] << 503``.
        """
        with self._state:
            self._faults += [(verb, resource, code)] * times

    def create_object(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        """Create as ``POST`` does; the namespace comes from the argument or the metadata."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        namespace = (namespace or meta.get("namespace")) if res.namespaced else None
        if res.namespaced and (not namespace or meta.get("namespace", namespace) != namespace):
            raise error(400, "the namespace of the object is missing or not the request's")
        if not res.custom:
            obj = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        if (obj.get("apiVersion"), obj.get("kind")) != (res.api_version, res.kind):
            raise error(400, f"Object 'Kind' or 'apiVersion' is wrong or missing: {res.kind}")
        if meta.get("resourceVersion"):
            raise error(400, "resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name") or ""
        if not DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
            raise error(422, f"metadata.name: Invalid value: {name!r}: must be a DNS subdomain")
        if res.status:
            obj.pop("status", None)
        if res == PODS:
            obj["status"] = {"phase": "Pending"}  # as a real server's PrepareForCreate does
        if res == SECRETS:
            _string_data(obj)
        if res == EVENTS:
            _check_event(obj, None)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace"):
            meta.pop(key, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
        meta.update({"namespace": namespace} if namespace else {})
        meta.update({"generation": 1} if res.generational else {})
        with self._state:
            if (res, namespace, name) in self._objects:
                message = f'{res.qualified} "{name}" already exists'
                raise error(409, message, "AlreadyExists", **_who(res, name))
            return self._store(res, obj, None)

    def get_object(self, res: Resource, name: str, namespace: str | None = "default") -> Obj:
        with self._state:
            return copy.deepcopy(self._stored(res, namespace, name))

    def objects(self, res: Resource, namespace: str | None = None) -> list[Obj]:
        with self._state:
            return [copy.deepcopy(obj) for obj in self._select(_Query(res, namespace))]

    def patch_object(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = "default",
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> Obj:
        """Patch as ``PATCH`` does (``subresource="status"`` for the status subresource)."""
        if content_type == JSON_PATCH:
            return self._update(res, namespace, name, subresource, lambda o: _json_patch(o, patch))
        if content_type != MERGE_PATCH and (content_type != STRATEGIC_PATCH or res.custom):
            raise error(415, f"the patch content type {content_type!r} is not supported")
        if not isinstance(patch, dict):
            raise error(400, "a merge patch must be a JSON object")
        return self._update(res, namespace, name, subresource, lambda o: _merge(o, patch))

    def replace_object(
        self,
        res: Resource,
        name: str,
        obj: Obj,
        namespace: str | None = "default",
        subresource: str | None = None,
    ) -> Obj:
        """Replace as ``PUT`` does."""
        return self._update(res, namespace, name, subresource, lambda _: copy.deepcopy(obj))

    def delete_object(
        self,
        res: Resource,
        name: str,
        namespace: str | None = "default",
        preconditions: Obj | None = None,
        grace_seconds: int | None = None,
    ) -> Obj:
        """Delete as ``DELETE`` does: at once, or only mark it while finalizers hold it or (a
        Pod on a node) while its kubelet stops it (assumption 12)."""
        with self._state:
            old = self._stored(res, namespace, name)
            meta = old["metadata"]
            for key, value in (preconditions or {}).items():
                if value is not None and value != meta.get(key):
                    raise error(409, f"Precondition failed: {key} in precondition: {value}")
            grace = _grace(res, old, grace_seconds)
            if meta.get("deletionTimestamp") and grace >= (
                meta.get("deletionGracePeriodSeconds") or 0
            ):
                return copy.deepcopy(old)  # deleting already; a delete may only shorten the grace
            if not meta.get("finalizers") and grace == 0:
                self._remove(res, old)
                details = {**_who(res, name), "uid": meta["uid"]}
                return {
                    "apiVersion": "v1",
                    "kind": "Status",
                    "status": "Success",
                    "details": details,
                }
            new = copy.deepcopy(old)
            new["metadata"].update(deletionTimestamp=_now(grace), deletionGracePeriodSeconds=grace)
            return self._store(res, new, old)

    def bind_pod(self, name: str, node: str, namespace: str = "default") -> Obj:
        """``pods/binding``, the scheduler's write: ``spec.nodeName`` (once) and PodScheduled."""
        with self._state:
            old = self._stored(PODS, namespace, name)
            if old["metadata"].get("deletionTimestamp"):
                raise error(409, f"pod {name} is being deleted, cannot be assigned to a host")
            if (bound := (old.get("spec") or {}).get("nodeName")) is not None:
                raise error(409, f'pod {name} is already assigned to node "{bound}"')
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["nodeName"] = node
            status = new.setdefault("status", {})
            others = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()}
            status["conditions"] = [scheduled, *others]
            return self._store(PODS, new, old)

    # --- the store (callers hold self._state) ---------------------------------------------------

    def _stored(self, res: Resource, namespace: str | None, name: str) -> Obj:
        obj = self._objects.get((res, namespace if res.namespaced else None, name))
        if obj is None:
            raise error(404, f'{res.qualified} "{name}" not found', **_who(res, name))
        return obj

    def _select(self, query: _Query) -> list[Obj]:
        found = [(ns or "", n, o) for (r, ns, n), o in self._objects.items() if r == query.res]
        return [obj for _, _, obj in sorted(found) if query.matches(obj)]

    def _store(self, res: Resource, obj: Obj, old: Obj | None, kind: str = "") -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = (res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if kind == "DELETED":
            del self._objects[key]
        else:
            self._objects[key] = obj
        kind = kind or ("MODIFIED" if old else "ADDED")
        self._history.append(_Change(self._rv, res, kind, copy.deepcopy(obj), old))
        for watch in self._watches:
            watch.notify()
        return copy.deepcopy(obj)

    def _remove(self, res: Resource, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        return self._store(res, obj, obj, "DELETED")

    def _update(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        sub: str | None,
        change: Callable[[Obj], Obj],
    ) -> Obj:
        if sub not in (None, "status") or (sub and not res.status):
            raise error(404, f"the server could not find the requested resource ({sub})")
        with self._state:
            old = self._stored(res, namespace, name)
            new, old_meta = change(copy.deepcopy(old)), old["metadata"]
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise error(422, "the result of the write is not an object with metadata")
            if (
                new["metadata"].get("resourceVersion", old_meta["resourceVersion"])
                != old_meta["resourceVersion"]
            ):
                message = (
                    f'Operation cannot be fulfilled on {res.qualified} "{name}": the '
                    "object has been modified; please apply your changes to the latest version "
                    "and try again"
                )
                raise error(409, message, **_who(res, name))
            if sub == "status":  # only status changes through /status
                new = {**copy.deepcopy(old), "status": new.get("status")}
            elif res.status:  # and status does not change through the main resource
                new["status"] = copy.deepcopy(old.get("status"))
            if new.get("status") is None:
                new.pop("status", None)
            meta = new["metadata"]
            for key in (*SERVER_META, "deletionGracePeriodSeconds", "resourceVersion"):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if old_meta.get("deletionTimestamp") and added:
                raise error(
                    422,
                    "metadata.finalizers: Forbidden: no new finalizers can be added "
                    "if the object is being deleted",
                )
            if res == EVENTS:
                _check_event(new, old)
            if res == SECRETS:
                _string_data(new)
            if new == old:
                return copy.deepcopy(old)  # a no-op write: no new resourceVersion, no event
            if res.generational and _spec(new, res) != _spec(old, res):
                meta["generation"] = old_meta.get("generation", 0) + 1
            if (
                meta.get("deletionTimestamp")
                and not meta.get("finalizers")
                and not meta.get("deletionGracePeriodSeconds")  # a graceful delete goes on
            ):
                return self._remove(res, new)
            return self._store(res, new, old)

    # --- HTTP -----------------------------------------------------------------------------------

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        call = _call(request)
        with self._state:
            faults = [
                f for f in self._faults if f[0] == call.verb and f[1] in (None, call.resource)
            ]
            if faults:
                self._faults.remove(faults[0])
        if faults:
            raise error(faults[0][2], f"injected fault for {call.verb} {call.path}")
        return await super()._handle(request)

    def _resource(self, request: kmock.Request) -> Resource:
        ref = request.resource
        for res in self.served:
            if ref and (ref.group, ref.version, ref.plural) == (res.group, res.version, res.plural):
                return res
        raise error(404, "the server could not find the requested resource")

    def _query(self, request: kmock.Request) -> _Query:
        res, params = self._resource(request), request.params
        query = _Query(
            res, request.namespace, request.name, _labels(params.get("labelSelector", ""))
        )
        for term in filter(None, params.get("fieldSelector", "").split(",")):
            key, _, value = term.replace("==", "=").partition("=")
            if key not in ("metadata.name", "metadata.namespace"):
                raise error(400, f"field selector {term!r} is not supported by the emulator")
            setattr(query, key.removeprefix("metadata."), value)
        return query

    async def _serve_list(self, request: kmock.Request) -> Obj:
        query = self._query(request)
        with self._state:
            items = [copy.deepcopy(obj) for obj in self._select(query)]
            meta = {"resourceVersion": str(self._rv)}
        kind = f"{query.res.kind}List"
        return {"apiVersion": query.res.api_version, "kind": kind, "metadata": meta, "items": items}

    async def _serve_get(self, request: kmock.Request) -> Obj:
        res, sub = self._resource(request), request.subresource
        if sub not in (None, "status") or (sub and not res.status) or request.name is None:
            raise error(404, "the server could not find the requested resource")
        return self.get_object(res, request.name, request.namespace)

    async def _serve_create(self, request: kmock.Request) -> Response:
        if not isinstance(request.data, dict):
            raise error(400, "the body of the request is not a JSON object")
        created = self.create_object(self._resource(request), request.data, request.namespace)
        return Response(status=201, payload=created)

    async def _serve_post(self, request: kmock.Request) -> Response:
        if request.name is None:
            return await self._serve_create(request)
        res, data = self._resource(request), request.data
        if res != PODS or request.subresource != "binding":
            raise error(405, "the server does not allow this method on the requested resource")
        if not isinstance(data, dict) or not isinstance(data.get("target"), dict):
            raise error(400, "the body of the request is not a Binding")
        self.bind_pod(request.name, data["target"].get("name") or "", request.namespace or "")
        status = {"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 201}
        return Response(status=201, payload={**status, "metadata": {}})

    async def _serve_patch(self, request: kmock.Request) -> Obj:
        res, name, ns, sub = (
            self._resource(request),
            request.name or "",
            request.namespace,
            request.subresource,
        )
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        return self.patch_object(res, name, request.data, ns, sub, content_type)

    async def _serve_put(self, request: kmock.Request) -> Obj:
        if request.name is None or not isinstance(request.data, dict):
            raise error(405, "the server does not allow this method on the requested resource")
        res = self._resource(request)
        return self.replace_object(
            res, request.name, request.data, request.namespace, request.subresource
        )

    async def _serve_delete(self, request: kmock.Request) -> Obj:
        options = request.data if isinstance(request.data, dict) else {}
        res, name = self._resource(request), request.name or ""
        grace = options.get("gracePeriodSeconds", request.params.get("gracePeriodSeconds"))
        return self.delete_object(
            res,
            name,
            request.namespace,
            options.get("preconditions"),
            None if grace is None else int(grace),
        )

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        """A watch stream; see assumption 8 in the module docstring."""
        query, params = self._query(request), request.params  # errors here are HTTP errors
        since = int(params.get("resourceVersion") or 0)
        loop, watch = asyncio.get_running_loop(), _Watch(asyncio.get_running_loop())
        with self._state:
            gone = self._expire_next > 0 or 0 < since < self._compacted
            self._expire_next = max(0, self._expire_next - 1)
            current = [] if since or gone else self._select(query)
            initial = [{"type": "ADDED", "object": copy.deepcopy(obj)} for obj in current]
            since = since or self._rv
            if not gone:
                self._watches.add(watch)
        yield b""  # send the response headers now, as a real server does
        if gone:
            yield _expired(since)
            return
        try:
            for event in initial:
                yield event
            deadline = loop.time() + float(params.get("timeoutSeconds") or math.inf)
            bookmarks = params.get("allowWatchBookmarks") == "true"
            next_bookmark = loop.time() + self.bookmark_interval if bookmarks else math.inf
            while True:
                watch.wake.clear()
                with self._state:
                    start = bisect.bisect_right(self._history, since, key=lambda c: c.rv)
                    changes = [c for c in self._history[start:] if c.res == query.res]
                    since = self._rv
                for change in changes:
                    if (seen := _event(change, query)) is not None:
                        yield seen
                transport = request._raw_request.transport if request._raw_request else None
                if watch.dropped == "abrupt" and transport is not None:
                    transport.close()  # no end of the chunked stream: the client sees a break
                if (
                    watch.dropped
                    or loop.time() >= deadline
                    or not transport
                    or transport.is_closing()
                ):
                    return  # dropped, timed out, or the client went away
                if loop.time() >= next_bookmark:
                    yield _bookmark(query.res, since)
                    next_bookmark = loop.time() + self.bookmark_interval
                wait = min(deadline, next_bookmark, loop.time() + 0.2) - loop.time()
                with contextlib.suppress(
                    TimeoutError
                ):  # at least every 0.2 s: is the client there?
                    await asyncio.wait_for(watch.wake.wait(), wait)
        finally:
            with self._state:
                self._watches.discard(watch)


def _spec(obj: Obj, res: Resource) -> Obj:
    """What ``metadata.generation`` follows: all but metadata (and status with the subresource)."""
    return {k: v for k, v in obj.items() if k != "metadata" and not (res.status and k == "status")}


def _event(change: _Change, query: _Query) -> Obj | None:
    """A change as a watch with this query sees it (selector transitions become ADDED/DELETED)."""
    before = query.matches(change.old)
    after = change.type != "DELETED" and query.matches(change.obj)
    kind = "MODIFIED" if before and after else "ADDED" if after else "DELETED" if before else ""
    return {"type": kind, "object": copy.deepcopy(change.obj)} if kind else None


def _bookmark(res: Resource, rv: int) -> Obj:
    meta = {"resourceVersion": str(rv)}
    return {
        "type": "BOOKMARK",
        "object": {"apiVersion": res.api_version, "kind": res.kind, "metadata": meta},
    }


def _expired(rv: int) -> Obj:
    status = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": 410,
    }
    status.update(reason="Expired", message=f"too old resource version: {rv}")
    return {"type": "ERROR", "object": status}


def _call(request: kmock.Request) -> Call:
    """A request as an RBAC rule sees it: user, verb, API group, resource[/subresource]."""
    method, name, ref, params = (
        request.method.value.upper(),
        request.name,
        request.resource,
        request.params,
    )
    if method == "GET":
        watch = params.get("watch") in ("true", "1")
        verb = "watch" if watch else "get" if name else "list"
    else:
        verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        verb = "deletecollection" if method == "DELETE" and not name else verbs.get(method, method)
    plural, group = (ref.plural, ref.group) if ref else (None, None)
    resource = f"{plural}/{request.subresource}" if plural and request.subresource else plural
    auth = {k.lower(): v for k, v in request.headers.items()}.get("authorization", "")
    user = auth.removeprefix("Bearer ").strip() or None
    path, ns = request.url.path, request.namespace
    return Call(method, path, dict(params), verb, group, resource, ns, name, user)
