{{/* Every pod runs as the images' non-root user (10001), with the runtime's seccomp profile. */}}
{{- define "common.pods.securityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Every container: no privilege escalation, a read-only root filesystem, no capabilities. */}}
{{- define "common.pods.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/*
The API keys, one per client, from one Secret (an entry per client: ui, locust, and the people
and scripts in global.apiKeys.clients), mounted as files, never environment variables.
A client (ui, Locust) mounts its own entry only, as the file READMIT_API_KEY_FILE names: the
env, the mount and the volume for the three lists of a pod spec; call the volume with
(dict "ctx" $ "client" "ui").
*/}}
{{- define "common.pods.apiKeyEnv" -}}
{{- if .Values.global.apiKeys.enabled }}
- name: READMIT_API_KEY_FILE
  value: /var/run/secrets/readmit/api-key
{{- end }}
{{- end }}

{{- define "common.pods.apiKeyVolumeMount" -}}
{{- if .Values.global.apiKeys.enabled }}
- name: api-key
  mountPath: /var/run/secrets/readmit
  readOnly: true
{{- end }}
{{- end }}

{{- define "common.pods.apiKeyVolume" -}}
{{- if .ctx.Values.global.apiKeys.enabled }}
- name: api-key
  secret:
    secretName: {{ include "common.names.apiKeySecret" .ctx }}
    items: [{key: {{ .client }}, path: api-key}]
    defaultMode: 0440
{{- end }}
{{- end }}
