{{/* Chart name, overridable with nameOverride. */}}
{{- define "dynamo-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name, with the chart name
appended unless the release name already contains it.
*/}}
{{- define "dynamo-operator.fullname" -}}
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

{{- define "dynamo-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dynamo-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dynamo-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dynamo-operator.labels" -}}
helm.sh/chart: {{ include "dynamo-operator.chart" . }}
{{ include "dynamo-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: dynamo
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "dynamo-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dynamo-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dynamo-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Rules the operator needs in every namespace it watches: its own resources,
the objects it owns (applied server-side under one field manager), pods for
rolling restarts, events, `get` on secrets to read a cluster's auth, clients
and `spec.tls` Secrets (no list or watch: it reads them by name on every
reconcile), and `create` on secrets for the generated `<cluster>-auth` (it
never updates or deletes a Secret; the generated one goes with its cluster
through its owner reference).
*/}}
{{- define "dynamo-operator.watchRules" -}}
- apiGroups: ["kv.dynamo.dev"]
  resources: ["dynamoclusters"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["kv.dynamo.dev"]
  resources: ["dynamoclusters/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["kv.dynamo.dev"]
  resources: ["dynamoclusters/finalizers"]
  verbs: ["update"]
- apiGroups: ["kv.dynamo.dev"]
  resources: ["dynamobackups", "dynamobackupschedules", "dynamorestores"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["kv.dynamo.dev"]
  resources: ["dynamobackups/status", "dynamobackupschedules/status", "dynamorestores/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["kv.dynamo.dev"]
  resources: ["dynamobackups/finalizers", "dynamorestores/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
