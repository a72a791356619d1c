{{/* Selector labels: immutable, so only name and instance. */}}
{{- define "common.labels.selector" -}}
{{- include "common.labels.selectorOf" (dict "ctx" . "chart" .Chart.Name) }}
{{- end }}

{{/* Another component's selector labels (NetworkPolicies). Call with (dict "ctx" $ "chart" "api"). */}}
{{- define "common.labels.selectorOf" -}}
app.kubernetes.io/name: {{ .chart }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end }}

{{/*
Standard labels. Call with (dict "ctx" $) or, for objects of one role, (dict "ctx" $ "role" "inference").
*/}}
{{- define "common.labels.standard" -}}
{{- $ctx := .ctx -}}
helm.sh/chart: {{ printf "%s-%s" $ctx.Chart.Name $ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "common.labels.selector" $ctx }}
app.kubernetes.io/version: {{ include "common.images.tag" $ctx | quote }}
{{- with .role }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/part-of: readmit
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
{{- end }}
