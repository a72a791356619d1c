{{/*
The api's load as the custom metrics API serves it (the metrics-adapter chart's rules) and the
api's HPA asks for it, by the autoscaling.metric value: (include "common.metrics.load" "requestsPerSecond").
*/}}
{{- define "common.metrics.load" -}}
{{- $names := dict "requestsPerSecond" "readmit_requests_per_second" "requestsInFlight" "readmit_requests_in_flight" }}
{{- required (printf "no load metric is named %q" .) (get $names .) }}
{{- end }}

{{/* The bundled kube-prometheus-stack's Prometheus (fullnameOverride kps), which the metrics
adapter reads unless told another. Call with the release's context. */}}
{{- define "common.metrics.bundledPrometheusUrl" -}}
{{- printf "http://kps-prometheus.%s.svc:9090" .Release.Namespace }}
{{- end }}
