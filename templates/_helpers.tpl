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

{{/*
NOTES.txt: where a component's Service answers from outside the cluster, by its type, and what
to run first. Call with (dict "ctx" $ "chart" "api").
*/}}
{{- define "readmit.reachUrl" -}}
{{- $svc := (index .ctx.Values .chart).service }}
{{- if eq $svc.type "NodePort" }}http://NODE:{{ $svc.nodePort }}
{{- else if eq $svc.type "LoadBalancer" }}http://EXTERNAL-IP:{{ include "common.services.port" .chart }}
{{- else }}http://localhost:{{ include "common.services.port" .chart }}
{{- end }}
{{- end }}

{{- define "readmit.reach" -}}
{{- $svc := (index .ctx.Values .chart).service }}
{{- $name := include "common.names.of" . }}
{{- include "readmit.reachUrl" . }}
{{- if eq $svc.type "LoadBalancer" }}   (EXTERNAL-IP: kubectl -n {{ .ctx.Release.Namespace }} get svc {{ $name }})
{{- else if ne $svc.type "NodePort" }}   (after: kubectl -n {{ .ctx.Release.Namespace }} port-forward svc/{{ $name }} {{ include "common.services.port" .chart }})
{{- end }}
{{- end }}

{{/*
Release names up to 40 characters: the longest names, RELEASE-mlflow-train-REVISION and
RELEASE-locust-master, then stay within Kubernetes' 63 with no silent truncation (which would
break the names NOTES.txt prints and the components call each other by).
*/}}
{{- define "readmit.checkReleaseName" -}}
{{- if gt (len .Release.Name) 40 }}
{{- fail (printf "release name %q has %d characters; at most 40, so that RELEASE-mlflow-train-REVISION stays a valid name" .Release.Name (len .Release.Name)) }}
{{- end }}
{{- end }}

{{/* The api loads its model from a registry: the release's MLflow, or api.mlflow.trackingUri. */}}
{{- define "readmit.checkRegistry" -}}
{{- if and .Values.api.enabled (not .Values.mlflow.enabled) (not .Values.api.mlflow.trackingUri) }}
{{- fail "api.mlflow.trackingUri is required when mlflow.enabled is false: the api loads its model from that registry" }}
{{- end }}
{{- end }}

{{/* The port of an http(s) URL: its own, else the scheme's. */}}
{{- define "readmit.urlPort" -}}
{{- $url := urlParse . }}
{{- $hostPort := splitList ":" $url.host }}
{{- if gt (len $hostPort) 1 }}{{ last $hostPort }}{{ else if eq $url.scheme "https" }}443{{ else }}80{{ end }}
{{- end }}
