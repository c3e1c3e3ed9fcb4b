"""The kube-controller-manager of the test cluster: StatefulSet, Deployment, claim binding and
garbage collection, faithful where a runtime relies on them.

``ControllerManager`` talks to the API server only over HTTP with the official client
(``tests/kube/informer.py``): one list+watch informer per kind it reads, and one sync loop on
its own thread that runs on every change (and every ``resync`` seconds anyway) over every
object: level-triggered, as the real controllers are. Creates that find the name taken (409)
and deletes that find the object gone (404) are ignored: the next sync sees the truth. Writes
carry no resourceVersion (last writer wins); deletes carry the uid as a precondition, so a
recreated object of the same name is never deleted by mistake.

StatefulSet (apps/v1), what a real controller does and this one too:

1. Pods ``<sts>-<i>`` for i in 0..replicas-1 (``replicas`` defaults to 1). With
   ``podManagementPolicy: Parallel`` all at once; with ``OrderedReady`` (the default) pod i is
   created only when 0..i-1 are Running and Ready, and scale-down removes one pod at a time,
   the highest ordinal first, only while all the others are Running and Ready. A deleted Pod is
   recreated with the same name once it is really gone (a terminating Pod still holds its name:
   never two pods of one name); a Succeeded or Failed Pod is deleted, then recreated.
2. Before creating a Pod, each claim of ``volumeClaimTemplates`` ``<template>-<sts>-<i>`` is
   created (an existing one is kept, with its data), with the template's labels and the
   selector's ``matchLabels``; the pod gets a volume of that name referencing it.
3. A Pod gets the template's labels plus ``controller-revision-hash`` (``<sts>-<hash of the
   pod template>``), ``statefulset.kubernetes.io/pod-name`` and ``apps.kubernetes.io/pod-index``;
   ``spec.hostname`` = its name, ``spec.subdomain`` = ``serviceName``; an ownerReference to
   the StatefulSet with ``controller: true`` and ``blockOwnerDeletion: true``.
4. ``updateStrategy: OnDelete``: a template change touches no Pod; a Pod recreated after its
   deletion gets the new template and revision. ``status.currentRevision`` becomes the update
   revision once every pod of 0..replicas-1 runs it (a real controller may keep the old one
   with OnDelete). **RollingUpdate (the default) is not supported: it is treated as OnDelete**
   (a warning is logged); a runtime must delete its pods itself, as with OnDelete.
5. ``persistentVolumeClaimRetentionPolicy`` through ownerReferences, as the real controller
   does it: ``whenDeleted: Delete`` makes the StatefulSet an owner of its claims (the garbage
   collector deletes them after it); ``whenScaled: Delete`` makes the Pod of a scaled-away
   ordinal the owner of its claims before that Pod is deleted (the collector deletes them
   once the Pod is gone). ``Retain`` (the default) removes those references.
6. Status (through /status, only when it changes): replicas (pods that exist, terminating
   ones too), readyReplicas and availableReplicas (Running and Ready; ``minReadySeconds`` is
   ignored), currentReplicas and updatedReplicas (not terminating, at that revision),
   currentRevision, updateRevision, observedGeneration (``metadata.generation``; left out if
   the server sets none), collisionCount 0.

Differences: no ControllerRevision objects (the revision is only the label and the status);
no adoption or release of pods by label selector (a pod is the set's if it has its controller
ownerReference; a pod of the right name without it blocks that ordinal); the selector is not
checked against the template's labels; ``ordinals.start``, ``minReadySeconds``,
``revisionHistoryLimit`` and ``updateStrategy.rollingUpdate`` are ignored.

Deployment (apps/v1), minimal: Pods ``<deploy>-<pod-template-hash>-<5 chars>`` (by
``generateName``) with the template's labels plus ``pod-template-hash`` and an ownerReference
to the Deployment itself: **no ReplicaSets**. A template change replaces the pods one at a
time: one new pod, and once every new pod is Ready one old pod is deleted, and so on (as
maxSurge 1, maxUnavailable 0). Status: replicas, readyReplicas, availableReplicas,
updatedReplicas, observedGeneration. ``strategy``, ``paused``, ``progressDeadlineSeconds`` and
conditions are not emulated.

Claims: a PersistentVolumeClaim is bound at once (``status.phase: Bound``, its requested
capacity and access modes), as with a provisioner of volumes that bind immediately. There are
no PersistentVolume objects and no ``spec.volumeName``; the kubelet makes the volume a
directory (``tests/kube/kubelet.py``).

Garbage collector (background propagation only): an object of pods, persistentvolumeclaims,
services, configmaps, secrets, statefulsets, deployments or poddisruptionbudgets whose every
ownerReference names an owner uid that no longer exists is deleted (uid precondition). The
informers' caches only suggest candidates: an owner is found gone only by a GET of it (by
kind and name, compared by uid) as the real collector does, so a cache that lags never
deletes anything. Owners of other kinds (a custom resource) are looked up through discovery;
an owner kind that cannot be resolved keeps its dependents. ``propagationPolicy`` Foreground
and Orphan, and ``blockOwnerDeletion``, are not emulated. No pvc-protection finalizer either:
the kubelet keeps a claim's directory until no pod uses it (see there).
"""

import hashlib
import json
import logging
import threading
import time
from typing import Any

from kubernetes import client as k8s

from tests.kube.informer import (
    CONFIGMAPS,
    DEPLOYMENTS,
    KINDS,
    PDBS,
    PODS,
    PVCS,
    SECRETS,
    SERVICES,
    STATEFULSETS,
    Api,
    Informer,
    Kind,
    Obj,
    start_synced,
)

log = logging.getLogger(__name__)

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.SafeEncodeString
REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
TEMPLATE_HASH_LABEL = "pod-template-hash"
COLLECTED = (PODS, PVCS, SERVICES, CONFIGMAPS, SECRETS, STATEFULSETS, DEPLOYMENTS, PDBS)
OWNER_CACHE_SECONDS = 2.0  # how long a live owner of a custom kind is taken as still there


def template_hash(template: Any) -> str:
    """A short, stable, DNS-safe hash of a pod template (as ``controller-revision-hash``)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = str(int.from_bytes(digest[:4], "big"))  # as a real controller prints its fnv32
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in number)


def owner_ref(owner: Obj, controller: bool = True) -> Obj:
    meta = owner["metadata"]
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"]}
    ref.update(uid=meta["uid"], blockOwnerDeletion=True)
    return {**ref, "controller": True} if controller else ref


def controlled_by(obj: Obj, owner: Obj) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return any(r.get("controller") and r.get("uid") == owner["metadata"]["uid"] for r in refs)


def terminating(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def running_and_ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return status.get("phase") == "Running" and ready and not terminating(pod)


def finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class ControllerManager:
    """The controllers above on one thread; ``start()``, ``stop()`` (joins), or ``with``."""

    def __init__(self, configuration: k8s.Configuration, resync: float = 1.0) -> None:
        self.resync = resync
        self.api = Api(configuration)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.informers = {kind: Informer(configuration, kind, self._wake.set) for kind in COLLECTED}
        self.pods = self.informers[PODS]
        self.claims = self.informers[PVCS]
        self._warned: set[str] = set()
        self._owners: dict[str, tuple[float, bool]] = {}  # owner uid: (checked at, exists)
        self._plurals: dict[tuple[str, str], str | None] = {}  # (apiVersion, kind): plural
        self._thread = threading.Thread(target=self._run, name="controller-manager")

    def start(self) -> "ControllerManager":
        start_synced(self.informers.values())
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(30)
        for informer in self.informers.values():
            informer.stop()
        self.api.close()
        if self._thread.is_alive():
            raise RuntimeError("the controller manager did not stop")

    def __enter__(self) -> "ControllerManager":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.resync)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.sync()
            except Exception:
                log.exception("controller sync failed; trying again")
                self._stopping.wait(0.2)

    def sync(self) -> None:
        """One pass of every controller over every object."""
        for sts in self.informers[STATEFULSETS].objects():
            self._sync_statefulset(sts)
        for deployment in self.informers[DEPLOYMENTS].objects():
            self._sync_deployment(deployment)
        self._bind_claims()
        self._collect_garbage()

    # --- StatefulSet ------------------------------------------------------------------------------

    def _sync_statefulset(self, sts: Obj) -> None:
        meta, spec = sts["metadata"], sts.get("spec") or {}
        if terminating(sts):
            return
        ns, name = meta["namespace"], meta["name"]
        replicas = spec.get("replicas", 1)
        parallel = spec.get("podManagementPolicy", "OrderedReady") == "Parallel"
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy != "OnDelete" and meta["uid"] not in self._warned:
            self._warned.add(meta["uid"])
            log.warning("statefulset %s/%s: %s is treated as OnDelete", ns, name, strategy)
        pods: dict[int, Obj] = {}
        for candidate in self.pods.objects(ns):
            ordinal = candidate["metadata"]["name"].removeprefix(f"{name}-")
            if controlled_by(candidate, sts) and ordinal.isdigit():
                pods[int(ordinal)] = candidate
        healthy = True  # OrderedReady: every pod so far Running and Ready
        for i in range(replicas):
            pod = pods.get(i)
            if pod is None:
                if healthy or parallel:
                    self._ensure_claims(sts, i, condemned=False)
                    self.api.create(PODS, self._new_pod(sts, i, revision))
                healthy = False
            elif finished(pod) and not terminating(pod):
                self.api.delete(PODS, ns, pod["metadata"]["name"], pod["metadata"]["uid"])
                healthy = False
            else:
                self._ensure_claims(sts, i, condemned=False)
                healthy = healthy and running_and_ready(pod)
        for i in sorted((i for i in pods if i >= replicas), reverse=True):
            if not (parallel or healthy):
                break
            pod = pods[i]
            if not terminating(pod) and self._ensure_claims(sts, i, condemned=True):
                self.api.delete(PODS, ns, pod["metadata"]["name"], pod["metadata"]["uid"])
            if not parallel:
                break  # one at a time, the highest first
        self._statefulset_status(sts, pods, revision)

    def _new_pod(self, sts: Obj, ordinal: int, revision: str) -> Obj:
        meta, spec = sts["metadata"], sts["spec"]
        template = json.loads(json.dumps(spec.get("template") or {}))  # a deep copy
        name = f"{meta['name']}-{ordinal}"
        tmeta, pod_spec = template.get("metadata") or {}, template.get("spec") or {}
        labels = {**(tmeta.get("labels") or {}), REVISION_LABEL: revision}
        labels.update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)})
        claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates") or []]
        volumes = [
            {"name": c, "persistentVolumeClaim": {"claimName": f"{c}-{meta['name']}-{ordinal}"}}
            for c in claims
        ]
        volumes += [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claims]
        pod_spec.update(hostname=name, volumes=volumes)
        pod_spec.update({"subdomain": spec["serviceName"]} if spec.get("serviceName") else {})
        pod_meta = {"name": name, "namespace": meta["namespace"], "labels": labels}
        pod_meta.update({"annotations": tmeta["annotations"]} if tmeta.get("annotations") else {})
        pod_meta["ownerReferences"] = [owner_ref(sts)]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}

    def _ensure_claims(self, sts: Obj, ordinal: int, condemned: bool) -> bool:
        """Create the claims of this ordinal, or set their owners per the retention policy;
        ``False`` if a write failed (then the pod is not deleted this time)."""
        meta, spec = sts["metadata"], sts["spec"]
        policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        scaled = condemned and policy.get("whenScaled") == "Delete"
        set_owner = policy.get("whenDeleted") == "Delete" and not scaled
        pod_name = f"{meta['name']}-{ordinal}"
        pod = self.pods.get(meta["namespace"], pod_name)
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        for template in spec.get("volumeClaimTemplates") or []:
            tmeta = template["metadata"]
            name = f"{tmeta['name']}-{meta['name']}-{ordinal}"
            claim = self.claims.get(meta["namespace"], name)
            if claim is None:
                if condemned:
                    continue
                labels = {**(tmeta.get("labels") or {}), **selector}
                cmeta = {"name": name, "namespace": meta["namespace"], "labels": labels}
                cmeta.update({"ownerReferences": [owner_ref(sts, False)]} if set_owner else {})
                body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": cmeta}
                self.api.create(PVCS, {**body, "spec": template.get("spec") or {}})
                continue
            refs = claim["metadata"].get("ownerReferences") or []
            wanted = [
                r
                for r in refs
                if r.get("uid") != meta["uid"]
                and (r.get("kind"), r.get("name")) != ("Pod", pod_name)
            ]
            wanted += [owner_ref(sts, False)] if set_owner else []
            if scaled and pod is not None:
                wanted.append(owner_ref(pod, False))
            if wanted != refs:
                patch = {"metadata": {"ownerReferences": wanted or None}}
                if self.api.patch(PVCS, meta["namespace"], name, patch) is None:
                    return False
        return True

    def _statefulset_status(self, sts: Obj, pods: dict[int, Obj], revision: str) -> None:
        meta, spec, old = sts["metadata"], sts.get("spec") or {}, sts.get("status") or {}
        replicas = spec.get("replicas", 1)
        live = [p for p in pods.values() if not terminating(p)]
        revisions = [p["metadata"].get("labels", {}).get(REVISION_LABEL) for p in live]
        updated = sum(r == revision for r in revisions)
        current = old.get("currentRevision") or revision
        in_range = [pods.get(i) for i in range(replicas)]
        if all(p is not None and not terminating(p) for p in in_range) and all(
            p["metadata"].get("labels", {}).get(REVISION_LABEL) == revision
            for p in in_range
            if p is not None
        ):
            current = revision
        ready = sum(running_and_ready(p) for p in pods.values())
        status = {
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": sum(r == current for r in revisions),
            "updatedReplicas": updated,
            "currentRevision": current,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        if meta.get("generation") is not None:
            status["observedGeneration"] = meta["generation"]
        if any(old.get(k) != v for k, v in status.items()):
            self.api.patch(STATEFULSETS, meta["namespace"], meta["name"], {"status": status}, True)

    # --- Deployment -------------------------------------------------------------------------------

    def _sync_deployment(self, deployment: Obj) -> None:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        if terminating(deployment):
            return
        ns, name, replicas = meta["namespace"], meta["name"], spec.get("replicas", 1)
        template = spec.get("template") or {}
        wanted = template_hash(template)
        pods = [p for p in self.pods.objects(ns) if controlled_by(p, deployment)]
        for pod in pods:
            if finished(pod) and not terminating(pod):
                self.api.delete(PODS, ns, pod["metadata"]["name"], pod["metadata"]["uid"])
        live = [p for p in pods if not terminating(p) and not finished(p)]
        new = [
            p for p in live if p["metadata"].get("labels", {}).get(TEMPLATE_HASH_LABEL) == wanted
        ]
        old = sorted(
            (p for p in live if p not in new), key=lambda p: p["metadata"]["creationTimestamp"]
        )
        if old:
            if all(running_and_ready(p) for p in new):
                if len(new) + len(old) > replicas:
                    self.api.delete(PODS, ns, old[0]["metadata"]["name"], old[0]["metadata"]["uid"])
                elif len(new) < replicas:
                    self._create_deployment_pod(deployment, wanted)
        else:
            for _ in range(replicas - len(new)):
                self._create_deployment_pod(deployment, wanted)
            for pod in sorted(new, key=lambda p: p["metadata"]["name"])[replicas:]:
                self.api.delete(PODS, ns, pod["metadata"]["name"], pod["metadata"]["uid"])
        ready = sum(running_and_ready(p) for p in live)
        status = {
            "replicas": len(live),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": len(new),
        }
        if meta.get("generation") is not None:
            status["observedGeneration"] = meta["generation"]
        if any((deployment.get("status") or {}).get(k) != v for k, v in status.items()):
            self.api.patch(DEPLOYMENTS, ns, name, {"status": status}, True)

    def _create_deployment_pod(self, deployment: Obj, wanted: str) -> None:
        meta = deployment["metadata"]
        template = json.loads(json.dumps(deployment["spec"].get("template") or {}))
        tmeta = template.get("metadata") or {}
        labels = {**(tmeta.get("labels") or {}), TEMPLATE_HASH_LABEL: wanted}
        pod_meta = {"generateName": f"{meta['name']}-{wanted}-", "namespace": meta["namespace"]}
        pod_meta.update(labels=labels, ownerReferences=[owner_ref(deployment)])
        pod_meta.update({"annotations": tmeta["annotations"]} if tmeta.get("annotations") else {})
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta}
        created = self.api.create(PODS, {**body, "spec": template.get("spec") or {}})
        if created is not None:  # expectations: the next sync must count it
            cmeta = created["metadata"]
            self.pods.wait(lambda: self.pods.get(cmeta["namespace"], cmeta["name"]) is not None)

    # --- claims and garbage -----------------------------------------------------------------------

    def _bind_claims(self) -> None:
        for claim in self.claims.objects():
            meta, spec = claim["metadata"], claim.get("spec") or {}
            if terminating(claim) or (claim.get("status") or {}).get("phase") == "Bound":
                continue
            status: Obj = {"phase": "Bound", "accessModes": spec.get("accessModes") or []}
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            status.update({"capacity": {"storage": storage}} if storage else {})
            self.api.patch(PVCS, meta["namespace"], meta["name"], {"status": status}, True)

    def _collect_garbage(self) -> None:
        for kind in COLLECTED:
            for obj in self.informers[kind].objects():
                meta = obj["metadata"]
                refs = meta.get("ownerReferences") or []
                if not refs or terminating(obj):
                    continue
                if all(self._owner_gone(meta["namespace"], ref) for ref in refs):
                    log.info("collecting %s %s/%s", kind.kind, meta["namespace"], meta["name"])
                    self.api.delete(kind, meta["namespace"], meta["name"], meta["uid"])

    def _owner_gone(self, namespace: str, ref: Obj) -> bool:
        kind = KINDS.get((ref.get("apiVersion", ""), ref.get("kind", "")))
        if kind is not None:
            cached = self.informers[kind].get(namespace, ref["name"])
            if cached is not None and cached["metadata"]["uid"] == ref.get("uid"):
                return False
            live = self.api.get(kind, namespace, ref["name"])
            return live is None or live["metadata"]["uid"] != ref.get("uid")
        checked_at, exists = self._owners.get(ref.get("uid", ""), (0.0, False))
        if exists and time.monotonic() - checked_at < OWNER_CACHE_SECONDS:
            return False
        path = self._owner_path(namespace, ref)
        if path is None:
            return False  # a kind we cannot resolve: never collect
        try:
            live = self.api.call("GET", path)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            live = None
        gone = live is None or live["metadata"].get("uid") != ref.get("uid")
        self._owners[ref.get("uid", "")] = (time.monotonic(), not gone)
        return gone

    def _owner_path(self, namespace: str, ref: Obj) -> str | None:
        """The path of an owner of a kind we do not watch, its plural found by discovery."""
        api_version, kind_name = ref.get("apiVersion", ""), ref.get("kind", "")
        if (api_version, kind_name) not in self._plurals:
            prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                resources = self.api.call("GET", prefix).get("resources") or []
            except k8s.ApiException:
                resources = []
            plural = next(
                (
                    r["name"]
                    for r in resources
                    if r.get("kind") == kind_name and "/" not in r["name"]
                ),
                None,
            )
            self._plurals[(api_version, kind_name)] = plural
        plural = self._plurals[(api_version, kind_name)]
        if plural is None:
            return None
        return Kind(api_version, kind_name, plural).path(namespace, ref["name"])
