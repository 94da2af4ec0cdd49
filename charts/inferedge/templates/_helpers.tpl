{{/* Chart name, shortened to fit label values. */}}
{{- define "inferedge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: <release>-inferedge unless the release name already says it. */}}
{{- define "inferedge.fullname" -}}
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

{{/* Labels every object of the chart carries. */}}
{{- define "inferedge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "inferedge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: inferedge
{{- end }}

{{/* Labels that select the operator pod; never change them (Deployment selectors are immutable). */}}
{{- define "inferedge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inferedge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "inferedge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inferedge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "inferedge.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Namespaces the operator watches with rbac.scope=namespace. */}}
{{- define "inferedge.watchNamespaces" -}}
{{- if .Values.rbac.watchNamespaces }}
{{- join "," .Values.rbac.watchNamespaces }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/* Namespaces that get the edge and cloud NATS Secrets (natsAuth.pipelineNamespaces). */}}
{{- define "inferedge.natsPipelineNamespaces" -}}
{{- if .Values.natsAuth.pipelineNamespaces }}
{{- join "," .Values.natsAuth.pipelineNamespaces }}
{{- else if eq .Values.rbac.scope "namespace" }}
{{- include "inferedge.watchNamespaces" . }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{/* Rules on namespaced resources, shared by the ClusterRole and the per-namespace Roles. */}}
{{- define "inferedge.namespacedRules" -}}
- apiGroups: ["inferedge.io"]
  resources: ["inferencepipelines", "deviceprofiles"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["inferedge.io"]
  resources: ["inferencepipelines/status", "deviceprofiles/status"]
  verbs: ["get", "patch", "update"]
# Owner references with blockOwnerDeletion need update on the owner's finalizers.
- apiGroups: ["inferedge.io"]
  resources: ["inferencepipelines/finalizers", "deviceprofiles/finalizers"]
  verbs: ["update", "patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
# Changed templates are replaced (PUT), guarded by resourceVersion: hence update.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["create", "get", "list", "watch", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["create", "get", "list", "watch", "patch", "update", "delete"]
# Ready reflects live pod readiness.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# Only to read a pipeline's store credentials: the finalizer deletes its artifacts.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
