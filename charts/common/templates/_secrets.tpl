{{/*
A Secret value generated once and kept: the one already in the cluster when there is one (upgrades),
else a new random one. Call with (dict "ctx" $ "name" "secret-name" "key" "data-key").
*/}}
{{- define "common.secrets.keptValue" -}}
{{- $old := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if and $old (index ($old.data | default dict) .key) }}
{{- index $old.data .key }}
{{- else }}
{{- randAlphaNum 32 | b64enc }}
{{- end }}
{{- end }}

{{/*
The registry's users (MLflow's basic-auth app), and the Secret with their generated passwords
(the mlflow chart makes it). The trainer may log runs, register versions and move the alias;
the api may only read.
*/}}
{{- define "common.secrets.mlflowAuthName" -}}
{{- printf "%s-mlflow-auth" .Release.Name }}
{{- end }}

{{- define "common.secrets.mlflowTrainerUser" -}}readmit-trainer{{- end }}

{{- define "common.secrets.mlflowApiUser" -}}readmit-api{{- end }}

{{/* Where a pod finds the passwords of that Secret it mounts. */}}
{{- define "common.secrets.mlflowAuthDir" -}}/var/run/secrets/readmit-mlflow{{- end }}
