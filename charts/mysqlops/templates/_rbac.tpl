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
