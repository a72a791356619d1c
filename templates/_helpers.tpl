{{/* Labels of the objects the umbrella itself owns. */}}
{{- define "readmit.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: readmit
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
A Secret value generated once and kept: the one already in the cluster when there is one (upgrades),
else a new random one. Call with (dict "ctx" $ "name" "secret-name" "key" "data-key").
*/}}
{{- define "readmit.keptSecretValue" -}}
{{- $old := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if and $old (index ($old.data | default dict) .key) }}
{{- index $old.data .key }}
{{- else }}
{{- randAlphaNum 32 | b64enc }}
{{- end }}
{{- end }}

{{/* The kube-prometheus-stack values (the key has dashes, so index it once here). */}}
{{- define "readmit.kps" -}}
{{- toYaml (index .Values "kube-prometheus-stack") }}
{{- end }}

{{/* Fail with a clear message when two Services would claim the same NodePort. */}}
{{- define "readmit.checkNodePorts" -}}
{{- $claims := dict }}
{{- range $name := list "api" "ui" "locust" }}
{{- $v := index $.Values $name }}
{{- if and $v.enabled (eq $v.service.type "NodePort") }}
{{- $_ := set $claims $name $v.service.nodePort }}
{{- end }}
{{- end }}
{{- $kps := include "readmit.kps" . | fromYaml }}
{{- if $kps.enabled }}
{{- $_ := set $claims "prometheus" $kps.prometheus.service.nodePort }}
{{- $_ := set $claims "grafana" $kps.grafana.service.nodePort }}
{{- end }}
{{- $seen := dict }}
{{- range $name, $port := $claims }}
{{- $key := toString $port }}
{{- if hasKey $seen $key }}
{{- fail (printf "NodePort %s is set for both %s and %s: each Service needs its own" $key (get $seen $key) $name) }}
{{- end }}
{{- $_ := set $seen $key $name }}
{{- end }}
{{- end }}
