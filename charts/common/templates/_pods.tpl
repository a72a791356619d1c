{{/* Every pod runs as the images' non-root user (10001), with the runtime's seccomp profile. */}}
{{- define "common.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Every container: no privilege escalation, a read-only root filesystem, no capabilities. */}}
{{- define "common.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/*
The API key, mounted as a file from its Secret (never an environment variable), when
global.apiKeys.enabled. Three parts for the three lists of a pod spec: the variable that names
the file (call with (dict "ctx" $ "env" "READMIT_API_KEY_FILE")), the mount and the volume.
*/}}
{{- define "common.apiKeyEnv" -}}
{{- if .ctx.Values.global.apiKeys.enabled }}
- name: {{ .env }}
  value: /var/run/secrets/readmit/api-key
{{- end }}
{{- end }}

{{- define "common.apiKeyVolumeMount" -}}
{{- if .Values.global.apiKeys.enabled }}
- name: api-key
  mountPath: /var/run/secrets/readmit
  readOnly: true
{{- end }}
{{- end }}

{{- define "common.apiKeyVolume" -}}
{{- if .Values.global.apiKeys.enabled }}
- name: api-key
  secret:
    secretName: {{ include "common.apiKeySecretName" . }}
    items: [{key: {{ .Values.global.apiKeys.secretKey }}, path: api-key}]
    defaultMode: 0440
{{- end }}
{{- end }}
