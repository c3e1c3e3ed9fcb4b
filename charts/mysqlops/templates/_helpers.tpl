{{/* The chart's name, and the release's full name (both at most 63 characters). */}}
{{- define "mysqlops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mysqlops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The name of a component's objects (its Deployment, ServiceAccount, Role...).
Called with (dict "root" $ "component" "operator"|"worker"). */}}
{{- define "mysqlops.componentName" -}}
{{- printf "%s-%s" (include "mysqlops.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; with a component: (dict "root" $ "component" "worker"). */}}
{{- define "mysqlops.labels" -}}
{{- $root := .root | default . -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
{{ include "mysqlops.commonSelectorLabels" $root }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: mysqlops
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end }}

{{/* What selects every pod of the release. */}}
{{- define "mysqlops.commonSelectorLabels" -}}
app.kubernetes.io/name: {{ include "mysqlops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* What selects one component's pods: (dict "root" $ "component" "worker"). */}}
{{- define "mysqlops.selectorLabels" -}}
{{ include "mysqlops.commonSelectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mysqlops.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The uid and gid every container runs as: the image's user (USER in the Dockerfile). */}}
{{- define "mysqlops.uid" -}}
10001
{{- end }}

{{- define "mysqlops.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ include "mysqlops.uid" . }}
runAsGroup: {{ include "mysqlops.uid" . }}
fsGroup: {{ include "mysqlops.uid" . }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "mysqlops.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ include "mysqlops.uid" . }}
runAsGroup: {{ include "mysqlops.uid" . }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Where the Temporal TLS Secret's files are mounted. */}}
{{- define "mysqlops.tlsDir" -}}
/etc/mysqlops/temporal-tls
{{- end }}

{{/* The environment both commands read: where Temporal is, and how to talk to it. TLS
material only ever as paths of mounted files. */}}
{{- define "mysqlops.env" -}}
- name: TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
{{- with .Values.temporal.tls }}
{{- if .secretName }}
{{- range $variable, $key := dict "TEMPORAL_TLS_CERT" .certKey "TEMPORAL_TLS_KEY" .keyKey "TEMPORAL_TLS_CA" .caKey }}
{{- if $key }}
- name: {{ $variable }}
  value: {{ printf "%s/%s" (include "mysqlops.tlsDir" $) $key | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
- name: MYSQLOPS_TASK_QUEUE
  value: {{ .Values.temporal.taskQueue | quote }}
- name: MYSQLOPS_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{- define "mysqlops.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.temporal.tls.secretName }}
- name: temporal-tls
  mountPath: {{ include "mysqlops.tlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "mysqlops.volumes" -}}
- name: tmp
  emptyDir: {}
{{- with .Values.temporal.tls }}
{{- if .secretName }}
- name: temporal-tls
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
    items:
      {{- range $key := list .certKey .keyKey .caKey | compact }}
      - key: {{ $key }}
        path: {{ $key }}
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The scheduling fields of a component's values, as pod spec fields. */}}
{{- define "mysqlops.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The image of the clusters' node and HAProxy pods (runtime kubernetes): nodes.image, else
the chart's own. */}}
{{- define "mysqlops.nodeImage" -}}
{{- .Values.nodes.image | default (include "mysqlops.image" .) }}
{{- end }}

{{/* The names of imagePullSecrets, comma-separated, for the clusters' pods. */}}
{{- define "mysqlops.pullSecretNames" -}}
{{- $names := list }}
{{- range .Values.imagePullSecrets }}{{ $names = append $names .name }}{{ end }}
{{- join "," $names }}
{{- end }}

{{/* The claim the workers keep backups on (runtime kubernetes): an existing one, else the
chart's. */}}
{{- define "mysqlops.backupClaim" -}}
{{- .Values.backups.persistentVolumeClaim | default (printf "%s-backups" (include "mysqlops.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}

{{/* The labels of the Kubernetes runtime's pods (activities/kubernetes/objects/common.py):
what selects a cluster's nodes (component "database") or its HAProxy ("load-balancer"), of
every cluster in a namespace. Called with the component. */}}
{{- define "mysqlops.clusterPodLabels" -}}
app.kubernetes.io/name: mysql
app.kubernetes.io/managed-by: mysqlops
app.kubernetes.io/component: {{ . }}
{{- end }}

{{/* NetworkPolicy pieces. The egress rule to DNS. */}}
{{- define "mysqlops.dnsEgress" -}}
# DNS
- ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
  {{- with .Values.networkPolicy.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The workers, as a NetworkPolicyPeer seen from another namespace. */}}
{{- define "mysqlops.workerPeer" -}}
namespaceSelector:
  matchLabels:
    kubernetes.io/metadata.name: {{ .Release.Namespace }}
podSelector:
  matchLabels:
    {{- include "mysqlops.selectorLabels" (dict "root" . "component" "worker") | nindent 4 }}
{{- end }}

{{/* The namespaces the clusters live in, as a peer's namespaceSelector: the ones listed (a
list); none listed, any. */}}
{{- define "mysqlops.clusterNamespaces" -}}
namespaceSelector:
{{- if . }}
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: In
      values:
        {{- toYaml . | nindent 8 }}
{{- else }} {}
{{- end }}
{{- end }}
