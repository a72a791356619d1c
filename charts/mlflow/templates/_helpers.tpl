{{/* The server's pods only: the training Job's pods share name and instance, and a Service that
selected them too would send part of the registry's traffic to a pod that does not serve it. */}}
{{- define "mlflow.serverSelectorLabels" -}}
{{ include "common.labels.selector" . }}
app.kubernetes.io/component: registry
{{- end }}

{{/* Host headers MLflow's security middleware accepts: the Service's names, with and without a port. */}}
{{- define "mlflow.allowedHosts" -}}
{{- $name := include "common.names.fullname" . }}
{{- $hosts := list }}
{{- range list $name (printf "%s.%s" $name .Release.Namespace) (printf "%s.%s.svc" $name .Release.Namespace) (printf "%s.%s.svc.cluster.local" $name .Release.Namespace) "localhost" "127.0.0.1" }}
{{- $hosts = concat $hosts (list . (printf "%s:*" .)) }}
{{- end }}
{{- join "," $hosts }}
{{- end }}
