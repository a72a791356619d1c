{{/* Master or worker pods: the selector adds the role. */}}
{{- define "locust.roleSelectorLabels" -}}
{{ include "common.labels.selector" .ctx }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{/* The api under test: the only host a run may target and the key may go to. */}}
{{- define "locust.apiUrl" -}}
{{- .Values.apiUrl | default (include "common.services.url" (dict "ctx" . "chart" "api")) }}
{{- end }}

{{/* The web UI's login: a generated password, kept across upgrades. */}}
{{- define "locust.webSecretName" -}}
{{- printf "%s-web" (include "common.names.fullname" .) }}
{{- end }}
