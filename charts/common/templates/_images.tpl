{{/* The image tag: the value, else the chart's appVersion (also the umbrella's, which has no image). */}}
{{- define "common.images.tag" -}}
{{- default .Chart.AppVersion (.Values.image | default dict).tag }}
{{- end }}

{{/* registry/repository:tag, or @digest when one is given (scripts/build-images.sh records them). */}}
{{- define "common.images.image" -}}
{{- $repo := printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (include "common.images.tag" .) }}
{{- end }}
{{- end }}
