{{/*
The RBAC rules of the two ServiceAccounts: the one place they are written. Exactly the verbs
and resources the code calls, nothing more (tests/chart checks them against this list).
rbac.yaml grants them cluster-wide, or in watchNamespace only.
*/}}

{{/* The operator watches the resources, reads and patches a cluster (its finalizer), writes
the status no workflow can (refusals, Pending) and records events. */}}
{{- define "mysqlops.rbac.rules.operator" -}}
- apiGroups: ["mysqlops.io"]
  resources: ["mysqlclusters"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["mysqlops.io"]
  resources: ["mysqlbackups", "mysqlrestores"]
  verbs: ["list", "watch"]
- apiGroups: ["mysqlops.io"]
  resources: ["mysqlclusters/status", "mysqlbackups/status", "mysqlrestores/status"]
  verbs: ["get", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "get", "patch"]
{{- end }}

{{/* The workers write the resources' status and record events. */}}
{{- define "mysqlops.rbac.rules.worker" -}}
- apiGroups: ["mysqlops.io"]
  resources: ["mysqlclusters/status", "mysqlbackups/status", "mysqlrestores/status"]
  verbs: ["get", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "get", "patch"]
{{- end }}

{{/* The workers' Kubernetes runtime (runtime: kubernetes; activities/kubernetes/runtime.py),
in a role of its own. In each cluster's namespace it creates the cluster's objects, or else
patches them (a JSON merge patch); reads the Secret, the nodes' ConfigMap, the StatefulSet, the
HAProxy Deployment; scales the two (patch); deletes them all when the cluster goes. It reads the
node Pods (IP, container statuses), lists the HAProxy Pods (by label) and the claims (a deleted
cluster's data), deletes a removed node's claim, and reads the MySQLCluster for its uid: every
object names it as its owner with blockOwnerDeletion, which the API server allows only to who
may update mysqlclusters/finalizers. tests/chart/test_runtime_rbac.py checks these against
the runtime's calls. */}}
{{- define "mysqlops.rbac.rules.worker-runtime" -}}
- apiGroups: ["mysqlops.io"]
  resources: ["mysqlclusters"]
  verbs: ["get"]
- apiGroups: ["mysqlops.io"]
  resources: ["mysqlclusters/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["create", "get", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "delete"]
- apiGroups: ["apps"]
  resources: ["statefulsets", "deployments"]
  verbs: ["create", "get", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create", "patch", "delete"]
{{- end }}
