{{/* Chart name, truncated to 63 characters (DNS label). */}}
{{- define "api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-name + chart name, unless overridden. */}}
{{- define "api.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "api.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Selector labels: immutable, so only name and instance. */}}
{{- define "api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Standard labels. */}}
{{- define "api.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "api.selectorLabels" . }}
app.kubernetes.io/version: {{ include "api.tag" . | quote }}
app.kubernetes.io/component: inference
app.kubernetes.io/part-of: readmit
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The image tag: the value, else the chart's appVersion. */}}
{{- define "api.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* registry/repository:tag, or @digest when one is given. */}}
{{- define "api.image" -}}
{{- $repo := printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (include "api.tag" .) }}
{{- end }}
{{- end }}

{{/* The Secret holding the API key: an existing one, or the one the umbrella generates. */}}
{{- define "api.apiKeySecret" -}}
{{- .Values.global.apiKeys.existingSecret | default (printf "%s-api-keys" .Release.Name) }}
{{- end }}
