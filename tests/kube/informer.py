"""The client side of the test cluster (``controllers.py``, ``kubelet.py``): JSON calls through
the official client and a list+watch informer, what client-go gives a real controller.

``Api`` sends and receives plain JSON objects through the official client's ``ApiClient``
(``param_serialize`` + ``call_api``: its REST layer, authentication, timeouts and connection
pool), as ``CustomObjectsApi`` does for custom resources. Not the typed ``CoreV1Api``
methods: the client (v37, pydantic models) validates a request body against its models and
refuses fields it does not know, and a controller copies pod templates verbatim.

``Informer`` is client-go's reflector and store for one kind in all namespaces, on its own
thread: list, then watch from the list's resourceVersion with bookmarks; every event updates
the cache and calls ``on_change`` (the controller's "something changed, sync" signal); a stream
that ends is watched again from the last resourceVersion; a 410 or any error means relist.
``stop()`` shuts the open stream's socket down (urllib3 ``HTTPResponse.shutdown``) and joins.
The cache's objects are shared, not copied: callers must not change them.
"""

import contextlib
import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client as k8s

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
T = TypeVar("T")
WATCH_SECONDS = 60  # a real server ends a watch after a while too; we then watch again


@dataclass(frozen=True)
class Kind:
    """A built-in resource: where it is served and what it is called."""

    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        path = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path += f"/namespaces/{namespace}" if namespace else ""
        path += f"/{self.plural}" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
        return path


PODS = Kind("v1", "Pod", "pods")
PVCS = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
SERVICES = Kind("v1", "Service", "services")
CONFIGMAPS = Kind("v1", "ConfigMap", "configmaps")
SECRETS = Kind("v1", "Secret", "secrets")
STATEFULSETS = Kind("apps/v1", "StatefulSet", "statefulsets")
DEPLOYMENTS = Kind("apps/v1", "Deployment", "deployments")
PDBS = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
KINDS = {
    (k.api_version, k.kind): k
    for k in (PODS, PVCS, SERVICES, CONFIGMAPS, SECRETS, STATEFULSETS, DEPLOYMENTS, PDBS)
}


def key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


def api_client(configuration: k8s.Configuration) -> k8s.ApiClient:
    """A client of its own (its own connection pool, large enough for a component's threads)."""
    configuration = copy.deepcopy(configuration)
    configuration.connection_pool_maxsize = 64
    return k8s.ApiClient(configuration)


class Api:
    """JSON in, JSON out. ``None`` / ``False`` answers stand for "not there (any more)"."""

    def __init__(self, configuration: k8s.Configuration) -> None:
        self.client: Any = api_client(configuration)  # the client is not annotated

    def close(self) -> None:
        self.client.close()

    def call(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] = 30.0,
        stream: bool = False,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self.client.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response: Any = self.client.call_api(*request, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            k8s.ApiException.from_response(http_resp=response, body=None, data=None)
        if stream:
            return response.response  # the urllib3 response, to be read as it comes
        return json.loads(response.read() or b"null")

    def list(self, kind: Kind, namespace: str | None = None) -> tuple[list[Obj], str]:
        answer = self.call("GET", kind.path(namespace))
        return answer["items"], answer["metadata"]["resourceVersion"]

    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        try:
            found: Obj = self.call("GET", kind.path(namespace, name))
            return found
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, kind: Kind, obj: Obj) -> Obj | None:
        """Create; ``None`` when the name is taken (409 AlreadyExists)."""
        try:
            created: Obj = self.call("POST", kind.path(obj["metadata"]["namespace"]), body=obj)
            return created
        except k8s.ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def patch(
        self, kind: Kind, namespace: str, name: str, patch: Obj, status: bool = False
    ) -> Obj | None:
        """A JSON merge patch (of ``/status`` with ``status``); ``None`` when the object is gone."""
        path = kind.path(namespace, name, "status" if status else "")
        try:
            patched: Obj = self.call("PATCH", path, body=patch, content_type=MERGE_PATCH)
            return patched
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def update_status(self, kind: Kind, namespace: str, name: str, uid: str, status: Obj) -> bool:
        """Replace ``status`` through /status, only on the object of that uid (a JSON patch
        ``test``, as a kubelet's patch carries the pod's uid); ``False`` when gone or replaced."""
        ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": uid}]
        ops.append({"op": "add", "path": "/status", "value": status})
        try:
            self.call(
                "PATCH", kind.path(namespace, name, "status"), body=ops, content_type=JSON_PATCH
            )
            return True
        except k8s.ApiException as exc:
            if exc.status in (404, 422):
                return False
            raise

    def delete(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        uid: str | None = None,
        grace_seconds: int | None = None,
    ) -> bool:
        """Delete (only that incarnation, with ``uid``); ``False`` when gone or replaced."""
        options: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        options.update({"preconditions": {"uid": uid}} if uid else {})
        options.update({"gracePeriodSeconds": grace_seconds} if grace_seconds is not None else {})
        try:
            self.call("DELETE", kind.path(namespace, name), body=options)
            return True
        except k8s.ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise


class _Relist(Exception):
    pass


class Informer:
    """A cache of every object of one kind, kept by list+watch on a thread of its own."""

    def __init__(
        self, configuration: k8s.Configuration, kind: Kind, on_change: Callable[[], None]
    ) -> None:
        self.kind, self.on_change = kind, on_change
        self.synced = threading.Event()  # set once the first list is in the cache
        self._api = Api(configuration)
        self._cache: dict[tuple[str, str], Obj] = {}
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{kind.plural}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # released already
                response.shutdown()  # the blocked read of the watch stream returns
        if self._thread.ident is not None:
            self._thread.join(10)
        self._api.close()
        if self._thread.is_alive():
            raise RuntimeError(f"the {self.kind.plural} informer did not stop")

    def objects(self, namespace: str | None = None) -> list[Obj]:
        with self._changed:
            return [o for (ns, _), o in self._cache.items() if namespace in (None, ns)]

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._changed:
            return self._cache.get((namespace, name))

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate`` (called with the cache's lock held) holds, as a controller's
        "expectations" do after its own writes."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                items, version = self._api.list(self.kind)
                with self._changed:
                    self._cache = {key(obj): obj for obj in items}
                    self._changed.notify_all()
                self.synced.set()
                self.on_change()
                while not self._stopping.is_set():
                    version = self._watch(version)
            except _Relist:
                continue
            except Exception as exc:
                if not self._stopping.is_set():
                    log.warning("watch of %s failed (%r): relisting", self.kind.plural, exc)
                    self._stopping.wait(0.2)

    def _watch(self, version: str) -> str:
        query = {
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        response = self._api.call(
            "GET", self.kind.path(), query, timeout=(5, WATCH_SECONDS + 30), stream=True
        )
        self._response = response
        try:
            if self._stopping.is_set():
                return version
            for line in _lines(response):
                event = json.loads(line)
                obj, kind = event["object"], event["type"]
                if kind == "ERROR":
                    raise _Relist(obj.get("message"))  # 410 Gone, or anything else: relist
                version = obj["metadata"]["resourceVersion"]
                if kind == "BOOKMARK":
                    continue
                with self._changed:
                    if kind == "DELETED":
                        self._cache.pop(key(obj), None)
                    else:
                        self._cache[key(obj)] = obj
                    self._changed.notify_all()
                self.on_change()
        finally:
            self._response = None
            response.close()
        return version


def _lines(response: Any) -> Iterator[bytes]:
    """The JSON lines of a watch stream, each as soon as it is complete."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from (line for line in lines if line.strip())


def wait_for(predicate: Callable[[], T | None], timeout: float, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something true; return it, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout} s")
        time.sleep(interval)


def start_synced(informers: Iterable["Informer"], timeout: float = 10) -> None:
    """Start every informer, then wait until each has listed once (as controllers wait for
    their caches to sync before acting)."""
    informers = list(informers)
    for informer in informers:
        informer.start()
    for informer in informers:
        if not informer.synced.wait(timeout):
            raise RuntimeError(f"the {informer.kind.plural} informer did not sync")
