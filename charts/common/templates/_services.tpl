{{/*
The ports the images listen on, and their Services too (one number per port, so a URL built
here always meets its Service). Call with the port's name: (include "common.services.port" "api").
*/}}
{{- define "common.services.port" -}}
{{- $ports := dict "api" 8000 "api-metrics" 9464 "ui" 8501 "mlflow" 5000 "locust" 8089 "locust-master" 5557 "locust-metrics" 9646 }}
{{- required (printf "no port is named %q" .) (get $ports .) }}
{{- end }}

{{/* A component's in-cluster URL. Call with (dict "ctx" $ "chart" "api"). */}}
{{- define "common.services.url" -}}
{{- printf "http://%s:%s" (include "common.names.of" .) (include "common.services.port" .chart) }}
{{- end }}
