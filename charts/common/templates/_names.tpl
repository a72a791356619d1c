{{/*
Names. Every object of a component is named <release>-<chart>, and so is its Service: the other
components find it by that name (there is no nameOverride/fullnameOverride, which a sibling
chart could not see).
*/}}

{{/* Any component's name in this release. Call with (dict "ctx" $ "chart" "api"). */}}
{{- define "common.names.of" -}}
{{- printf "%s-%s" .ctx.Release.Name .chart | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* This chart's objects' name. */}}
{{- define "common.names.fullname" -}}
{{- include "common.names.of" (dict "ctx" . "chart" .Chart.Name) }}
{{- end }}

{{/* The Secret holding the API key: an existing one, or the one the umbrella generates. */}}
{{- define "common.names.apiKeySecret" -}}
{{- .Values.global.apiKeys.existingSecret | default (printf "%s-api-keys" .Release.Name) }}
{{- end }}
